"""Users' preferences at dispatch, on both profiles: muted and opted-out users' deliveries are
`skipped` with the reason and counted, `transactional` overrides a category opt-out but not the
mute, and quiet hours defer a delivery to the window's end (then the sweeper releases it and it
is sent), or expire it when its ttl ends first. Time is injected into the dispatcher and the
sweeper, never waited for."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import event, insert, select

from pushgate.domain import subscription
from pushgate.domain.preferences import Preferences, QuietHours
from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime, open_runtime
from pushgate.sending import accept, deliver, dispatch, sweeper
from pushgate.settings import Settings
from pushgate.store import apps, devices
from pushgate.store import preferences as stored
from pushgate.store.tables import Delivery, Device, Notification, UserPreference, utcnow
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import pipeline_settings

TOKYO = "Asia/Tokyo"  # no daylight saving: a window's end is a fixed distance away


async def add_devices(
    runtime: Runtime, app_id: uuid.UUID, user: str | None, *platforms: str
) -> None:
    rows = [
        {"app_id": app_id, "platform": p, "token": f"{p}-token:{uuid.uuid4().hex}", "user_id": user}
        for p in platforms
    ]
    async with runtime.sessions() as session:
        await session.execute(insert(Device), rows)
        await session.commit()


async def set_preferences(
    runtime: Runtime, app_id: uuid.UUID, user: str, prefs: Preferences
) -> None:
    async with runtime.sessions() as session:
        await stored.put(session=session, app_id=app_id, user_id=user, preferences=prefs)
        await session.commit()


async def accepted(
    runtime: Runtime, app_id: uuid.UUID, now: datetime | None = None, **fields: Any
) -> uuid.UUID:
    body = {"broadcast": True, "title": "Hi", **fields}
    request = NotificationCreate.model_validate(body)
    [result] = await accept.accept_many(
        runtime, app_id=app_id, requests=[request], now=now, publish=False
    )
    assert isinstance(result, accept.Accepted)
    return result.notification.id


async def deliveries_of(runtime: Runtime, notification: uuid.UUID) -> list[Any]:
    async with runtime.sessions() as session:
        query = (
            select(
                Delivery.id,
                Delivery.platform,
                Delivery.status,
                Delivery.error,
                Delivery.next_attempt_at,
                Device.user_id,
            )
            .join(Device, Device.id == Delivery.device_id)
            .where(Delivery.notification_id == notification)
            .order_by(Delivery.id)
        )
        return list((await session.execute(query)).all())


async def test_muted_and_opted_out_users_are_skipped_with_the_reason_and_counted(
    runtime: Runtime, tenant: TenantKeys, client: httpx.AsyncClient
) -> None:
    # Given four users: muted, out of `promo`, out of Web Push, and one with no preferences
    app = tenant.app_id
    for user in ("muted", "no-promo", "no-webpush", "plain"):
        await add_devices(runtime, app, user, "fcm", "webpush")
    await add_devices(runtime, app, None, "apns")
    await set_preferences(runtime, app, "muted", Preferences(muted=True))
    await set_preferences(runtime, app, "no-promo", Preferences(categories={"promo": False}))
    await set_preferences(runtime, app, "no-webpush", Preferences(platforms={"webpush": False}))

    # When a promo is sent to everyone
    notification = await accepted(runtime, app, category="promo")
    made = await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    # Then each unwanted delivery is skipped with a stable reason; the rest go
    rows = await deliveries_of(runtime, notification)
    outcome = {(r.user_id, r.platform): (r.status, r.error) for r in rows}
    assert outcome == {
        ("muted", "fcm"): ("skipped", "muted"),
        ("muted", "webpush"): ("skipped", "muted"),
        ("no-promo", "fcm"): ("skipped", "category_opted_out:promo"),
        ("no-promo", "webpush"): ("skipped", "category_opted_out:promo"),
        ("no-webpush", "fcm"): ("pending", None),
        ("no-webpush", "webpush"): ("skipped", "platform_opted_out:webpush"),
        ("plain", "fcm"): ("pending", None),
        ("plain", "webpush"): ("pending", None),
        (None, "apns"): ("pending", None),
    }
    assert len(made) == 4
    # And the notification counts them, and its history shows why
    status = (await client.get(f"/v1/notifications/{notification}", headers=tenant.send)).json()
    assert status["counts"]["skipped"] == 5
    assert status["counts"]["pending"] == 4
    assert status["counts"]["total"] == 9
    history = await client.get(f"/v1/notifications/{notification}/deliveries", headers=tenant.send)
    skipped = [d for d in history.json()["items"] if d["status"] == "skipped"]
    assert sorted(d["skip_reason"] for d in skipped) == [
        "category_opted_out:promo",
        "category_opted_out:promo",
        "muted",
        "muted",
        "platform_opted_out:webpush",
    ]


async def test_transactional_overrides_a_category_opt_out_but_not_the_mute(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given a user out of `security` and a muted one
    app = tenant.app_id
    await add_devices(runtime, app, "no-security", "fcm")
    await add_devices(runtime, app, "muted", "fcm")
    await set_preferences(runtime, app, "no-security", Preferences(categories={"security": False}))
    await set_preferences(runtime, app, "muted", Preferences(muted=True))

    # When a transactional security code is sent, and the same not marked transactional
    code = await accepted(runtime, app, category="security", transactional=True)
    plain = await accepted(runtime, app, category="security")
    for notification in (code, plain):
        await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    # Then the transactional one reaches the opted-out user, never the muted one
    assert {r.user_id: (r.status, r.error) for r in await deliveries_of(runtime, code)} == {
        "no-security": ("pending", None),
        "muted": ("skipped", "muted"),
    }
    assert {r.user_id: r.status for r in await deliveries_of(runtime, plain)} == {
        "no-security": "skipped",
        "muted": "skipped",
    }


async def test_a_user_of_another_app_with_the_same_id_does_not_mute_this_one(
    runtime: Runtime,
    tenant: TenantKeys,
    tenant_factory: Callable[[str], Awaitable[TenantKeys]],
) -> None:
    # Given alice in two apps, muted only in the other one
    other = await tenant_factory("globex")
    await add_devices(runtime, tenant.app_id, "alice", "fcm")
    await add_devices(runtime, other.app_id, "alice", "fcm")
    await set_preferences(runtime, other.app_id, "alice", Preferences(muted=True))

    # When each app sends to its alice
    ours = await accepted(runtime, tenant.app_id, user_ids=["alice"], broadcast=False)
    theirs = await accepted(runtime, other.app_id, user_ids=["alice"], broadcast=False)
    for notification in (ours, theirs):
        await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    # Then only the other app's alice is skipped
    assert [r.status for r in await deliveries_of(runtime, ours)] == ["pending"]
    assert [r.status for r in await deliveries_of(runtime, theirs)] == ["skipped"]


async def test_quiet_hours_stored_in_a_zone_no_longer_known_are_ignored_not_fatal(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given quiet hours stored in a zone the time zone database does not have (written by
    # hand, or a zone gone since): the API would have refused it
    await add_devices(runtime, tenant.app_id, "alice", "fcm")
    row = {"quiet_start": "00:00", "quiet_end": "23:59", "quiet_timezone": "Mars/Olympus"}
    async with runtime.sessions() as session:
        await session.execute(
            insert(UserPreference),
            [
                {
                    "app_id": tenant.app_id,
                    "user_id": "alice",
                    "categories": {},
                    "platforms": {},
                    **row,
                }
            ],
        )
        await session.commit()

    # When a notification is dispatched to her
    notification = await accepted(runtime, tenant.app_id, user_ids=["alice"], broadcast=False)
    made = await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    # Then it goes, instead of failing every dispatch to her
    assert len(made) == 1


async def test_send_immediate_answers_with_the_skipped_deliveries_too(
    runtime: Runtime, tenant: TenantKeys, client: httpx.AsyncClient
) -> None:
    # Given a muted user with two devices
    await add_devices(runtime, tenant.app_id, "muted", "fcm", "apns")
    await set_preferences(runtime, tenant.app_id, "muted", Preferences(muted=True))

    # When a notification is sent to them at once
    response = await client.post(
        "/v1/notifications/send-immediate",
        json={"user_ids": ["muted"], "title": "Now"},
        headers=tenant.send,
    )

    # Then the answer shows both deliveries skipped, and why
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert [(d["status"], d["error"]) for d in body["deliveries"]] == [("skipped", "muted")] * 2


@contextlib.contextmanager
def preference_reads(runtime: Runtime) -> Iterator[list[str]]:
    """The statements that read `user_preferences` while the block runs."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "user_preferences" in statement:
            statements.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def test_a_page_of_users_reads_their_preferences_in_one_query(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given fifty users (three devices each), a few with preferences
    app = tenant.app_id
    for n in range(50):
        await add_devices(runtime, app, f"user-{n}", "fcm", "fcm", "webpush")
    for n in range(0, 50, 10):
        await set_preferences(runtime, app, f"user-{n}", Preferences(muted=True))
    notification = await accepted(runtime, app)

    # When it is dispatched in one page
    with preference_reads(runtime) as statements:
        await dispatch.Dispatcher(runtime, page_size=1000).dispatch(notification, publish=False)

    # Then the preferences were read once, and applied
    assert len(statements) == 1
    rows = await deliveries_of(runtime, notification)
    assert sum(r.status == "skipped" for r in rows) == 15


async def test_a_page_of_devices_without_users_reads_no_preferences(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    await add_devices(runtime, tenant.app_id, None, "fcm", "webpush", "apns")
    notification = await accepted(runtime, tenant.app_id, transactional=True)

    with preference_reads(runtime) as statements:
        made = await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)

    assert statements == []
    assert len(made) == 3


# --- quiet hours -------------------------------------------------------------------------


@dataclass
class Sleeper:
    """A user with a browser subscribed to the fake push service, in an app of their own, and
    the test's clock (20 s past a minute: quiet hours end on a minute, so a test knows how far
    away the end it sets is)."""

    runtime: Runtime
    app: uuid.UUID
    browser: dict[str, Any]
    user: str = "sleeper"
    now: datetime = field(default_factory=lambda: utcnow().replace(second=20, microsecond=0))

    async def quiet(self, *, since: timedelta, ends_in: timedelta) -> None:
        """Quiet hours (in Tokyo) from `since` before now to `ends_in` after (to the minute)."""
        local = ZoneInfo(TOKYO)
        start, end = (self.now - since).astimezone(local), (self.now + ends_in).astimezone(local)
        quiet = QuietHours.parse(start.strftime("%H:%M"), end.strftime("%H:%M"), TOKYO)
        await set_preferences(self.runtime, self.app, self.user, Preferences(quiet_hours=quiet))

    async def send(self, **fields: Any) -> tuple[uuid.UUID, list[int]]:
        """A notification to the user, dispatched now: its id and the deliveries to send now."""
        notification = await accepted(
            self.runtime, self.app, self.now, user_ids=[self.user], broadcast=False, **fields
        )
        made = await dispatch.Dispatcher(self.runtime, clock=lambda: self.now).dispatch(
            notification, publish=False
        )
        return notification, made


@pytest.fixture
async def sleeper(settings: Settings, fake_push: FakeWebPushService) -> AsyncIterator[Sleeper]:
    """On a runtime that delivers to the fake Web Push service, with no worker running: the
    test dispatches, sweeps and delivers itself, on its own clock."""
    runtime = await open_runtime(pipeline_settings(settings, fake_push))
    browser = fake_push.new_subscription()
    address = subscription.webpush_address(
        endpoint=browser["endpoint"], p256dh=browser["keys"]["p256dh"], auth=browser["keys"]["auth"]
    )
    async with runtime.sessions() as session:
        app = await apps.create(session=session, box=runtime.credentials.box(), name="quiet")
        await devices.upsert(
            session=session, app_id=app.id, address=address, profile={"user_id": "sleeper"}
        )
        await session.commit()
    yield Sleeper(runtime, app.id, browser)
    await runtime.close()


async def final_status(runtime: Runtime, notification: uuid.UUID) -> str:
    async with runtime.sessions() as session:
        row = await session.get(Notification, notification)
    assert row is not None
    return row.status


async def test_quiet_hours_defer_a_delivery_to_the_window_end_and_the_sweeper_then_sends_it(
    sleeper: Sleeper, fake_push: FakeWebPushService
) -> None:
    # Given a user whose quiet hours (in Tokyo) hold now and end in two hours
    runtime = sleeper.runtime
    await sleeper.quiet(since=timedelta(hours=1), ends_in=timedelta(hours=2))
    window_end = (sleeper.now + timedelta(hours=2)).replace(second=0)

    # When a notification is dispatched now
    notification, made = await sleeper.send()

    # Then nothing goes now: the delivery is deferred until the window's end
    assert made == []
    [row] = await deliveries_of(runtime, notification)
    assert (row.status, row.next_attempt_at) == ("deferred", window_end)

    # When the sweeper looks a minute before the end, and at the end
    before = await sweeper.sweep_once(runtime, now=window_end - timedelta(minutes=1))
    at_end = await sweeper.sweep_once(runtime, now=window_end)

    # Then it is released once, at the end, and then delivered
    assert (before[1], at_end[1]) == (0, 1)
    assert fake_push.received_for(sleeper.browser) == []
    await deliver.Deliverer(runtime).deliver([row.id])
    [arrived] = fake_push.received_for(sleeper.browser)
    assert arrived.payload["title"] == "Hi"
    assert await final_status(runtime, notification) == "completed"


async def test_a_ttl_ending_inside_the_quiet_hours_expires_the_delivery_unsent(
    sleeper: Sleeper, fake_push: FakeWebPushService
) -> None:
    # Given a user whose quiet hours hold now and end in two hours
    runtime = sleeper.runtime
    await sleeper.quiet(since=timedelta(hours=1), ends_in=timedelta(hours=2))

    # When a notification that lives one hour is dispatched, and one of 30 seconds when the
    # window ends in 40 (its deadline has a minute's grace for the pipeline, its ttl not)
    hour, _ = await sleeper.send(ttl=3600)
    await sleeper.quiet(since=timedelta(hours=1), ends_in=timedelta(seconds=40))
    brief, _ = await sleeper.send(ttl=30)

    # Then both are expired at once, never sent late, and so are their notifications
    for notification in (hour, brief):
        [row] = await deliveries_of(runtime, notification)
        assert row.status == "expired"
        assert await final_status(runtime, notification) == "expired"
    assert await sweeper.sweep_once(runtime, now=sleeper.now + timedelta(hours=3)) == (0, 0)
    assert fake_push.received_for(sleeper.browser) == []


async def test_ignore_quiet_hours_sends_inside_the_window(sleeper: Sleeper) -> None:
    await sleeper.quiet(since=timedelta(hours=1), ends_in=timedelta(hours=2))

    notification, made = await sleeper.send(ignore_quiet_hours=True)

    assert len(made) == 1
    [row] = await deliveries_of(sleeper.runtime, notification)
    assert row.status == "pending"


async def test_outside_the_quiet_hours_a_delivery_goes_at_once(sleeper: Sleeper) -> None:
    # The window opened three hours ago and closed an hour ago.
    await sleeper.quiet(since=timedelta(hours=3), ends_in=timedelta(hours=-1))

    _, made = await sleeper.send()

    assert len(made) == 1
