"""Input neither database can store alike (NUL characters, lone surrogates, NaN and infinite
numbers, integers beyond 64 bits, times outside the calendar) is a 422 naming the field, on
both profiles, never a 500; and an Idempotency-Key header is printable ASCII, so every key
accepted is found again."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.strategies import raw_headers

SEND = '{"broadcast": true, "title": "Hi", %s}'
TO_USERS = '{"title": "Hi", %s}'
DEVICE = '{"platform": "fcm", "token": "fcm-token-bad-input", %s}'

# (method, path, raw JSON body or None, key scope, expected field)
CASES: list[tuple[str, str, str | None, str, str]] = [
    ("POST", "/v1/notifications", SEND % '"body": "x", "title": "a\\u0000b"', "send", "title"),
    ("POST", "/v1/notifications", SEND % '"body": "a\\u0000b"', "send", "body"),
    ("POST", "/v1/notifications", SEND % '"category": "a\\u0000b"', "send", "category"),
    ("POST", "/v1/notifications", TO_USERS % '"user_ids": ["u\\u0000"]', "send", "user_ids.0"),
    ("POST", "/v1/notifications", TO_USERS % '"user_id": "u\\u0000"', "send", "user_id"),
    ("POST", "/v1/notifications", SEND % '"data": {"k": "v\\u0000"}', "send", "data.k"),
    ("POST", "/v1/notifications", SEND % '"metadata": {"k": "v\\u0000"}', "send", "metadata"),
    ("POST", "/v1/notifications", SEND % '"webpush": {"k\\u0000": 1}', "send", "webpush"),
    (
        "POST",
        "/v1/notifications",
        SEND % '"idempotency_key": "k\\u0000"',
        "send",
        "idempotency_key",
    ),
    ("POST", "/v1/notifications", SEND % '"metadata": {"n": NaN}', "send", "metadata"),
    ("POST", "/v1/notifications", SEND % '"metadata": {"n": Infinity}', "send", "metadata"),
    ("POST", "/v1/notifications", SEND % '"metadata": {"n": [1e400]}', "send", "metadata"),
    ("POST", "/v1/notifications", SEND % '"fcm": {"n": NaN}', "send", "fcm"),
    ("POST", "/v1/notifications", SEND % '"apns": {"n": -Infinity}', "send", "apns"),
    ("POST", "/v1/notifications", SEND % '"webpush": {"n": 1e400}', "send", "webpush"),
    ("POST", "/v1/notifications", SEND % '"send_at": "9999-01-01T00:00:00Z"', "send", "send_at"),
    ("POST", "/v1/devices", DEVICE % '"user_id": "u\\u0000"', "subscribe", "user_id"),
    ("POST", "/v1/devices", DEVICE % '"app_version": "1\\u0000"', "subscribe", "app_version"),
    ("POST", "/v1/devices", DEVICE % '"metadata": {"k": "\\u0000"}', "subscribe", "metadata"),
    ("POST", "/v1/devices", DEVICE % '"metadata": {"k": "\\udc00"}', "subscribe", "metadata"),
    (
        "POST",
        "/v1/devices",
        DEVICE % '"metadata": {"k": 18446744073709551616}',
        "subscribe",
        "metadata",
    ),
    ("GET", "/v1/users/u%00/devices", None, "send", "user_id"),
    ("GET", "/v1/devices?user_id=u%00", None, "send", "user_id"),
    ("GET", "/v1/notifications/by-idempotency-key/k%00", None, "send", "key"),
    ("GET", "/v1/notifications?category=c%00", None, "send", "category"),
    ("GET", "/v1/notifications?since=0001-01-01T00:00:00%2B14:00", None, "send", "since"),
    ("GET", "/v1/notifications?until=9999-12-31T23:59:59-14:00", None, "send", "until"),
]


def assert_invalid(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input", error
    assert error["details"]["field"] == field, error


@pytest.mark.parametrize(
    ("method", "path", "body", "scope", "field"),
    CASES,
    ids=[f"{c[4]}:{c[2] or c[1]}" for c in CASES],
)
async def test_input_the_databases_cannot_store_alike_is_refused_naming_the_field(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    method: str,
    path: str,
    body: str | None,
    scope: str,
    field: str,
) -> None:
    headers = dict(getattr(tenant, scope))
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = await client.request(
        method, path, content=None if body is None else body.encode(), headers=headers
    )
    assert_invalid(response, field)


async def test_a_device_update_with_unstorable_metadata_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    created = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "fcm-token-1"}, headers=tenant.admin
    )
    assert created.status_code == 201, created.text
    response = await client.patch(
        f"/v1/devices/{created.json()['id']}",
        content=b'{"metadata": {"n": NaN}}',
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert_invalid(response, "metadata")


async def test_nothing_of_a_refused_request_is_stored(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # SQLite would have stored the NUL, and turned NaN into null: now neither database sees them
    for extra in ('"title": "a\\u0000"', '"metadata": {"n": NaN}'):
        body = SEND % f'"idempotency_key": "k-1", {extra}'
        response = await client.post(
            "/v1/notifications",
            content=body.encode(),
            headers={**tenant.send, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
    found = await client.get("/v1/notifications/by-idempotency-key/k-1", headers=tenant.send)
    assert found.status_code == 404, found.text


async def test_a_non_ascii_idempotency_key_header_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # The bytes of "clé-1" in UTF-8, which a server reads as latin-1 ("clÃ©-1")
    headers = raw_headers(tenant.send, b"idempotency-key", "clé-1".encode())
    for path in ("/v1/notifications", "/v1/notifications/send-immediate"):
        response = await client.post(path, json={"broadcast": True, "title": "Hi"}, headers=headers)
        assert_invalid(response, "Idempotency-Key")
        assert "printable ASCII" in response.json()["error"]["message"]


@pytest.mark.parametrize("key", ["order 42/shipped?", "a%2Fb#c", "~!@*()'\"[]{}\\", "K" * 255])
async def test_an_accepted_idempotency_key_header_is_found_again(
    client: httpx.AsyncClient, tenant: TenantKeys, key: str
) -> None:
    response = await client.post(
        "/v1/notifications",
        json={"broadcast": True, "title": "Hi"},
        headers={**tenant.send, "Idempotency-Key": key},
    )
    assert response.status_code == 202, response.text
    assert response.json()["idempotency_key"] == key
    found = await client.get(
        f"/v1/notifications/by-idempotency-key/{quote(key, safe='')}", headers=tenant.send
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == response.json()["id"]


async def test_a_non_ascii_key_in_the_body_is_found_again(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    key = "clé-🔑-1"
    body: dict[str, Any] = {"broadcast": True, "title": "Hi", "idempotency_key": key}
    response = await client.post("/v1/notifications", json=body, headers=tenant.send)
    assert response.status_code == 202, response.text
    found = await client.get(
        f"/v1/notifications/by-idempotency-key/{quote(key, safe='')}", headers=tenant.send
    )
    assert found.status_code == 200, found.text
    assert found.json()["idempotency_key"] == key
