"""What each legacy shape provides, in one registry: its HTTP routes (mounted only when the
shape is enabled), the fields it answers on `GET /health`, and what it does when a process
starts (importing keys a deployment sets in the environment, ...). Queue messages are
recognised in `messages.py`, for every shape, enabled or not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from pushgate.compat import ShapeName
from pushgate.runtime import Runtime
from pushgate.settings import Settings


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One shape's `/health` answer: healthy or not, and the fields it answers with."""

    healthy: bool
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Shape:
    name: ShapeName
    # The shape's routes for these settings (their own tag, marked deprecated).
    routes: Callable[[Settings], APIRouter] | None = None
    # Its `/health` fields, when it answered `/health`.
    health: Callable[[Runtime], Awaitable[HealthReport]] | None = None
    # Run once by every process that serves or works (`serve`, `api`, `worker`) before it
    # starts, whether or not the shape is enabled; idempotent (several processes run it).
    start: Callable[[Runtime], Awaitable[None]] | None = None


def tag(shape: ShapeName) -> str:
    """The OpenAPI tag of a shape's routes."""
    return f"compat: {shape}"


SHAPES: dict[ShapeName, Shape] = {}


def register(shape: Shape) -> None:
    SHAPES[shape.name] = shape
