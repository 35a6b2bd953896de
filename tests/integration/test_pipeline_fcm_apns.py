"""FCM and APNs through the whole pipeline (API, dispatch, deliver) to the fake FCM and APNs
over TLS, with the app's credentials set through the credentials API, on both profiles:
a mixed audience, every row of both error tables, token caching, connection reuse, GOAWAY
in the middle of a batch, and the single-tenant credentials from settings."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pushgate.domain.circuit import State
from pushgate.providers.apns import APNSProvider
from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory, provider_settings


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    return provider_settings(settings, fake_fcm, fake_apns)


async def set_credentials(
    pushgate: Pushgate,
    tenant: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    account: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Give the app a service account of the fake FCM (a new one by default) and the fake
    APNs's signing key, through the API."""
    account = account or fake_fcm.service_account()
    fcm = await pushgate.http.put(
        "/v1/apps/current/credentials/fcm",
        json={"service_account": account},
        headers=tenant.admin,
    )
    assert fcm.status_code == 200, fcm.text
    apns = await pushgate.http.put(
        "/v1/apps/current/credentials/apns",
        json={
            "key": fake_apns.key_pem,
            "key_id": fake_apns.key_id,
            "team_id": fake_apns.team_id,
            "topic": fake_apns.topic,
            "environment": "production",
        },
        headers=tenant.admin,
    )
    assert apns.status_code == 200, apns.text
    return account


