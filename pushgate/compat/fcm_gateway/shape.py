"""Registers shape 1, `fcm_gateway` (imported by `pushgate.compat.registry`)."""

from __future__ import annotations

from fastapi import APIRouter

from pushgate.compat import shapes
from pushgate.compat.fcm_gateway import health, sends, tokens
from pushgate.settings import Settings


def routes(_settings: Settings) -> APIRouter:
    router = APIRouter()
    router.include_router(sends.router)
    router.include_router(tokens.router)
    return router


shapes.register(shapes.Shape("fcm_gateway", routes=routes, health=health.report))
