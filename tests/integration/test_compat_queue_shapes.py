"""The two legacy queue consumers pushgate replaces, driven as their producers drive them: the
issue's messages published on `push.queue` (RabbitMQ on the services profile, the embedded
broker otherwise), delivered to the fake FCM with the service account given the way those
deployments gave it (`FIREBASE_KEY`: `fcm.service_account_json`). Each shape: templates or
its words, the priority, `metadata`, idempotency through its own key field, the messages it
can never send dead-lettered with their reason, and its health routes; and a legacy message
delivers exactly what the same notification through `/v1` delivers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr

from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.fcm_server import FakeFCMService, Received
from tests.integration.conftest import Pushgate
from tests.integration.test_ingress import dead_letters, publish, recorded_letters, stored, until
from tests.unit.test_compat_queue_recognition import FLASK_CONSUMER

WELCOME = {
    "code": "welcome",
    "default_locale": "en",
    "variants": {"en": {"title": "Welcome {{ name }}", "body": "Glad you are here"}},
}
ORDER = {
    "code": "order_shipped",
    "default_locale": "en",
    "variants": {
        "en": {"title": "Order {{ order }} shipped", "body": "{{ message }}", "data": {"o": "1"}}
    },
}


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService) -> Settings:
    """The profile's settings with the fake FCM's service account given as FIREBASE_KEY gives
    it, and both shapes' routes enabled."""
    account = SecretStr(json.dumps(fake_fcm.service_account("legacy-project")))
    fcm = {
        "base_url": fake_fcm.origin,
        "ca_bundle": fake_fcm.ca_pem_path,
        "token_uris": [fake_fcm.token_uri],
        "service_account_json": account,
    }
    compat = {"enabled": ["template_consumer", "flask_consumer"]}
    return settings.model_copy(
        update={
            "fcm": settings.fcm.model_copy(update=fcm),
            "compat": settings.compat.model_copy(update=compat),
        }
    )


async def legacy_app(pushgate: Pushgate) -> TenantKeys:
    """The app legacy producers' messages go to: they name none, so `default`."""
    return await pushgate.tenant("default")


async def phone_and_template(
    pushgate: Pushgate, fake: FakeFCMService, body: dict[str, Any]
) -> tuple[TenantKeys, str]:
    """The legacy app with one template, and the token of user `u-1`'s phone."""
    legacy = await legacy_app(pushgate)
    token = await device(pushgate, legacy, fake, "u-1")
    await template(pushgate, legacy, body)
    return legacy, token


async def device(pushgate: Pushgate, tenant: TenantKeys, fake: FakeFCMService, user: str) -> str:
    token = fake.new_token()
    body = {"platform": "fcm", "token": token, "user_id": user}
    response = await pushgate.http.post("/v1/devices", json=body, headers=tenant.subscribe)
    assert response.status_code == 201, response.text
    return token


async def template(pushgate: Pushgate, tenant: TenantKeys, body: dict[str, Any]) -> None:
    response = await pushgate.http.post("/v1/templates", json=body, headers=tenant.admin)
    assert response.status_code == 201, response.text


def arrived(fake: FakeFCMService, token: str) -> dict[str, dict[str, Any]]:
    """What reached the token, by notification title."""
    return {r.message["notification"]["title"]: r.message for r in fake.received_for(token)}


