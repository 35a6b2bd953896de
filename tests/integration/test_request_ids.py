"""X-Request-ID: every answer carries one (FastAPI's routes, the fast lane, errors, unmatched
paths), and a usable incoming one is kept."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TenantKeys

pytestmark = pytest.mark.parametrize("profile", ["embedded"], indirect=True)


async def test_every_answer_carries_a_request_id(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    answers = {
        "route": await client.get("/v1/devices", headers=tenant.admin),
        "fast lane": await client.post(
            "/v1/notifications", json={"user_ids": ["u1"], "title": "Hi"}, headers=tenant.send
        ),
        "validation error": await client.post(
            "/v1/notifications", json={"title": 5}, headers=tenant.send
        ),
        "no key": await client.get("/v1/devices"),
        "no route": await client.get("/nowhere"),
        "health": await client.get("/health"),
    }
    assert answers["fast lane"].status_code == 202
    assert answers["no key"].status_code == 401
    ids = {name: r.headers.get("x-request-id") for name, r in answers.items()}
    assert all(ids.values()), ids
    assert len(set(ids.values())) == len(ids)


async def test_an_incoming_request_id_is_kept_when_usable(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    kept = await client.post(
        "/v1/notifications",
        json={"user_ids": ["u1"], "title": "Hi"},
        headers={**tenant.send, "X-Request-ID": "lb-7f3a:42"},
    )
    too_long = await client.get("/health", headers={"X-Request-ID": "a" * 129})
    spaced = await client.get("/health", headers={"X-Request-ID": "two words"})

    assert kept.headers["x-request-id"] == "lb-7f3a:42"
    assert too_long.headers["x-request-id"] != "a" * 129
    assert len(too_long.headers["x-request-id"]) == 24
    assert spaced.headers["x-request-id"] not in ("two words", "two")
