"""Each kind of target reaches exactly the right devices through the whole pipeline (accept,
dispatch, deliver) to the fake Web Push service, on both backend profiles."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest

from pushgate.domain.apikeys import Scope
from pushgate.store import api_keys, apps
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate


async def other_tenant(pushgate: Pushgate, name: str) -> TenantKeys:
    async with pushgate.runtime.sessions() as session:
        app = await apps.create(session=session, box=pushgate.runtime.credentials.box(), name=name)
        keys = {s: await api_keys.create(session=session, app_id=app.id, scope=s) for s in Scope}
        await session.commit()
    return TenantKeys(
        app_id=app.id,
        app_name=name,
        **{s.value: {"Authorization": f"Bearer {k.secret}"} for s, k in keys.items()},
    )


def titles_by_endpoint(fake: FakeWebPushService) -> dict[str, set[str]]:
    """Which titles each subscription received (keyed by subscription id)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for received in fake.received:
        seen[received.subscription_id].add(received.payload["title"])
    return seen


def sub_id(subscription: dict[str, Any]) -> str:
    return str(subscription["endpoint"]).rsplit("/", 1)[-1]


async def test_each_target_kind_reaches_exactly_its_devices(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given acme's devices with users and topics, one disabled, one deleted,
    # and a device of another app that matches every target
    subs = {name: fake_push.new_subscription() for name in ("d1", "d2", "d3", "d4", "off", "gone")}
    profiles: dict[str, dict[str, Any]] = {
        "d1": {"user_id": "u1", "topics": ["a"]},
        "d2": {"user_id": "u1", "topics": ["a", "b"]},
        "d3": {"user_id": "u2", "topics": ["b"]},
        "d4": {"user_id": "u3"},
        "off": {"user_id": "u1", "topics": ["a"]},
        "gone": {"user_id": "u1", "topics": ["a"]},
    }
    ids = {
        name: await pushgate.subscribe(acme.subscribe, subs[name], **profiles[name])
        for name in subs
    }
    response = await pushgate.http.patch(
        f"/v1/devices/{ids['off']}", json={"enabled": False}, headers=acme.send
    )
    assert response.status_code == 200, response.text
    response = await pushgate.http.delete(f"/v1/devices/{ids['gone']}", headers=acme.send)
    assert response.status_code == 204, response.text
    globex = await other_tenant(pushgate, "globex")
    stranger = fake_push.new_subscription()
    await pushgate.subscribe(globex.subscribe, stranger, user_id="u1", topics=["a"])

    # When acme sends once with each kind of target
    targets: dict[str, dict[str, Any]] = {
        "device_ids": {"device_ids": [ids["d1"], ids["d3"], ids["off"]]},
        "user_ids": {"user_ids": ["u1", "u2"]},
        "user_id": {"user_id": "u1"},
        "topics": {"topics": ["b", "nobody-has-this"]},
        "condition": {"condition": "'a' in topics && !('b' in topics)"},
        "negated": {"condition": "!('a' in topics) && !('b' in topics)"},
        "broadcast": {"broadcast": True},
    }
    sent = [
        await pushgate.send(acme.send, {**target, "title": title})
        for title, target in targets.items()
    ]
    for notification in sent:
        await pushgate.finished(acme.send, notification)

    # Then each reached exactly the matching active devices of acme, once
    expected = {
        "d1": {"device_ids", "user_ids", "user_id", "condition", "broadcast"},
        "d2": {"user_ids", "user_id", "topics", "broadcast"},
        "d3": {"device_ids", "user_ids", "topics", "broadcast"},
        "d4": {"negated", "broadcast"},
        "off": set(),
        "gone": set(),
    }
    seen = titles_by_endpoint(fake_push)
    assert {name: seen.get(sub_id(s), set()) for name, s in subs.items()} == expected
    assert sub_id(stranger) not in seen
    assert len(fake_push.received) == sum(len(titles) for titles in expected.values())


async def test_device_ids_of_another_app_reach_nobody(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a device of another app
    globex = await other_tenant(pushgate, "globex")
    theirs = await pushgate.subscribe(globex.subscribe, fake_push.new_subscription())

    # When acme names it
    notification = await pushgate.send(acme.send, {"device_ids": [theirs], "title": "Hi"})
    status = await pushgate.finished(acme.send, notification)

    # Then nothing is sent
    assert status["status"] == "completed"
    assert status["counts"]["total"] == 0
    assert fake_push.received == []


async def test_raw_webpush_subscriptions_are_delivered_without_registering(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given two browsers nobody registered
    bare, wrapped = fake_push.new_subscription(), fake_push.new_subscription()

    # When a backend sends to their subscriptions: one bare, one as {platform, subscription}
    notification = await pushgate.send(
        acme.send,
        {
            "tokens": [bare, {"platform": "webpush", "subscription": wrapped}],
            "title": "Raw",
            "data": {"n": 1},
        },
    )
    status = await pushgate.finished(acme.send, notification)

    # Then both got it, and the deliveries belong to no device
    assert status["status"] == "completed"
    assert status["platforms"] == {"webpush": {"sent": 2}}
    for subscription in (bare, wrapped):
        [arrived] = fake_push.received_for(subscription)
        assert arrived.payload == {"title": "Raw", "data": {"n": "1"}}
    deliveries = await pushgate.deliveries(acme.send, notification)
    assert [d["device_id"] for d in deliveries] == [None, None]


async def test_raw_fcm_and_apns_tokens_are_accepted_then_rejected_with_a_clear_error(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a browser subscription and raw FCM/APNs tokens, with no FCM/APNs set up for the app
    browser = fake_push.new_subscription()

    # When a backend sends to all three
    notification = await pushgate.send(
        acme.send,
        {
            "tokens": [
                {"platform": "fcm", "token": "fcm-registration:token_1"},
                {"platform": "apns", "token": "AB" * 32},
                browser,
            ],
            "title": "Mixed",
        },
    )
    status = await pushgate.finished(acme.send, notification)

    # Then the browser got it and the others were rejected (not retried) saying why
    assert status["status"] == "partially_failed"
    assert status["platforms"] == {
        "fcm": {"rejected": 1},
        "apns": {"rejected": 1},
        "webpush": {"sent": 1},
    }
    assert len(fake_push.received_for(browser)) == 1
    rejected = {
        d["platform"]: d
        for d in await pushgate.deliveries(acme.send, notification)
        if d["status"] == "rejected"
    }
    assert set(rejected) == {"fcm", "apns"}
    for platform, delivery in rejected.items():
        # Until the provider is configured for the app, the error says which piece is missing.
        assert re.search(rf"no {platform} (provider|credentials)", delivery["error"]), delivery
        assert delivery["attempts"] <= 1


@pytest.mark.parametrize(
    ("token", "field"),
    [
        ({"platform": "apns", "token": "not-hex"}, "tokens.0.token"),
        ({"platform": "fcm", "token": "has spaces"}, "tokens.0.token"),
        (
            {"endpoint": "https://push.example/x", "keys": {"p256dh": "short", "auth": "x"}},
            "tokens.0.subscription.keys.p256dh",
        ),
    ],
)
async def test_a_malformed_raw_token_is_refused_at_accept_naming_the_item(
    pushgate: Pushgate, acme: TenantKeys, token: dict[str, Any], field: str
) -> None:
    # When a raw token cannot be an address at all
    response = await pushgate.http.post(
        "/v1/notifications", json={"tokens": [token], "title": "Hi"}, headers=acme.send
    )

    # Then the request is refused naming the item, and nothing is stored
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == field
    history = await pushgate.http.get("/v1/notifications", headers=acme.send)
    assert history.json()["items"] == []
