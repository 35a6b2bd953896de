"""Registers `flask_consumer` (imported by `compat.registry`): its queue messages
(`message.py`) and its `/health` fields, `{"status", "queue", "breaker_state"}`: the ingress
queue's name and the worst state of pushgate's circuit breakers (those of this process and
those the workers share), healthy while every backend answers."""

from __future__ import annotations

from pushgate.compat import ShapeName, messages, queue_health, shapes
from pushgate.compat.flask_consumer import message
from pushgate.runtime import Runtime

NAME: ShapeName = "flask_consumer"


def health(runtime: Runtime, backends: shapes.Backends) -> shapes.HealthReport:
    return shapes.HealthReport(
        backends.answer,
        {
            "queue": queue_health.ingress_queue(runtime.settings),
            "breaker_state": queue_health.worst_state(backends.circuits),
        },
    )


shapes.register(shapes.Shape(NAME, health=health))
messages.register(messages.MessageShape(NAME, message.matches, message.translate))
