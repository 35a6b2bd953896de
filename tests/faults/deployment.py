"""A pushgate installation run as real processes for the tests that kill, stop and cut them
(tests/faults/, tests/acceptance/test_durability.py): its settings as environment variables,
its processes (`serve`, or `api` + `worker`), its data seeded straight into the database, and
the fake Web Push service's record of what arrived."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from tests.fakes.webpush_server import FakeWebPushService

PUSHGATE = [sys.executable, "-m", "pushgate"]
START_TIMEOUT = 30.0
FINAL = {"completed", "partially_failed", "failed", "expired", "canceled"}


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


def pushgate_env(
    environ: Mapping[str, str], data_dir: Path, fake: FakeWebPushService, *, concurrency: int
) -> dict[str, str]:
    """The environment of pushgate's processes: none of the shell's pushgate settings, Web
    Push to the fake, and a worker whose crashed work comes back within seconds."""
    env = {k: v for k, v in environ.items() if not k.startswith("PUSHGATE_")}
    for name in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "SERVICE_PORT", "LOG_LEVEL"):
        env.pop(name, None)
    return env | {
        "PUSHGATE_DATA_DIR": str(data_dir),
        "PUSHGATE_WEBPUSH__EXTRA_HOSTS": "127.0.0.1",
        "PUSHGATE_WEBPUSH__ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_WEBPUSH__CA_BUNDLE": str(fake.ca_pem_path),
        "PUSHGATE_WEBPUSH__VAPID_SUBJECT": "mailto:ops@pushgate.example.com",
        "PUSHGATE_WORKER__CONCURRENCY": str(concurrency),
        "PUSHGATE_WORKER__SWEEP_INTERVAL": "0.2",
        # No metrics page: the workers of one test (and of tests beside it) share the host.
        "PUSHGATE_METRICS__WORKER_PORT": "0",
        # A dead worker's claims come back after seconds, not the production minute.
        "PUSHGATE_WORKER__CLAIM_LEASE_SECONDS": "5",
        # Not shorter: the fake shares the test's loop, and an answer it is late with is a
        # timeout, a retry, and a legitimate duplicate.
        "PUSHGATE_DELIVERY__REQUEST_TIMEOUT_SECONDS": "3",
    }


@dataclass
class Process:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as the kernel's OOM killer or a lost host."""
        self.proc.kill()
        await self.proc.wait()


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
    admin_headers: dict[str, str] = field(default_factory=dict)
    app_id: uuid.UUID | None = None
    # Subscription id (the last part of its endpoint on the fake) -> device id.
    devices: dict[str, uuid.UUID] = field(default_factory=dict)
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

    async def start_api(self) -> Process | None:
        """The API: its own process on the services profile, part of `serve` when embedded."""
        if self.profile != "services":
            return None
        port = self.api_url.rsplit(":")[-1]
        process = await self._spawn("api", "api", "--port", port)
        await self._wait_healthy(process)
        return process

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

    def alive(self) -> list[Process]:
        return [p for p in self.processes if p.proc.returncode is None]

    async def kill_all(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        for process in self.alive():
            await process.kill()

    # --- data ------------------------------------------------------------------------------

    async def seed(self, fake: FakeWebPushService, count: int, *, app: str = "acme") -> list[str]:
        """An app with a send and an admin key and `count` Web Push subscriptions on the fake,
        written straight to the database (registering 5,000 over HTTP would be the slow
        part). Returns the subscriptions' ids."""
        engine = db.create_engine(self.database_url)
        sessions = db.session_maker(engine)
        try:
            async with sessions() as session:
                row = await apps.create(session=session, box=self.box(), name=app)
                key = await api_keys.create(session=session, app_id=row.id, scope=Scope.SEND)
                admin = await api_keys.create(session=session, app_id=row.id, scope=Scope.ADMIN)
                rows = []
                for _ in range(count):
                    sub = fake.new_subscription()
                    address = subscriptions.webpush_address(
                        endpoint=sub["endpoint"],
                        p256dh=sub["keys"]["p256dh"],
                        auth=sub["keys"]["auth"],
                    )
                    device_id = uuid.uuid4()
                    self.devices[sub["endpoint"].rsplit("/", 1)[-1]] = device_id
                    rows.append(
                        {
                            "id": device_id,
                            "app_id": row.id,
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
        self.app_id = row.id
        self.send_headers = {"Authorization": f"Bearer {key.secret}"}
        self.admin_headers = {"Authorization": f"Bearer {admin.secret}"}
        return list(self.devices)

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


def received_per_subscription(fake: FakeWebPushService) -> Counter[str]:
    return Counter(r.subscription_id for r in fake.received)
