"""The layer every legacy shape stands on (pushgate/compat): a shape's routes answer only when
it is enabled, authenticate with pushgate keys or the static key of the shapes that accept it,
answer refusals in the legacy style with pushgate's error object beside it, and `/health`
answers in the enabled shapes' union. Driven through stand-in shapes, so the layer's rules are
proven apart from any one shape's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pushgate.api.deps import Caller
from pushgate.compat import install, registry
from pushgate.compat.auth import legacy_caller, static_key_id
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.shapes import SHAPES, Backends, HealthReport, Shape, tag
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.errors import ConfigError, NotFoundError
from pushgate.runtime import Runtime, open_runtime
from pushgate.settings import Settings, load_settings
from tests.conftest import make_tenant, migrated_sqlite, serving

STATIC_KEY = "legacy-static-key-0123456789"
Sender = Annotated[
    Caller, Depends(legacy_caller("fcm_gateway", Permission.NOTIFICATIONS_SEND, RouteClass.SEND))
]


class Echo(BaseModel):
    title: str = Field(min_length=1)


def _routes(_settings: Settings) -> APIRouter:
    router = APIRouter(route_class=LegacyRoute, tags=[tag("fcm_gateway")], deprecated=True)

    @router.post("/legacy/echo")
    async def echo(body: Echo, caller: Sender) -> dict[str, Any]:
        if body.title == "missing":
            raise NotFoundError("no such thing", code="thing_not_found")
        return {"app_id": str(caller.app_id), "scope": caller.scope.value, "title": body.title}

    return router


def _healthy(_runtime: Runtime, _backends: Backends) -> HealthReport:
    return HealthReport(True, {"service": "push_service", "status": "ignored"})


def _unhealthy(_runtime: Runtime, _backends: Backends) -> HealthReport:
    return HealthReport(False, {"queue": "push.queue", "service": "not this one"})


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two stand-in shapes under real names; what they started is recorded."""
    registry.load()  # the real shapes first, so they cannot replace the stand-ins
    started: list[str] = []

    async def start(_runtime: Runtime) -> None:
        started.append("fcm_gateway")

    monkeypatch.setitem(
        SHAPES, "fcm_gateway", Shape("fcm_gateway", routes=_routes, health=_healthy, start=start)
    )
    monkeypatch.setitem(SHAPES, "flask_consumer", Shape("flask_consumer", health=_unhealthy))
    return started


@pytest.fixture
def compat_app(
    tmp_path: Path, stand_ins: list[str]
) -> Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Runtime]]]:
    @asynccontextmanager
    async def make(**compat: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
        settings = load_settings(
            data_dir=tmp_path / "data",
            database={"url": await migrated_sqlite(tmp_path)},
            compat=compat,
        )
        runtime = await open_runtime(settings)
        try:
            async with serving(settings, runtime) as http:
                yield http, runtime
        finally:
            await runtime.close()

    return make


def test_settings_read_shapes_and_the_static_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATE_COMPAT__ENABLED", "fcm_gateway, webpush_gateway,fcm_gateway")
    monkeypatch.setenv("API_KEY", "s3cret-static")
    monkeypatch.setenv("PUSHGATE_COMPAT__STATIC_KEY", "fcm_gateway")
    compat = load_settings().compat
    assert compat.enabled == ["fcm_gateway", "webpush_gateway"]
    assert compat.static_key_for("fcm_gateway") is not None
    assert compat.static_key_for("webpush_gateway") is None
    monkeypatch.setenv("API_KEY", "  ")
    assert load_settings().compat.api_key is None
    monkeypatch.setenv("PUSHGATE_COMPAT__ENABLED", "fcm_gateway,gorush")
    with pytest.raises(ConfigError, match="PUSHGATE_COMPAT__ENABLED"):
        load_settings()


async def test_routes_answer_only_when_their_shape_is_enabled(compat_app: Any) -> None:
    async with compat_app() as (http, runtime):
        keys = await make_tenant(runtime, "acme")
        answer = await http.post("/legacy/echo", json={"title": "hi"}, headers=keys.send)
        assert answer.status_code == 404
        assert "/legacy/echo" not in (await http.get("/openapi.json")).json()["paths"]


async def test_keys_scopes_and_the_static_key(compat_app: Any) -> None:
    async with compat_app(
        enabled=["fcm_gateway"], api_key=STATIC_KEY, static_key=["fcm_gateway"]
    ) as (http, runtime):
        default = await make_tenant(runtime, "default")
        acme = await make_tenant(runtime, "acme")
        body = {"title": "hi"}

        answer = await http.post("/legacy/echo", json=body, headers=acme.send)
        assert answer.status_code == 200, answer.text
        assert answer.json()["app_id"] == str(acme.app_id)

        answer = await http.post("/legacy/echo", json=body, headers={"X-API-Key": STATIC_KEY})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"app_id": str(default.app_id), "scope": "send", "title": "hi"}
        assert answer.headers["RateLimit-Limit"]  # counted like any key

        answer = await http.post("/legacy/echo", json=body, headers=acme.subscribe)
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "insufficient_scope"
        assert answer.json()["detail"] == answer.json()["error"]["message"]

        for headers in ({}, {"Authorization": f"Bearer {STATIC_KEY}x"}):
            answer = await http.post("/legacy/echo", json=body, headers=headers)
            assert answer.status_code == 401
            assert answer.json()["error"]["code"] in ("unauthenticated", "invalid_api_key")
            assert answer.json()["detail"] == answer.json()["error"]["message"]
    assert static_key_id("fcm_gateway") != static_key_id("webpush_gateway")


