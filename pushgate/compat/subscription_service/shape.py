"""Registers shape 4, `subscription_service` (imported by `compat.registry`): its routes, its
`/health` fields (`dependencies`; its own `/health/` is one of its routes) and its start-up
step (end-user sign-in from `JWT_SECRET_KEY`)."""

from __future__ import annotations

from fastapi import APIRouter

from pushgate.compat import shapes
from pushgate.compat.subscription_service import SHAPE, notifications, reports, start, subscriptions
from pushgate.settings import Settings


def routes(_settings: Settings) -> APIRouter:
    router = APIRouter()
    for part in (subscriptions.router, notifications.router, reports.router):
        router.include_router(part)
    return router


shapes.register(
    shapes.Shape(SHAPE, routes=routes, health=reports.health_report, start=start.configure_sign_in)
)
