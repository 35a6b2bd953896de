"""Shape 1, `fcm_gateway`, driven as its clients drive it (the bodies of issue 15, byte for
byte) on both profiles: sends reach the fake FCM through the same pipeline as `/v1`, tokens
are registered once, the legacy key field is the idempotency key, refusals answer in the old
FastAPI style with pushgate's codes beside them, and `/health` answers in the old shape."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import pytest
from pydantic import SecretStr

from pushgate.compat.settings import CompatSettings
from pushgate.domain.circuit import State
from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.integration.conftest import Pushgate, PushgateFactory, provider_settings

STATIC_KEY = "fcm-gateway-static-key-0123456789"


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    configured = provider_settings(settings, fake_fcm, fake_apns)
    compat = CompatSettings(
        enabled=["fcm_gateway"],
        api_key=SecretStr(STATIC_KEY),
        static_key=["fcm_gateway"],
        static_key_app="acme",
    )
    return configured.model_copy(update={"compat": compat})


@pytest.fixture
async def gateway(
    make_pushgate: PushgateFactory, acme: TenantKeys, fake_fcm: FakeFCMService
) -> Pushgate:
    """pushgate with the shape enabled, acme's app holding a service account of the fake."""
    pushgate = await make_pushgate()
    answer = await pushgate.http.put(
        "/v1/apps/current/credentials/fcm",
        json={"service_account": fake_fcm.service_account()},
        headers=acme.admin,
    )
    assert answer.status_code == 200, answer.text
    return pushgate


