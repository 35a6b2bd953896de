"""Property tests through the API, on both profiles: no generated request (notification, device,
history query, Idempotency-Key header) is answered but with a 2xx or a 4xx in the JSON error
shape, and every idempotency key accepted is found again."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TenantKeys
from tests.strategies import devices, edgy_text, instants, raw_headers, requests

# Few examples: each is a real request on a real database (bounded time, not flaky under load).
THROUGH_API = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_answered(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str), error
        assert isinstance(error["message"], str), error
        if response.status_code == 422:
            assert error["details"]["field"], error


def raw_json(value: Any) -> bytes:
    # json.dumps writes NaN and Infinity as the tokens clients send, and lone surrogates as \u
    # escapes: the bytes a hostile client can put on the wire.
    return json.dumps(value).encode()


@THROUGH_API
@given(body=requests)
async def test_any_notification_is_accepted_or_refused_with_the_error_shape(
    client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/notifications",
        content=raw_json(body),
        headers={**tenant.send, "Content-Type": "application/json"},
    )
    assert_answered(response)


@THROUGH_API
@given(body=devices)
async def test_any_device_is_registered_or_refused_with_the_error_shape(
    client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, Any]
) -> None:
    response = await client.post(
        "/v1/devices",
        content=raw_json(body),
        headers={**tenant.subscribe, "Content-Type": "application/json"},
    )
    assert_answered(response)


@THROUGH_API
@given(user=edgy_text, since=instants, until=instants, category=edgy_text)
async def test_any_query_is_answered_or_refused_with_the_error_shape(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    user: str,
    since: str,
    until: str,
    category: str,
) -> None:
    # Percent-encoded as UTF-8; a lone surrogate cannot be, so it goes as its escape's bytes.
    name = quote(user.encode("utf-8", "surrogatepass"), safe="")
    for path, params in [
        (f"/v1/users/{name}/devices", {}),
        ("/v1/devices", {"user_id": user}),
        (f"/v1/notifications/by-idempotency-key/{name}", {}),
        ("/v1/notifications", {"since": since, "until": until, "category": category}),
    ]:
        try:
            url = httpx.URL(path, params=params)
        except UnicodeEncodeError:
            continue  # no client can send a lone surrogate in a query string
        response = await client.get(url, headers=tenant.send)
        assert_answered(response)


@THROUGH_API
@given(key=st.binary(min_size=1, max_size=40))
async def test_an_idempotency_key_header_is_refused_or_found_again(
    client: httpx.AsyncClient, tenant: TenantKeys, key: bytes
) -> None:
    if b"\r" in key or b"\n" in key or key.strip() != key:
        key = key.replace(b"\r", b"r").replace(b"\n", b"n").strip() or b"k"
    response = await client.post(
        "/v1/notifications",
        json={"broadcast": True, "title": "Hi"},
        headers=raw_headers(tenant.send, b"idempotency-key", key),
    )
    assert_answered(response)
    if response.status_code != 202:
        assert response.status_code == 422, response.text
        return
    sent = key.decode("ascii")  # only printable ASCII is accepted
    assert response.json()["idempotency_key"] == sent
    found = await client.get(
        f"/v1/notifications/by-idempotency-key/{quote(sent, safe='')}", headers=tenant.send
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == response.json()["id"]
