"""Local-time delivery and throttled sends through dispatch, the sweeper and the deliverer:
each device deferred to its own wall-clock time (the device's zone, else its user's, else the
app's), a time already past sent at once or skipped, and a throttled broadcast spread over the
minutes of an injected clock, each delivery released by the sweeper and delivered once. Time
is injected (the dispatcher's clock, `sweep_once(now=...)`), never waited for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from pushgate.domain import localtime
from pushgate.domain.request import EARLIEST_ZONE, NotificationCreate
from pushgate.runtime import Runtime
from pushgate.sending import accept, dispatch, sweeper
from pushgate.store import apps, notifications
from pushgate.store.tables import Delivery, Device, Notification, UserPreference
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate
from tests.integration.test_ingress import dead_letters, publish
from tests.integration.test_sweeper_backlog import add_subscriptions


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def until(check: Callable[[], Any], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


async def accepted(runtime: Runtime, app_id: uuid.UUID, now: datetime, **fields: Any) -> uuid.UUID:
    request = NotificationCreate.model_validate({"broadcast": True, "title": "Hi", **fields})
    [result] = await accept.accept_many(
        runtime, app_id=app_id, requests=[request], now=now, publish=False
    )
    assert isinstance(result, accept.Accepted)
    return result.notification.id


async def planned(runtime: Runtime, notification_id: uuid.UUID) -> dict[Any, tuple[Any, ...]]:
    """Each device's delivery: (status, next_attempt_at, error)."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(
                Delivery.device_id, Delivery.status, Delivery.next_attempt_at, Delivery.error
            ).where(Delivery.notification_id == notification_id)
        )
        return {row.device_id: tuple(row[1:]) for row in rows}


# --- where each device's time is ----------------------------------------------------------


@pytest.mark.parametrize("past", ["send", "skip"])
async def test_each_device_waits_for_its_own_local_time_and_a_past_one_is_sent_or_skipped(
    runtime: Runtime, tenant: TenantKeys, past: str
) -> None:
    # Given an app whose default zone is New York, and three devices: one in Tokyo, one with
    # a zone no one knows whose user lives in Paris, and one with neither (the app's zone)
    async with runtime.sessions() as session:
        app = await apps.get(session=session, app_id=tenant.app_id)
        await apps.set_default_timezone(session=session, app=app, name="America/New_York")
        devices = {
            where: (
                await session.execute(
                    insert(Device)
                    .values(app_id=tenant.app_id, platform="fcm", token=f"t-{where}", **fields)
                    .returning(Device.id)
                )
            ).scalar_one()
            for where, fields in {
                "tokyo": {"timezone": "Asia/Tokyo"},
                "paris": {"timezone": "Europe/Atlantis", "user_id": "amelie"},
                "new_york": {},
            }.items()
        }
        session.add(UserPreference(app_id=tenant.app_id, user_id="amelie", timezone="Europe/Paris"))
        await session.commit()

    # When 09:00 local on 10 June is sent at 10:00 UTC that day (past in Tokyo and Paris)
    accepted_at = at("2030-06-10T10:00")
    notification = await accepted(
        runtime,
        tenant.app_id,
        accepted_at,
        send_at_local="2030-06-10T09:00",
        past_local_time=past,
    )
    clock = accepted_at + timedelta(seconds=5)
    made = await dispatch.Dispatcher(runtime, clock=lambda: clock).dispatch(
        notification, publish=False
    )

    # Then New York waits for its 09:00 (13:00 UTC, summer time), and the two whose time had
    # passed go now or are skipped, as asked
    by_device = await planned(runtime, notification)
    assert by_device[devices["new_york"]] == ("deferred", at("2030-06-10T13:00"), None)
    if past == "send":
        gone = {by_device[devices[w]] for w in ("tokyo", "paris")}
        assert gone == {("pending", None, None)}
        assert len(made) == 2
    else:
        skipped = {by_device[devices[w]] for w in ("tokyo", "paris")}
        assert skipped == {("skipped", None, "local_time_passed")}
        assert made == []
    async with runtime.sessions() as session:
        stored = await session.get(Notification, notification)
    assert stored is not None
    assert (stored.total, stored.finished) == (3, 2 if past == "skip" else 0)


