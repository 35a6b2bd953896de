"""The API key cache alone: how long an entry lives, how many are kept, and that forgetting a
key reaches every cache of the process. The clock is injected, never waited for."""

from __future__ import annotations

import uuid

from pushgate.store.key_cache import KeyCache, forget_everywhere


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def put(cache: KeyCache, key_hash: str) -> None:
    cache.put(key_hash, key_id=uuid.uuid4(), app_id=uuid.uuid4(), scope="send", last_used_at=None)


def test_an_entry_is_served_until_its_ttl_then_read_again() -> None:
    # Given
    clock = Clock()
    cache = KeyCache(ttl=5.0, clock=clock)
    put(cache, "h1")

    # Then it is served just before the ttl, and gone at it
    clock.now += 4.999
    assert cache.get("h1") is not None
    clock.now += 0.001
    assert cache.get("h1") is None
    assert len(cache) == 0


def test_the_cache_keeps_at_most_its_size_dropping_the_oldest_loaded() -> None:
    clock = Clock()
    cache = KeyCache(ttl=60.0, max_entries=3, clock=clock)
    for name in ("a", "b", "c"):
        put(cache, name)
        clock.now += 1
    # A reload moves "a" to the young end.
    put(cache, "a")

    put(cache, "d")

    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(n) is not None for n in ("a", "c", "d")] == [True, True, True]


def test_forgetting_a_key_reaches_every_cache_of_the_process() -> None:
    first, second = KeyCache(), KeyCache()
    put(first, "revoked")
    put(second, "revoked")
    put(second, "other")

    forget_everywhere("revoked")

    assert first.get("revoked") is None
    assert second.get("revoked") is None
    assert second.get("other") is not None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = KeyCache(ttl=0)
    put(cache, "h")

    assert cache.get("h") is None
    assert len(cache) == 0
