"""Registers `template_consumer` (imported by `compat.registry`): its queue messages
(`message.py`), its `GET /api/v1/health` (answered like `/health`: the enabled shapes' union)
and its `/health` fields: the ingress queue's name, healthy while every backend answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pushgate.api.deps import RuntimeDep
from pushgate.compat import ShapeName, install, messages, queue_health, shapes
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.template_consumer import message
from pushgate.runtime import Runtime
from pushgate.settings import Settings

NAME: ShapeName = "template_consumer"


def routes(_settings: Settings) -> APIRouter:
    router = APIRouter(route_class=LegacyRoute, tags=[shapes.tag(NAME)], deprecated=True)

    @router.get(
        "/api/v1/health",
        summary="The consumer's health route: the same answer as `/health`",
        # 503 is said here, not declared: it answers the health body, not the error body
        # every declared error has (as `/health` does).
        description="`status` (healthy, or unhealthy with 503 when a backend does not"
        " answer), the enabled shapes' fields, `version` and `checks`.",
        response_class=JSONResponse,
        responses={200: {"description": "The enabled shapes' health fields"}},
    )
    async def health(runtime: RuntimeDep) -> JSONResponse:
        status, body = await install.health(runtime)
        return JSONResponse(body, status_code=status)

    return router


def health(runtime: Runtime, backends: shapes.Backends) -> shapes.HealthReport:
    return shapes.HealthReport(
        backends.answer,
        {"queue": queue_health.ingress_queue(runtime.settings)},
    )


shapes.register(shapes.Shape(NAME, routes=routes, health=health))
messages.register(messages.MessageShape(NAME, message.matches, message.translate))