async def test_the_static_key_only_on_the_shapes_that_take_it(compat_app: Any) -> None:
    async with compat_app(
        enabled=["fcm_gateway"], api_key=STATIC_KEY, static_key=["webpush_gateway"]
    ) as (http, runtime):
        await make_tenant(runtime, "default")
        answer = await http.post(
            "/legacy/echo", json={"title": "hi"}, headers={"X-API-Key": STATIC_KEY}
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"


async def test_refusals_in_the_legacy_style_with_pushgate_codes(compat_app: Any) -> None:
    async with compat_app(enabled=["fcm_gateway"]) as (http, runtime):
        keys = await make_tenant(runtime, "acme")
        answer = await http.post("/legacy/echo", json={"title": ""}, headers=keys.send)
        assert answer.status_code == 422
        body = answer.json()
        assert body["detail"][0]["loc"] == ["body", "title"]
        assert body["detail"][0]["type"] == "string_too_short"
        assert body["error"]["code"] == "invalid_input"
        assert body["error"]["details"]["field"] == "title"

        answer = await http.post("/legacy/echo", content=b"{not json", headers=keys.send)
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "invalid_input"

        answer = await http.post("/legacy/echo", json={"title": "missing"}, headers=keys.send)
        assert answer.status_code == 404
        assert answer.json() == {
            "detail": "no such thing",
            "error": {"code": "thing_not_found", "message": "no such thing", "details": None},
        }


async def test_openapi_lists_legacy_routes_deprecated_under_their_tag(compat_app: Any) -> None:
    async with compat_app(enabled=["fcm_gateway"]) as (http, _runtime):
        operation = (await http.get("/openapi.json")).json()["paths"]["/legacy/echo"]["post"]
        assert operation["tags"] == ["compat: fcm_gateway"]
        assert operation["deprecated"] is True
        assert {"401", "403", "422", "429"} <= set(operation["responses"])


async def test_health_answers_in_the_union_of_enabled_shapes(compat_app: Any) -> None:
    async with compat_app(enabled=["fcm_gateway"]) as (http, _runtime):
        answer = await http.get("/health")
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "healthy"
        assert body["service"] == "push_service"
        assert body["version"]
        assert body["checks"] == {"database": "ok", "broker": "ok", "kv": "ok"}
        ready = await http.get("/health/ready")
        assert ready.json()["status"] == "ok"  # pushgate's own shape for orchestrators

    async with compat_app(enabled=["fcm_gateway", "flask_consumer"]) as (http, _runtime):
        answer = await http.get("/health")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "unhealthy"
        # The union, the first enabled shape's value where two name the same field.
        assert body["service"] == "push_service"
        assert body["queue"] == "push.queue"


async def test_health_keeps_pushgate_shape_without_legacy_shapes(compat_app: Any) -> None:
    async with compat_app() as (http, _runtime):
        assert (await http.get("/health")).json().keys() == {"status", "version"}


async def test_every_shape_start_hook_runs_enabled_or_not(
    compat_app: Any, stand_ins: list[str]
) -> None:
    async with compat_app() as (_http, runtime):
        await install.start(runtime)
        await install.start(runtime)
    assert stand_ins == ["fcm_gateway", "fcm_gateway"]


async def test_a_static_key_for_an_app_that_does_not_exist_stops_the_start(
    compat_app: Any,
) -> None:
    async with compat_app(
        api_key=STATIC_KEY, static_key=["fcm_gateway"], static_key_app="nosuch"
    ) as (_http, runtime):
        with pytest.raises(ConfigError, match="STATIC_KEY_APP: no app named 'nosuch'"):
            await install.start(runtime)
        await make_tenant(runtime, "nosuch")
        await install.start(runtime)
