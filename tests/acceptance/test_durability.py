"""Nothing accepted is lost: the real processes (`pushgate serve`, or `pushgate api` + `pushgate
worker` on PostgreSQL, RabbitMQ and Redis) killed, stopped and restarted mid-flight, against the
fake Web Push service running in the test, which records what arrived."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from pushgate.domain import subscription as subscriptions
from pushgate.domain.apikeys import Scope
from pushgate.settings import load_settings
from pushgate.store import api_keys, apps, db
from pushgate.store.credentials import SecretBox
from pushgate.store.tables import Delivery, Device
from tests.acceptance.profiles import DATABASE_URL, services_profile
from tests.fakes.webpush_server import FakeWebPushService

pytestmark = pytest.mark.slow

PUSHGATE = [sys.executable, "-m", "pushgate"]
START_TIMEOUT = 30.0
FINAL = {"completed", "partially_failed", "failed", "expired", "canceled"}
# Few sends at once and a slow push service: a delivery run of seconds, so a kill lands in it.
CONCURRENCY = 50
PUSH_DELAY = 0.05

PROFILES = [
    "embedded",
    pytest.param("services", marks=[pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis]),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Deployment:
    """One pushgate installation on a profile: its settings (as environment variables), its
    database, and the processes started so far (all killed at the end)."""

    profile: str
    env: dict[str, str]
    database_url: str  # async URL, for the test's own look at the database
    directory: Path
    processes: list[Process] = field(default_factory=list)
    api_url: str = ""
    send_headers: dict[str, str] = field(default_factory=dict)
    app_id: uuid.UUID | None = None
    _http: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        """The test's client of the API, made once: a client per call costs ~25 ms of CPU
        (its TLS context), taken from the fake push service sharing this loop."""
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.api_url, timeout=10)
        return self._http

    def box(self) -> SecretBox:
        """The secrets box its processes use: the key it is given, else (embedded) the key
        file in its data directory."""
        key = self.env.get("PUSHGATE_SECRETS__KEY")
        if key:
            return SecretBox([key])
        return SecretBox.from_settings(load_settings(data_dir=self.env["PUSHGATE_DATA_DIR"]))

    async def cli(self, *args: str) -> None:
        log = self.directory / f"cli-{len(self.processes)}-{args[0]}.log"
        with log.open("w") as out:
            proc = await asyncio.create_subprocess_exec(
                *PUSHGATE, *args, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        try:
            code = await asyncio.wait_for(proc.wait(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert code == 0, log.read_text()

    async def _spawn(self, name: str, *args: str) -> Process:
        log = self.directory / f"{name}-{len(self.processes)}.log"
        with log.open("w") as out:
            proc = await asyncio.create_subprocess_exec(
                *PUSHGATE, *args, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        process = Process(name, proc, log)
        self.processes.append(process)
        return process

    async def start_worker(self) -> Process:
        """The process that delivers: `serve` (embedded, also the API) or `worker`."""
        if self.profile == "embedded":
            process = await self._spawn("serve", "serve", "--port", self.api_url.rsplit(":")[-1])
            await self._wait_healthy(process)
            return process
        process = await self._spawn("worker", "worker")
        await self._wait_for_line(process, "worker started")
        return process

    async def start_api(self) -> None:
        """The API: its own process on the services profile, part of `serve` when embedded."""
        if self.profile == "services":
            port = self.api_url.rsplit(":")[-1]
            await self._wait_healthy(await self._spawn("api", "api", "--port", port))

    async def _wait_healthy(self, process: Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if (await self.http().get("/health", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"{process.name} did not start:\n{process.output()}")
            await asyncio.sleep(0.05)

    async def _wait_for_line(self, process: Process, line: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while line not in process.output():
            if process.proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"{process.name} did not start:\n{process.output()}")
            await asyncio.sleep(0.05)

    async def kill_all(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        for process in self.processes:
            if process.proc.returncode is None:
                process.proc.kill()
                await process.proc.wait()

    # --- data ------------------------------------------------------------------------------

    async def seed(self, fake: FakeWebPushService, count: int) -> list[str]:
        """An app with a send key and `count` Web Push subscriptions on the fake, written
        straight to the database (registering 5,000 over HTTP would be the slow part)."""
        engine = db.create_engine(self.database_url)
        sessions = db.session_maker(engine)
        ids = []
        try:
            async with sessions() as session:
                app = await apps.create(session=session, box=self.box(), name="acme")
                key = await api_keys.create(session=session, app_id=app.id, scope=Scope.SEND)
                rows = []
                for _ in range(count):
                    sub = fake.new_subscription()
                    address = subscriptions.webpush_address(
                        endpoint=sub["endpoint"],
                        p256dh=sub["keys"]["p256dh"],
                        auth=sub["keys"]["auth"],
                    )
                    ids.append(sub["endpoint"].rsplit("/", 1)[-1])
                    rows.append(
                        {
                            "app_id": app.id,
                            "platform": "webpush",
                            "token": address.token,
                            "p256dh": address.p256dh,
                            "auth": address.auth,
                        }
                    )
                for start in range(0, count, 1000):
                    await session.execute(insert(Device), rows[start : start + 1000])
                await session.commit()
        finally:
            await engine.dispose()
        self.app_id = app.id
        self.send_headers = {"Authorization": f"Bearer {key.secret}"}
        return ids

    async def deliveries_in(self, status: str) -> int:
        engine = db.create_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                query = select(func.count()).select_from(Delivery).where(Delivery.status == status)
                return int((await connection.execute(query)).scalar_one())
        finally:
            await engine.dispose()

    async def send(self, body: dict[str, Any]) -> str:
        response = await self.http().post("/v1/notifications", json=body, headers=self.send_headers)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def status(self, notification_id: str) -> dict[str, Any]:
        response = await self.http().get(
            f"/v1/notifications/{notification_id}", headers=self.send_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def finished(self, notification_id: str, *, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            body = await self.status(notification_id)
            if body["status"] in FINAL:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"not final within {within}s: {body}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWebPushService]:
    async with FakeWebPushService() as service:
        yield service


@pytest.fixture(params=PROFILES)
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeWebPushService
) -> AsyncIterator[Deployment]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    for name in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "SERVICE_PORT", "LOG_LEVEL"):
        env.pop(name, None)
    env |= {
        "PUSHGATE_DATA_DIR": str(tmp_path / "data"),
        "PUSHGATE_WEBPUSH__EXTRA_HOSTS": "127.0.0.1",
        "PUSHGATE_WEBPUSH__ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_WEBPUSH__CA_BUNDLE": str(fake.ca_pem_path),
        "PUSHGATE_WEBPUSH__VAPID_SUBJECT": "mailto:ops@pushgate.example.com",
        "PUSHGATE_WORKER__CONCURRENCY": str(CONCURRENCY),
        "PUSHGATE_WORKER__SWEEP_INTERVAL": "0.2",
        # No metrics page: the workers of one test (and of tests beside it) share the host.
        "PUSHGATE_METRICS__WORKER_PORT": "0",
        # A dead worker's claims come back after seconds, not the production minute.
        "PUSHGATE_WORKER__CLAIM_LEASE_SECONDS": "5",
        # Not shorter: the fake shares the test's loop, and an answer it is late with is a
        # timeout, a retry, and a legitimate duplicate.
        "PUSHGATE_DELIVERY__REQUEST_TIMEOUT_SECONDS": "3",
    }
    port = free_port()
    if request.param == "embedded":
        deployment = Deployment(
            "embedded",
            env,
            f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pushgate.db'}",
            tmp_path,
            api_url=f"http://127.0.0.1:{port}",
        )
        try:
            await deployment.cli("migrate")
            yield deployment
        finally:
            await deployment.kill_all()
        return
    async with services_profile() as services:
        env |= services
        url = services[DATABASE_URL]
        deployment = Deployment("services", env, url, tmp_path, api_url=f"http://127.0.0.1:{port}")
        try:
            await deployment.cli("migrate")
            yield deployment
        finally:
            await deployment.kill_all()


def received_per_subscription(fake: FakeWebPushService) -> Counter[str]:
    return Counter(r.subscription_id for r in fake.received)


@pytest.mark.timeout(120)
async def test_sigkill_mid_flight_delivers_to_every_subscription(
    deployment: Deployment, fake: FakeWebPushService
) -> None:
    # Given 5,000 subscriptions behind a slow push service, and pushgate running
    total = 5000
    subscription_ids = await deployment.seed(fake, total)
    fake.script(None, times=None, delay=PUSH_DELAY)
    await deployment.start_api()
    worker = await deployment.start_worker()

    # When a broadcast is on its way and the delivering process is killed outright
    started = time.monotonic()
    notification = await deployment.send({"broadcast": True, "title": "Sale", "body": "Now"})
    await until(
        lambda: len(fake.received) >= total // 5, within=30, what="a fifth of the deliveries"
    )
    worker.proc.kill()
    await worker.proc.wait()
    at_kill = len(fake.received)
    claimed_at_kill = await deployment.deliveries_in("sending")
    assert at_kill <= total * 0.6, f"the kill came too late to test anything ({at_kill})"
    # ... and started again
    restarted = time.monotonic()
    await deployment.start_worker()
    status = await deployment.finished(notification, within=75)
    done = time.monotonic()

    # Then every subscription got the message, a few of the ones in flight twice
    arrived = received_per_subscription(fake)
    missing = [s for s in subscription_ids if arrived[s] == 0]
    duplicates = sum(n - 1 for n in arrived.values())
    print(
        f"\n[{deployment.profile}] SIGKILL after {at_kill}/{total} delivered, "
        f"{claimed_at_kill} claimed by the dead process; duplicates: {duplicates}; "
        f"{restarted - started:.1f}s to the kill, {done - restarted:.1f}s from restart to done"
    )
    assert not missing, f"{len(missing)} subscriptions never got the message"
    assert duplicates <= claimed_at_kill
    assert status["status"] == "completed"
    assert status["counts"]["sent"] == total


@pytest.mark.timeout(90)
async def test_sigterm_finishes_work_in_flight_then_restart_sends_the_rest_once(
    deployment: Deployment, fake: FakeWebPushService
) -> None:
    # Given 2,000 subscriptions behind a slow push service, and a broadcast on its way
    total = 2000
    subscription_ids = await deployment.seed(fake, total)
    fake.script(None, times=None, delay=PUSH_DELAY)
    await deployment.start_api()
    worker = await deployment.start_worker()
    notification = await deployment.send({"broadcast": True, "title": "Sale", "body": "Now"})
    await until(lambda: len(fake.received) >= total // 5, within=30, what="a fifth delivered")

    # When the delivering process is asked to stop
    worker.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(worker.proc.wait(), 30)

    # Then it exits cleanly with nothing left half-done
    assert code == 0, worker.output()
    at_stop = len(fake.received)
    assert at_stop < total, "the stop came too late to test anything"
    assert await deployment.deliveries_in("sending") == 0
    # And after a restart the rest arrives, everything exactly once
    await deployment.start_worker()
    status = await deployment.finished(notification, within=45)
    arrived = received_per_subscription(fake)
    print(f"\n[{deployment.profile}] SIGTERM after {at_stop}/{total} delivered")
    assert sorted(arrived) == sorted(subscription_ids)
    assert set(arrived.values()) == {1}
    assert status["status"] == "completed"


@pytest.mark.timeout(90)
async def test_notification_scheduled_while_stopped_fires_after_restart(
    deployment: Deployment, fake: FakeWebPushService
) -> None:
    # Given a notification scheduled 10 seconds ahead (a loaded machine took more than 5 to
    # start the API and stop the worker once)
    subscription_ids = await deployment.seed(fake, 3)
    await deployment.start_api()
    worker = await deployment.start_worker()
    send_at = datetime.now(UTC) + timedelta(seconds=10)
    notification = await deployment.send(
        {"broadcast": True, "title": "Later", "send_at": send_at.isoformat()}
    )
    assert (await deployment.status(notification))["status"] == "scheduled"

    # When pushgate is stopped before the time and started again after it
    worker.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(worker.proc.wait(), 30) == 0, worker.output()
    assert datetime.now(UTC) < send_at, "stopping took longer than the schedule"
    after = send_at + timedelta(seconds=0.5)
    await until(lambda: datetime.now(UTC) >= after, within=15, what="the send time to pass")
    assert fake.received == []
    await deployment.start_worker()
    restarted = time.monotonic()

    # Then it fires within a few seconds of the restart, once to each subscription
    await until(lambda: len(fake.received) >= 3, within=10, what="the scheduled send")
    fired = time.monotonic() - restarted
    print(f"\n[{deployment.profile}] scheduled send fired {fired:.1f}s after the restart")
    status = await deployment.finished(notification, within=10)
    assert status["status"] == "completed"
    assert sorted(received_per_subscription(fake)) == sorted(subscription_ids)
    assert fake.received[0].payload["title"] == "Later"
