"""Bad registrations and callers are refused with a stable code and the offending field."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushgate.api.app import create_app
from pushgate.provider_settings import WebPushSettings
from pushgate.runtime import Runtime, running
from pushgate.settings import Settings
from pushgate.store import api_keys
from tests.conftest import TenantKeys

CHROME_ENDPOINT = "https://fcm.googleapis.com/fcm/send/abc:APA91bH"
ClientWith = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_subscription(endpoint: str = CHROME_ENDPOINT) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}}


def webpush(**changes: Any) -> dict[str, Any]:
    subscription = browser_subscription()
    keys = changes.pop("keys", {})
    subscription["keys"].update(keys)
    subscription.update(changes)
    return {"platform": "webpush", "subscription": subscription}


@pytest.fixture
def client_with(settings: Settings) -> ClientWith:
    """An API client whose app runs with other Web Push settings, on the test's database."""

    @asynccontextmanager
    async def make(**webpush_settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        custom = settings.model_copy(update={"webpush": WebPushSettings(**webpush_settings)})
        async with running(custom) as runtime:
            app = create_app(custom, runtime=runtime)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
                ) as http,
            ):
                yield http

    return make


def assert_refused(response: httpx.Response, code: str, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["field"]) == (code, field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"keys": {"p256dh": "not base64url!"}}, "subscription.keys.p256dh"),
        (
            {"keys": {"p256dh": b64url(b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01")}},
            "subscription.keys.p256dh",
        ),
        ({"keys": {"p256dh": b64url(b"\x04" + b"\x07" * 40)}}, "subscription.keys.p256dh"),
        ({"keys": {"auth": b64url(os.urandom(12))}}, "subscription.keys.auth"),
        ({"keys": {"auth": "%%%"}}, "subscription.keys.auth"),
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/abc"}, "subscription.endpoint"),
        ({"endpoint": "https://fcm.googleapis.com/" + "a" * 2100}, "subscription.endpoint"),
        ({"endpoint": "not a url"}, "subscription.endpoint"),
        ({"expirationTime": -5}, "subscription.expirationTime"),
    ],
    ids=[
        "p256dh-not-base64url",
        "p256dh-off-curve",
        "p256dh-wrong-length",
        "auth-wrong-length",
        "auth-not-base64url",
        "http-endpoint",
        "endpoint-too-long",
        "endpoint-not-url",
        "negative-expiration",
    ],
)
async def test_malformed_subscription_is_invalid_subscription(
    client: httpx.AsyncClient, tenant: TenantKeys, changes: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/devices", json=webpush(**changes), headers=tenant.subscribe)
    assert_refused(response, "invalid_subscription", field)


@pytest.mark.parametrize(
    ("subscription", "field"),
    [
        (
            {"endpoint": CHROME_ENDPOINT, "keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}},
            "subscription.keys.p256dh",
        ),
        ({"endpoint": CHROME_ENDPOINT}, "subscription.keys"),
        ({"keys": {"p256dh": "x", "auth": "y"}}, "subscription.endpoint"),
    ],
    ids=["missing-p256dh", "missing-keys", "missing-endpoint"],
)
async def test_subscription_missing_parts_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, subscription: dict[str, Any], field: str
) -> None:
    body = {"platform": "webpush", "subscription": subscription}
    response = await client.post("/v1/devices", json=body, headers=tenant.subscribe)
    assert_refused(response, "invalid_input", field)


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://push.example.net/x",
        "https://127.0.0.1:8443/push",
        "https://169.254.169.254/latest/meta-data/",
        "https://fcm.googleapis.com.evil.example/fcm/send/abc",
        "https://user:pw@fcm.googleapis.com/fcm/send/abc",
        "https:///fcm/send/abc",
    ],
    ids=["unknown-host", "loopback", "metadata", "lookalike", "userinfo", "empty-host"],
)
async def test_endpoint_outside_the_policy_is_unsafe_by_default(
    client: httpx.AsyncClient, tenant: TenantKeys, endpoint: str
) -> None:
    response = await client.post(
        "/v1/devices", json=webpush(endpoint=endpoint), headers=tenant.subscribe
    )
    assert_refused(response, "unsafe_endpoint", "subscription.endpoint")


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1:8443/push",
        "https://[::1]:8443/push",
        "https://10.0.0.7/push",
        "https://192.168.1.20/push",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[fe80::1]/push",
        "https://[::ffff:127.0.0.1]/push",
        "https://100.64.0.1/push",
        "https://localhost:8443/push",
        "https://user@8.8.8.8/push",
    ],
)
async def test_private_endpoints_are_unsafe_even_with_every_host_opened(
    client_with: ClientWith, tenant: TenantKeys, endpoint: str
) -> None:
    # Given an operator who opened every host but not private addresses
    async with client_with(extra_hosts=["*"]) as http:
        # When a subscription points at a private, loopback or metadata address
        response = await http.post(
            "/v1/devices", json=webpush(endpoint=endpoint), headers=tenant.subscribe
        )
    # Then it is refused as unsafe
    assert_refused(response, "unsafe_endpoint", "subscription.endpoint")


