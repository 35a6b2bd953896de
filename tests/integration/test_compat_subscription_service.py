"""Shape 4, the Web Push subscription service: its clients' calls byte for byte (browsers with
end-user JWTs, backends with the static `API_KEY` or pushgate keys) on both profiles, through
the fake Web Push service: subscriptions, sends by topic and broadcasts, idempotency, page
numbered history, analytics, health and metrics, and refusals in the legacy style."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from pushgate.api.app import create_app
from pushgate.compat.settings import CompatSettings
from pushgate.compat.shapes import SHAPES
from pushgate.compat.subscription_service import start
from pushgate.errors import ConfigError
from pushgate.settings import Settings
from pushgate.store.tables import App
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate

STATIC_KEY = "legacy-static-key-0123456789"
JWT_SECRET = "legacy-jwt-secret-0123456789abcdef-xyz"
EMBEDDED = pytest.mark.parametrize("profile", ["embedded"], indirect=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    compat = CompatSettings.model_validate(
        {
            "enabled": ["subscription_service"],
            "api_key": STATIC_KEY,
            "static_key": ["subscription_service"],
            "subscription_service": {"jwt_secret_key": JWT_SECRET},
        }
    )
    return settings.model_copy(update={"compat": compat})


def user_token(sub: str, secret: str = JWT_SECRET) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, secret, algorithm="HS256")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


STATIC = {"X-API-Key": STATIC_KEY}


@dataclass
class Legacy:
    """pushgate with the shape enabled, its static key's app `default` signing users in."""

    pushgate: Pushgate
    default: TenantKeys

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        answer = await self.pushgate.http.request(method, path, **kw)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None


@pytest.fixture
async def legacy(pushgate: Pushgate) -> Legacy:
    default = await pushgate.tenant("default")
    await start.configure_sign_in(pushgate.runtime)
    return Legacy(pushgate, default)