async def register(pushgate: Pushgate, tenant: TenantKeys, platform: str, token: str) -> str:
    response = await pushgate.http.post(
        "/v1/devices",
        json={"platform": platform, "token": token, "user_id": "u1"},
        headers=tenant.subscribe,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def apns_token() -> str:
    return secrets.token_hex(32)


async def one_device_of_each(
    pushgate: Pushgate,
    tenant: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    fake_push: FakeWebPushService,
) -> tuple[str, str, dict[str, Any]]:
    """The app's credentials and user u1's (FCM token, APNs token, Web Push subscription)."""
    await set_credentials(pushgate, tenant, fake_fcm, fake_apns)
    android, iphone = fake_fcm.new_token(), apns_token()
    await register(pushgate, tenant, "fcm", android)
    await register(pushgate, tenant, "apns", iphone)
    browser = fake_push.new_subscription()
    await pushgate.subscribe(tenant.subscribe, browser, user_id="u1")
    return android, iphone, browser


async def settled(
    pushgate: Pushgate,
    tenant: TenantKeys,
    notification: str,
    *,
    until: Callable[[list[Any]], bool],
    within: float = 20.0,
) -> list[Any]:
    """The notification's deliveries once `until` holds for them."""
    deadline = time.monotonic() + within
    while True:
        found = await pushgate.deliveries(tenant.send, notification)
        if found and until(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries not settled within {within}s: {found}")
        await asyncio.sleep(0.05)


async def device_status(pushgate: Pushgate, tenant: TenantKeys, device_id: str) -> str:
    response = await pushgate.http.get(f"/v1/devices/{device_id}", headers=tenant.admin)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def circuit(pushgate: Pushgate, tenant: TenantKeys, platform: str) -> State:
    return pushgate.runtime.circuits.get(str(tenant.app_id), platform, platform).state


# --- a mixed audience ------------------------------------------------------------------------


async def test_one_notification_reaches_fcm_apns_and_webpush_devices_of_a_user(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    fake_push: FakeWebPushService,
) -> None:
    # Given a user with an Android phone, an iPhone and a browser, and the app's credentials
    account = await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    android, iphone = fake_fcm.new_token(), apns_token()
    await register(pushgate, acme, "fcm", android)
    await register(pushgate, acme, "apns", iphone)
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u1")

    # When a backend sends to the user
    notification = await pushgate.send(
        acme.send,
        {
            "user_ids": ["u1"],
            "title": "Hello",
            "body": "World",
            "url": "https://shop.example/o/1",
            "data": {"order": 42},
            "priority": "high",
        },
    )
    status = await pushgate.finished(acme.send, notification)

    # Then all three got it, each in its own format
    assert status["status"] == "completed"
    assert status["counts"]["sent"] == 3
    [fcm] = fake_fcm.received_for(android)
    assert fcm.project_id == account["project_id"]
    assert fcm.validate_only is False
    assert fcm.message["notification"] == {"title": "Hello", "body": "World"}
    assert fcm.message["data"] == {"order": "42"}
    assert fcm.message["android"]["priority"] == "high"
    assert fcm.message["webpush"]["fcm_options"] == {"link": "https://shop.example/o/1"}
    [apple] = fake_apns.received_for(iphone)
    assert apple.payload == {
        "aps": {"alert": {"title": "Hello", "body": "World"}},
        "order": "42",
        "url": "https://shop.example/o/1",
    }
    assert apple.headers["apns-topic"] == fake_apns.topic
    assert apple.headers["apns-push-type"] == "alert"
    assert apple.headers["apns-priority"] == "10"
    assert apple.claims["iss"] == fake_apns.team_id
    [web] = fake_push.received_for(browser)
    assert web.payload == {
        "title": "Hello",
        "body": "World",
        "url": "https://shop.example/o/1",
        "data": {"order": "42"},
    }
    deliveries = await pushgate.deliveries(acme.send, notification)
    ids = {d["platform"]: d["provider_message_id"] for d in deliveries}
    assert ids["fcm"] == fcm.name
    assert ids["apns"] == apple.headers["apns-id"]


async def test_a_data_only_notification_wakes_the_ios_app_as_a_background_push(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given an iPhone and an Android phone of one user
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    iphone, android = apns_token(), fake_fcm.new_token()
    await register(pushgate, acme, "apns", iphone)
    await register(pushgate, acme, "fcm", android)

    # When a backend sends data and nothing to show, even at high priority
    notification = await pushgate.send(
        acme.send,
        {"user_ids": ["u1"], "data": {"sync": "orders", "since": 42}, "priority": "high"},
    )
    status = await pushgate.finished(acme.send, notification)

    # Then APNs got a background push, which wakes the app with the data, as FCM's own
    # apns block asks for it
    assert status["status"] == "completed"
    [apple] = fake_apns.received_for(iphone)
    assert apple.headers["apns-push-type"] == "background"
    assert apple.headers["apns-priority"] == "5"
    assert apple.payload == {"aps": {"content-available": 1}, "sync": "orders", "since": "42"}
    [fcm] = fake_fcm.received_for(android)
    assert fcm.message["apns"]["headers"]["apns-push-type"] == "background"
    assert fcm.message["apns"]["payload"] == {"aps": {"content-available": 1}}


async def test_the_first_attempt_carries_the_ttl_that_was_sent_on_every_platform(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    fake_push: FakeWebPushService,
) -> None:
    # Given one device of each platform
    android, iphone, browser = await one_device_of_each(
        pushgate, acme, fake_fcm, fake_apns, fake_push
    )

    # When a notification with a one-hour ttl is sent
    before = int(time.time())
    notification = await pushgate.send(
        acme.send, {"user_ids": ["u1"], "title": "Hello", "ttl": 3600}
    )
    status = await pushgate.finished(acme.send, notification)
    after = int(time.time())

    # Then each provider was given the whole hour, not what was left of it a moment later
    assert status["counts"]["sent"] == 3
    [web] = fake_push.received_for(browser)
    assert web.headers["ttl"] == "3600"
    [fcm] = fake_fcm.received_for(android)
    assert fcm.message["android"]["ttl"] == "3600s"
    assert fcm.message["webpush"]["headers"]["TTL"] == "3600"
    [apple] = fake_apns.received_for(iphone)
    assert before + 3600 <= int(apple.headers["apns-expiration"]) <= after + 3600


async def test_missing_credentials_reject_the_delivery_saying_how_to_set_them(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given devices but no credentials
    await register(pushgate, acme, "fcm", fake_fcm.new_token())
    await register(pushgate, acme, "apns", apns_token())

    # When
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "body": "x"})
    await pushgate.finished(acme.send, notification)

    # Then nothing reached the fakes and each delivery says what to run
    deliveries = {d["platform"]: d for d in await pushgate.deliveries(acme.send, notification)}
    assert {d["status"] for d in deliveries.values()} == {"rejected"}
    assert "pushgate credentials set-fcm --app acme" in deliveries["fcm"]["error"]
    assert "pushgate credentials set-apns --app acme" in deliveries["apns"]["error"]
    assert fake_fcm.requests == 0
    assert fake_apns.answers == []


async def test_single_tenant_credentials_come_from_settings(
    make_pushgate: PushgateFactory, fake_fcm: FakeFCMService, tmp_path: Path
) -> None:
    # Given a deployment configured the legacy way: SERVICE_ACCOUNT_PATH and PROJECT_ID
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(fake_fcm.service_account("legacy-project")))
    pushgate = await make_pushgate(
        fcm={"service_account_path": path, "project_id": "legacy-project"}
    )
    acme = await pushgate.tenant()
    token = fake_fcm.new_token()
    await register(pushgate, acme, "fcm", token)

    # When
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "body": "x"})
    status = await pushgate.finished(acme.send, notification)

    # Then
    assert status["status"] == "completed"
    assert [r.project_id for r in fake_fcm.received_for(token)] == ["legacy-project"]


