"""Planned deliveries: dispatch's steps may skip a delivery (final at once, counted) or defer
it (`deferred` until its time, then released by the sweeper and sent like any other). The
steps here are the test's own, so this proves the mechanism every rule builds on; the rules
themselves have their own tests. Time is injected, not waited for."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime
from pushgate.sending import accept, dispatch, planning, sweeper
from pushgate.store import deliveries
from pushgate.store.tables import Delivery, Notification, utcnow
from tests.conftest import TenantKeys
from tests.integration.test_sweeper import add_devices


async def _notification(runtime: Runtime, app_id: uuid.UUID, **options: object) -> uuid.UUID:
    request = NotificationCreate.model_validate({"broadcast": True, "title": "Hi", **options})
    [result] = await accept.accept_many(runtime, app_id=app_id, requests=[request], publish=False)
    assert isinstance(result, accept.Accepted)
    return result.notification.id


async def test_skipped_and_deferred_deliveries_are_counted_released_and_finished(
    runtime: Runtime, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a step that skips every fourth delivery and defers every other one by an hour
    later = utcnow() + timedelta(hours=1)

    async def step(page: planning.Page, items: list[planning.Planned]) -> None:
        for index, item in enumerate(items, start=page.offset):
            if index % 4 == 0:
                item.skip("muted")
            elif index % 2 == 0:
                item.not_until(later)

    monkeypatch.setattr(planning, "STEPS", [step])
    await add_devices(runtime, tenant.app_id, 12)
    notification = await _notification(runtime, tenant.app_id, transactional=True)

    # When it is dispatched in pages of 5
    made = await dispatch.Dispatcher(runtime, page_size=5).dispatch(notification, publish=False)

    # Then only the deliveries to send now are handed out; the others wait or are done
    async with runtime.sessions() as session:
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.status, Delivery.error, Delivery.next_attempt_at)
                .where(Delivery.notification_id == notification)
                .order_by(Delivery.id)
            )
        ).all()
        stored = await session.get(Notification, notification)
    by_status: dict[str, list[int]] = {}
    for row in rows:
        by_status.setdefault(row.status, []).append(row.id)
    assert {k: len(v) for k, v in by_status.items()} == {"skipped": 3, "deferred": 3, "pending": 6}
    assert sorted(made) == by_status["pending"]
    assert {row.error for row in rows if row.status == "skipped"} == {"muted"}
    assert {row.next_attempt_at for row in rows if row.status == "deferred"} == {later}
    assert stored is not None
    assert (stored.total, stored.finished) == (12, 3)

    # And a deferred delivery cannot be claimed before its time, even if a job names it
    async with runtime.sessions() as session:
        early = await deliveries.claim(
            session=session, ids=by_status["deferred"], now=utcnow(), lease=30
        )
        await session.commit()
    assert early == []

    # When the sweeper looks before the hour and after it (the pending ones, whose jobs this
    # test never published, are the sweeper's to publish too: claim them first)
    async with runtime.sessions() as session:
        await deliveries.claim(session=session, ids=made, now=utcnow(), lease=7200)
        await session.commit()
    before = await sweeper.sweep_once(runtime, now=later - timedelta(minutes=1))
    after = await sweeper.sweep_once(runtime, now=later + timedelta(seconds=1))

    # Then the deferred ones are released once, as pending, to be sent
    assert (before[1], after[1]) == (0, 3)
    async with runtime.sessions() as session:
        released = await deliveries.claim(
            session=session, ids=by_status["deferred"], now=later + timedelta(seconds=2), lease=30
        )
        await session.commit()
    assert sorted(d.id for d in released) == by_status["deferred"]


async def test_a_page_of_only_skipped_deliveries_completes_the_notification(
    runtime: Runtime, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def skip_all(page: planning.Page, items: list[planning.Planned]) -> None:
        for item in items:
            item.skip("muted")

    monkeypatch.setattr(planning, "STEPS", [skip_all])
    await add_devices(runtime, tenant.app_id, 3)
    notification = await _notification(runtime, tenant.app_id, transactional=True)

    made = await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    assert made == []
    async with runtime.sessions() as session:
        stored = await session.get(Notification, notification)
    assert stored is not None
    assert (stored.status, stored.total, stored.finished) == ("completed", 3, 3)


async def test_a_time_past_the_lifetime_expires_the_delivery_instead_of_deferring_it(
    runtime: Runtime, tenant: TenantKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def too_late(page: planning.Page, items: list[planning.Planned]) -> None:
        for item in items:
            item.not_until(page.notification.expires_at + timedelta(seconds=1))

    monkeypatch.setattr(planning, "STEPS", [too_late])
    await add_devices(runtime, tenant.app_id, 2)
    notification = await _notification(runtime, tenant.app_id, ttl=60, transactional=True)

    await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    async with runtime.sessions() as session:
        stored = await session.get(Notification, notification)
        statuses = set(
            (
                await session.execute(
                    select(Delivery.status).where(Delivery.notification_id == notification)
                )
            ).scalars()
        )
    assert statuses == {"expired"}
    assert stored is not None
    assert stored.status == "expired"
