"""Webhook events end to end: written with their cause, signed per the Standard Webhooks spec
(checked with the `standardwebhooks` library), retried while the receiver is down and then
delivered once each, in order per device; never for a rolled-back change; both signatures
during a secret rotation; a webhook failing too often is disabled. Both profiles, a TLS
receiver on 127.0.0.1, the sender driven with an injected clock (its loop in the worker is
idle: `poll_seconds` is long)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from pushgate.domain import webhooks as rules
from pushgate.domain.subscription import PushAddress
from pushgate.providers.webhook_client import WebhookClient
from pushgate.sending.webhooks import WebhookSender
from pushgate.store import devices, webhooks
from pushgate.store.tables import WebhookEvent, utcnow
from tests.conftest import TenantKeys
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory


class Clock:
    """The real time plus however far a test moved it (events are stamped with the real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake


@pytest.fixture
async def hooked(make_pushgate: PushgateFactory, receiver: FakeWebhookReceiver) -> Pushgate:
    return await make_pushgate(
        max_attempts=1,  # a delivery answered 5xx fails at once (delivery.failed)
        webhooks={
            "allow_private_addresses": True,
            "ca_bundle": receiver.ca_pem_path,
            "poll_seconds": 60,
            "disable_after_failures": 3,
        },
    )


@pytest.fixture
async def sender(hooked: Pushgate) -> AsyncIterator[tuple[WebhookSender, Clock]]:
    client = WebhookClient(hooked.settings.webhooks)
    clock = Clock()
    yield WebhookSender(hooked.runtime, client, clock=clock), clock
    await client.close()


@dataclass
class Scene:
    """What each test here uses: pushgate, a tenant, the fake push service and receiver, and
    the webhook sender with its clock."""

    pushgate: Pushgate
    acme: TenantKeys
    push: FakeWebPushService
    receiver: FakeWebhookReceiver
    sender: WebhookSender
    clock: Clock


@pytest.fixture
def scene(
    hooked: Pushgate,
    acme: TenantKeys,
    fake_push: FakeWebPushService,
    receiver: FakeWebhookReceiver,
    sender: tuple[WebhookSender, Clock],
) -> Scene:
    return Scene(hooked, acme, fake_push, receiver, *sender)


async def add_webhook(
    pushgate: Pushgate, keys: TenantKeys, receiver: FakeWebhookReceiver, events: list[str]
) -> dict[str, Any]:
    made = await pushgate.http.post(
        "/v1/webhooks", json={"url": receiver.url(), "events": events}, headers=keys.admin
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def drain(sender: WebhookSender) -> None:
    while await sender.send_once():
        pass


async def test_invalidated_device_produces_one_signed_event(scene: Scene) -> None:
    hooked, acme, fake_push = scene.pushgate, scene.acme, scene.push
    receiver, sender = scene.receiver, (scene.sender, scene.clock)
    # Given a webhook for invalidated devices, and a browser the push service says is gone
    hook = await add_webhook(hooked, acme, receiver, ["device.invalidated"])
    gone = fake_push.new_subscription()
    gone_id = await hooked.subscribe(acme.subscribe, gone)
    fake_push.script(410, subscription=gone, times=None)

    # When a notification goes to it and the webhook sender runs
    notification = await hooked.send(acme.send, {"device_ids": [gone_id], "title": "Hi"})
    await hooked.finished(acme.send, notification)
    await drain(sender[0])

    # Then the receiver got one event, which the Standard Webhooks library verifies
    [event] = receiver.received
    payload = Verifier(hook["secret"]).verify(event.body, event.headers)
    assert payload["type"] == "device.invalidated"
    assert payload["data"]["device_id"] == gone_id
    assert payload["data"]["notification_id"] == notification
    assert payload["data"]["reason"]
    assert payload["data"]["status_code"] == 410
    assert event.headers["webhook-id"].startswith("msg_")
    # And it is recorded as sent, with the answer
    listed = await hooked.http.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=acme.admin)
    [delivery] = listed.json()["items"]
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == (
        "sent",
        1,
        204,
    )
    # And a wrong secret does not verify it
    with pytest.raises(WebhookVerificationError):
        Verifier(rules.new_secret()).verify(event.body, event.headers)


async def test_receiver_down_gets_every_event_once_back_in_order_per_device(scene: Scene) -> None:
    hooked, acme, fake_push = scene.pushgate, scene.acme, scene.push
    receiver, sender = scene.receiver, (scene.sender, scene.clock)
    # Given a webhook for registrations and invalidations, and a receiver that is down
    hook = await add_webhook(hooked, acme, receiver, ["device.registered", "device.invalidated"])
    receiver.down = True
    first, second = fake_push.new_subscription(), fake_push.new_subscription()
    first_id = await hooked.subscribe(acme.subscribe, first)
    second_id = await hooked.subscribe(acme.subscribe, second)
    fake_push.script(410, subscription=first, times=None)
    notification = await hooked.send(acme.send, {"device_ids": [first_id], "title": "Hi"})
    await hooked.finished(acme.send, notification)
    work, clock = sender

    # When the sender tries a few times, an hour apart, while the receiver is down
    for _ in range(2):
        await drain(work)
        clock.advance(3600)
    # (the webhook is disabled after 3 failures in a row: enable it again)
    enabled = await hooked.http.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=acme.admin
    )
    assert enabled.json()["enabled"] is True
    # Then the invalidation waited behind the first device's registration
    tried = [(r.json["type"], r.json["data"]["device_id"]) for r in receiver.received]
    assert ("device.invalidated", first_id) not in tried
    assert tried

    # When the receiver is back
    receiver.down = False
    clock.advance(3600)
    await drain(work)

    # Then every event arrived once, in order per device
    got = [(r.json["type"], r.json["data"]["device_id"]) for r in receiver.accepted]
    assert sorted(got) == sorted(
        [
            ("device.registered", first_id),
            ("device.registered", second_id),
            ("device.invalidated", first_id),
        ]
    )
    assert [t for t, d in got if d == first_id] == ["device.registered", "device.invalidated"]
    assert len({r.headers["webhook-id"] for r in receiver.accepted}) == 3


