"""Request limits through the API, on both profiles: the RateLimit fields on every answer of an
authenticated route (FastAPI's and the fast lane's), a 429 with Retry-After once a key's or an
app's bucket is empty, refilled as the injected clock moves; keys' and apps' own limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pushgate.api import ratelimit
from pushgate.api.app import create_app
from pushgate.domain.apikeys import Scope
from pushgate.domain.rates import parse
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store import api_keys, apps
from tests.conftest import TenantKeys

READ = "/v1/webpush/vapid-public-key"
NOTIFICATION = {"user_ids": ["u1"], "title": "t", "body": "b"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Limited:
    http: httpx.AsyncClient
    clock: Clock
    runtime: Runtime


@pytest.fixture
def limits() -> dict[str, Any]:
    """The `rate_limits` settings of the test's API; a test overrides it to change them."""
    return {"key_read": "3/minute", "key_send": "2/minute", "app_read": "5/minute"}


@pytest.fixture
async def limited(
    settings: Settings, runtime: Runtime, limits: dict[str, Any]
) -> AsyncIterator[Limited]:
    configured = settings.model_copy(
        update={"rate_limits": settings.rate_limits.model_validate(limits)}
    )
    runtime.settings = configured
    app = create_app(configured, runtime=runtime)
    clock = Clock()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        app.state.limiter = ratelimit.Limiter(configured, runtime.kv, clock=clock)
        yield Limited(http, clock, runtime)


def fields(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["RateLimit-Limit"]), int(h["RateLimit-Remaining"]), int(h["RateLimit-Reset"])


async def test_every_answer_carries_the_ratelimit_fields(
    limited: Limited, tenant: TenantKeys
) -> None:
    # When a key makes two reads in the same instant
    first = await limited.http.get(READ, headers=tenant.send)
    second = await limited.http.get(READ, headers=tenant.send)

    # Then each answer says the key's limit, what is left, and when the bucket is full again
    assert first.status_code == second.status_code == 200
    assert fields(first) == (3, 2, 20)
    assert fields(second) == (3, 1, 40)
    # And an error answer of a limited route carries them too
    missing = await limited.http.get(
        "/v1/devices/00000000-0000-0000-0000-000000000000", headers=tenant.send
    )
    assert missing.status_code == 404
    assert fields(missing) == (3, 0, 60)


async def test_a_key_over_its_limit_gets_429_with_retry_after_until_it_refills(
    limited: Limited, tenant: TenantKeys
) -> None:
    # Given a key that used its three reads
    for _ in range(3):
        assert (await limited.http.get(READ, headers=tenant.send)).status_code == 200

    # When it reads once more
    refused = await limited.http.get(READ, headers=tenant.send)

    # Then it is told, in the JSON error shape, to come back when one token is back
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["limited"] == "key"
    assert refused.headers["Retry-After"] == "20"
    assert fields(refused) == (3, 0, 60)
    # And another key of the same app reads on its own bucket
    assert (await limited.http.get(READ, headers=tenant.admin)).status_code == 200

    # When the 20 s pass
    limited.clock.now += 20
    again = await limited.http.get(READ, headers=tenant.send)

    # Then one read goes through
    assert again.status_code == 200
    assert fields(again)[1] == 0


async def test_the_apps_bucket_is_shared_by_its_keys(limited: Limited, tenant: TenantKeys) -> None:
    # Given an app limited to 5 reads, and keys allowed 3 each
    statuses = [
        (await limited.http.get(READ, headers=headers)).status_code
        for headers in (tenant.send, tenant.send, tenant.send, tenant.admin, tenant.admin)
    ]
    assert statuses == [200] * 5

    # When a third key of the app reads
    refused = await limited.http.get(READ, headers=tenant.subscribe)

    # Then the app's bucket refuses it, although the key's is full
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["limited"] == "app"


async def test_posting_a_notification_is_limited_by_the_fast_lane_as_by_fastapi(
    limited: Limited, tenant: TenantKeys
) -> None:
    # Given a key allowed two sends a minute; the first well formed (the fast lane takes it),
    # the second not JSON-typed (FastAPI takes it)
    fast = await limited.http.post("/v1/notifications", json=NOTIFICATION, headers=tenant.send)
    slow = await limited.http.post(
        "/v1/notifications",
        content=httpx.Request("POST", "/", json=NOTIFICATION).content,
        headers={**tenant.send, "Content-Type": "application/vnd.api+json"},
    )

    # Then both are counted against the same bucket, and say so
    assert fast.status_code == 202, fast.text
    assert fields(fast) == (2, 1, 30)
    assert slow.status_code == 202, slow.text
    assert fields(slow) == (2, 0, 60)

    # When the fast lane gets a third
    refused = await limited.http.post("/v1/notifications", json=NOTIFICATION, headers=tenant.send)

    # Then it is refused as FastAPI would refuse it
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "30"
    # And reads are a separate class
    assert (await limited.http.get(READ, headers=tenant.send)).status_code == 200


async def test_a_keys_own_limit_replaces_the_default(limited: Limited, tenant: TenantKeys) -> None:
    # Given a key created with its own limit of one read a minute
    async with limited.runtime.sessions() as session:
        created = await api_keys.create(
            session=session, app_id=tenant.app_id, scope=Scope.SEND, rate_limit=parse("1/minute")
        )
        await session.commit()
    headers = {"Authorization": f"Bearer {created.secret}"}

    # When it reads twice
    first = await limited.http.get(READ, headers=headers)
    second = await limited.http.get(READ, headers=headers)

    # Then its own limit applied
    assert fields(first) == (1, 0, 60)
    assert second.status_code == 429


async def test_an_apps_own_limits_replace_the_defaults(
    limited: Limited, tenant_factory: Callable[..., Any]
) -> None:
    # Given an app whose own read limit is higher than the default
    tenant = await tenant_factory("big")
    async with limited.runtime.sessions() as session:
        await apps.set_rate_limits(
            session=session, app_id=tenant.app_id, limits={"read": parse("100/minute")}
        )
        await session.commit()

    # When its keys read more than the default app limit (5) allows
    answers = [
        await limited.http.get(READ, headers=h)
        for h in (tenant.send, tenant.send, tenant.admin, tenant.admin, tenant.subscribe)
    ]
    sixth = await limited.http.get(READ, headers=tenant.subscribe)

    # Then the app's own limit applies
    assert [a.status_code for a in answers] == [200] * 5
    assert sixth.status_code == 200


@pytest.mark.parametrize("limits", [{"enabled": False}])
async def test_limits_can_be_turned_off(limited: Limited, tenant: TenantKeys) -> None:
    response = await limited.http.get(READ, headers=tenant.send)

    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers


async def test_unauthenticated_routes_carry_no_fields(limited: Limited) -> None:
    response = await limited.http.get("/health")

    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers


async def test_the_old_per_minute_setting_still_limits_keys(
    settings: Settings, runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given the deprecated server.rate_limit_per_minute
    server = settings.server.model_copy(update={"rate_limit_per_minute": 2})
    configured = settings.model_copy(update={"server": server})
    app = create_app(configured, runtime=runtime)
    runtime.settings = configured
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        answers = [await http.get(READ, headers=tenant.send) for _ in range(3)]

    # Then it is each key's limit, in every route class
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert fields(answers[0])[0] == 2
