"""Authentication, tenant isolation and the error contract of the HTTP API.

Routes that read a body or fail on purpose do not exist in the product, so a tiny app wired with
the same error handlers and body size limit stands in for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select

from pushgate.api import errors
from pushgate.api.app import create_app
from pushgate.api.limits import BodySizeLimit
from pushgate.domain import apikeys
from pushgate.domain.apikeys import Scope
from pushgate.runtime import Runtime, open_runtime
from pushgate.settings import Settings
from pushgate.store import api_keys, apps
from pushgate.store.tables import APIKey
from tests.conftest import TenantKeys, migrated_sqlite

KEY_URL = "/v1/webpush/vapid-public-key"

TenantFactory = Callable[[str], Awaitable[TenantKeys]]


async def vapid_public_key_of(runtime: Runtime, tenant: TenantKeys) -> str:
    async with runtime.sessions() as session:
        return (await apps.get(session=session, app_id=tenant.app_id)).vapid_public_key


def secret_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, object] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("scope", list(Scope))
async def test_every_scope_may_read_the_vapid_key_with_a_bearer_key(
    client: httpx.AsyncClient, tenant: TenantKeys, runtime: Runtime, scope: Scope
) -> None:
    # When
    response = await client.get(KEY_URL, headers=getattr(tenant, scope.value))

    # Then
    assert response.status_code == 200
    assert response.json() == {"public_key": await vapid_public_key_of(runtime, tenant)}


@pytest.mark.parametrize("scope", list(Scope))
async def test_every_scope_may_read_the_vapid_key_with_x_api_key(
    client: httpx.AsyncClient, tenant: TenantKeys, runtime: Runtime, scope: Scope
) -> None:
    headers = {"X-API-Key": secret_of(getattr(tenant, scope.value))}

    response = await client.get(KEY_URL, headers=headers)

    assert response.status_code == 200
    assert response.json() == {"public_key": await vapid_public_key_of(runtime, tenant)}


async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.get(
        KEY_URL, headers={"Authorization": "bearer " + secret_of(tenant.send)}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
        pytest.param({"X-API-Key": ""}, id="empty-x-api-key"),
    ],
)
async def test_missing_key_is_401_asking_for_one(
    client: httpx.AsyncClient, tenant: TenantKeys, headers: dict[str, str]
) -> None:
    response = await client.get(KEY_URL, headers=headers)

    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("pgk_" + "A" * 43, id="unknown"),
        pytest.param("not-a-key", id="malformed"),
        pytest.param("pgk_short", id="truncated"),
    ],
)
async def test_unknown_or_malformed_key_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, key: str
) -> None:
    response = await client.get(KEY_URL, headers={"Authorization": f"Bearer {key}"})

    assert_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_secret_behind_a_real_prefix_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    real = secret_of(tenant.admin)
    forged = real[: len(apikeys.KEY_MARK) + apikeys.PREFIX_LENGTH] + "B" * 31

    response = await client.get(KEY_URL, headers={"X-API-Key": forged})

    assert_error(response, 401, "invalid_api_key")


async def test_revoked_key_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, runtime: Runtime
) -> None:
    # Given a key that worked, then was revoked
    assert (await client.get(KEY_URL, headers=tenant.send)).status_code == 200
    async with runtime.sessions() as session:
        await api_keys.revoke(
            session=session, prefix=apikeys.prefix_of(secret_of(tenant.send)), app_id=tenant.app_id
        )
        await session.commit()

    # When
    response = await client.get(KEY_URL, headers=tenant.send)

    # Then
    assert_error(response, 401, "invalid_api_key")


async def test_a_key_sees_its_own_apps_vapid_key_only(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, runtime: Runtime
) -> None:
    # Given two apps
    acme = await tenant_factory("acme")
    globex = await tenant_factory("globex")
    acme_key = await vapid_public_key_of(runtime, acme)
    globex_key = await vapid_public_key_of(runtime, globex)
    assert acme_key != globex_key

    # When each asks with its own key
    for_acme = await client.get(KEY_URL, headers=acme.subscribe)
    for_globex = await client.get(KEY_URL, headers=globex.subscribe)

    # Then each sees its own
    assert for_acme.json() == {"public_key": acme_key}
    assert for_globex.json() == {"public_key": globex_key}


async def test_use_of_a_key_is_recorded(
    client: httpx.AsyncClient, tenant: TenantKeys, runtime: Runtime
) -> None:
    async def last_used() -> datetime | None:
        prefix = apikeys.prefix_of(secret_of(tenant.send))
        async with runtime.sessions() as session:
            row = (
                await session.execute(select(APIKey).where(APIKey.prefix == prefix))
            ).scalar_one()
        return row.last_used_at

    # Given a key never used
    assert await last_used() is None

    # When
    response = await client.get(KEY_URL, headers=tenant.send)

    # Then
    assert response.status_code == 200
    assert await last_used() is not None


# --- body size, validation and other failures ------------------------------------------------


async def test_oversized_body_with_content_length_is_413(
    client: httpx.AsyncClient, settings: Settings, tenant: TenantKeys
) -> None:
    # Given a body one byte over the configured limit, announced by Content-Length
    body = b"x" * (settings.server.max_body_bytes + 1)

    # When
    response = await client.post(KEY_URL, content=body, headers=tenant.send)

    # Then it is refused before any route runs
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": settings.server.max_body_bytes}


class Item(BaseModel):
    name: str
    count: int


LIMIT = 2048


@pytest.fixture
async def tiny() -> AsyncIterator[httpx.AsyncClient]:
    """An app with a route that reads a JSON body and one that fails, wired like the real one."""
    app = FastAPI()
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)

    @app.post("/items")
    async def create_item(item: Item) -> Item:
        return item

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    # A real server answers the 500 and then logs the exception; do the same here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://tiny.test") as http:
        yield http


async def test_body_within_the_limit_is_read(tiny: httpx.AsyncClient) -> None:
    response = await tiny.post("/items", json={"name": "x" * (LIMIT - 100), "count": 1})

    assert response.status_code == 200


async def test_oversized_streamed_body_is_413(tiny: httpx.AsyncClient) -> None:
    # Given a chunked body without Content-Length, growing past the limit
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'", "count": 1}'

    # When
    response = await tiny.post(
        "/items", content=chunks(), headers={"Content-Type": "application/json"}
    )

    # Then
    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": LIMIT}


async def test_oversized_body_with_content_length_is_413_before_reading(
    tiny: httpx.AsyncClient,
) -> None:
    response = await tiny.post(
        "/items", content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"}
    )

    error = assert_error(response, 413, "payload_too_large")
    assert error["details"] == {"max_bytes": LIMIT}


async def test_malformed_json_is_422_naming_the_body(tiny: httpx.AsyncClient) -> None:
    response = await tiny.post(
        "/items", content=b'{"name": "x", ', headers={"Content-Type": "application/json"}
    )

    error = assert_error(response, 422, "invalid_input")
    assert isinstance(error["details"], dict)
    assert error["details"]["field"] == "body"


async def test_invalid_field_is_422_naming_the_field(tiny: httpx.AsyncClient) -> None:
    response = await tiny.post("/items", json={"name": "x", "count": "many"})

    error = assert_error(response, 422, "invalid_input")
    assert isinstance(error["details"], dict)
    assert error["details"]["field"] == "count"
    assert "count" in str(error["message"])


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")

    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


async def test_unhandled_exception_is_json_500_without_a_trace(tiny: httpx.AsyncClient) -> None:
    response = await tiny.get("/boom")

    assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


# --- readiness -------------------------------------------------------------------------------


@pytest.fixture
def quick_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pushgate.runtime.HEALTH_TIMEOUT", 2.0)


async def readiness(settings: Settings) -> httpx.Response:
    # A backend that went away after start-up: starting the broker would already need it.
    runtime = await open_runtime(settings, start_broker=False)
    app = create_app(settings, runtime=runtime)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
            ) as http,
        ):
            return await http.get("/health/ready")
    finally:
        await runtime.close()


@pytest.mark.usefixtures("quick_health")
async def test_readiness_is_503_naming_an_unreachable_database(
    make_settings: Callable[..., Settings],
) -> None:
    # Given a database nobody listens for
    settings = make_settings(database={"url": "postgresql://postgres:hunter2@127.0.0.1:1/x"})

    # When
    response = await readiness(settings)

    # Then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["error"]["code"] == "backend_unavailable"
    assert "database" in body["error"]["message"]
    assert body["checks"]["database"] != "ok"
    assert body["checks"]["kv"] == "ok"
    assert "hunter2" not in response.text


@pytest.mark.usefixtures("quick_health")
async def test_readiness_is_503_naming_an_unreachable_redis(
    make_settings: Callable[..., Settings], tmp_path
) -> None:
    # Given a reachable database and a Redis nobody listens for
    settings = make_settings(
        database={"url": await migrated_sqlite(tmp_path)},
        redis={"url": "redis://:hunter2@127.0.0.1:1/0"},
    )

    # When
    response = await readiness(settings)

    # Then
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "backend_unavailable"
    assert "kv" in body["error"]["message"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["kv"] != "ok"
    assert "hunter2" not in response.text
