"""A short-lived, bounded, in-process cache of live API keys: key hash -> who is calling.

Looking a key up costs a SELECT per request; the cache answers repeated keys from memory.

How revocation stays true:
- In this process, at once: `api_keys.revoke` drops the key from every cache of the process
  when its transaction commits (so a request that read the key in between, still seeing it
  live, cannot keep it cached).
- Elsewhere (another API process, or `pushgate keys revoke`): within `ttl` seconds, after
  which an entry is read from the database again.

Unknown keys are never cached, so a guessed key always costs the lookup it costs without a
cache and cannot push live keys out.

The one piece of module state is the weak set of live caches: a revocation committed anywhere
in the process must reach them all, wherever the app that owns each one was built.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pushgate.domain.rates import OwnLimits

# A revocation made by another process takes effect here within this many seconds.
DEFAULT_TTL_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 10_000

_caches: weakref.WeakSet[KeyCache] = weakref.WeakSet()


@dataclass(slots=True)
class CachedKey:
    """A live key as the API needs it. `last_used_at` is advanced by the caller that writes
    it, so the once-a-minute touch is not repeated by every request that sees the entry."""

    key_id: uuid.UUID
    app_id: uuid.UUID
    scope: str
    last_used_at: datetime | None
    loaded: float
    # The key's and its app's own rate limits, when they have any (None: the settings').
    limits: OwnLimits | None = None


class KeyCache:
    """Key hash -> CachedKey for at most `ttl` seconds, at most `max_entries` entries (the
    oldest loaded goes first). Not thread-safe: one event loop uses it."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        # Insertion order is load order: a reloaded entry is re-inserted, so the first one is
        # always the oldest.
        self._entries: dict[str, CachedKey] = {}
        _caches.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_hash: str) -> CachedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if self._clock() - entry.loaded >= self.ttl:
            del self._entries[key_hash]
            return None
        return entry

    def put(
        self,
        key_hash: str,
        *,
        key_id: uuid.UUID,
        app_id: uuid.UUID,
        scope: str,
        last_used_at: datetime | None,
        limits: OwnLimits | None = None,
    ) -> CachedKey:
        entry = CachedKey(key_id, app_id, scope, last_used_at, self._clock(), limits)
        if self.ttl <= 0:
            return entry  # caching is off
        self._entries.pop(key_hash, None)
        while len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = entry
        return entry

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)


def forget_everywhere(key_hash: str) -> None:
    """Drop a key from every cache of this process (it was revoked)."""
    for cache in list(_caches):
        cache.forget(key_hash)