# --- the error tables ------------------------------------------------------------------------
#
# Each row runs as its own app (circuits are per app and platform, so an alarm on one row
# cannot hold up another) in one pushgate, all rows at once: the tables run in seconds.


@dataclass(frozen=True)
class Row:
    """What the pipeline must make of one row of an error table."""

    status: str  # the delivery's status once settled
    attempts: int = 1
    device: str = "active"
    circuit_open: bool = False


SENT_ON_RETRY = Row("sent", attempts=2)
INVALID = Row("invalid", device="deactivated")
REJECTED = Row("rejected")
ALARM = Row("retrying", circuit_open=True)

FCM_TABLE: dict[str, tuple[dict[str, Any], Row]] = {
    "200": ({}, Row("sent")),
    "UNREGISTERED": ({"error": "UNREGISTERED"}, INVALID),
    "SENDER_ID_MISMATCH": ({"error": "SENDER_ID_MISMATCH"}, INVALID),
    "INVALID_ARGUMENT-token": ({"error": "INVALID_TOKEN"}, INVALID),
    "INVALID_ARGUMENT-payload": ({"error": "INVALID_PAYLOAD"}, REJECTED),
    "QUOTA_EXCEEDED": ({"error": "QUOTA_EXCEEDED", "retry_after": 1}, SENT_ON_RETRY),
    "UNAVAILABLE": ({"error": "UNAVAILABLE", "retry_after": 1}, SENT_ON_RETRY),
    "INTERNAL": ({"error": "INTERNAL", "retry_after": 1}, SENT_ON_RETRY),
    "THIRD_PARTY_AUTH_ERROR": ({"error": "THIRD_PARTY_AUTH_ERROR"}, ALARM),
    # OAuth refused the access token once: refreshed, then sent in the same attempt.
    "oauth-401-once": ({"error": "EXPIRED_TOKEN"}, Row("sent")),
    "oauth-401-always": ({"error": "EXPIRED_TOKEN", "times": None}, ALARM),
    "legacy-html-404": ({"error": "LEGACY_404"}, REJECTED),
}

DAY_MS = 24 * 3600 * 1000

APNS_TABLE: dict[str, tuple[dict[str, Any], Row]] = {
    "200": ({}, Row("sent")),
    "410-Unregistered": ({"reason": "Unregistered", "timestamp": "future"}, INVALID),
    "410-ExpiredToken": ({"reason": "ExpiredToken"}, INVALID),
    # Apple's verdict predates the device's latest registration: keep the device.
    "410-before-re-registration": ({"reason": "Unregistered", "timestamp": "past"}, REJECTED),
    "400-BadDeviceToken": ({"reason": "BadDeviceToken"}, INVALID),
    "400-DeviceTokenNotForTopic": ({"reason": "DeviceTokenNotForTopic"}, INVALID),
    "400-BadTopic": ({"reason": "BadTopic"}, REJECTED),
    "400-InvalidPushType": ({"reason": "InvalidPushType"}, REJECTED),
    # Refresh refused by the 20-minute floor (the token is new): retried later, then sent.
    "403-ExpiredProviderToken": ({"reason": "ExpiredProviderToken"}, SENT_ON_RETRY),
    "403-InvalidProviderToken": ({"reason": "InvalidProviderToken"}, ALARM),
    "403-BadCertificateEnvironment": ({"reason": "BadCertificateEnvironment"}, ALARM),
    "413-PayloadTooLarge": ({"reason": "PayloadTooLarge"}, REJECTED),
    # No Retry-After from Apple: about a minute, so it is still waiting when checked.
    "429-TooManyRequests": ({"reason": "TooManyRequests"}, Row("retrying")),
    "429-TooManyProviderTokenUpdates": ({"reason": "TooManyProviderTokenUpdates"}, SENT_ON_RETRY),
    "500-InternalServerError": ({"reason": "InternalServerError"}, SENT_ON_RETRY),
    "503-ServiceUnavailable": ({"reason": "ServiceUnavailable"}, SENT_ON_RETRY),
    "503-Shutdown": ({"reason": "Shutdown"}, SENT_ON_RETRY),
}


