"""A notification through the whole pipeline (accept, dispatch, deliver) to the fake Web Push
service, on both backend profiles."""

from __future__ import annotations

from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate


async def test_notification_reaches_every_subscription_decrypted(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given three browsers of one user, subscribed through the API
    subscriptions = [fake_push.new_subscription() for _ in range(3)]
    for subscription in subscriptions:
        await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")

    # When a backend sends to that user
    notification = await pushgate.send(
        acme.send,
        {
            "user_ids": ["u1"],
            "title": "Hello",
            "body": "World",
            "url": "https://shop.example/o/1",
            "data": {"order": 42},
        },
    )
    status = await pushgate.finished(acme.send, notification)

    # Then every subscription got the payload a service worker expects
    assert status["status"] == "completed"
    assert status["counts"]["sent"] == 3
    assert status["platforms"]["webpush"]["sent"] == 3
    for subscription in subscriptions:
        [arrived] = fake_push.received_for(subscription)
        assert arrived.payload == {
            "title": "Hello",
            "body": "World",
            "url": "https://shop.example/o/1",
            "data": {"order": "42"},
        }
        assert arrived.headers["urgency"] == "normal"
    deliveries = await pushgate.deliveries(acme.send, notification)
    assert {d["status"] for d in deliveries} == {"sent"}
    assert all(d["provider_message_id"] for d in deliveries)