async def test_failing_webhook_is_disabled_with_a_reason_and_events_wait(scene: Scene) -> None:
    hooked, acme, fake_push = scene.pushgate, scene.acme, scene.push
    receiver, sender = scene.receiver, (scene.sender, scene.clock)
    hook = await add_webhook(hooked, acme, receiver, ["device.registered"])
    receiver.down = True
    await hooked.subscribe(acme.subscribe, fake_push.new_subscription())
    work, clock = sender

    for _ in range(5):
        await drain(work)
        clock.advance(7200)

    # Disabled after 3 failures in a row (the setting), with the last answer as the reason
    assert len(receiver.received) == 3
    state = (await hooked.http.get(f"/v1/webhooks/{hook['id']}", headers=acme.admin)).json()
    assert state["enabled"] is False
    assert "503" in state["disabled_reason"]
    # Re-enabled, the waiting event goes out
    receiver.down = False
    await hooked.http.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=acme.admin
    )
    await drain(work)
    assert len(receiver.accepted) == 1


async def test_event_of_a_rolled_back_change_is_never_sent(scene: Scene) -> None:
    hooked, acme = scene.pushgate, scene.acme
    receiver, sender = scene.receiver, (scene.sender, scene.clock)
    await add_webhook(hooked, acme, receiver, ["device.registered"])

    # When a registration is rolled back
    async with hooked.runtime.sessions() as session:
        registration = await devices.upsert(
            session=session,
            app_id=acme.app_id,
            address=PushAddress(platform="fcm", token="rolled-back-token"),
        )
        assert registration.created
        await session.rollback()

    # Then no event exists and nothing is sent
    await drain(sender[0])
    assert receiver.received == []
    async with hooked.runtime.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(WebhookEvent))).scalar()
    assert count == 0


