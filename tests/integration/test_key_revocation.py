"""Revoking an API key while the API has it cached, on both backend profiles: refused at once
when revoked in the API's own process, within the cache's ttl when revoked by another process
(`pushgate keys revoke`). The cache's clock is injected; nothing waits for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from pushgate.api.app import create_app
from pushgate.domain import apikeys
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store import api_keys
from pushgate.store.key_cache import KeyCache
from pushgate.store.tables import APIKey, utcnow
from tests.conftest import TenantKeys

HELLO = {"broadcast": True, "title": "Hello"}
TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(settings: Settings, runtime: Runtime, clock: Clock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, runtime=runtime)
    application.state.key_cache = KeyCache(ttl=TTL, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pushgate.test") as client:
        yield client


def secret(tenant: TenantKeys) -> str:
    return tenant.send["Authorization"].removeprefix("Bearer ")


async def answers(http: httpx.AsyncClient, tenant: TenantKeys) -> list[int]:
    """The statuses of a send (the fast lane) and of a read (a FastAPI route) with the key."""
    sent = await http.post("/v1/notifications", json=HELLO, headers=tenant.send)
    read = await http.get("/v1/webpush/vapid-public-key", headers=tenant.send)
    return [sent.status_code, read.status_code]


async def test_a_key_revoked_in_this_process_is_refused_at_once_though_cached(
    http: httpx.AsyncClient, app: FastAPI, runtime: Runtime, tenant: TenantKeys
) -> None:
    # Given a key the API has just used, so it is cached
    assert await answers(http, tenant) == [202, 200]
    assert len(app.state.key_cache) == 1

    # When it is revoked here (as an admin route or a test would)
    async with runtime.sessions() as session:
        await api_keys.revoke(session=session, prefix=secret(tenant))
        await session.commit()

    # Then the next requests are refused, with no time passing
    assert await answers(http, tenant) == [401, 401]
    response = await http.post("/v1/notifications", json=HELLO, headers=tenant.send)
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_a_key_read_while_its_revocation_commits_is_not_kept(
    http: httpx.AsyncClient, app: FastAPI, runtime: Runtime, tenant: TenantKeys, clock: Clock
) -> None:
    # Given a key used a while ago: its use is recorded, its cache entry has run out
    assert await answers(http, tenant) == [202, 200]
    clock.now += TTL
    assert len(app.state.key_cache) == 1

    # And a revocation made but not committed yet
    async with runtime.sessions() as session:
        await api_keys.revoke(session=session, prefix=secret(tenant))
        # When a request reads the key meanwhile (it still sees it live, and caches it; a read
        # only, so SQLite's writer lock held by the revocation does not stop it)
        read = await http.get("/v1/webpush/vapid-public-key", headers=tenant.send)
        assert read.status_code == 200
        await session.commit()

    # Then once the revocation commits, the cached copy is gone too
    assert await answers(http, tenant) == [401, 401]


async def test_a_key_revoked_by_another_process_is_refused_within_the_cache_ttl(
    http: httpx.AsyncClient, runtime: Runtime, tenant: TenantKeys, clock: Clock
) -> None:
    # Given a cached key
    assert await answers(http, tenant) == [202, 200]

    # When another process revokes it (its write reaches the database, not this process)
    async with runtime.sessions() as session:
        await session.execute(
            update(APIKey)
            .where(APIKey.prefix == apikeys.prefix_of(secret(tenant)))
            .values(revoked_at=utcnow())
        )
        await session.commit()

    # Then this process may still take it until the ttl has passed, and refuses it from then
    clock.now += TTL - 0.01
    assert await answers(http, tenant) == [202, 200]
    clock.now += 0.01
    assert await answers(http, tenant) == [401, 401]


async def test_an_unknown_key_is_never_cached(
    http: httpx.AsyncClient, app: FastAPI, tenant: TenantKeys
) -> None:
    wrong = {"Authorization": "Bearer " + apikeys.generate().secret}

    for _ in range(2):
        response = await http.post("/v1/notifications", json=HELLO, headers=wrong)
        assert response.status_code == 401

    assert len(app.state.key_cache) == 0