async def test_loopback_endpoint_is_accepted_when_private_addresses_are_allowed(
    client_with: ClientWith, tenant: TenantKeys
) -> None:
    # Given a test or private deployment that opened localhost and private addresses
    async with client_with(extra_hosts=["127.0.0.1"], allow_private_addresses=True) as http:
        response = await http.post(
            "/v1/devices",
            json=webpush(endpoint="https://127.0.0.1:45123/push/1"),
            headers=tenant.subscribe,
        )
        # And only the hosts it opened
        other = await http.post(
            "/v1/devices",
            json=webpush(endpoint="https://10.0.0.7/push/1"),
            headers=tenant.subscribe,
        )
    assert response.status_code == 201, response.text
    assert response.json()["endpoint"] == "https://127.0.0.1:45123/push/1"
    assert_refused(other, "unsafe_endpoint", "subscription.endpoint")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"platform": "fcm", "token": "has space"}, "invalid_token", "token"),
        ({"platform": "fcm", "token": "x" * 4097}, "invalid_token", "token"),
        ({"platform": "apns", "token": "abc123"}, "invalid_token", "token"),
        ({"platform": "apns", "token": "z" * 64}, "invalid_token", "token"),
        ({"platform": "fcm"}, "invalid_input", "token"),
        ({"platform": "webpush", "token": "x"}, "invalid_input", "token"),
        ({"platform": "webpush"}, "invalid_input", "subscription"),
        (
            {"platform": "fcm", "token": "t", "subscription": browser_subscription()},
            "invalid_input",
            "subscription",
        ),
        ({"platform": "gcm", "token": "t"}, "invalid_input", "platform"),
        ({"token": "t"}, "invalid_input", "platform"),
        ({"platform": "fcm", "token": "t", "user_id": "u" * 256}, "invalid_input", "user_id"),
        ({"platform": "fcm", "token": "t", "user_id": ""}, "invalid_input", "user_id"),
        ({"platform": "fcm", "token": "t", "locale": "en-" + "x" * 33}, "invalid_input", "locale"),
        ({"platform": "fcm", "token": "t", "locale": "english!"}, "invalid_input", "locale"),
        (
            {"platform": "fcm", "token": "t", "timezone": "Mars/Olympus"},
            "invalid_input",
            "timezone",
        ),
        (
            {"platform": "fcm", "token": "t", "timezone": "../../etc/passwd"},
            "invalid_input",
            "timezone",
        ),
        (
            {"platform": "fcm", "token": "t", "app_version": "v" * 65},
            "invalid_input",
            "app_version",
        ),
        (
            {"platform": "fcm", "token": "t", "metadata": {"blob": "x" * 5000}},
            "invalid_input",
            "metadata",
        ),
        (
            {"platform": "fcm", "token": "t", "metadata": ["not", "an", "object"]},
            "invalid_input",
            "metadata",
        ),
        (
            {"platform": "fcm", "token": "t", "topics": [f"t{i}" for i in range(101)]},
            "invalid_input",
            "topics",
        ),
        (
            {"platform": "fcm", "token": "t", "topics": ["ok", "no spaces"]},
            "invalid_input",
            "topics.1",
        ),
        ({"platform": "fcm", "token": "t", "topics": ["x" * 256]}, "invalid_input", "topics.0"),
        ({"platform": "fcm", "token": "t", "topic": ["typo"]}, "invalid_input", "topic"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_bad_registration_fields_are_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, Any], code: str, field: str
) -> None:
    response = await client.post("/v1/devices", json=body, headers=tenant.subscribe)
    assert_refused(response, code, field)


async def test_oversized_metadata_on_patch_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "t"}, headers=tenant.subscribe
    )
    response = await client.patch(
        f"/v1/devices/{created.json()['id']}",
        json={"metadata": {f"k{i}": "v" * 100 for i in range(50)}},
        headers=tenant.subscribe,
    )
    assert_refused(response, "invalid_input", "metadata")
    response = await client.patch(
        f"/v1/devices/{created.json()['id']}", json={"enabled": None}, headers=tenant.subscribe
    )
    assert_refused(response, "invalid_input", "enabled")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/devices?cursor=not-a-cursor!", "cursor"),
        ("/v1/devices?cursor=AAAA", "cursor"),
        ("/v1/devices?limit=0", "limit"),
        ("/v1/devices?limit=501", "limit"),
        ("/v1/devices?status=gone", "status"),
        ("/v1/devices?platform=gcm", "platform"),
        ("/v1/devices/not-a-uuid", "device_id"),
    ],
)
async def test_bad_list_parameters_are_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, path: str, field: str
) -> None:
    response = await client.get(path, headers=tenant.send)
    assert_refused(response, "invalid_input", field)


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/devices", json={"platform": "fcm", "token": "t"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert (await client.get("/v1/devices")).status_code == 401


async def test_revoked_key_is_401(
    client: httpx.AsyncClient, tenant: TenantKeys, runtime: Runtime
) -> None:
    # Given a subscribe key that was revoked
    secret = tenant.subscribe["Authorization"].removeprefix("Bearer ")
    async with runtime.sessions() as session:
        row = await api_keys.authenticate(session=session, secret=secret)
        assert row is not None
        await api_keys.revoke(session=session, key_id=row.id)
        await session.commit()
    # When it registers a device, Then it is refused and nothing is stored
    response = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "t"}, headers=tenant.subscribe
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    listed = await client.get("/v1/devices?status=all", headers=tenant.admin)
    assert listed.json()["items"] == []


async def test_wrong_scope_is_403(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    created = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "t"}, headers=tenant.subscribe
    )
    device_id = created.json()["id"]
    for response in (
        await client.get("/v1/devices", headers=tenant.subscribe),
        await client.get(f"/v1/devices/{device_id}", headers=tenant.subscribe),
        await client.delete(f"/v1/devices/{device_id}?purge=true", headers=tenant.subscribe),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_scope"
