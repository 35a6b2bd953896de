"""In-process KeyValueStore for the embedded profile: a dict with lazy expiry."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from pushgate.kv.base import Bucket, KeyValueStore, SlotRequest, Slots, Taken

SWEEP_EVERY = 1024


class MemoryKeyValueStore(KeyValueStore):
    """Correct for one process; the embedded profile runs API and worker in one process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._clock = clock
        self._writes = 0
        # key -> (tokens, at, full_at): a bucket is dropped once full (absent reads as full).
        self._buckets: dict[str, tuple[float, float, float]] = {}
        # key -> the schedule's next free slot (wall-clock seconds).
        self._schedules: dict[str, float] = {}
        self._rate_writes = 0

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

    async def scan(self, prefix: str) -> dict[str, bytes]:
        found = {}
        for key in [k for k in self._data if k.startswith(prefix)]:
            value = self._live(key)
            if value is not None:
                found[key] = value
        return found

    async def incr(self, key: str, *, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._store(key, b"1", ttl)
            return 1
        count = int(current) + 1
        self._data[key] = (str(count).encode(), self._data[key][1])
        return count

    async def take(self, buckets: Sequence[Bucket], *, now: float, want: int = 1) -> Taken:
        levels = [refill(self._buckets.get(b.key), b, now) for b in buckets]
        granted = grant(levels, want)
        levels = [level - granted for level in levels]
        for bucket, level in zip(buckets, levels, strict=True):
            self._buckets[bucket.key] = (level, now, now + (bucket.capacity - level) / bucket.rate)
        self._sweep_rates(now)
        return Taken(granted, levels)

    async def reserve(
        self, requests: Sequence[SlotRequest], *, now: float, horizon: float
    ) -> list[Slots]:
        found = []
        for request in requests:
            slots = schedule(self._schedules.get(request.key), request, now, horizon)
            self._schedules[request.key] = slots.next_free
            found.append(slots)
        self._sweep_rates(now)
        return found

    def _sweep_rates(self, now: float) -> None:
        self._rate_writes += 1
        if self._rate_writes % SWEEP_EVERY:
            return
        # A full bucket, or a schedule whose next slot is past, reads the same as none.
        for key in [k for k, (_, _, full) in self._buckets.items() if full <= now]:
            del self._buckets[key]
        for key in [k for k, free in self._schedules.items() if free <= now - 3600]:
            del self._schedules[key]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()
        self._buckets.clear()
        self._schedules.clear()


# The two rate algorithms, as the Redis store's Lua scripts run them (kv/redis.py).


def refill(state: tuple[float, float, float] | None, bucket: Bucket, now: float) -> float:
    """A bucket's tokens at `now`: full when absent; never fuller than its capacity. A clock
    that went backwards (another process's) adds nothing."""
    if state is None:
        return bucket.capacity
    tokens, at, _ = state
    elapsed = now - at
    return min(bucket.capacity, tokens + elapsed * bucket.rate) if elapsed > 0 else tokens


def grant(levels: list[float], want: int) -> int:
    """Tokens to take from every bucket: up to `want`, no more than the emptiest one holds."""
    return max(0, min(want, math.floor(min(levels, default=want))))


def schedule(free: float | None, request: SlotRequest, now: float, horizon: float) -> Slots:
    """The slots granted on a schedule whose next free slot is `free` (None: never used)."""
    start = now - request.burst if free is None else max(free, now - request.burst)
    room = now + horizon - start
    fits = 0 if room < 0 else math.floor(room / request.interval + 1e-9) + 1
    granted = max(0, min(request.count, fits))
    return Slots(granted, start, start + granted * request.interval)