async def test_template_consumer_messages_are_sent_with_a_template_or_their_own_words(
    pushgate: Pushgate, fake_fcm: FakeFCMService
) -> None:
    # Given the legacy app, a user's phone and a pushgate template named like the old one
    legacy, token = await phone_and_template(pushgate, fake_fcm, ORDER)
    templated = {
        "notification_id": "n-1",
        "user_id": "u-1",
        "template_id": "order_shipped",
        "variables": {"title": "unused", "message": "On its way", "order": "7"},
        "priority": 8,
        "metadata": {"source": "orders"},
    }

    # When the producer publishes its messages: one with that template, one naming a
    # template pushgate does not have, and one with a priority out of range
    await publish(
        pushgate,
        templated,
        {
            "notification_id": "n-2",
            "user_id": "u-1",
            "template_id": "old_promo",
            "variables": {"title": "Sale", "message": "Everything half off"},
            "priority": 1,
            "metadata": {"campaign": "spring", "count": 3, "ids": [1, 2]},
        },
        {**templated, "notification_id": "n-3", "priority": 11},
    )

    # Then the phone gets the template's rendering, urgent, and the old words, not urgent
    await until(lambda: len(fake_fcm.received_for(token)) == 2, what="both messages")
    got = arrived(fake_fcm, token)
    assert got["Order 7 shipped"]["notification"]["body"] == "On its way"
    assert got["Order 7 shipped"]["android"]["priority"] == "high"
    assert got["Order 7 shipped"]["data"] == {"o": "1"}  # the template's data
    assert got["Sale"]["notification"]["body"] == "Everything half off"
    assert got["Sale"]["android"]["priority"] == "normal"
    assert got["Sale"]["data"] == {"campaign": "spring", "count": "3"}
    row = await stored(pushgate, legacy, "n-1")
    assert row["metadata"] == {"source": "orders"}
    assert (await pushgate.finished(legacy.send, row["id"]))["template"]["code"] == "order_shipped"
    # And the one out of range is dead-lettered saying why
    [letter] = await dead_letters(pushgate, 1)
    assert letter.reason.startswith("invalid_input: priority: must be an integer from 0 to 10")

    # When the producer publishes the first message again (its retry), then another
    await publish(pushgate, templated, {**templated, "notification_id": "n-4", "priority": 0})
    await until(lambda: len(fake_fcm.received_for(token)) == 3, what="the later message")

    # Then the repeated notification_id was not sent twice
    titles = [r.message["notification"]["title"] for r in fake_fcm.received_for(token)]
    assert sorted(titles) == ["Order 7 shipped", "Order 7 shipped", "Sale"]
    assert len(await recorded_letters(pushgate)) == 1


async def test_flask_consumer_messages_are_sent_and_other_channels_dead_lettered(
    pushgate: Pushgate, fake_fcm: FakeFCMService
) -> None:
    # Given the legacy app, a user's phone and the template the producer names
    legacy, token = await phone_and_template(pushgate, fake_fcm, WELCOME)
    push = {**FLASK_CONSUMER, "priority": 5}

    # When the producer publishes a push, an e-mail meant for another consumer, and a push
    # naming a template pushgate does not have
    await publish(
        pushgate,
        push,
        {**push, "notification_type": "email", "request_id": "signup-43"},
        {**push, "template_code": "no_such", "request_id": "signup-44"},
    )

    # Then the push arrives, rendered and urgent, stored with its metadata
    await until(lambda: len(fake_fcm.received_for(token)) == 1, what="the push")
    [message] = [r.message for r in fake_fcm.received_for(token)]
    assert message["notification"] == {"title": "Welcome Ada", "body": "Glad you are here"}
    assert message["android"]["priority"] == "high"
    row = await stored(pushgate, legacy, "signup-42")
    assert row["metadata"] == {"source": "signup"}
    assert (await pushgate.finished(legacy.send, row["id"]))["status"] == "completed"
    # And the others are dead-lettered, each saying why
    reasons = sorted(letter.reason for letter in await dead_letters(pushgate, 2))
    assert reasons[0].startswith("unknown_template: no template 'no_such'"), reasons
    assert reasons[1].startswith("unsupported_notification_type: notification_type is 'email'")

    # When the push is published again (the producer's retry), then another
    await publish(pushgate, push, {**push, "request_id": "signup-45", "variables": {"name": "Bo"}})
    await until(lambda: len(fake_fcm.received_for(token)) == 2, what="the later push")

    # Then the repeated request_id was not sent twice
    titles = sorted(r.message["notification"]["title"] for r in fake_fcm.received_for(token))
    assert titles == ["Welcome Ada", "Welcome Bo"]

    # And both health routes answer in the consumers' shape, with pushgate's fields
    queue = f"{pushgate.settings.broker.prefix}push.queue"
    for path in ("/health", "/api/v1/health"):
        response = await pushgate.http.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "healthy"
        assert body["queue"] == queue
        assert body["breaker_state"] == "closed"
        assert body["version"]
        assert set(body["checks"].values()) == {"ok"}
    operation = (await pushgate.http.get("/openapi.json")).json()["paths"]["/api/v1/health"]
    assert operation["get"]["tags"] == ["compat: template_consumer"]
    assert operation["get"]["deprecated"] is True

    # When FCM refuses the service account (a credential alarm opens the circuit at once)
    fake_fcm.script("THIRD_PARTY_AUTH_ERROR", times=None)
    await publish(pushgate, {**push, "request_id": "signup-46"})

    # Then /health says the breaker is open; the backends still answer, so still healthy
    answers: list[dict[str, Any]] = []

    async def breaker_state() -> str:
        answers.append((await pushgate.http.get("/health")).json())
        return str(answers[-1]["breaker_state"])

    for _ in range(200):
        if await breaker_state() == "open":
            break
        await asyncio.sleep(0.05)
    assert answers[-1]["breaker_state"] == "open", answers[-1]
    assert answers[-1]["status"] == "healthy"


