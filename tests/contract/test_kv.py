"""The KeyValueStore contract, run against the in-memory store and Redis.

Expiry is checked with an injected clock on the memory store; Redis keeps real time, so there a
short ttl is polled for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from pushgate.kv.base import Bucket, KeyValueStore, SlotRequest, Slots, Taken
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.kv.redis import RedisKeyValueStore

SHORT_TTL = 0.2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A store plus a way to let `seconds` pass for it."""

    kv: KeyValueStore
    elapse: Callable[[float], Awaitable[None]]
    # The ttl to use when a test waits for expiry: any value works with the fake clock.
    ttl: float


async def _poll_until_gone(kv: KeyValueStore, key: str, limit: float = 3.0) -> None:
    # Redis expires on its own clock; poll briefly instead of guessing a sleep.
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await kv.get(key) is None:
            return
        await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def harness(request: pytest.FixtureRequest, unique_prefix: str) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        memory = MemoryKeyValueStore(clock=clock)
        yield Harness(kv=memory, elapse=advance, ttl=30.0)
        await memory.close()
        return

    url: str = request.getfixturevalue("redis_url")
    store = RedisKeyValueStore(url, prefix=unique_prefix)

    async def wait(seconds: float) -> None:
        await asyncio.sleep(seconds)

    yield Harness(kv=store, elapse=wait, ttl=SHORT_TTL)
    await store.close()
    # Leave nothing behind in the shared server.
    admin = Redis.from_url(url)
    keys = [key async for key in admin.scan_iter(match=f"{unique_prefix}*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()


async def test_missing_key_reads_as_none(harness: Harness) -> None:
    assert await harness.kv.get("absent") is None


async def test_set_then_get_returns_the_bytes(harness: Harness) -> None:
    await harness.kv.set("greeting", b"hello \x00\xff")

    assert await harness.kv.get("greeting") == b"hello \x00\xff"


async def test_set_replaces_the_value(harness: Harness) -> None:
    await harness.kv.set("k", b"one")
    await harness.kv.set("k", b"two")

    assert await harness.kv.get("k") == b"two"


async def test_add_stores_only_once(harness: Harness) -> None:
    # When two callers claim the same key
    first = await harness.kv.add("claim", b"worker-1")
    second = await harness.kv.add("claim", b"worker-2")

    # Then only the first wins, and its value stays
    assert (first, second) == (True, False)
    assert await harness.kv.get("claim") == b"worker-1"


async def test_add_succeeds_again_after_delete(harness: Harness) -> None:
    await harness.kv.add("lock", b"a")
    await harness.kv.delete("lock")

    assert await harness.kv.add("lock", b"b") is True
    assert await harness.kv.get("lock") == b"b"


async def test_delete_removes_and_tolerates_absent_keys(harness: Harness) -> None:
    await harness.kv.set("k", b"v")

    await harness.kv.delete("k")
    await harness.kv.delete("never-there")

    assert await harness.kv.get("k") is None


async def test_scan_finds_live_keys_by_prefix_only(harness: Harness) -> None:
    # Given two heartbeats, one that expires, and a key of another family
    await harness.kv.set("workers/a", b"1")
    await harness.kv.set("workers/b", b"2", ttl=harness.ttl)
    await harness.kv.set("workers*/glob", b"3")
    await harness.kv.set("circuits", b"4")
    assert await harness.kv.scan("workers/") == {"workers/a": b"1", "workers/b": b"2"}

    # When one expires, and one is deleted
    await harness.elapse(harness.ttl * 2)
    await _poll_until_gone(harness.kv, "workers/b")
    await harness.kv.delete("workers/a")

    # Then neither is found; a prefix with a glob character matches itself only
    assert await harness.kv.scan("workers/") == {}
    assert await harness.kv.scan("workers*") == {"workers*/glob": b"3"}


async def test_set_with_ttl_expires(harness: Harness) -> None:
    # Given
    await harness.kv.set("session", b"v", ttl=harness.ttl)
    assert await harness.kv.get("session") == b"v"

    # When the ttl passes
    await harness.elapse(harness.ttl)
    await _poll_until_gone(harness.kv, "session")

    # Then
    assert await harness.kv.get("session") is None


async def test_set_without_ttl_does_not_expire(harness: Harness) -> None:
    await harness.kv.set("forever", b"v")

    await harness.elapse(harness.ttl * 2)

    assert await harness.kv.get("forever") == b"v"


async def test_add_is_possible_again_once_the_claim_expires(harness: Harness) -> None:
    # Given a claim with a ttl
    assert await harness.kv.add("claim", b"old", ttl=harness.ttl)

    # When it expires
    await harness.elapse(harness.ttl)
    await _poll_until_gone(harness.kv, "claim")

    # Then a new claim wins
    assert await harness.kv.add("claim", b"new", ttl=harness.ttl) is True
    assert await harness.kv.get("claim") == b"new"


async def test_incr_counts_from_one(harness: Harness) -> None:
    counts = [await harness.kv.incr("hits", ttl=60) for _ in range(3)]

    assert counts == [1, 2, 3]


async def test_incr_keys_count_independently(harness: Harness) -> None:
    await harness.kv.incr("a", ttl=60)
    await harness.kv.incr("a", ttl=60)

    assert await harness.kv.incr("b", ttl=60) == 1


async def test_incr_window_is_fixed_from_the_first_hit(harness: Harness) -> None:
    # Given a rate-limit window opened by a first hit
    window = harness.ttl * 5
    assert await harness.kv.incr("rate", ttl=window) == 1

    # When more hits come half-way through the window
    await harness.elapse(window * 0.5)
    counts = [await harness.kv.incr("rate", ttl=window) for _ in range(2)]

    # Then the count keeps rising...
    assert counts == [2, 3]

    # ...and the window closes one ttl after the first hit: the later hits did not extend it
    await harness.elapse(window * 0.6)
    assert await harness.kv.get("rate") is None
    assert await harness.kv.incr("rate", ttl=window) == 1


async def test_counter_value_reads_back_as_its_digits(harness: Harness) -> None:
    await harness.kv.incr("n", ttl=60)
    await harness.kv.incr("n", ttl=60)

    assert await harness.kv.get("n") == b"2"


async def test_ping_answers_when_reachable(harness: Harness) -> None:
    await harness.kv.ping()


@pytest.mark.redis
async def test_redis_keys_are_namespaced_by_prefix(redis_url: str, unique_prefix: str) -> None:
    # Given two stores on one server with different prefixes
    one = RedisKeyValueStore(redis_url, prefix=unique_prefix + "one:")
    two = RedisKeyValueStore(redis_url, prefix=unique_prefix + "two:")
    try:
        # When both write the same key
        await one.set("k", b"1")
        await two.set("k", b"2")

        # Then neither sees the other's value
        assert await one.get("k") == b"1"
        assert await two.get("k") == b"2"
    finally:
        await one.delete("k")
        await two.delete("k")
        await one.close()
        await two.close()


async def test_closing_twice_is_harmless(harness: Harness) -> None:
    await harness.kv.close()
    await harness.kv.close()


async def test_unreachable_redis_fails_ping() -> None:
    store = RedisKeyValueStore("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(store.ping(), 10)
    finally:
        await store.close()


async def test_closed_memory_store_keeps_nothing() -> None:
    store = MemoryKeyValueStore()
    await store.set("k", b"v")

    await store.close()

    assert await store.get("k") is None


# Token buckets and send slots take the wall clock as an argument: both stores are tested on a
# clock the test moves.

NOW = 1_700_000_000.0


def _bucket(key: str, capacity: float = 3, per_second: float = 1.0) -> Bucket:
    return Bucket(key=key, capacity=capacity, rate=per_second)


async def test_a_bucket_starts_full_and_refuses_once_empty(harness: Harness) -> None:
    # Given a bucket of three tokens
    taken = [await harness.kv.take([_bucket("b")], now=NOW) for _ in range(3)]

    # When a fourth request comes at the same instant
    refused = await harness.kv.take([_bucket("b")], now=NOW)

    # Then the first three got one each, counting down, and the fourth none
    assert [t.allowed for t in taken] == [True, True, True]
    assert [t.tokens for t in taken] == [[2.0], [1.0], [0.0]]
    assert refused == Taken(granted=0, tokens=[0.0])


async def test_a_bucket_refills_at_its_rate_up_to_its_capacity(harness: Harness) -> None:
    for _ in range(3):
        await harness.kv.take([_bucket("b")], now=NOW)

    # Half a token later: still refused
    assert not (await harness.kv.take([_bucket("b")], now=NOW + 0.5)).allowed
    # One token later: one allowed
    assert (await harness.kv.take([_bucket("b")], now=NOW + 1.0)).tokens == [pytest.approx(0.0)]
    # An hour later: full again, never more than the capacity
    assert (await harness.kv.take([_bucket("b")], now=NOW + 3600)).tokens == [2.0]


async def test_two_buckets_give_a_token_each_or_none(harness: Harness) -> None:
    # Given a key's bucket with room and an app's bucket of one token
    key, app = _bucket("key", capacity=10), _bucket("app", capacity=1)
    first = await harness.kv.take([key, app], now=NOW)

    # When the app's bucket is empty
    second = await harness.kv.take([key, app], now=NOW)

    # Then the key's bucket did not pay for the refused request
    assert first == Taken(granted=1, tokens=[9.0, 0.0])
    assert second == Taken(granted=0, tokens=[9.0, 0.0])


async def test_a_take_of_several_tokens_gets_what_the_emptiest_bucket_has(
    harness: Harness,
) -> None:
    # Given a key's bucket of 10 and an app's of 4
    key, app = _bucket("key", capacity=10), _bucket("app", capacity=4)

    # When a process asks for 6 tokens at once, then 6 more
    first = await harness.kv.take([key, app], now=NOW, want=6)
    second = await harness.kv.take([key, app], now=NOW, want=6)

    # Then it got the 4 the app had, from both buckets, and then none
    assert first == Taken(granted=4, tokens=[6.0, 0.0])
    assert second == Taken(granted=0, tokens=[6.0, 0.0])


async def test_concurrent_takes_each_get_their_own_answer(harness: Harness) -> None:
    # Given many requests at once on one bucket of 5 (on Redis they share round trips)
    answers = await asyncio.gather(
        *(harness.kv.take([_bucket("b", capacity=5)], now=NOW) for _ in range(8))
    )

    # Then five were allowed, each seeing the bucket a token lower, and three refused
    assert sorted(a.granted for a in answers) == [0, 0, 0, 1, 1, 1, 1, 1]
    assert sorted(a.tokens[0] for a in answers if a.allowed) == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_a_clock_behind_the_last_take_adds_no_tokens(harness: Harness) -> None:
    await harness.kv.take([_bucket("b", capacity=1)], now=NOW)

    # Another process's clock, a little behind
    assert not (await harness.kv.take([_bucket("b", capacity=1)], now=NOW - 5)).allowed


async def test_slots_are_granted_in_sequence_up_to_the_horizon(harness: Harness) -> None:
    # Given a schedule of one slot every 0.5 s, never used
    request = SlotRequest(key="fcm:p", count=10, interval=0.5)

    # When ten slots are asked for, with one second of horizon
    [slots] = await harness.kv.reserve([request], now=NOW, horizon=1.0)

    # Then three fit (now, +0.5, +1.0), and the next free slot follows them
    assert slots == Slots(granted=3, first=NOW, next_free=NOW + 1.5)


async def test_the_next_reservation_starts_where_the_last_ended(harness: Harness) -> None:
    request = SlotRequest(key="fcm:p", count=2, interval=0.5)
    await harness.kv.reserve([request], now=NOW, horizon=10)

    [later] = await harness.kv.reserve([request], now=NOW + 0.1, horizon=10)

    assert later.first == pytest.approx(NOW + 1.0)
    assert later.granted == 2


async def test_a_full_schedule_grants_nothing_until_its_slots_come_near(harness: Harness) -> None:
    request = SlotRequest(key="apns:T", count=5, interval=1.0)
    await harness.kv.reserve([request], now=NOW, horizon=4)

    [none] = await harness.kv.reserve([request], now=NOW, horizon=4)
    [one] = await harness.kv.reserve([request], now=NOW + 1, horizon=4)

    assert none.granted == 0
    assert none.next_free == pytest.approx(NOW + 5)
    assert one.granted == 1
    assert one.first == pytest.approx(NOW + 5)


async def test_an_idle_schedule_lets_its_burst_go_at_once(harness: Harness) -> None:
    # Given a schedule idle for long, allowed to lag one second behind now
    request = SlotRequest(key="wp", count=30, interval=0.1, burst=1.0)

    # When a batch asks for slots with no horizon ahead
    [slots] = await harness.kv.reserve([request], now=NOW, horizon=0.0)

    # Then a second's worth of slots (plus the one at now) are due already
    assert slots.first == pytest.approx(NOW - 1.0)
    assert slots.granted == 11


async def test_schedules_are_reserved_independently_in_one_call(harness: Harness) -> None:
    slow = SlotRequest(key="fcm:slow", count=5, interval=10.0)
    fast = SlotRequest(key="fcm:fast", count=5, interval=0.001)

    found = await harness.kv.reserve([slow, fast], now=NOW, horizon=1.0)

    assert [s.granted for s in found] == [1, 5]