async def test_subscribe_send_and_read_back_as_the_old_clients_did(
    legacy: Legacy, fake_push: FakeWebPushService
) -> None:
    # Given Alice's browser subscribing with her JWT (no app header), nested keys
    alice_browser, bob_browser = fake_push.new_subscription(), fake_push.new_subscription()
    alice = bearer(user_token("alice"))
    body = {**alice_browser, "topics": ["news"]}
    mine = await legacy.call("POST", "/subscriptions/", 201, json=body, headers=alice)
    assert mine["user_id"] == "alice"
    assert mine["endpoint"] == alice_browser["endpoint"]
    assert (mine["p256dh"], mine["auth"]) == tuple(alice_browser["keys"].values())
    assert mine["topics"] == ["news"]
    assert mine["enabled"] is True
    assert set(mine) == {
        "id", "endpoint", "p256dh", "auth", "topics", "enabled", "user_id",
        "created_at", "updated_at", "last_used",
    }  # fmt: skip
    again = await legacy.call("POST", "/subscriptions/", 200, json=body, headers=alice)
    assert again["id"] == mine["id"]  # the endpoint is the subscription's key

    # And Bob's page holding a subscribe key, flat keys
    flat = {
        "endpoint": bob_browser["endpoint"],
        **bob_browser["keys"],
        "user_id": "bob",
        "topics": ["news", "sport"],
    }
    bobs = await legacy.call(
        "POST", "/subscriptions/", 201, json=flat, headers=legacy.default.subscribe
    )
    assert (bobs["user_id"], bobs["topics"]) == ("bob", ["news", "sport"])

    # Then each reads its own; the backend moves Bob off `news`
    got = await legacy.call("GET", f"/subscriptions/{mine['id']}/", 200, headers=alice)
    assert got["id"] == mine["id"]
    refused = await legacy.call("GET", f"/subscriptions/{bobs['id']}/", 403, headers=alice)
    assert refused["error"]["code"] == "device_of_another_user"
    assert refused["detail"] == refused["error"]["message"]
    changed = await legacy.call(
        "PUT", f"/subscriptions/{bobs['id']}/", 200, json={"topics": ["sport"]}, headers=STATIC
    )
    assert (changed["topics"], changed["enabled"]) == (["sport"], True)

    # When the backend sends to `news` with the static key, retrying with the same key
    send = {"title": "Goal", "body": "2-1", "url": "https://club.example/m/1", "type": "sports"}
    keyed = {**STATIC, "Idempotency-Key": "match-1-goal-2"}
    sent = await legacy.call(
        "POST", "/notifications/send/", 200, json={**send, "topics": ["news"]}, headers=keyed
    )
    assert sent["status"] == "accepted"
    assert set(sent["statistics"]) == {"total", "sent", "failed", "pending"}
    final = await legacy.pushgate.finished(legacy.default.send, sent["notification_id"])
    assert final["status"] == "completed"
    replay = await legacy.pushgate.http.post(
        "/notifications/send/", json={**send, "topics": ["news"]}, headers=keyed
    )
    assert replay.headers["Idempotency-Replay"] == "true"
    assert replay.json() == {
        "notification_id": sent["notification_id"],
        "status": "completed",
        "statistics": {"total": 1, "sent": 1, "failed": 0, "pending": 0},
    }

    # Then only Alice's browser got it, as the same send through /v1 delivers it
    [legacy_push] = fake_push.received_for(alice_browser)
    assert fake_push.received_for(bob_browser) == []
    v1 = await legacy.pushgate.send(
        legacy.default.send,
        {
            "topics": ["news"],
            "category": "sports",
            **{k: send[k] for k in ("title", "body", "url")},
        },
    )
    await legacy.pushgate.finished(legacy.default.send, v1)
    [_, v1_push] = fake_push.received_for(alice_browser)
    assert legacy_push.payload == v1_push.payload == {k: send[k] for k in ("title", "body", "url")}

    # And the history pages by number, newest first, with each send's statistics
    page = await legacy.call("GET", "/notifications/history/?page=2&limit=1", 200, headers=STATIC)
    assert page["has_next"] is False
    [item] = page["notifications"]
    assert (item["notification_id"], item["type"], item["title"]) == (
        sent["notification_id"],
        "sports",
        "Goal",
    )
    assert item["statistics"] == {"total": 1, "sent": 1, "failed": 0, "pending": 0}
    first = await legacy.call(
        "GET", "/notifications/history/?limit=1&type=sports&status=completed", 200, headers=STATIC
    )
    assert first["has_next"] is True
    assert first["notifications"][0]["notification_id"] == v1
    other = await legacy.call("GET", "/notifications/history/?type=promo", 200, headers=STATIC)
    assert other["notifications"] == []

    # And the analytics count today's subscriptions and deliveries
    today = datetime.now(UTC).date().isoformat()
    span = f"date_from={today}&date_to={today}"
    subs = await legacy.call("GET", f"/analytics/subscriptions/?{span}", 200, headers=STATIC)
    assert (subs["active"], subs["new"], subs["deleted"]) == (2, 2, 0)
    assert subs["daily"] == [
        {"date": today, "new": 2, "deleted": 0, "invalidated": 0, "expired": 0}
    ]
    deliveries = await legacy.call(
        "GET", f"/analytics/deliveries/?{span}&type=sports", 200, headers=STATIC
    )
    assert (deliveries["total"], deliveries["sent"], deliveries["failed"]) == (2, 2, 0)
    assert deliveries["success_rate"] == 1.0
    assert deliveries["daily"] == [{"date": today, "total": 2, "sent": 2, "failed": 0}]

    # When Alice unsubscribes and the backend broadcasts
    await legacy.call("DELETE", f"/subscriptions/{mine['id']}/", 204, headers=alice)
    gone = await legacy.call("GET", f"/subscriptions/{mine['id']}/", 200, headers=alice)
    assert gone["enabled"] is False
    everyone = await legacy.call(
        "POST", "/notifications/broadcast/", 200, json={"title": "Final score"}, headers=STATIC
    )
    await legacy.pushgate.finished(legacy.default.send, everyone["notification_id"])

    # Then only Bob's live subscription gets it
    assert [r.payload["title"] for r in fake_push.received_for(bob_browser)] == ["Final score"]
    assert len(fake_push.received_for(alice_browser)) == 2