async def test_rotation_signs_with_both_secrets_during_the_overlap(scene: Scene) -> None:
    hooked, acme, fake_push = scene.pushgate, scene.acme, scene.push
    receiver, sender = scene.receiver, (scene.sender, scene.clock)
    hook = await add_webhook(hooked, acme, receiver, ["device.registered"])
    rotated = await hooked.http.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=acme.admin)
    new_secret = rotated.json()["secret"]

    # During the overlap, both the old and the new secret verify the event
    await hooked.subscribe(acme.subscribe, fake_push.new_subscription())
    await drain(sender[0])
    [during] = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Verifier(hook["secret"]).verify(during.body, during.headers)
    Verifier(new_secret).verify(during.body, during.headers)

    # After it, only the new one signs
    sender[1].advance(hooked.settings.webhooks.rotation_overlap_seconds + 60)
    await hooked.subscribe(acme.subscribe, fake_push.new_subscription())
    await drain(sender[0])
    after = receiver.received[1]
    timestamp = int(after.headers["webhook-timestamp"])
    message_id = after.headers["webhook-id"]
    assert after.headers["webhook-signature"] == rules.signature(
        new_secret, message_id, timestamp, after.body
    )


async def test_failed_delivery_and_completed_notification_are_announced(scene: Scene) -> None:
    hooked, acme, fake_push = scene.pushgate, scene.acme, scene.push
    # Given a webhook for failures and completions, and a push service answering 500
    hook = await add_webhook(
        hooked, acme, scene.receiver, ["delivery.failed", "notification.completed"]
    )
    broken = fake_push.new_subscription()
    broken_id = await hooked.subscribe(acme.subscribe, broken)
    fake_push.script(500, subscription=broken, times=None, body=b"upstream broke")

    # When a notification to it fails
    notification = await hooked.send(acme.send, {"device_ids": [broken_id], "title": "Hi"})
    assert (await hooked.finished(acme.send, notification))["status"] == "failed"
    await drain(scene.sender)

    # Then the failure came first, then the completion with its counts, both signed
    events = [Verifier(hook["secret"]).verify(r.body, r.headers) for r in scene.receiver.received]
    assert [e["type"] for e in events] == ["delivery.failed", "notification.completed"]
    failed, completed = (e["data"] for e in events)
    assert (failed["device_id"], failed["notification_id"]) == (broken_id, notification)
    assert failed["status_code"] == 500
    assert "upstream broke" in failed["reason"] or "500" in failed["reason"]
    assert completed == {
        "notification_id": notification,
        "status": "failed",
        "counts": {"failed": 1},
    }


async def test_a_device_deactivated_already_is_not_announced_again(scene: Scene) -> None:
    hooked, acme = scene.pushgate, scene.acme
    await add_webhook(hooked, acme, scene.receiver, ["device.invalidated"])
    async with hooked.runtime.sessions() as session:
        made = [
            await devices.upsert(
                session=session, app_id=acme.app_id, address=PushAddress("fcm", token)
            )
            for token in ("token-active", "token-deactivated")
        ]
        active, deactivated = (m.record.device.id for m in made)
        await devices.invalidate_many(session=session, reasons={deactivated: "gone"}, now=utcnow())

        # When both are reported gone, only the one still active is announced
        events = [
            webhooks.Event(acme.app_id, "device.invalidated", str(d), {"device_id": str(d)})
            for d in (active, deactivated)
        ]
        kept = await webhooks.wanted(session=session, events=events)
        # And an event no webhook listens to is dropped before any write
        unheard = webhooks.Event(acme.app_id, "delivery.failed", str(active), {})
        assert await webhooks.wanted(session=session, events=[unheard]) == []
        await session.rollback()
    assert [e.key for e in kept] == [str(active)]