async def test_a_local_time_still_to_come_everywhere_defers_every_device(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given a device in Paris and one whose zone and app give none (UTC)
    async with runtime.sessions() as session:
        await session.execute(
            insert(Device),
            [
                {
                    "app_id": tenant.app_id,
                    "platform": "fcm",
                    "token": "p",
                    "timezone": "Europe/Paris",
                },
                {"app_id": tenant.app_id, "platform": "fcm", "token": "u"},
            ],
        )
        await session.commit()
    # When 02:30 on the night Paris skips it is asked for, the day before, for an hour
    notification = await accepted(
        runtime, tenant.app_id, at("2027-03-27T12:00"), send_at_local="2027-03-28T02:30", ttl=3600
    )
    async with runtime.sessions() as session:
        stored = await session.get(Notification, notification)
    # Then the notification waits for 02:30 at UTC+14
    assert stored is not None
    assert (stored.status, stored.send_at) == ("scheduled", at("2027-03-27T12:30"))
    clock = at("2027-03-27T12:30")
    await dispatch.Dispatcher(runtime, clock=lambda: clock).dispatch(notification, publish=False)
    # And Paris goes at 03:30 CEST (the gap skipped), UTC at 02:30 UTC: each deferred, its
    # hour counted from its own time, not from the first zone's (13 hours before)
    rows = sorted((await planned(runtime, notification)).values(), key=lambda row: row[1])
    assert rows == [
        ("deferred", at("2027-03-28T01:30"), None),
        ("deferred", at("2027-03-28T02:30"), None),
    ]


# --- through the whole pipeline ------------------------------------------------------------


async def test_three_time_zones_each_get_it_at_their_own_nine_oclock(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given browsers in Tokyo, Paris and New York
    browsers = {zone: fake_push.new_subscription() for zone in ("Asia/Tokyo", "Europe/Paris")}
    browsers["America/New_York"] = fake_push.new_subscription()
    device_zone = {
        await pushgate.subscribe(acme.subscribe, browser, timezone=zone): zone
        for zone, browser in browsers.items()
    }

    # When 09:00 local on 15 January (standard time everywhere) is sent
    year = datetime.now(UTC).year + 1
    notification = await pushgate.send(
        acme.send,
        {"broadcast": True, "title": "Good morning", "send_at_local": f"{year}-01-15T09:00"},
    )

    # Then it waits for 09:00 at UTC+14, lives until 09:00 at UTC-12 plus its TTL
    status = (
        await pushgate.http.get(f"/v1/notifications/{notification}", headers=acme.send)
    ).json()
    assert status["status"] == "scheduled"
    assert at(status["send_at"][:19]) == at(f"{year}-01-14T19:00")
    assert at(status["expires_at"][:19]) >= at(f"{year}-01-15T21:00")

    # When the sweeper sees that time come, the worker dispatches it: each device deferred
    assert await sweeper.sweep_once(pushgate.runtime, now=at(f"{year}-01-14T19:00")) == (1, 0)

    async def dispatched() -> bool:
        response = await pushgate.http.get(f"/v1/notifications/{notification}", headers=acme.send)
        return bool(response.json()["dispatched_at"])

    await until(dispatched, "dispatch")
    items = await pushgate.deliveries(acme.send, notification)
    due = {device_zone[d["device_id"]]: d["next_attempt_at"][:19] for d in items}
    assert {d["status"] for d in items} == {"deferred"}
    assert due == {
        "Asia/Tokyo": f"{year}-01-15T00:00:00",
        "Europe/Paris": f"{year}-01-15T08:00:00",
        "America/New_York": f"{year}-01-15T14:00:00",
    }

    # And as each zone's 09:00 comes, the sweeper releases its device alone and it is sent
    for count, (zone, hour) in enumerate(
        [("Asia/Tokyo", "00"), ("Europe/Paris", "08"), ("America/New_York", "14")], start=1
    ):
        released = await sweeper.sweep_once(
            pushgate.runtime, now=at(f"{year}-01-15T{hour}:00") + timedelta(seconds=1)
        )
        assert released == (0, 1)

        async def sent(count: int = count) -> bool:
            items = await pushgate.deliveries(acme.send, notification)
            done: int = sum(d["status"] == "sent" for d in items)
            return done == count

        await until(sent, f"the delivery to {zone}")
        assert [len(fake_push.received_for(b)) for b in browsers.values()] == [
            1 if i < count else 0 for i in range(3)
        ]
    final = await pushgate.finished(acme.send, notification)
    assert (final["status"], final["counts"]["sent"]) == ("completed", 3)


async def test_a_throttled_send_of_600_at_300_a_minute_spans_two_minutes(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given 600 browsers
    await add_subscriptions(pushgate, fake_push, acme.app_id, 600)

    # When a broadcast throttled to 300 a minute is dispatched in pages of 250, the clock
    # moving on between pages (an hour ahead: the worker's own sweeper keeps out of it)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    notification = await accepted(
        pushgate.runtime, acme.app_id, start, throttle_per_minute=300, title="Sale"
    )
    ticks = iter(start + timedelta(seconds=10 * i) for i in range(10))
    await dispatch.Dispatcher(pushgate.runtime, page_size=250, clock=lambda: next(ticks)).dispatch(
        notification
    )

    # Then the first goes at once and each other has its slot, 0.2 s apart from the start:
    # 300 in the first minute, 300 in the second
    by_device = await planned(pushgate.runtime, notification)
    slots = sorted(t for status, t, _ in by_device.values() if status == "deferred")
    assert slots == [start + timedelta(seconds=i * 60 / 300) for i in range(1, 600)]
    assert sum(t < start + timedelta(minutes=1) for t in slots) == 299
    status = (
        await pushgate.http.get(f"/v1/notifications/{notification}", headers=acme.send)
    ).json()
    assert status["throttle"]["per_minute"] == 300
    assert at(status["throttle"]["expected_end"][:19]) == start + timedelta(minutes=2)

    async def sent(count: int) -> bool:
        body = (
            await pushgate.http.get(f"/v1/notifications/{notification}", headers=acme.send)
        ).json()
        return body["counts"].get("sent", 0) == count and len(fake_push.received) == count

    await until(lambda: sent(1), "the first slot")

    # When the sweeper runs at the end of the first minute, then of the second
    first = await sweeper.sweep_once(pushgate.runtime, now=start + timedelta(seconds=59.9))
    await until(lambda: sent(300), "the first minute")
    second = await sweeper.sweep_once(pushgate.runtime, now=start + timedelta(seconds=119.9))
    await until(lambda: sent(600), "the second minute")

    # Then each minute's deliveries were released in its sweep, and every browser got one
    assert (first, second) == ((0, 299), (0, 300))
    assert len({r.subscription_id for r in fake_push.received}) == 600
    final = await pushgate.finished(acme.send, str(notification))
    assert final["status"] == "completed"


async def test_a_local_time_deliverys_ttl_counts_from_its_own_local_time(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given browsers in Paris and Tokyo, and a push service that fails Paris's first try
    paris, tokyo = fake_push.new_subscription(), fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, paris, timezone="Europe/Paris")
    await pushgate.subscribe(acme.subscribe, tokyo, timezone="Asia/Tokyo")
    fake_push.script(500, subscription=paris)

    # When a one-hour notification for a minute ago in Paris, accepted before it was 09:00
    # anywhere, is dispatched now: Paris's time has just come, Tokyo's came hours ago
    wall = (datetime.now(localtime.zone("Europe/Paris")) - timedelta(minutes=1)).replace(
        tzinfo=None, second=0, microsecond=0
    )
    first_zone = wall.replace(tzinfo=EARLIEST_ZONE)
    notification = await accepted(
        pushgate.runtime,
        acme.app_id,
        first_zone - timedelta(hours=1),
        send_at_local=wall.isoformat(),
        ttl=3600,
    )
    await dispatch.Dispatcher(pushgate.runtime).dispatch(notification)
    final = await pushgate.finished(acme.send, str(notification))

    # Then Paris is retried within its own hour (not expired an hour after the first zone's
    # 09:00), and Tokyo, an hour past its own 09:00 plus the TTL, is expired, never sent late
    assert (final["counts"]["sent"], final["counts"]["expired"]) == (1, 1)
    assert len(fake_push.received_for(paris)) == 1
    assert fake_push.received_for(tokyo) == []


# --- refused, and the same on push.queue ---------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"send_at_local": "2030-12-24T09:00+01:00"},
        {"send_at_local": "2030-12-24T09:00", "send_at": "2030-12-24T09:00Z"},
        {"send_at_local": "9999-12-24T09:00"},
    ],
    ids=["offset", "with-send_at", "too-far"],
)
async def test_a_local_time_that_cannot_be_one_is_refused_naming_it(
    client: Any, tenant: TenantKeys, fields: dict[str, Any]
) -> None:
    body = {"broadcast": True, "title": "Hi", **fields}
    response = await client.post("/v1/notifications", json=body, headers=tenant.send)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == "send_at_local"


