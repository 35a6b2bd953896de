"""A notification through the whole pipeline (accept, dispatch, deliver) to the fake Web Push
service, on both backend profiles."""

from __future__ import annotations

from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory


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


async def test_an_endpoint_no_longer_allowed_is_rejected_at_send_and_not_retried(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a subscription registered while the operator allowed its host
    opened = await make_pushgate()
    acme = await opened.tenant()
    subscription = fake_push.new_subscription()
    await opened.subscribe(acme.subscribe, subscription, user_id="u1")
    await opened.worker.stop()

    # When the worker runs with that host taken out of PUSHGATE_WEBPUSH__EXTRA_HOSTS
    narrowed = await make_pushgate(webpush={"extra_hosts": []}, max_attempts=5)
    notification = await narrowed.send(acme.send, {"user_ids": ["u1"], "title": "Hello"})
    status = await narrowed.finished(acme.send, notification)

    # Then the delivery is rejected once, saying why, and nothing reached the push service
    assert status["status"] == "failed"
    [delivery] = await narrowed.deliveries(acme.send, notification)
    assert delivery["status"] == "rejected"
    assert delivery["attempts"] == 1
    assert "endpoint policy" in delivery["error"]
    assert "PUSHGATE_WEBPUSH__EXTRA_HOSTS" in delivery["error"]
    assert fake_push.requests == 0


async def test_a_known_push_service_on_another_port_is_refused_at_registration(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    subscription = {**fake_push.new_subscription()}
    subscription["endpoint"] = "https://fcm.googleapis.com:8443/fcm/send/abc"

    response = await pushgate.http.post(
        "/v1/devices",
        json={"platform": "webpush", "subscription": subscription},
        headers=acme.subscribe,
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unsafe_endpoint"
    assert "port 443" in error["message"]
