"""A backlog is queued work, not lost work: a broadcast many dispatch pages long, with the
sweeper looking every few hundredths of a second and a grace far shorter than the backlog
lasts, is sent once per device, without the sweeper taking back anything still queued or
holding up a claim. And a worker stops within its shutdown grace even with a claim blocked on
a lock. Both on the real pipeline against the fake Web Push service."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from pushgate.broker import base as broker_base
from pushgate.domain import subscription
from pushgate.domain.request import NotificationCreate
from pushgate.sending import accept, dispatch, jobs
from pushgate.store import deliveries
from pushgate.store.tables import Delivery, Device
from tests.conftest import SERVICES
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory

DEVICES = 1000
PAGE = 50
# Far shorter than the backlog lasts (tens of seconds here), yet longer than a commit-to-publish
# or a job-to-claim gap on a loaded machine (SQLite's single writer makes those reach 0.5 s):
# the old rule, "pending longer than the grace is lost", took back much of the broadcast while
# it was still queued.
GRACE = 2.0

# Backends waiting for a lock held by the sweeper (its transactions name themselves; before
# they did, its statements were the only ones on deliveries with SKIP LOCKED).
WAITING_ON_SWEEPER = text(
    "SELECT count(*) FROM pg_stat_activity w WHERE w.wait_event_type = 'Lock'"
    " AND EXISTS (SELECT 1 FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(w.pid))"
    " AND (b.application_name = 'pushgate-sweeper' OR b.query ILIKE '%deliveries%SKIP LOCKED%'))"
)


@pytest.fixture
async def fake_push() -> AsyncIterator[FakeWebPushService]:
    # Counting is enough here; decrypting every message would be the test's whole cost.
    async with FakeWebPushService(decrypt=False) as fake:
        yield fake


async def add_subscriptions(
    pushgate: Pushgate, fake: FakeWebPushService, app_id: uuid.UUID, count: int
) -> None:
    rows = []
    for _ in range(count):
        sub = fake.new_subscription()
        address = subscription.webpush_address(
            endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
        rows.append(
            {
                "app_id": app_id,
                "platform": "webpush",
                "token": address.token,
                "p256dh": address.p256dh,
                "auth": address.auth,
            }
        )
    async with pushgate.runtime.sessions() as session:
        await session.execute(insert(Device), rows)
        await session.commit()


@pytest.fixture
def reclaimed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every delivery id the sweeper takes back during the test."""
    taken: list[int] = []
    original = deliveries.reclaim_stale

    async def counting(**kwargs: Any) -> list[int]:
        ids = await original(**kwargs)
        taken.extend(ids)
        return ids

    monkeypatch.setattr(deliveries, "reclaim_stale", counting)
    return taken


async def watch_for_claims_waiting_on_sweeper(pushgate: Pushgate, seen: list[int]) -> None:
    while True:
        async with pushgate.runtime.sessions() as session:
            seen.append(int((await session.execute(WAITING_ON_SWEEPER)).scalar_one()))
        await asyncio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_broadcast_many_pages_long_is_sent_once_without_reclaiming_queued_work(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService, reclaimed: list[int]
) -> None:
    # Given a thousand subscriptions, dispatch pages of 50, a sweep every 0.05 s and a
    # grace of 2 s; sends ten at a time, each answered after 20 ms, so that the deliver queue
    # holds a backlog of seconds on either profile
    fake_push.script(None, times=None, delay=0.02)
    pushgate = await make_pushgate(
        worker={
            "dispatch_page_size": PAGE,
            "concurrency": 10,
            "sweep_interval": 0.05,
            "stale_grace_seconds": GRACE,
        }
    )
    tenant = await pushgate.tenant()
    await add_subscriptions(pushgate, fake_push, tenant.app_id, DEVICES)
    postgres = pushgate.runtime.settings.database.url.startswith("postgresql")
    waiting: list[int] = []
    watcher = (
        asyncio.create_task(watch_for_claims_waiting_on_sweeper(pushgate, waiting))
        if postgres
        else None
    )

    # When one notification goes to all of them
    try:
        notification = await pushgate.send(tenant.send, {"broadcast": True, "title": "Hello"})
        status = await pushgate.finished(tenant.send, notification, within=150)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # Then every subscription got exactly one message, and every delivery is sent
    assert status["status"] == "completed", status
    per_subscription = Counter(r.subscription_id for r in fake_push.received)
    assert len(per_subscription) == DEVICES
    assert set(per_subscription.values()) == {1}
    async with pushgate.runtime.sessions() as session:
        result = await session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        )
        counts = {row.status: row[1] for row in result}
    assert counts == {"sent": DEVICES}
    # ...the sweeper took back nothing (all of it was queued, none of it lost)...
    assert reclaimed == []
    # ...and no claim ever waited for a lock the sweeper held
    if postgres:
        assert waiting
        assert max(waiting) == 0


async def blocked_claims(pushgate: Pushgate) -> int:
    async with pushgate.runtime.sessions() as session:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query ILIKE 'UPDATE deliveries%'"
        )
        return int((await session.execute(query)).scalar_one())


async def made_without_jobs(pushgate: Pushgate, app_id: uuid.UUID) -> list[int]:
    """A broadcast's deliveries made but not published (the test publishes their job)."""
    request = NotificationCreate(broadcast=True, title="Hello")
    [result] = await accept.accept_many(
        pushgate.runtime, app_id=app_id, requests=[request], publish=False
    )
    assert isinstance(result, accept.Accepted)
    return await dispatch.Dispatcher(pushgate.runtime).dispatch(
        result.notification.id, publish=False
    )


@pytest.mark.parametrize("profile", [SERVICES], indirect=True)
async def test_worker_stops_within_its_grace_while_a_claim_is_blocked_on_a_lock(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a worker with a shutdown grace of half a second, and deliveries whose rows another
    # transaction holds locked while their job arrives
    pushgate = await make_pushgate(worker={"shutdown_grace_seconds": 0.5})
    tenant = await pushgate.tenant()
    await add_subscriptions(pushgate, fake_push, tenant.app_id, 3)
    ids = await made_without_jobs(pushgate, tenant.app_id)
    async with pushgate.runtime.sessions() as holder:
        await holder.execute(select(Delivery.id).where(Delivery.id.in_(ids)).with_for_update())
        await pushgate.runtime.broker.publish(broker_base.DELIVER, [jobs.deliver_job(ids)])
        for _ in range(3000):
            if await blocked_claims(pushgate):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the worker's claim never waited for the lock")

        # When the worker is stopped while its claim waits for the lock
        await asyncio.wait_for(pushgate.worker.stop(), timeout=30)

        # Then it stopped without waiting for the lock, and its claim changed nothing
        await holder.rollback()
    async with pushgate.runtime.sessions() as session:
        rows = await session.execute(select(Delivery.status).where(Delivery.id.in_(ids)))
        assert set(rows.scalars()) == {"pending"}
    assert fake_push.received == []