async def test_queue_messages_take_local_time_and_throttle_as_the_api_does(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # When a backend publishes a local-time, throttled message, and one with an offset
    good = {
        "app": "acme",
        "broadcast": True,
        "title": "Morning",
        "send_at_local": "2030-12-24T09:00",
        "past_local_time": "skip",
        "throttle_per_minute": 1000,
    }
    await publish(pushgate, {**good, "request_id": "good"})
    await publish(pushgate, {**good, "request_id": "bad", "send_at_local": "2030-12-24T09:00Z"})

    # Then the first is stored, waiting for 09:00 at UTC+14, with its options
    [letter] = await dead_letters(pushgate, 1)

    async def stored() -> Any:
        async with pushgate.runtime.sessions() as session:
            found = await notifications.history(session=session, app_id=acme.app_id, limit=5)
        return found[0] if found else None

    await until(stored, "the good message")
    row = await stored()
    assert (row.idempotency_key, row.status) == ("good", "scheduled")
    assert row.send_at == at("2030-12-23T19:00")
    assert row.options == {
        "send_at_local": "2030-12-24T09:00:00",
        "past_local_time": "skip",
        "throttle_per_minute": 1000,
    }
    # And the second is dead-lettered, naming the field
    assert "send_at_local" in letter.reason


@pytest.mark.parametrize(
    "fields", [{"send_at_local": "2030-12-24T09:00"}, {"throttle_per_minute": 100}]
)
async def test_send_immediate_refuses_to_send_later(
    client: Any, tenant: TenantKeys, fields: dict[str, Any]
) -> None:
    body = {"tokens": [{"platform": "fcm", "token": "t"}], "title": "Hi", **fields}
    response = await client.post("/v1/notifications/send-immediate", json=body, headers=tenant.send)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == next(iter(fields))


async def test_with_a_throttle_too_each_device_waits_for_the_later_of_its_two_times(
    runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given two devices in Tokyo, whose 09:00 is an hour away
    async with runtime.sessions() as session:
        await session.execute(
            insert(Device),
            [
                {
                    "app_id": tenant.app_id,
                    "platform": "fcm",
                    "token": f"t{i}",
                    "timezone": "Asia/Tokyo",
                }
                for i in range(2)
            ],
        )
        await session.commit()
    now = at("2030-06-09T23:00")
    notification = await accepted(
        runtime, tenant.app_id, now, send_at_local="2030-06-10T09:00", throttle_per_minute=1
    )

    # When it is dispatched at one a minute, an hour before
    await dispatch.Dispatcher(runtime, clock=lambda: now).dispatch(notification, publish=False)

    # Then both wait for 09:00: the second's throttle slot (a minute after the first) is
    # earlier than that
    times = sorted(row[1] for row in (await planned(runtime, notification)).values())
    assert times == [at("2030-06-10T00:00")] * 2

    # And dispatched an hour after 09:00 instead, the second waits for its slot
    later = at("2030-06-10T01:00")
    again = await accepted(
        runtime, tenant.app_id, now, send_at_local="2030-06-10T09:00", throttle_per_minute=1
    )
    await dispatch.Dispatcher(runtime, clock=lambda: later).dispatch(again, publish=False)
    rows = sorted((await planned(runtime, again)).values(), key=lambda r: r[1] or later)
    assert [(status, when) for status, when, _ in rows] == [
        ("pending", None),
        ("deferred", later + timedelta(minutes=1)),
    ]
