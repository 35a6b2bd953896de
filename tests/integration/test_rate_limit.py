"""Per-key rate limits: 429 with Retry-After once a key used its requests of the minute."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from pushgate.api import ratelimit
from pushgate.api.app import create_app
from pushgate.errors import RateLimitedError
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from tests.conftest import TenantKeys

URL = "/v1/webpush/vapid-public-key"


@pytest.fixture
async def limited(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    server = settings.server.model_copy(update={"rate_limit_per_minute": 3})
    configured = settings.model_copy(update={"server": server})
    runtime.settings = configured
    app = create_app(configured, runtime=runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


async def test_key_over_its_limit_gets_429_with_retry_after(
    limited: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a limit of 3 requests a minute, used up by one key
    for _ in range(3):
        assert (await limited.get(URL, headers=tenant.send)).status_code == 200

    # When it asks once more
    response = await limited.get(URL, headers=tenant.send)

    # Then it is told to wait, in JSON with a stable code
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # And another key is counted on its own
    assert (await limited.get(URL, headers=tenant.admin)).status_code == 200


async def test_window_resets_after_the_minute() -> None:
    kv = MemoryKeyValueStore()
    key = uuid.uuid4()
    now = [120.0]
    for _ in range(2):
        await ratelimit.check(kv, key, per_minute=2, clock=lambda: now[0])
    with pytest.raises(RateLimitedError, match="requests a minute") as caught:
        await ratelimit.check(kv, key, per_minute=2, clock=lambda: now[0] + 59)
    assert caught.value.headers["Retry-After"] == "1"
    now[0] = 180.0
    await ratelimit.check(kv, key, per_minute=2, clock=lambda: now[0])
