"""Nothing accepted is lost: the real processes (`pushgate serve`, or `pushgate api` + `pushgate
worker` on PostgreSQL, RabbitMQ and Redis) killed, stopped and restarted mid-flight, against the
fake Web Push service running in the test, which records what arrived."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.acceptance.profiles import DATABASE_URL, services_profile
from tests.fakes.webpush_server import FakeWebPushService
from tests.faults.deployment import (
    Deployment,
    free_port,
    pushgate_env,
    received_per_subscription,
    until,
)

pytestmark = pytest.mark.slow

# Few sends at once and a slow push service: a delivery run of seconds, so a kill lands in it.
CONCURRENCY = 50
PUSH_DELAY = 0.05

PROFILES = [
    "embedded",
    pytest.param("services", marks=[pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis]),
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWebPushService]:
    async with FakeWebPushService() as service:
        yield service


@pytest.fixture(params=PROFILES)
async def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, fake: FakeWebPushService
) -> AsyncIterator[Deployment]:
    env = pushgate_env(os.environ, tmp_path / "data", fake, concurrency=CONCURRENCY)
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
    await worker.kill()
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