def script_fcm(fake: FakeFCMService, token: str, script: dict[str, Any]) -> None:
    if script:
        fake.script(token=token, **script)


def script_apns(fake: FakeAPNs, token: str, script: dict[str, Any]) -> None:
    if not script:
        return
    options = dict(script)
    when = options.pop("timestamp", None)
    if when is not None:
        options["timestamp"] = int(time.time() * 1000) + (DAY_MS if when == "future" else -DAY_MS)
    fake.script(token=token, **options)


@pytest.mark.parametrize("platform", ["fcm", "apns"], ids=["fcm-error-table", "apns-error-table"])
async def test_every_row_of_the_error_table_has_its_outcome(
    make_pushgate: PushgateFactory,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    platform: str,
) -> None:
    # Given one app per row, each with one device the provider answers with the row's error
    pushgate = await make_pushgate(max_attempts=3)
    table = FCM_TABLE if platform == "fcm" else APNS_TABLE
    account = fake_fcm.service_account()
    tenants = [await pushgate.tenant(f"row-{number}") for number in range(len(table))]

    async def prepare(tenant: TenantKeys, script: dict[str, Any]) -> tuple[str, str]:
        await set_credentials(pushgate, tenant, fake_fcm, fake_apns, account)
        token = fake_fcm.new_token() if platform == "fcm" else apns_token()
        device = await register(pushgate, tenant, platform, token)
        if platform == "fcm":
            script_fcm(fake_fcm, token, script)
        else:
            script_apns(fake_apns, token, script)
        return device, token

    prepared = await asyncio.gather(
        *(prepare(t, script) for t, (script, _) in zip(tenants, table.values(), strict=True))
    )
    rows = [
        (name, expected, tenant, device, token)
        for (name, (_, expected)), tenant, (device, token) in zip(
            table.items(), tenants, prepared, strict=True
        )
    ]

    # When each app sends to its device
    sent = await asyncio.gather(
        *(pushgate.send(t.send, {"user_ids": ["u1"], "title": "t", "body": "x"}) for t in tenants)
    )

    # Then each delivery, device and circuit ends as the table says
    async def outcome(row: tuple[str, Row, TenantKeys, str, str], notification: str) -> Row:
        _, expected, tenant, device, _ = row
        [delivery] = await settled(
            pushgate, tenant, notification, until=lambda ds: ds[0]["status"] == expected.status
        )
        if expected.status == "retrying" and not expected.circuit_open:
            # Apple's 429 names no time: about a minute, not an immediate retry.
            wait = datetime.fromisoformat(delivery["next_attempt_at"]) - datetime.now(UTC)
            assert wait > timedelta(seconds=50), delivery
        return Row(
            delivery["status"],
            delivery["attempts"],
            await device_status(pushgate, tenant, device),
            circuit(pushgate, tenant, platform) is State.OPEN,
        )

    found = await asyncio.gather(*(outcome(r, n) for r, n in zip(rows, sent, strict=True)))
    assert {r[0]: f for r, f in zip(rows, found, strict=True)} == {r[0]: r[1] for r in rows}
    fake = fake_fcm if platform == "fcm" else fake_apns
    for name, expected, _, _, token in rows:
        # Sent exactly once, retries included; nothing else reached the provider as accepted.
        assert len(fake.received_for(token)) == (expected.status == "sent"), name


# --- reuse: tokens and connections -----------------------------------------------------------


