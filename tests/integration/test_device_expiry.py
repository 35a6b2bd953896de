"""Device expiry on both profiles: a Web Push subscription past its `expirationTime` is not sent
to and is deactivated as `expired`; a device unseen for `devices.stale_after_days` gets a
`device.expiring` webhook event (to a TLS receiver on 127.0.0.1) and is deactivated as
`stale` after the grace, unless it registers again or is delivered to meanwhile; a delivery
marks its device seen at most once a day."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from pushgate.sending.lifecycle import Lifecycle
from pushgate.store import device_expiry
from pushgate.store.tables import Device, utcnow
from tests.integration import test_webhooks_pipeline as webhook_tests
from tests.integration.conftest import Pushgate
from tests.integration.test_webhooks_pipeline import Scene, add_webhook, drain

# The webhook tests' fixtures: pushgate with a TLS webhook receiver on 127.0.0.1, and the
# webhook sender driven by hand with its clock.
hooked, receiver, sender, scene = (
    webhook_tests.hooked,
    webhook_tests.receiver,
    webhook_tests.sender,
    webhook_tests.scene,
)

DAY = timedelta(days=1)


async def device(pushgate: Pushgate, headers: dict[str, str], device_id: str) -> dict[str, Any]:
    response = await pushgate.http.get(f"/v1/devices/{device_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_last_seen(pushgate: Pushgate, device_ids: list[str], at: datetime) -> None:
    async with pushgate.runtime.sessions() as session:
        await session.execute(
            update(Device)
            .where(Device.id.in_([uuid.UUID(i) for i in device_ids]))
            .values(last_seen_at=at)
        )
        await session.commit()


async def test_expired_subscription_is_not_sent_to_and_is_deactivated(scene: Scene) -> None:
    pushgate, acme, fake_push, hooks = scene.pushgate, scene.acme, scene.push, scene.receiver
    # Given a subscription whose expirationTime passed an hour ago, and one without any
    await add_webhook(pushgate, acme, hooks, ["device.invalidated"])
    hour_ago_ms = (utcnow() - timedelta(hours=1)).timestamp() * 1000
    expired = fake_push.new_subscription()
    expired_id = await pushgate.subscribe(
        acme.subscribe, {**expired, "expirationTime": hour_ago_ms}
    )
    live_id = await pushgate.subscribe(acme.subscribe, fake_push.new_subscription())

    # When a broadcast and a send to the expired device by id go out
    broadcast = await pushgate.send(acme.send, {"broadcast": True, "title": "all"})
    named = await pushgate.send(acme.send, {"device_ids": [expired_id], "title": "you"})

    # Then the broadcast went to the live device only, and the named send to no one
    await pushgate.finished(acme.send, broadcast)
    assert [d["device_id"] for d in await pushgate.deliveries(acme.send, broadcast)] == [live_id]
    assert (await pushgate.finished(acme.send, named))["counts"]["total"] == 0
    assert fake_push.received_for(expired) == []

    # When the job runs
    counts = await Lifecycle(pushgate.runtime).run()

    # Then the expired device is deactivated as `expired`, announced, and counted
    assert counts == {"subscriptions_expired": 1}
    gone = await device(pushgate, acme.admin, expired_id)
    assert (gone["status"], gone["invalidation_reason"]) == ("deactivated", "expired")
    assert (await device(pushgate, acme.admin, live_id))["status"] == "active"
    await drain(scene.sender)
    [event] = [r.json for r in hooks.accepted]
    assert (event["type"], event["data"]["device_id"]) == ("device.invalidated", expired_id)
    assert event["data"]["reason"] == "expired"
    days = await pushgate.http.get("/v1/analytics/devices", headers=acme.send)
    assert sum(d["expired"] for d in days.json()["days"]) == 1


async def test_unseen_device_is_announced_then_deactivated_unless_seen(scene: Scene) -> None:
    pushgate, acme, fake_push, hooks = scene.pushgate, scene.acme, scene.push, scene.receiver
    # Given three devices last seen 280 days ago (the default: expiring after 270, 14 of grace)
    await add_webhook(pushgate, acme, hooks, ["device.expiring", "device.invalidated"])
    subscriptions = [fake_push.new_subscription() for _ in range(3)]
    unseen, registers, delivered = [
        await pushgate.subscribe(acme.subscribe, s) for s in subscriptions
    ]
    await set_last_seen(pushgate, [unseen, registers, delivered], utcnow() - 280 * DAY)

    # When the job runs
    counts = await Lifecycle(pushgate.runtime).run()

    # Then each gets `device.expiring`, saying when it will be deactivated
    assert counts == {"devices_expiring": 3}
    await drain(scene.sender)
    events = {r.json["data"]["device_id"]: r.json for r in hooks.accepted}
    assert set(events) == {unseen, registers, delivered}
    assert {e["type"] for e in events.values()} == {"device.expiring"}
    deadline = datetime.fromisoformat(events[unseen]["data"]["deactivate_at"])
    assert abs(deadline - (utcnow() + 14 * DAY)) < timedelta(minutes=1)

    # When one registers again and one is delivered to
    again = await pushgate.http.post(
        "/v1/devices",
        json={"platform": "webpush", "subscription": subscriptions[1]},
        headers=acme.subscribe,
    )
    assert again.status_code == 200, again.text
    sent = await pushgate.send(acme.send, {"device_ids": [delivered], "title": "still there?"})
    assert (await pushgate.finished(acme.send, sent))["status"] == "completed"

    # And the job runs 13 days later, Then nothing is deactivated yet
    assert await Lifecycle(pushgate.runtime, now=utcnow() + 13 * DAY).run() == {}

    # When it runs 15 days later
    later = utcnow() + 15 * DAY
    counts = await Lifecycle(pushgate.runtime, now=later).run()

    # Then only the unseen device is deactivated, as `stale`, and announced so
    assert counts == {"devices_stale": 1}
    stale = await device(pushgate, acme.admin, unseen)
    assert (stale["status"], stale["invalidation_reason"]) == ("deactivated", "stale")
    for seen_again in (registers, delivered):
        assert (await device(pushgate, acme.admin, seen_again))["status"] == "active"
    hooks.received.clear()
    scene.clock.advance(16 * DAY.total_seconds())
    await drain(scene.sender)
    [event] = [r.json for r in hooks.accepted]
    assert (event["type"], event["data"]["device_id"]) == ("device.invalidated", unseen)
    assert event["data"]["reason"] == "stale"


async def test_a_delivery_marks_its_device_seen_at_most_once_a_day(scene: Scene) -> None:
    pushgate, acme = scene.pushgate, scene.acme
    # Given a device last seen two days ago and announced as expiring
    device_id = await pushgate.subscribe(acme.subscribe, scene.push.new_subscription())
    now = utcnow()
    async with pushgate.runtime.sessions() as session:
        await session.execute(
            update(Device).values(last_seen_at=now - 2 * DAY, expiring_at=now - DAY)
        )
        await session.commit()
    ids = {uuid.UUID(device_id)}

    # When a delivery to it succeeds now, and another an hour later
    for at in (now, now + timedelta(hours=1)):
        async with pushgate.runtime.sessions() as session:
            await device_expiry.seen(session=session, device_ids=ids, now=at)
            await session.commit()

    # Then it was seen now (its announced expiry off), and the second did not write it again
    async with pushgate.runtime.sessions() as session:
        row = (await session.execute(select(Device.last_seen_at, Device.expiring_at))).one()
    assert (row.last_seen_at, row.expiring_at) == (now, None)