async def settled(gateway: Pushgate, headers: dict[str, str], **query: str) -> dict[str, Any]:
    """GET /api/notifications/status once it is no longer pending."""
    deadline = time.monotonic() + 20
    while True:
        answer = await gateway.http.get("/api/notifications/status", params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def tokens_of(gateway: Pushgate, headers: dict[str, str], user_id: str) -> list[Any]:
    answer = await gateway.http.get(f"/api/device-tokens/{user_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(body["tokens"])
    return list(body["tokens"])


def assert_legacy_refusal(
    answer: Any, status: int, code: str, loc: list[str] | None = None
) -> None:
    """The old FastAPI style (`detail`) with pushgate's error object beside it."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"]["code"] == code
    if loc is None:
        assert body["detail"] == body["error"]["message"]
    else:
        assert body["detail"][0]["loc"] == loc
        assert body["error"]["details"]["field"] == ".".join(loc[1:])


async def test_send_registers_the_token_once_and_reaches_fcm(
    gateway: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    http = gateway.http
    token = fake_fcm.new_token()
    # Given the old gateway's body, as its clients send it
    body = {
        "title": "Order shipped",
        "body": "Your order #42 is on its way",
        "token": token,
        "user_id": "user-42",
        "idempotency_key": "order-42-shipped",
        "data": {"order_id": "42"},
        "image": "https://cdn.example.com/orders/42.png",
        "priority": "high",
    }

    # When it is sent twice
    first = await http.post("/api/notifications/send", json=body, headers=acme.send)
    again = await http.post("/api/notifications/send", json=body, headers=acme.send)

    # Then one notification answers both, in the old answer's shape
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer == {
        "notification_id": answer["notification_id"],
        "status": "pending",
        "idempotency_key": "order-42-shipped",
    }
    assert again.status_code == 202
    assert again.json() == answer
    assert again.headers["Idempotency-Replay"] == "true"

    # ... it is sent once, to that token, as pushgate sends through /v1
    status = await settled(gateway, acme.send, notification_id=answer["notification_id"])
    assert status["status"] == "sent"
    assert status["pushgate_status"] == "completed"
    assert status["counts"]["sent"] == 1
    assert status["idempotency_key"] == "order-42-shipped"
    by_key = await settled(gateway, acme.send, idempotency_key="order-42-shipped")
    assert by_key == status
    [received] = fake_fcm.received_for(token)
    assert received.message["notification"] == {
        "title": "Order shipped",
        "body": "Your order #42 is on its way",
        "image": "https://cdn.example.com/orders/42.png",
    }
    assert received.message["data"] == {"order_id": "42"}
    assert received.message["android"]["priority"] == "high"

    # ... and the token is the user's one device
    [device] = await tokens_of(gateway, acme.send, "user-42")
    assert (device["token"], device["platform"], device["is_active"]) == (token, "fcm", True)

    # The same notification through /v1 sends FCM the same message
    v1 = await gateway.send(
        acme.send,
        {
            "device_ids": [device["device_id"]],
            **{k: body[k] for k in ("title", "body", "data", "image", "priority")},
        },
    )
    assert (await gateway.finished(acme.send, v1))["status"] == "completed"
    legacy_sent, v1_sent = fake_fcm.received_for(token)
    for sent in (legacy_sent, v1_sent):  # the expiry is the send's time plus the same TTL
        sent.message["apns"]["headers"].pop("apns-expiration")
    assert v1_sent.message == legacy_sent.message

    # Without a token, to the user's devices; the token sent again is still one device
    answer = (
        await http.post(
            "/api/notifications/send",
            json={"title": "Hi", "body": "again", "user_id": "user-42", "idempotency_key": "k2"},
            headers=acme.send,
        )
    ).json()
    assert (await settled(gateway, acme.send, notification_id=answer["notification_id"]))[
        "status"
    ] == "sent"
    resent = {**body, "idempotency_key": "order-42-shipped-2"}
    assert (
        await http.post("/api/notifications/send", json=resent, headers=acme.send)
    ).status_code == 202
    assert [d["device_id"] for d in await tokens_of(gateway, acme.send, "user-42")] == [
        device["device_id"]
    ]

    # Another body under a used key is refused, in the old style with pushgate's code
    reused = {**body, "title": "Order delayed"}
    answer = await http.post("/api/notifications/send", json=reused, headers=acme.send)
    assert_legacy_refusal(answer, 422, "idempotency_key_reused")


async def test_send_immediate_and_bulk(
    gateway: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    http = gateway.http
    good, gone = fake_fcm.new_token(), fake_fcm.new_token()
    fake_fcm.unregister(gone)

    # send-immediate answers each device's outcome
    otp = {
        "title": "Code",
        "body": "123456",
        "token": good,
        "user_id": "u1",
        "idempotency_key": "otp-1",
    }
    answer = await http.post("/api/notifications/send-immediate", json=otp, headers=acme.send)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["status"], result["pushgate_status"]) == ("sent", "completed")
    assert (result["success_count"], result["failure_count"]) == (1, 0)
    [device] = result["results"]
    assert (device["token"], device["platform"], device["status"]) == (good, "fcm", "sent")
    assert device["message_id"] == fake_fcm.received_for(good)[0].name
    replay = await http.post("/api/notifications/send-immediate", json=otp, headers=acme.send)
    assert replay.json()["notification_id"] == result["notification_id"]
    assert replay.headers["Idempotency-Replay"] == "true"
    assert len(fake_fcm.received_for(good)) == 1

    answer = await http.post(
        "/api/notifications/send-immediate",
        json={"title": "Code", "body": "654321", "token": gone, "user_id": "u2"},
        headers=acme.send,
    )
    result = answer.json()
    assert (result["status"], result["failure_count"]) == ("failed", 1)
    assert result["results"][0]["pushgate_status"] == "invalid"
    assert await tokens_of(gateway, acme.send, "u2") == []  # FCM said it is gone

    # send-bulk: each item on its own, both body forms
    items = [
        {"title": "A", "body": "a", "token": good, "user_id": "u1", "idempotency_key": "b-1"},
        {"title": "B", "body": "b", "user_id": "u1", "idempotency_key": "b-2"},
        {"title": "C", "body": "c", "user_id": "u1", "priority": "whenever"},
        {"title": "D", "body": "d", "token": "not a token!", "user_id": "u1"},
    ]
    for payload in ({"notifications": items}, items):
        answer = await http.post("/api/notifications/send-bulk", json=payload, headers=acme.send)
        assert answer.status_code == 200, answer.text
        bulk = answer.json()
        assert (bulk["total"], bulk["accepted"], bulk["failed"]) == (4, 2, 2)
        ok, user, bad_priority, bad_token = bulk["results"]
        assert (ok["status_code"], ok["status"], ok["idempotency_key"]) == (202, "pending", "b-1")
        assert user["status_code"] == 202
        assert bad_priority["status_code"] == 422
        assert bad_priority["error"]["code"] == "invalid_input"
        assert bad_priority["error"]["details"]["field"] == "notifications.2.priority"
        assert bad_priority["detail"] == bad_priority["error"]["message"]
        assert bad_token["status_code"] == 422
        assert bad_token["error"]["code"] == "invalid_token"
    assert bulk["results"][0]["replayed"] is True  # the second time, by its key
    for item in bulk["results"][:2]:
        status = await settled(gateway, acme.send, notification_id=item["notification_id"])
        assert status["status"] == "sent"
    assert len(fake_fcm.received_for(good)) == 3  # otp-1, b-1 and b-2, once each

    too_many = [{"title": "x", "user_id": "u1"}] * 101
    answer = await http.post("/api/notifications/send-bulk", json=too_many, headers=acme.send)
    assert_legacy_refusal(answer, 422, "invalid_input", ["body", "notifications"])


async def test_device_tokens_register_list_and_deactivate(
    gateway: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    http = gateway.http
    token, iphone = fake_fcm.new_token(), secrets.token_hex(32)

    # Registered, then updated: one device, its user moved
    answer = await http.post(
        "/api/device-tokens", json={"user_id": "u1", "token": token}, headers=acme.send
    )
    assert answer.status_code == 201, answer.text
    first = answer.json()
    assert (first["platform"], first["user_id"], first["is_active"]) == ("fcm", "u1", True)
    moved = {"user_id": "u2", "token": token, "platform": "android"}
    answer = await http.post("/api/device-tokens", json=moved, headers=acme.subscribe)
    assert_legacy_refusal(answer, 403, "device_user_locked")  # as on /v1: a send key may
    answer = await http.post(
        "/api/device-tokens", json={**moved, "user_id": "u1"}, headers=acme.subscribe
    )
    assert answer.status_code == 200, answer.text  # its own: a receipt, no history
    assert (answer.json()["device_id"], answer.json()["created_at"]) == (first["device_id"], None)
    answer = await http.post("/api/device-tokens", json=moved, headers=acme.send)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["device_id"], answer.json()["user_id"]) == (first["device_id"], "u2")

    # `ios` is an FCM token (the Firebase SDK's); a native APNs token says `apns`
    ios = fake_fcm.new_token()
    for platform, sent, stored in (("ios", ios, "fcm"), ("apns", iphone, "apns")):
        answer = await http.post(
            "/api/device-tokens",
            json={"user_id": "u2", "token": sent, "platform": platform},
            headers=acme.send,
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["platform"] == stored
    listed = await tokens_of(gateway, acme.send, "u2")
    assert [(t["token"], t["platform"]) for t in listed] == [
        (token, "fcm"),
        (ios, "fcm"),
        (iphone, "apns"),
    ]
    assert await tokens_of(gateway, acme.send, "u1") == []

    # Refusals in the old style, with pushgate's codes
    for body, loc in (
        ({"user_id": "u2", "token": token, "platform": "blackberry"}, ["body", "platform"]),
        ({"user_id": "u2"}, ["body", "token"]),
    ):
        answer = await http.post("/api/device-tokens", json=body, headers=acme.send)
        assert_legacy_refusal(answer, 422, "invalid_input", loc)
    answer = await http.post(
        "/api/device-tokens",
        json={"user_id": "u2", "token": token, "platform": "webpush"},
        headers=acme.send,
    )
    assert_legacy_refusal(answer, 422, "invalid_input")
    answer = await http.get("/api/device-tokens/u2", headers=acme.subscribe)
    assert_legacy_refusal(answer, 403, "insufficient_scope")

    # Deactivated by token (an APNs token in any case), gone from the list, kept for /v1
    for gone in (token, iphone.upper()):
        answer = await http.delete(f"/api/device-tokens/{gone}", headers=acme.send)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"token": gone, "status": "deactivated"}
    assert len(await tokens_of(gateway, acme.send, "u2")) == 1
    device = await http.get(f"/v1/devices/{first['device_id']}", headers=acme.send)
    assert device.json()["status"] == "deactivated"
    answer = await http.delete(f"/api/device-tokens/{fake_fcm.new_token()}", headers=acme.send)
    assert_legacy_refusal(answer, 404, "device_not_found")


async def test_refusals_keys_and_health(
    gateway: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    http = gateway.http
    token = fake_fcm.new_token()
    send = "/api/notifications/send"
    base = {"title": "t", "body": "b", "token": token, "user_id": "u9"}

    # What /v1 refuses is refused on the legacy field, and registers nothing
    for body, loc in (
        ({**base, "priority": "whenever"}, ["body", "priority"]),
        ({"title": "t", "body": "b"}, ["body", "user_id"]),
        ({**base, "title": "x" * 4097}, ["body", "title"]),
        ({**base, "data": {"nested": {"no": 1}}}, ["body", "data", "nested"]),
    ):
        answer = await http.post(send, json=body, headers=acme.send)
        assert_legacy_refusal(answer, 422, "invalid_input", loc)
    assert await tokens_of(gateway, acme.send, "u9") == []
    answer = await http.post(send, json={**base, "token": "not a token!"}, headers=acme.send)
    assert_legacy_refusal(answer, 422, "invalid_token")

    # Priorities such gateways send
    answer = await http.post(send, json={**base, "priority": "MAX"}, headers=acme.send)
    assert answer.status_code == 202, answer.text
    await settled(gateway, acme.send, notification_id=answer.json()["notification_id"])
    assert fake_fcm.received_for(token)[0].message["android"]["priority"] == "high"

    # Status: one of the two keys, an id of this app
    status = "/api/notifications/status"
    assert_legacy_refusal(
        await http.get(status, headers=acme.send),
        422,
        "invalid_input",
        ["query", "notification_id"],
    )
    assert_legacy_refusal(
        await http.get(status, params={"notification_id": "42"}, headers=acme.send),
        422,
        "invalid_input",
        ["query", "notification_id"],
    )
    answer = await http.get(status, params={"idempotency_key": "never"}, headers=acme.send)
    assert_legacy_refusal(answer, 404, "notification_not_found")

    # Keys: pushgate's with their scopes, and the old static key acting for acme
    assert_legacy_refusal(
        await http.post(send, json=base, headers=acme.subscribe), 403, "insufficient_scope"
    )
    assert_legacy_refusal(await http.post(send, json=base), 401, "unauthenticated")
    answer = await http.post(
        send, json={**base, "idempotency_key": "static"}, headers={"X-API-Key": STATIC_KEY}
    )
    assert answer.status_code == 202, answer.text
    found = await http.get(
        f"/v1/notifications/{answer.json()['notification_id']}", headers=acme.send
    )
    assert found.status_code == 200

    # The OpenAPI document lists the routes under the shape's tag, deprecated
    paths = (await http.get("/openapi.json")).json()["paths"]
    operation = paths["/api/notifications/send"]["post"]
    assert (operation["tags"], operation["deprecated"]) == (["compat: fcm_gateway"], True)

    # /health: dependencies and the worst breaker state
    answer = await http.get("/health")
    assert answer.status_code == 200, answer.text
    health = answer.json()
    assert health["status"] == "healthy"
    assert health["dependencies"] == {
        "database": "healthy",
        "broker": "healthy",
        "cache": "healthy",
    }
    assert health["breaker_state"] == "closed"
    assert health["version"]
    # A breaker no delivery of this test touches: a send of the test still being recorded
    # would close the app's own FCM breaker again (seen under load, on services).
    breaker = gateway.runtime.circuits.get(str(acme.app_id), "fcm", "health-probe")
    breaker.trip()
    assert breaker.state is State.OPEN
    assert (await http.get("/health")).json()["breaker_state"] == "open"
