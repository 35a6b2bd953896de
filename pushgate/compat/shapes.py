"""What each legacy shape provides, in one registry: its HTTP routes (mounted only when the
shape is enabled), the fields it answers on `GET /health`, and what it does when a process
starts (importing keys a deployment sets in the environment, ...). Queue messages are
recognised in `messages.py`, for every shape, enabled or not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from pushgate.compat import ShapeName
from pushgate.domain.circuit import CircuitReport
from pushgate.runtime import Runtime
from pushgate.settings import Settings


@dataclass(frozen=True, slots=True)
class Backends:
    """What the shapes' health answers read, read once per `/health`: each backend's check
    (`Runtime.health`) and the circuits that are not closed (`Runtime.open_circuits`)."""

    checks: dict[str, str]
    circuits: list[CircuitReport]

    @property
    def answer(self) -> bool:
        """Whether the database, the broker and the key-value store all answer."""
        return all(state == "ok" for state in self.checks.values())


async def backends(runtime: Runtime) -> Backends:
    checks, circuits = await asyncio.gather(runtime.health(), runtime.open_circuits())
    return Backends(checks, circuits)


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
    # Its `/health` fields, when it answered `/health`, from the backends' state.
    health: Callable[[Runtime, Backends], HealthReport] | None = None
    # Run once by every process that serves or works (`serve`, `api`, `worker`) before it
    # starts, whether or not the shape is enabled; idempotent (several processes run it).
    start: Callable[[Runtime], Awaitable[None]] | None = None


def tag(shape: ShapeName) -> str:
    """The OpenAPI tag of a shape's routes."""
    return f"compat: {shape}"


SHAPES: dict[ShapeName, Shape] = {}


def register(shape: Shape) -> None:
    SHAPES[shape.name] = shape
