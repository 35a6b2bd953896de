"""The sweeper publishes again what the database says is unfinished but whose job is gone: an
accepted notification never dispatched, pending deliveries never sent, deliveries claimed by a
worker that died. Time is injected (`sweep_once(now=...)`), not waited for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from pushgate.broker import base as broker_base
from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime, open_runtime
from pushgate.sending import accept, dispatch, jobs, sweeper
from pushgate.settings import Settings, WorkerSettings
from pushgate.store import deliveries
from pushgate.store.tables import Delivery, Device, utcnow
from tests.conftest import TenantKeys

GRACE = timedelta(seconds=WorkerSettings().stale_grace_seconds)


class Jobs:
    """What arrives on one queue, collected by a real consumer."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        for message in batch:
            self.bodies.append(message.body)
            message.ack()

    def delivery_ids(self) -> list[int]:
        return sorted(i for body in self.bodies for i in jobs.read_deliver_job(body))

    def notification_ids(self) -> list[uuid.UUID]:
        return [jobs.read_dispatch_job(body) for body in self.bodies]

    async def wait_for(self, count: Callable[[], int], expected: int, within: float = 10) -> None:
        deadline = time.monotonic() + within
        while count() < expected:
            assert time.monotonic() < deadline, f"only {count()} of {expected} within {within}s"
            await asyncio.sleep(0.02)


@pytest.fixture
async def collect(runtime: Runtime) -> AsyncIterator[Callable[[str], Awaitable[Jobs]]]:
    consumers: list[broker_base.Consumer] = []

    async def start(queue: str) -> Jobs:
        seen = Jobs()
        consumers.append(await runtime.broker.consume(queue, seen.handle, max_wait=0.01))
        return seen

    yield start
    for consumer in consumers:
        await consumer.stop()


async def add_devices(runtime: Runtime, app_id: uuid.UUID, count: int) -> None:
    rows = [
        {"app_id": app_id, "platform": "fcm", "token": f"fcm-token:{uuid.uuid4().hex}"}
        for _ in range(count)
    ]
    async with runtime.sessions() as session:
        await session.execute(insert(Device), rows)
        await session.commit()


async def accepted_without_job(runtime: Runtime, app_id: uuid.UUID) -> uuid.UUID:
    """A notification stored as `accepted` whose dispatch job was never published (as after
    a crash between the commit and the publish)."""
    request = NotificationCreate(broadcast=True, title="Hello")
    [result] = await accept.accept_many(runtime, app_id=app_id, requests=[request], publish=False)
    assert isinstance(result, accept.Accepted)
    return result.notification.id


async def pending_without_jobs(runtime: Runtime, app_id: uuid.UUID, count: int) -> list[int]:
    """Deliveries made by a dispatcher that died before publishing their deliver jobs."""
    await add_devices(runtime, app_id, count)
    notification = await accepted_without_job(runtime, app_id)
    made = await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)
    assert len(made) == count
    return sorted(made)


async def statuses(runtime: Runtime, ids: list[int]) -> dict[int, str]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))
        )
        return {row.id: row.status for row in rows}


async def test_accepted_notification_whose_job_was_lost_is_dispatched_again(
    runtime: Runtime, tenant: TenantKeys, collect: Callable[[str], Awaitable[Jobs]]
) -> None:
    # Given a notification accepted but never handed to dispatch
    notification = await accepted_without_job(runtime, tenant.app_id)
    published = await collect(broker_base.DISPATCH)
    now = utcnow()

    # When the sweeper looks while the publish could still be on its way, then after it
    early = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=5))
    late = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=40))
    again = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=41))

    # Then it publishes its dispatch job once, after the grace period
    assert (early, late, again) == ((0, 0), (1, 0), (0, 0))
    await published.wait_for(lambda: len(published.bodies), 1)
    assert published.notification_ids() == [notification]


async def test_pending_deliveries_whose_jobs_were_lost_are_published_again(
    runtime: Runtime, tenant: TenantKeys, collect: Callable[[str], Awaitable[Jobs]]
) -> None:
    # Given 600 deliveries made, but their deliver jobs never published
    made = await pending_without_jobs(runtime, tenant.app_id, 600)
    published = await collect(broker_base.DELIVER)
    now = utcnow()

    # When the sweeper looks inside the grace period, after it, and once more
    early = await sweeper.sweep_once(runtime, now=now + GRACE / 2, job_size=250)
    late = await sweeper.sweep_once(runtime, now=now + GRACE * 1.1, job_size=250)
    again = await sweeper.sweep_once(runtime, now=now + GRACE * 1.2, job_size=250)

    # Then every one is in a deliver job, once, in jobs of the size asked for
    assert (early[1], late[1], again[1]) == (0, 600, 0)
    await published.wait_for(lambda: len(published.delivery_ids()), 600)
    assert published.delivery_ids() == made
    assert len(published.bodies) == 3


