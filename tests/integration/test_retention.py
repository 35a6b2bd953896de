"""Retention on both profiles: the lifecycle job deletes final deliveries and notifications past
their days, in batches, and nothing open, scheduled or younger; forgets idempotency keys after
their hours (the same key then makes a new notification); deletes old dead letters and
long-deactivated devices; keeps the analytics rollups, so /v1/analytics/* answers the same
after the raw rows are gone; and runs from the worker, one worker per interval. Rows are
inserted with old timestamps, or the job is given a later `now`."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from pushgate.domain import ids
from pushgate.runtime import Runtime, open_runtime
from pushgate.sending import lifecycle
from pushgate.sending.lifecycle import Lifecycle
from pushgate.settings import Settings
from pushgate.store import device_topics, retention
from pushgate.store.tables import (
    DeadLetterRecord,
    Delivery,
    Device,
    DeviceTopic,
    Notification,
    utcnow,
)
from pushgate.worker import Worker
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate
from tests.integration.test_analytics_api import get

DAY = timedelta(days=1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small batches, so every walk takes several."""
    retention_settings = settings.retention.model_copy(update={"batch_size": 2})
    return settings.model_copy(update={"retention": retention_settings})


def notification(
    app_id: uuid.UUID,
    status: str,
    created: datetime,
    *,
    completed: datetime | None = None,
    key: str | None = None,
    **fields: Any,
) -> Notification:
    return Notification(
        id=ids.new_id(int(created.timestamp() * 1000)),
        app_id=app_id,
        status=status,
        target={"kind": "broadcast"},
        message={"title": "old"},
        expires_at=created + DAY,
        idempotency_key=key,
        created_at=created,
        updated_at=completed or created,
        completed_at=completed,
        **{"total": 0, "finished": 0, **fields},
    )


def delivery(owner: Notification, status: str, changed: datetime, **fields: Any) -> Delivery:
    return Delivery(
        notification_id=owner.id,
        app_id=owner.app_id,
        device_id=None,
        platform="fcm",
        token="fcm-token:retention",
        status=status,
        attempts=1,
        created_at=owner.created_at,
        updated_at=changed,
        **fields,
    )


async def insert(pushgate: Pushgate, owner: Notification, deliveries: list[Delivery]) -> None:
    async with pushgate.runtime.sessions() as session:
        session.add(owner)
        await session.flush()
        session.add_all(deliveries)
        await session.commit()


async def ids_of(pushgate: Pushgate, column: Any) -> set[Any]:
    async with pushgate.runtime.sessions() as session:
        return set((await session.execute(select(column))).scalars())