def sent_alike(received: list[Received]) -> list[dict[str, Any]]:
    """The messages without what differs between two sends of the same notification: the
    token, and the APNs expiry (an instant: the time of acceptance plus the TTL)."""
    alike = []
    for r in received:
        message = {k: v for k, v in r.message.items() if k != "token"}
        headers = dict(message["apns"]["headers"])
        assert int(headers.pop("apns-expiration")) > 0
        alike.append({**message, "apns": {**message["apns"], "headers": headers}})
    return alike


async def test_legacy_messages_deliver_what_the_same_v1_requests_deliver(
    pushgate: Pushgate, fake_fcm: FakeFCMService
) -> None:
    # Given a user with two phones, another user, and a template
    legacy = await legacy_app(pushgate)
    phones = [await device(pushgate, legacy, fake_fcm, "u-1") for _ in range(2)]
    other = await device(pushgate, legacy, fake_fcm, "u-2")
    await template(pushgate, legacy, WELCOME)
    cases = [
        (
            {
                "notification_id": "n-1",
                "user_id": "u-1",
                "template_id": "none_here",
                "variables": {"title": "Sale", "message": "Half off"},
                "priority": 9,
                "metadata": {"campaign": "spring", "count": 3},
            },
            {
                "user_id": "u-1",
                "title": "Sale",
                "body": "Half off",
                "priority": "high",
                "data": {"campaign": "spring", "count": "3"},
                "metadata": {"campaign": "spring", "count": 3},
            },
        ),
        (
            {**FLASK_CONSUMER, "priority": 2},
            {
                "user_id": "u-1",
                "template_code": "welcome",
                "variables": {"name": "Ada"},
                "metadata": {"source": "signup"},
            },
        ),
    ]
    for count, (message, request) in enumerate(cases, start=1):
        # When the legacy message is published, and once it has arrived the /v1 request sent
        await publish(pushgate, message)
        expected = 2 * count - 1
        await until(
            lambda: all(len(fake_fcm.received_for(p)) == expected for p in phones),  # noqa: B023
            what="the legacy message",
        )
        notification = await pushgate.send(legacy.send, request)
        await pushgate.finished(legacy.send, notification)

        # Then each phone got the same message twice, and the other user nothing
        for phone in phones:
            legacy_copy, v1_copy = sent_alike(fake_fcm.received_for(phone)[-2:])
            assert legacy_copy == v1_copy
    assert fake_fcm.received_for(other) == []