async def test_delivery_claimed_by_a_dead_worker_is_taken_back_when_its_lease_ends(
    runtime: Runtime, tenant: TenantKeys, collect: Callable[[str], Awaitable[Jobs]]
) -> None:
    # Given deliveries a worker claimed for 30 seconds, and then died
    made = await pending_without_jobs(runtime, tenant.app_id, 5)
    now = utcnow()
    async with runtime.sessions() as session:
        claimed = await deliveries.claim(session=session, ids=made, now=now, lease=30)
        await session.commit()
    assert len(claimed) == 5
    published = await collect(broker_base.DELIVER)

    # When the sweeper looks before the lease ends, and after
    before = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=29))
    after = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=31))

    # Then they are published again once the lease is over, due for another worker's claim
    assert (before[1], after[1]) == (0, 5)
    await published.wait_for(lambda: len(published.delivery_ids()), 5)
    assert published.delivery_ids() == made
    assert set((await statuses(runtime, made)).values()) == {"retrying"}
    async with runtime.sessions() as session:
        taken = await deliveries.claim(
            session=session, ids=made, now=now + timedelta(seconds=32), lease=30
        )
        await session.commit()
    assert sorted(d.id for d in taken) == made
    assert all(d.attempts == 2 for d in taken)  # the dead worker's attempt still counts


async def test_delivery_held_by_a_live_worker_is_left_alone(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given deliveries claimed a moment ago, and retries due in the future
    made = await pending_without_jobs(runtime, tenant.app_id, 4)
    now = utcnow()
    async with runtime.sessions() as session:
        await deliveries.claim(session=session, ids=made[:2], now=now, lease=60)
        await deliveries.record(
            session=session,
            changes=[
                {"id": i, "status": "retrying", "next_attempt_at": now + timedelta(minutes=5)}
                for i in made[2:]
            ],
        )
        await session.commit()

    # When the sweeper looks well past the pending grace period but inside the lease
    swept = await sweeper.sweep_once(runtime, now=now + timedelta(seconds=59))

    # Then nothing is taken from the worker, and nothing is retried early
    assert swept == (0, 0)
    assert await statuses(runtime, made) == {
        made[0]: "sending",
        made[1]: "sending",
        made[2]: "retrying",
        made[3]: "retrying",
    }


@pytest.fixture
async def second_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    other = await open_runtime(settings)
    yield other
    await other.close()


async def test_two_sweepers_at_once_publish_each_lost_delivery_once(
    runtime: Runtime,
    second_runtime: Runtime,
    tenant: TenantKeys,
    collect: Callable[[str], Awaitable[Jobs]],
) -> None:
    # Given 300 deliveries whose jobs were lost, and two workers' sweepers
    made = await pending_without_jobs(runtime, tenant.app_id, 300)
    published = await collect(broker_base.DELIVER)
    later: datetime = utcnow() + GRACE * 1.1

    # When both sweep at the same moment
    results = await asyncio.gather(
        sweeper.sweep_once(runtime, now=later), sweeper.sweep_once(second_runtime, now=later)
    )

    # Then each delivery is published by one of them only
    assert sum(r[1] for r in results) == 300
    await published.wait_for(lambda: len(published.delivery_ids()), 300)
    assert published.delivery_ids() == made


async def test_pending_deliveries_are_left_to_the_deliver_queue_while_it_holds_jobs(
    runtime: Runtime, tenant: TenantKeys, collect: Callable[[str], Awaitable[Jobs]]
) -> None:
    # Given 300 pending deliveries whose job waits in the deliver queue (a backlog)
    made = await pending_without_jobs(runtime, tenant.app_id, 300)
    await runtime.broker.publish(broker_base.DELIVER, [jobs.deliver_job(made)])
    now = utcnow()

    # When the sweeper looks long after the grace period, while the job is still queued
    queued = await sweeper.sweep_once(runtime, now=now + GRACE * 3)

    # Then it takes back nothing...
    assert queued == (0, 0)
    assert set((await statuses(runtime, made)).values()) == {"pending"}
    # ...but once the queue has handed the job out and its deliveries are still pending (the
    # job was lost after all), the next sweep publishes them again
    published = await collect(broker_base.DELIVER)
    await published.wait_for(lambda: len(published.bodies), 1)
    lost = await sweeper.sweep_once(runtime, now=now + GRACE * 4)
    assert lost == (0, 300)
    await published.wait_for(lambda: len(published.bodies), 3)
    assert published.delivery_ids() == sorted(made * 2)
