"""In-process KeyValueStore for the embedded profile: a dict with lazy expiry."""

from __future__ import annotations

import time
from collections.abc import Callable

from pushgate.kv.base import KeyValueStore

SWEEP_EVERY = 1024


class MemoryKeyValueStore(KeyValueStore):
    """Correct for one process; the embedded profile runs API and worker in one process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._clock = clock
        self._writes = 0

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        return value

    def _store(self, key: str, value: bytes, ttl: float | None) -> None:
        self._data[key] = (value, None if ttl is None else self._clock() + ttl)
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            # Bound memory: expired keys that are never read again would otherwise stay forever.
            now = self._clock()
            for k in [k for k, (_, e) in self._data.items() if e is not None and e <= now]:
                del self._data[k]

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._store(key, value, ttl)

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._store(key, value, ttl)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, *, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._store(key, b"1", ttl)
            return 1
        count = int(current) + 1
        self._data[key] = (str(count).encode(), self._data[key][1])
        return count

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
