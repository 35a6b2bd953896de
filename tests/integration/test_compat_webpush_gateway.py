"""Shape 3, the Web Push gateway, driven as its clients drive it: the page's `GET
/vapid_public_key` and `POST /subscribe` (with a key, and keyless in the open mode, limited per
address), the producers' messages on the ingress queue (by its legacy name on RabbitMQ), the
VAPID pair and subject of its environment, invalidated subscriptions reported to the user
service's webhook, `/health` in its shape, and the test page at its old path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import aio_pika
import httpx
import orjson
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from pushgate.api.app import create_app
from pushgate.broker import base as broker_base
from pushgate.compat import install
from pushgate.compat.webpush_gateway import start
from pushgate.compat.webpush_gateway.settings import WebPushGatewaySettings, Welcome
from pushgate.domain import vapid
from pushgate.domain.dead_letters import LetterFilter
from pushgate.domain.rates import Rate
from pushgate.errors import ConfigError
from pushgate.runtime import open_runtime
from pushgate.settings import Settings
from pushgate.store import apps, notifications
from pushgate.store import dead_letters as stored_letters
from pushgate.store.tables import DeadLetterRecord, Notification, WebhookEvent
from tests.conftest import make_tenant
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory

PAIR = vapid.generate_key_pair()
SUBJECT = "mailto:ops@shop.example.com"
USER_SERVICE = "https://127.0.0.1:9/users/subscriptions/invalidated"
# The old deployment's RABBITMQ_QUEUE_NAME (under the test's prefix).
LEGACY_QUEUE = "push_notifications"
OK = {"status": "ok", "message": "Subscription received and queued."}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    """The profile's settings with the old gateway's environment: the shape enabled, its VAPID
    pair and subject, its user service, a welcome for the default app, and on RabbitMQ its
    queue name (that queue deleted afterwards, once pushgate stopped)."""
    gateway = WebPushGatewaySettings(
        vapid_private_key=SecretStr(PAIR.private_key),
        vapid_public_key=PAIR.public_key,
        vapid_subject=SUBJECT,
        user_service_url=USER_SERVICE,
        welcome={"default": Welcome(title="Welcome!", body="Thanks for subscribing")},
    )
    compat = settings.compat.model_copy(
        update={"enabled": ["webpush_gateway"], "webpush_gateway": gateway}
    )
    update: dict[str, Any] = {
        "compat": compat,
        "webhooks": settings.webhooks.model_copy(update={"allow_private_addresses": True}),
    }
    rabbitmq = settings.broker.url != "embedded"
    if rabbitmq:
        update["broker"] = settings.broker.model_copy(update={"ingress_queue": LEGACY_QUEUE})
    yield settings.model_copy(update=update)
    if rabbitmq:
        connection = await aio_pika.connect(settings.broker.url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"{settings.broker.prefix}{LEGACY_QUEUE}")


async def until(check: Callable[[], bool], *, within: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.02)


async def publish(pushgate: Pushgate, message: dict[str, Any]) -> None:
    """As the old producers publish: on RabbitMQ to the queue by its name (through the default
    exchange), on the embedded broker to the ingress queue."""
    body = orjson.dumps(message)
    broker = pushgate.settings.broker
    if broker.url == "embedded":
        await pushgate.runtime.broker.publish(broker_base.PUSH, [body])
        return
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body), routing_key=f"{broker.prefix}{LEGACY_QUEUE}"
        )


async def recorded_letters(pushgate: Pushgate) -> list[DeadLetterRecord]:
    async with pushgate.runtime.sessions() as session:
        return await stored_letters.page(
            session=session, app_id=stored_letters.EVERY_APP, chosen=LetterFilter(), limit=100
        )


async def invalidated_events(pushgate: Pushgate) -> list[WebhookEvent]:
    async with pushgate.runtime.sessions() as session:
        query = select(WebhookEvent).where(WebhookEvent.type == "device.invalidated")
        return list((await session.execute(query)).scalars())


async def test_the_old_gateway_contract_end_to_end(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given pushgate with the old gateway's environment, started as every process starts
    pushgate = await make_pushgate()
    keys = await pushgate.tenant("default")
    await install.start(pushgate.runtime)
    await install.start(pushgate.runtime)  # several processes: the same outcome
    http = pushgate.http

    # When the page asks for the key and subscribes its browser (the body byte for byte)
    answer = await http.get("/vapid_public_key", headers=keys.subscribe)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"public_key": PAIR.public_key}
    browser = fake_push.new_subscription()
    answer = await http.post(
        "/subscribe", content=orjson.dumps(browser), headers={**keys.subscribe, **JSON}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == OK

    # Then the browser gets the app's welcome, signed with the imported pair and subject
    await until(lambda: len(fake_push.received_for(browser)) == 1, what="the welcome")
    [welcome] = fake_push.received_for(browser)
    assert welcome.payload == {"title": "Welcome!", "body": "Thanks for subscribing"}
    assert f"k={PAIR.public_key}" in welcome.headers["authorization"]
    assert welcome.claims["sub"] == SUBJECT

    # And refusals answer in the old style with pushgate's codes: no key, a host that is no
    # push service (as POST /v1/devices refuses it), a body that is no subscription
    answer = await http.post("/subscribe", json=browser)
    assert answer.status_code == 401
    assert answer.json()["detail"] == answer.json()["error"]["message"]
    public = {**browser, "endpoint": "https://198.51.100.7/push/1"}
    answer = await http.post("/subscribe", json=public, headers=keys.subscribe)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "unsafe_endpoint"
    assert answer.json()["detail"] == answer.json()["error"]["message"]
    answer = await http.post(
        "/subscribe", json={"endpoint": browser["endpoint"]}, headers=keys.subscribe
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "keys"]
    assert answer.json()["error"]["code"] == "invalid_input"

    # When a producer publishes the old message for the user: that browser and a new one
    other = fake_push.new_subscription()
    message = {
        "notification_id": "sale-1",
        "user_id": "u-1",
        "devices": [browser, other],
        "title": "Sale",
        "body": "50% off",
        "action_url": "https://shop.example.com/sale",
    }
    await publish(pushgate, message)

    # Then both get it, the action URL as the click URL, and both are the user's devices
    sale = {"title": "Sale", "body": "50% off", "url": "https://shop.example.com/sale"}
    await until(lambda: len(fake_push.received_for(other)) == 1, what="the message")
    await until(lambda: len(fake_push.received_for(browser)) == 2, what="the message")
    assert fake_push.received_for(other)[0].payload == sale
    assert fake_push.received_for(browser)[1].payload == sale
    listed = await http.get("/v1/devices", params={"user_id": "u-1"}, headers=keys.send)
    endpoints = {device["endpoint"] for device in listed.json()["items"]}
    assert endpoints == {browser["endpoint"], other["endpoint"]}

    # When the same message comes again (its notification_id is the idempotency key), then a
    # message for a third browser behind it
    await publish(pushgate, message)
    third = fake_push.new_subscription()
    later = {**message, "notification_id": "sale-3", "user_id": "u-2", "devices": [third]}
    await publish(pushgate, later)
    await until(lambda: len(fake_push.received_for(third)) == 1, what="the later message")

    # Then the repeat was answered as the first one and stored nothing new
    async with pushgate.runtime.sessions() as session:
        legacy = await notifications.get_by_idempotency_key(
            session=session, app_id=keys.app_id, key="sale-1"
        )
        stored = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.app_id == keys.app_id)
        )
    assert stored == 3  # the welcome, sale-1 and sale-3

    # And the same notification through /v1 makes the same deliveries as the old message
    sent = await pushgate.send(keys.send, {"user_id": "u-1", **sale})
    await pushgate.finished(keys.send, sent)
    await pushgate.finished(keys.send, str(legacy.id))

    def made(items: list[Any]) -> list[tuple[Any, ...]]:
        return sorted((d["device_id"], d["platform"], d["status"]) for d in items)

    assert made(await pushgate.deliveries(keys.send, sent)) == made(
        await pushgate.deliveries(keys.send, str(legacy.id))
    )
    assert [r.payload for r in fake_push.received_for(other)] == [sale, sale]
    assert [r.payload for r in fake_push.received_for(browser)][1:] == [sale, sale]

    # When the push service says a subscription is gone
    fake_push.script(410, subscription=other, times=None)
    await publish(pushgate, {**message, "notification_id": "sale-2", "devices": [other]})

    # Then it is deactivated and reported to the user service's webhook (made once)
    deadline = time.monotonic() + 15
    while not (events := await invalidated_events(pushgate)):
        assert time.monotonic() < deadline, "no device.invalidated event"
        await asyncio.sleep(0.05)
    hooks = (await http.get("/v1/webhooks", headers=keys.admin)).json()["items"]
    assert [(h["url"], h["events"]) for h in hooks] == [(USER_SERVICE, ["device.invalidated"])]
    [event] = events
    assert str(event.webhook_id) == hooks[0]["id"]
    assert event.payload["reason"]
    devices = (
        await http.get("/v1/devices", params={"user_id": "u-1", "status": "all"}, headers=keys.send)
    ).json()["items"]
    [gone] = [d for d in devices if d["endpoint"] == other["endpoint"]]
    assert event.payload["device_id"] == gone["id"]
    assert gone["active"] is False

    # And a message naming a subscription no registration would take is dead-lettered with
    # the reason and the subscription's place, registering none of its subscriptions
    fourth = fake_push.new_subscription()
    bad = {**message, "notification_id": "sale-4", "devices": [fourth, public]}
    await publish(pushgate, bad)
    await publish(pushgate, {**message, "notification_id": "sale-5", "devices": []})
    deadline = time.monotonic() + 15
    while len(letters := await recorded_letters(pushgate)) < 2:
        assert time.monotonic() < deadline, f"{len(letters)} dead letters"
        await asyncio.sleep(0.05)
    reasons = sorted(letter.reason for letter in letters)
    assert reasons[0].startswith("invalid_input: devices: List should have at least 1 item")
    assert reasons[1].startswith(
        "unsafe_endpoint: devices.1: '198.51.100.7' is not a known push service"
    )
    listed = await http.get("/v1/devices", params={"status": "all"}, headers=keys.send)
    assert fourth["endpoint"] not in {d["endpoint"] for d in listed.json()["items"]}

    # And /health answers in the old gateway's shape, with pushgate's fields beside it
    answer = await http.get("/health")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["service"]) == ("healthy", "push_service")
    assert datetime.fromisoformat(body["timestamp"])
    assert body["version"]


@pytest.mark.parametrize("profile", ["embedded"], indirect=True)
async def test_open_mode_the_old_test_page_and_a_pair_in_use(
    settings: Settings, fake_push: FakeWebPushService
) -> None:
    # Given the open mode for the default app, three requests a minute per address
    gateway = settings.compat.webpush_gateway.model_copy(
        update={"open_app": "default", "open_rate": Rate(3, 60.0), "user_service_url": None}
    )
    opened = settings.model_copy(
        update={
            "compat": settings.compat.model_copy(update={"webpush_gateway": gateway}),
            "webpush": settings.webpush.model_copy(
                update={"extra_hosts": ["127.0.0.1"], "allow_private_addresses": True}
            ),
        }
    )
    runtime = await open_runtime(opened)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runtime.close)
        # (a process refuses to start while the open app does not exist)
        with pytest.raises(ConfigError, match="OPEN_APP: no app named 'default'"):
            await install.start(runtime)
        keys = await make_tenant(runtime, "default")
        await install.start(runtime)
        app = create_app(opened, runtime=runtime)
        await stack.enter_async_context(app.router.lifespan_context(app))

        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://pushgate.test")

        page = await stack.enter_async_context(client("203.0.113.5"))
        neighbour = await stack.enter_async_context(client("203.0.113.6"))

        # When a page calls the two routes without a key
        answer = await page.get("/vapid_public_key")
        assert answer.json() == {"public_key": PAIR.public_key}
        answer = await page.post("/subscribe", json=fake_push.new_subscription())
        assert answer.status_code == 200, answer.text
        assert answer.json() == OK
        answer = await page.post("/subscribe", json=fake_push.new_subscription())
        assert answer.status_code == 200

        # Then its address's fourth request in the minute is refused, in the old style
        answer = await page.post("/subscribe", json=fake_push.new_subscription())
        assert answer.status_code == 429
        assert int(answer.headers["Retry-After"]) > 0
        assert answer.json()["error"]["code"] == "rate_limited"
        assert answer.json()["detail"] == answer.json()["error"]["message"]
        # while another address, and a key (its own limits), still may
        assert (await neighbour.get("/vapid_public_key")).status_code == 200
        answer = await page.post(
            "/subscribe", json=fake_push.new_subscription(), headers=keys.subscribe
        )
        assert answer.status_code == 200, answer.text
        # and what the keyless caller registered is the default app's
        listed = await page.get("/v1/devices", headers=keys.send)
        assert len(listed.json()["items"]) == 3

        # The two routes are documented under the shape's tag, deprecated; the page is not
        paths = (await page.get("/openapi.json")).json()["paths"]
        subscribe = paths["/subscribe"]["post"]
        assert (subscribe["tags"], subscribe["deprecated"]) == (["compat: webpush_gateway"], True)
        assert {"401", "403", "422", "429"} <= set(subscribe["responses"])
        assert "/vapid_public_key" in paths
        assert not [path for path in paths if path.startswith("/web_push_test")]

        # A page on the shop's own site may call them (the app's CORS origins), no other
        shop = "https://shop.example.com"
        allowed = await page.put(
            "/v1/apps/current/auth",
            json={"audience": "pushgate", "hs256_secret": "s" * 32, "cors_origins": [shop]},
            headers=keys.admin,
        )
        assert allowed.status_code == 200, allowed.text
        ask = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        preflight = await neighbour.options("/subscribe", headers={"Origin": shop, **ask})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == shop
        refused = await neighbour.options(
            "/subscribe", headers={"Origin": "https://evil.example", **ask}
        )
        assert refused.status_code == 403
        answer = await neighbour.post(
            "/subscribe", json=fake_push.new_subscription(), headers={"Origin": shop}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == shop

        # The test page loads at its old path with what it refers to beside it
        answer = await page.get("/web_push_test/web_push_test.html")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert "Content-Security-Policy" in answer.headers
        for asset, kind in (("webpush.js", "javascript"), ("style.css", "text/css")):
            assert f'"{asset}"' in answer.text
            loaded = await page.get(f"/web_push_test/{asset}")
            assert loaded.status_code == 200
            assert kind in loaded.headers["content-type"]
        worker = await page.get("/web_push_test/sw.js")
        assert "showNotification" in worker.text
        assert (
            'serviceWorker.register("sw.js")' in (await page.get("/web_push_test/webpush.js")).text
        )
        missing = await page.get("/web_push_test/nope.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"

        # And a start with another key pair, now that browsers subscribed with this one, is
        # refused in one line; the same pair again is fine
        other = vapid.generate_key_pair()
        changed = gateway.model_copy(
            update={"vapid_private_key": SecretStr(other.private_key), "vapid_public_key": None}
        )
        async with runtime.sessions() as session:
            default = await apps.get_by_name(session=session, name="default")
            with pytest.raises(ConfigError, match="differs from the key pair") as mismatch:
                await start.import_vapid(runtime, session, default, changed)
            assert "\n" not in str(mismatch.value)
            await start.import_vapid(runtime, session, default, gateway)
            assert default.vapid_public_key == PAIR.public_key
