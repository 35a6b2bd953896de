"""The KeyValueStore port: a small shared cache with expiry (rate limits, idempotency fast path),
and the two atomic rate operations: token buckets for requests coming in, send slots for
deliveries going out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Bucket:
    """A token bucket: `capacity` tokens when full, refilled at `rate` tokens a second. An
    absent (or expired) bucket is full."""

    key: str
    capacity: float
    rate: float


@dataclass(frozen=True, slots=True)
class Taken:
    """What `take` did: `granted` tokens taken from every bucket (0: none, some bucket had not
    one), and each bucket's tokens after the call, in the order given."""

    granted: int
    tokens: list[float]

    @property
    def allowed(self) -> bool:
        return self.granted > 0


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """Ask for `count` send slots `interval` seconds apart on one schedule (one credential).
    `burst` seconds: how far the schedule may lag behind now, so that a schedule idle for a
    while lets up to `burst / interval` slots go at once."""

    key: str
    count: int
    interval: float
    burst: float = 0.0


@dataclass(frozen=True, slots=True)
class Slots:
    """The slots granted: `granted` of them (no more than fit before `now + horizon`), the first
    at `first`, the others each `interval` later; `next_free` is when the schedule's next slot
    is, after these."""

    granted: int
    first: float
    next_free: float


class KeyValueStore(Protocol):
    """Bytes under string keys with optional expiry. Keys are namespaced by the implementation."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store a value, replacing any; `ttl` in seconds."""
        ...

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only if absent. Returns True when this call stored it (a lock or a claim)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def scan(self, prefix: str) -> dict[str, bytes]:
        """Every live key that starts with `prefix`, with its value. For small families of
        keys that each process writes its own of (the workers' heartbeats), not for hot paths."""
        ...

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one and return the new count; the expiry is set when the key is created."""
        ...

    async def take(self, buckets: Sequence[Bucket], *, now: float, want: int = 1) -> Taken:
        """Take tokens from every bucket, atomically: as many as each has, up to `want`, the
        same number from all of them; none when one has not a whole token. One round trip
        whatever the number of buckets.

        Args:
            buckets: refilled first for the time since their last take.
            now: wall-clock seconds (every process sharing the buckets must agree on it).
            want: how many tokens the caller would like (a process may take a few requests'
                worth at once).
        """
        ...

    async def reserve(
        self, requests: Sequence[SlotRequest], *, now: float, horizon: float
    ) -> list[Slots]:
        """Reserve send slots on each request's schedule, atomically per schedule, in one round
        trip: as many of `count` as fall before `now + horizon`, consecutive, none earlier than
        the schedule's next free slot (or `now - burst`, if that is later).

        Args:
            now: wall-clock seconds.
            horizon: how far ahead a slot may be granted.

        Returns:
            One `Slots` per request, in the order given.
        """
        ...

    async def ping(self) -> None:
        """Raise when the store is unreachable."""
        ...

    async def close(self) -> None: ...
