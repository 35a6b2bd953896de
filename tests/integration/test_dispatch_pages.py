"""Dispatch page by page, on both profiles: a plain broadcast or topic notification's pages are
made inside PostgreSQL (`store.fanout`), a page whose devices belong to users is planned (their
preferences apply) and so are the pages after it; whichever way, every device gets its one
delivery and the notification counts them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import insert, select

from pushgate.domain.preferences import Preferences
from pushgate.runtime import Runtime
from pushgate.sending import dispatch
from pushgate.store import fanout
from pushgate.store.tables import Device, DeviceTopic, Notification
from tests.conftest import TenantKeys
from tests.integration.test_preferences_dispatch import (
    accepted,
    add_devices,
    deliveries_of,
    set_preferences,
)


@pytest.fixture
def direct_pages(monkeypatch: pytest.MonkeyPatch) -> list[fanout.DirectPage]:
    """What each page made in the database returned, in order."""
    pages: list[fanout.DirectPage] = []
    insert_page = fanout.insert_page

    async def spy(**kwargs: Any) -> fanout.DirectPage:
        page = await insert_page(**kwargs)
        pages.append(page)
        return page

    monkeypatch.setattr(fanout, "insert_page", spy)
    return pages


async def total_of(runtime: Runtime, notification: uuid.UUID) -> int:
    async with runtime.sessions() as session:
        total = await session.scalar(
            select(Notification.total).where(Notification.id == notification)
        )
    assert total is not None
    return total


def postgres(runtime: Runtime) -> bool:
    return runtime.engine.dialect.name == "postgresql"


async def test_a_plain_broadcast_makes_one_delivery_per_device_across_pages(
    runtime: Runtime,
    tenant: TenantKeys,
    tenant_factory: Callable[[str], Awaitable[TenantKeys]],
    direct_pages: list[fanout.DirectPage],
) -> None:
    # Given seven devices of no user, and one of another app
    await add_devices(runtime, tenant.app_id, None, *["fcm"] * 7)
    await add_devices(runtime, (await tenant_factory("globex")).app_id, None, "fcm")

    # When a broadcast is dispatched three devices a page
    notification = await accepted(runtime, tenant.app_id)
    made = await dispatch.Dispatcher(runtime, page_size=3).dispatch(notification, publish=False)

    # Then each of the app's devices has one pending delivery, all of them to send now
    rows = await deliveries_of(runtime, notification)
    assert len(rows) == 7
    assert {r.status for r in rows} == {"pending"}
    assert sorted(made) == sorted(r.id for r in rows)
    assert await total_of(runtime, notification) == 7
    # And on PostgreSQL each page was made in the database: 3, 3, then the last 1
    if postgres(runtime):
        assert [(p.size, len(p.ids), p.planned) for p in direct_pages] == [
            (3, 3, False),
            (3, 3, False),
            (1, 1, False),
        ]
        assert direct_pages[-1].cursor is None
    else:
        assert direct_pages == []


async def test_a_topic_reaches_its_subscribers_only(
    runtime: Runtime, tenant: TenantKeys, direct_pages: list[fanout.DirectPage]
) -> None:
    # Given five devices, two of them on `news`
    await add_devices(runtime, tenant.app_id, None, *["fcm"] * 5)
    async with runtime.sessions() as session:
        ids = list(
            await session.scalars(
                select(Device.id).where(Device.app_id == tenant.app_id).order_by(Device.id)
            )
        )
        await session.execute(
            insert(DeviceTopic),
            [{"app_id": tenant.app_id, "topic": "news", "device_id": i} for i in ids[1:3]],
        )
        await session.commit()

    # When `news` is sent a device a page
    notification = await accepted(runtime, tenant.app_id, broadcast=False, topics=["news"])
    await dispatch.Dispatcher(runtime, page_size=1).dispatch(notification, publish=False)

    # Then exactly its two subscribers get it
    rows = await deliveries_of(runtime, notification)
    assert len(rows) == 2
    assert await total_of(runtime, notification) == 2
    if postgres(runtime):
        assert sum(p.size for p in direct_pages) == 2


async def test_a_page_with_users_is_planned_and_so_are_the_pages_after_it(
    runtime: Runtime, tenant: TenantKeys, direct_pages: list[fanout.DirectPage]
) -> None:
    # Given four devices of no user, then three of a user out of `promo` and one of a user
    # without preferences (device ids grow in the order they are made: the page order)
    app = tenant.app_id
    await add_devices(runtime, app, None, *["fcm"] * 4)
    await add_devices(runtime, app, "no-promo", *["fcm"] * 3)
    await add_devices(runtime, app, "plain", "fcm")
    await set_preferences(runtime, app, "no-promo", Preferences(categories={"promo": False}))

    # When a promo goes to everyone three devices a page
    notification = await accepted(runtime, app, category="promo")
    made = await dispatch.Dispatcher(runtime, page_size=3).dispatch(notification, publish=False)

    # Then the opted-out user's devices are skipped, every other device has its delivery
    rows = await deliveries_of(runtime, notification)
    outcome = sorted((r.user_id or "", r.status) for r in rows)
    assert outcome == sorted(
        [("", "pending")] * 4 + [("no-promo", "skipped")] * 3 + [("plain", "pending")]
    )
    assert len(made) == 5
    assert await total_of(runtime, notification) == 8
    # And on PostgreSQL the first page was made in the database, the second found users and
    # inserted nothing (planned instead), and the third was not tried there
    if postgres(runtime):
        assert [(p.size, len(p.ids), p.planned) for p in direct_pages] == [
            (3, 3, False),
            (3, 0, True),
        ]
