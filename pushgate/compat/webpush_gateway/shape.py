"""Registers the Web Push gateway: its routes, `/health` fields, start step and messages."""

from __future__ import annotations

from datetime import UTC, datetime

from pushgate.compat import messages, shapes
from pushgate.compat.webpush_gateway import messages as gateway_messages
from pushgate.compat.webpush_gateway import routes, start
from pushgate.runtime import Runtime


def health(_runtime: Runtime, _backends: shapes.Backends) -> shapes.HealthReport:
    """The old gateway's liveness answer (pushgate adds `version` and its `checks`)."""
    return shapes.HealthReport(
        True, {"service": "push_service", "timestamp": datetime.now(UTC).isoformat()}
    )


shapes.register(
    shapes.Shape("webpush_gateway", routes=routes.routes, health=health, start=start.start)
)
messages.register(
    messages.MessageShape(
        "webpush_gateway", matches=gateway_messages.matches, translate=gateway_messages.translate
    )
)