async def send_to_all(pushgate: Pushgate, acme: TenantKeys) -> None:
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "t", "body": "x"})
    status = await pushgate.finished(acme.send, notification)
    assert status["status"] == "completed", status


async def test_tokens_and_connections_are_reused_across_sends(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given 20 Android and 20 Apple devices of one user
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    for _ in range(20):
        await register(pushgate, acme, "fcm", fake_fcm.new_token())
        await register(pushgate, acme, "apns", apns_token())

    # When three notifications go to all of them
    await send_to_all(pushgate, acme)
    fcm_handshakes, apns_handshakes = fake_fcm.tls_handshakes, fake_apns.tls_handshakes
    await send_to_all(pushgate, acme)
    await send_to_all(pushgate, acme)

    # Then 120 sends took one OAuth token, one provider JWT, and no new connections after
    # the first notification; APNs stayed within its pool
    assert len(fake_fcm.received) == 60
    assert len(fake_apns.received) == 60
    assert fake_fcm.token_requests == 1
    assert len(fake_apns.jwts) == 1
    assert fake_fcm.tls_handshakes == fcm_handshakes
    assert fake_apns.tls_handshakes == apns_handshakes
    assert apns_handshakes <= pushgate.settings.apns.max_connections


async def test_expiring_tokens_are_renewed_once(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given short-lived OAuth tokens, and an APNs provider on a clock the test moves
    fake_fcm.token_lifetime = 4  # reused for half its life: 2 s
    now = [time.time()]
    fake_apns.clock = lambda: now[0]
    settings = pushgate.settings.apns
    pushgate.runtime.providers["apns"] = APNSProvider(
        production_url=settings.production_url,
        sandbox_url=settings.sandbox_url,
        ca_file=str(settings.ca_bundle),
        clock=lambda: now[0],
    )
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    for _ in range(5):
        await register(pushgate, acme, "fcm", fake_fcm.new_token())
        await register(pushgate, acme, "apns", apns_token())
    await send_to_all(pushgate, acme)
    first_jwts = set(fake_apns.jwts)

    # When the OAuth token and the provider JWT have aged past their reuse time
    await asyncio.sleep(2.1)
    now[0] += 51 * 60
    await send_to_all(pushgate, acme)
    await send_to_all(pushgate, acme)

    # Then each was renewed exactly once, and everything arrived
    await pushgate.runtime.providers["apns"].close()
    assert fake_fcm.token_requests == 2
    assert len(first_jwts) == 1
    assert len(fake_apns.jwts) == 2
    assert len(fake_fcm.received) == 15
    assert len(fake_apns.received) == 15


async def test_goaway_in_the_middle_of_a_batch_loses_nothing(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given 30 Apple devices, and APNs going away after the 10th request
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    tokens = [apns_token() for _ in range(30)]
    for token in tokens:
        await register(pushgate, acme, "apns", token)
    fake_apns.goaway_after(10)

    # When
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "body": "x"})
    status = await pushgate.finished(acme.send, notification)

    # Then every device got it exactly once, in one attempt, over a second connection
    assert status["status"] == "completed", status
    assert all(len(fake_apns.received_for(t)) == 1 for t in tokens)
    assert {d["attempts"] for d in await pushgate.deliveries(acme.send, notification)} == {1}
    assert any(c.goaway_sent for c in fake_apns.connections)
    assert len(fake_apns.connections) >= 2


async def test_a_dry_run_is_validated_by_fcm_and_checked_locally_for_the_others(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    fake_push: FakeWebPushService,
) -> None:
    # Given one device of each platform
    android, _, _ = await one_device_of_each(pushgate, acme, fake_fcm, fake_apns, fake_push)

    # When a dry run goes to the user
    notification = await pushgate.send(
        acme.send, {"user_ids": ["u1"], "body": "x", "dry_run": True}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then FCM validated it, APNs and the push service saw nothing, all count as sent
    assert status["status"] == "completed"
    assert [r.validate_only for r in fake_fcm.received_for(android)] == [True]
    assert fake_apns.answers == []
    assert fake_push.received == []
    ids = {
        d["platform"]: d["provider_message_id"]
        for d in await pushgate.deliveries(acme.send, notification)
    }
    assert ids["apns"] == ids["webpush"] == "dry-run"
    assert ids["fcm"].endswith("/fake_message_id")
