"""Response bodies of the queue statistics and the circuit breakers (the dashboard reads
these shapes as they are)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class QueuePublic(BaseModel):
    name: str
    depth: int = Field(description="Messages ready now (not delayed, not held by a consumer).")
    consumers: int = Field(description="Consumers of the live workers (their heartbeats).")
    in_flight: int = Field(description="Messages handed to handlers and not yet settled.")
    rate_per_second: float = Field(description="Messages settled per second, the last minute.")


class QueuesPublic(BaseModel):
    queues: list[QueuePublic]


class CircuitPublic(BaseModel):
    provider: str
    origin: str
    state: Literal["closed", "open", "half_open", "rate_limited"]
    retry_in: float = Field(description="Seconds until a call may be tried (0: now).")


class CircuitsPublic(BaseModel):
    circuits: list[CircuitPublic]