async def test_retention_deletes_only_final_rows_past_their_time(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given, 30 days of retention for deliveries and notifications (14 for dead letters, 30
    # for deactivated devices):
    now = utcnow()
    old, recent = now - 40 * DAY, now - 10 * DAY
    app = acme.app_id
    old_done = notification(app, "completed", old - DAY, completed=old)
    recent_done = notification(app, "completed", recent - DAY, completed=recent)
    in_flight = notification(app, "dispatching", old, dispatched_at=old, total=2)
    canceled_open = notification(app, "canceled", old - DAY, completed=old)
    scheduled = notification(app, "scheduled", old, send_at=now + 10 * DAY)
    made = [old_done, recent_done, in_flight, canceled_open, scheduled]
    later = now + 90 * DAY  # deferred deliveries the sweeper leaves alone
    rows: dict[str, list[Delivery]] = {
        "gone": [
            *(delivery(old_done, "sent", old) for _ in range(3)),
            delivery(in_flight, "sent", old),  # final, in a notification still in flight
        ],
        "kept": [
            delivery(recent_done, "sent", recent),
            delivery(in_flight, "deferred", old, next_attempt_at=later),
            delivery(canceled_open, "deferred", old, next_attempt_at=later),
        ],
    }
    letters = {
        name: DeadLetterRecord(
            app_id=app,
            message_id=f"m-{name}",
            queue="deliver",
            reason="retry_later: HTTP 500",
            reason_code="retry_later",
            attempts=3,
            failed_at=at,
            body=b"{}",
            recorded_at=at,
        )
        for name, at in (("old", now - 20 * DAY), ("recent", now - 5 * DAY))
    }
    async with pushgate.runtime.sessions() as session:
        session.add_all(made)
        await session.flush()
        session.add_all([*rows["gone"], *rows["kept"], *letters.values()])
        await session.commit()
    devices = {
        name: await device_with_topic(pushgate, app, name, deactivated)
        for name, deactivated in (
            ("purged", now - 40 * DAY),
            ("recently_deleted", now - 10 * DAY),
            ("live", None),
        )
    }

    # When the job runs
    counts = await Lifecycle(pushgate.runtime).run()

    # Then only the final rows past their time are gone
    kept_notifications = {recent_done.id, in_flight.id, canceled_open.id, scheduled.id}
    assert await ids_of(pushgate, Notification.id) == kept_notifications
    assert await ids_of(pushgate, Delivery.id) == {d.id for d in rows["kept"]}
    assert await ids_of(pushgate, DeadLetterRecord.id) == {letters["recent"].id}
    assert await ids_of(pushgate, Device.id) == {devices["recently_deleted"], devices["live"]}
    assert await ids_of(pushgate, DeviceTopic.device_id) == await ids_of(pushgate, Device.id)
    assert counts == {"deliveries": 4, "notifications": 1, "dead_letters": 1, "devices_purged": 1}

    # And a second run finds nothing more
    assert await Lifecycle(pushgate.runtime).run() == {}


async def device_with_topic(
    pushgate: Pushgate, app_id: uuid.UUID, name: str, deactivated: datetime | None
) -> uuid.UUID:
    device = Device(
        app_id=app_id,
        platform="fcm",
        token=f"fcm-token:{name}",
        meta={},
        enabled=True,
        invalidated_at=deactivated,
        invalidation_reason=None if deactivated is None else "deleted",
    )
    async with pushgate.runtime.sessions() as session:
        session.add(device)
        await session.flush()
        await device_topics.replace(session, app_id=app_id, device_id=device.id, topics=["news"])
        await session.commit()
    return device.id


async def test_each_batch_deletes_at_most_the_batch_size(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given five final deliveries 40 days old
    old = utcnow() - 40 * DAY
    owner = notification(acme.app_id, "completed", old, completed=old)
    await insert(pushgate, owner, [delivery(owner, "failed", old) for _ in range(5)])

    # When the deliveries' walk is taken one batch of 2 at a time
    done, after = [], None
    for _ in range(5):
        async with pushgate.runtime.sessions() as session:
            batch = await retention.delete_deliveries(
                session=session, before=utcnow() - 30 * DAY, after=after, limit=2
            )
            await session.commit()
        done.append(batch.done)
        if batch.after is None:
            break
        after = batch.after

    # Then each batch deleted two at most, and the walk ended after the last
    assert done == [2, 2, 1]
    assert await ids_of(pushgate, Delivery.id) == set()


async def test_idempotency_key_is_forgotten_after_its_hours(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a notification sent with an idempotency key, and completed
    await pushgate.subscribe(acme.subscribe, fake_push.new_subscription())
    body = {"broadcast": True, "title": "once"}
    key = {"Idempotency-Key": "order-1234", **acme.send}
    first = await pushgate.send(key, body)
    await pushgate.finished(acme.send, first)

    # When the job runs 23 hours after, Then the key still answers with the same notification
    await Lifecycle(pushgate.runtime, now=utcnow() + timedelta(hours=23)).run()
    assert await pushgate.send(key, body) == first

    # When it runs 25 hours after
    counts = await Lifecycle(pushgate.runtime, now=utcnow() + timedelta(hours=25)).run()

    # Then the key makes a new notification, and the first one is still there
    assert counts == {"idempotency_keys": 1}
    second = await pushgate.send(key, body)
    assert second != first
    assert (await pushgate.http.get(f"/v1/notifications/{first}", headers=acme.send)).is_success


async def test_analytics_answer_the_same_after_the_raw_rows_are_gone(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given deliveries sent today, and what analytics say of them
    for _ in range(2):
        await pushgate.subscribe(acme.subscribe, fake_push.new_subscription())
    sent = await pushgate.send(acme.send, {"broadcast": True, "title": "hi", "category": "news"})
    await pushgate.finished(acme.send, sent)
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    span = {"since": day.isoformat(), "until": (day + DAY).isoformat(), "interval": "day"}
    paths = ("/v1/analytics/deliveries", "/v1/analytics/notifications", "/v1/analytics/devices")
    before = {p: await get(pushgate, acme, p, **span) for p in paths}
    assert before["/v1/analytics/deliveries"]["totals"]["by_outcome"]["sent"] == 2

    # When the job runs 31 days later
    counts = await Lifecycle(pushgate.runtime, now=utcnow() + 31 * DAY).run()

    # Then the notification and its deliveries are gone, and every answer is the same
    assert counts["notifications"] == 1
    assert counts["deliveries"] == 2
    gone = await pushgate.http.get(f"/v1/notifications/{sent}", headers=acme.send)
    assert gone.status_code == 404
    assert {p: await get(pushgate, acme, p, **span) for p in paths} == before


async def test_the_worker_runs_the_job_and_one_worker_holds_the_lock(
    settings: Settings, acme: TenantKeys
) -> None:
    # Given a dead letter 20 days old, and a worker whose job runs every 0.3 s
    quick = settings.retention.model_copy(update={"interval_seconds": 0.3})
    no_ingress = settings.worker.model_copy(update={"queues": ["dispatch", "deliver", "failed"]})
    runtime = await open_runtime(
        settings.model_copy(update={"retention": quick, "worker": no_ingress})
    )
    worker = Worker(runtime)
    other = await open_runtime(settings)
    try:
        old = utcnow() - 20 * DAY
        async with runtime.sessions() as session:
            session.add(
                DeadLetterRecord(
                    app_id=acme.app_id,
                    message_id="m-old",
                    queue="deliver",
                    reason="x",
                    reason_code="bad_job",
                    failed_at=old,
                    body=b"{}",
                    recorded_at=old,
                    attempts=1,
                )
            )
            await session.commit()
        await worker.start()

        # When a few intervals pass, Then the worker's job deleted it
        deadline = time.monotonic() + 10
        while await count(runtime, DeadLetterRecord.id):
            assert time.monotonic() < deadline, "the worker's job did not delete the old letter"
            await asyncio.sleep(0.1)
        await worker.stop()

        # And while one worker holds the lock, another does not run the job
        await runtime.kv.delete(lifecycle.LOCK_KEY)
        assert await lifecycle.claim_run(runtime, ttl=60) is True
        assert await lifecycle.claim_run(runtime, ttl=60) is False
        # (a process of the services profile sees the same lock in Redis; the embedded
        # profile's key-value store is its one process's memory)
        assert await lifecycle.claim_run(other, ttl=60) is (settings.redis.url is None)
    finally:
        await other.close()
        await runtime.close()


async def count(runtime: Runtime, column: Any) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(select(func.count(column)))).scalar_one())


async def test_a_notification_past_its_retention_takes_its_deliveries_with_it(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given a notification completed 40 days ago whose delivery changed 40 days ago, with
    # deliveries kept 90 days and notifications 30
    old = utcnow() - 40 * DAY
    owner = notification(acme.app_id, "completed", old, completed=old, total=1, finished=1)
    await insert(pushgate, owner, [delivery(owner, "sent", old)])
    keep = pushgate.runtime.settings.retention.model_copy(update={"deliveries_days": 90})
    pushgate.runtime.settings = pushgate.runtime.settings.model_copy(update={"retention": keep})

    # When the job runs
    counts = await Lifecycle(pushgate.runtime).run()

    # Then the notification went, and its delivery with it (a delivery cannot outlive it)
    assert counts == {"deliveries": 1, "notifications": 1}
    assert await count(pushgate.runtime, Notification.id) == 0
