"""The KeyValueStore port: a small shared cache with expiry (rate limits, idempotency fast path)."""

from __future__ import annotations

from typing import Protocol


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

    async def incr(self, key: str, *, ttl: float) -> int:
        """Add one and return the new count; the expiry is set when the key is created."""
        ...

    async def ping(self) -> None:
        """Raise when the store is unreachable."""
        ...

    async def close(self) -> None: ...