@EMBEDDED
async def test_refusals_answer_in_the_legacy_style_with_pushgate_codes(
    legacy: Legacy, fake_push: FakeWebPushService
) -> None:
    async def refused(method: str, path: str, status: int, code: str, **kw: Any) -> Any:
        body = await legacy.call(method, path, status, **kw)
        assert body["error"]["code"] == code, body
        if status != 422:
            assert body["detail"] == body["error"]["message"]
        return body

    browser = fake_push.new_subscription()
    registered = await legacy.call("POST", "/subscriptions/", 201, json=browser, headers=STATIC)
    one = f"/subscriptions/{registered['id']}/"

    # Who may call
    await refused("POST", "/subscriptions/", 401, "unauthenticated", json=browser)
    await refused("GET", one, 401, "invalid_token", headers=bearer(user_token("alice", "x" * 40)))
    await refused("GET", one, 403, "insufficient_scope", headers=legacy.default.subscribe)
    await refused(
        "PUT", one, 403, "device_token_required", json={}, headers=legacy.default.subscribe
    )
    # a user's JWT opens the subscription routes only
    await refused(
        "POST", "/notifications/send/", 401, "invalid_api_key",
        json={"title": "x", "topics": ["a"]}, headers=bearer(user_token("alice")),
    )  # fmt: skip
    alice = bearer(user_token("alice"))
    await refused(
        "POST", "/subscriptions/", 403, "device_of_another_user",
        json={**fake_push.new_subscription(), "user_id": "bob"}, headers=alice,
    )  # fmt: skip
    bobs = await legacy.call(
        "POST", "/subscriptions/", 200, json={**browser, "user_id": "bob"}, headers=STATIC
    )
    assert bobs["id"] == registered["id"]  # a send key may give it a user
    await refused("POST", "/subscriptions/", 409, "device_taken", json=browser, headers=alice)
    held = {**legacy.default.subscribe, "X-Device-Token": browser["endpoint"]}
    switched = await legacy.call("PUT", one, 200, json={"enabled": False}, headers=held)
    assert switched["enabled"] is False
    assert (switched["user_id"], switched["p256dh"]) == (None, None)  # a subscribe key's view

    # What is refused, at the legacy field, with /v1's code
    body = await refused(
        "POST", "/subscriptions/", 422, "invalid_input",
        json={"endpoint": browser["endpoint"], "p256dh": "x"}, headers=STATIC,
    )  # fmt: skip
    assert body["detail"][0]["loc"] == ["body", "auth"]
    assert body["error"]["details"]["field"] == "auth"
    unsafe = {**browser, "endpoint": "https://fcm.googleapis.com:8443/fcm/send/abc"}
    await refused("POST", "/subscriptions/", 422, "unsafe_endpoint", json=unsafe, headers=STATIC)
    body = await refused(
        "POST", "/notifications/send/", 422, "invalid_input",
        json={"title": "x", "topics": ["a"], "user_ids": ["u"]}, headers=STATIC,
    )  # fmt: skip
    assert body["detail"][0]["loc"] == ["body", "target"]
    await refused(
        "POST", "/notifications/send/", 422, "invalid_input", json={"title": "x"}, headers=STATIC
    )
    await refused(
        "GET", "/notifications/history/?page=1000&limit=100", 422, "invalid_range",
        headers=STATIC,
    )  # fmt: skip
    body = await refused(
        "GET", "/analytics/deliveries/?date_from=2026-02-02&date_to=2026-02-01", 422,
        "invalid_range", headers=STATIC,
    )  # fmt: skip
    assert body["error"]["details"]["field"] == "date_from"
    await refused("GET", "/subscriptions/42/", 422, "invalid_input", headers=STATIC)
    await refused(
        "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/", 404,
        "device_not_found", headers=STATIC,
    )  # fmt: skip


@EMBEDDED
async def test_health_metrics_and_the_openapi_document(legacy: Legacy, settings: Settings) -> None:
    health = await legacy.call("GET", "/health/", 200)
    assert health["status"] == "healthy"
    assert health["version"]
    assert health["dependencies"] == {"database": "ok", "broker": "ok", "kv": "ok"}
    # A client asking /health got the same from the old service, redirected
    unslashed = await legacy.call("GET", "/health", 200)
    assert {k: unslashed[k] for k in health} == health
    assert SHAPES["subscription_service"].start is start.configure_sign_in
    metrics = await legacy.pushgate.http.get("/metrics/")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "pushgate_" in metrics.text
    document = (await legacy.pushgate.http.get("/openapi.json")).json()
    send = document["paths"]["/notifications/send/"]["post"]
    assert send["tags"] == ["compat: subscription_service"]
    assert send["deprecated"] is True
    # pushgate's own schemas keep their names beside the shape's
    alone = create_app(settings.model_copy(update={"compat": CompatSettings()})).openapi()
    assert set(alone["components"]["schemas"]) <= set(document["components"]["schemas"])


@EMBEDDED
async def test_start_sets_the_sign_in_once_and_never_replaces_another(
    legacy: Legacy, settings: Settings
) -> None:
    runtime = legacy.pushgate.runtime
    await start.configure_sign_in(runtime)  # a second process starting: nothing changes
    async with runtime.sessions() as session:
        app = (await session.execute(select(App).where(App.name == "default"))).scalar_one()
    assert app.auth is not None
    assert app.auth["hs256"] is True

    other = settings.compat.model_copy(
        update={"subscription_service": settings.compat.subscription_service.model_copy(
            update={"jwt_secret_key": SecretStr("another-secret-0123456789abcdefghijkl")}
        )}
    )  # fmt: skip
    with pytest.raises(ConfigError, match="does not replace it"):
        await start.configure_sign_in(
            replace(runtime, settings=settings.model_copy(update={"compat": other}))
        )
    elsewhere = other.model_copy(update={"static_key_app": "nobody"})
    with pytest.raises(ConfigError, match="pushgate apps create nobody"):
        await start.configure_sign_in(
            replace(runtime, settings=settings.model_copy(update={"compat": elsewhere}))
        )
