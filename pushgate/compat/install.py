"""Mounting the legacy shapes into the API: the routes of the enabled shapes, and `GET
/health` answered in their shape (the union of their fields, plus pushgate's own) when one of
them answers it. `/health/ready` keeps pushgate's shape for orchestrators."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pushgate import __version__
from pushgate.compat import registry
from pushgate.compat.shapes import SHAPES, backends
from pushgate.errors import ConfigError, NotFoundError
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store import apps


def install(app: FastAPI, settings: Settings) -> None:
    """Include the routes of every enabled shape. Called before pushgate's own routers, so a
    legacy path that is also a pushgate path (`/health`) is answered in the legacy shape.
    With none enabled the shapes' modules are not even imported: the API is the one it was."""
    if not settings.compat.enabled:
        return
    registry.load()
    for name in settings.compat.enabled:
        shape = SHAPES[name]
        if shape.routes is not None:
            app.include_router(shape.routes(settings))


def answers_health(settings: Settings) -> bool:
    """Whether `GET /health` answers in a legacy shape."""
    if not settings.compat.enabled:
        return False
    registry.load()
    return any(SHAPES[name].health is not None for name in settings.compat.enabled)


async def health(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    """`GET /health` in the enabled shapes' union: `status` healthy only when every shape is,
    each shape's fields (the first shape's value where two name the same field), and
    pushgate's own `version` and dependency `checks`. 503 when unhealthy."""
    state = await backends(runtime)
    checks = [SHAPES[n].health for n in runtime.settings.compat.enabled]
    reports = [check(runtime, state) for check in checks if check is not None]
    healthy = all(r.healthy for r in reports)
    body: dict[str, Any] = {}
    for report in reports:
        body = {**report.fields, **body}
    body["status"] = "healthy" if healthy else "unhealthy"
    body["version"] = __version__
    body["checks"] = state.checks
    return (200 if healthy else 503), body


async def start(runtime: Runtime) -> None:
    """Every shape's start-up step (see `Shape.start`), in registry order, after checking that
    the static key's app exists (a process refuses to start rather than answer every legacy
    call with an error that blames the caller).

    Raises:
        ConfigError: the static key is on and `compat.static_key_app` names no app.
    """
    settings = runtime.settings.compat
    if settings.api_key is not None and settings.static_key:
        async with runtime.sessions() as session:
            try:
                await apps.get_by_name(session=session, name=settings.static_key_app)
            except NotFoundError:
                name = settings.static_key_app
                raise ConfigError(
                    f"invalid setting PUSHGATE_COMPAT__STATIC_KEY_APP: no app named {name!r}"
                    f" (create it with `pushgate apps create {name}`)"
                ) from None
    registry.load()
    for shape in SHAPES.values():
        if shape.start is not None:
            await shape.start(runtime)
