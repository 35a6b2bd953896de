"""An API process spends a busy bucket's tokens a few at a time: one key-value call takes a tenth
of a second's worth (at most 1% of the bucket), the requests that follow spend them locally, and
no process, nor all of them together, ever lets through more than the bucket holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pushgate.api import ratelimit
from pushgate.domain.rates import RouteClass, parse
from pushgate.errors import RateLimitedError
from pushgate.kv.base import Bucket, Taken
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.settings import load_settings

KEY, APP = uuid.uuid4(), uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryKeyValueStore):
    def __init__(self) -> None:
        super().__init__()
        self.takes: list[int] = []

    async def take(self, buckets: Sequence[Bucket], *, now: float, want: int = 1) -> Taken:
        self.takes.append(want)
        await asyncio.sleep(0)  # a round trip: other requests come meanwhile
        return await super().take(buckets, now=now, want=want)


def limiter(kv: CountingStore, clock: Clock, **limits: Any) -> ratelimit.Limiter:
    settings = load_settings(rate_limits=limits)
    return ratelimit.Limiter(settings, kv, clock=clock)


async def check(limits: ratelimit.Limiter) -> Any:
    return await limits.check(key_id=KEY, app_id=APP, own=None, route=RouteClass.SEND)


@pytest.mark.parametrize(
    ("rate", "size"),
    [("6000/minute", 10), ("60000/minute", 100), ("600/minute", 1), ("1000/second", 10)],
)
def test_a_lease_is_a_tenth_of_a_seconds_worth_at_most_a_hundredth_of_the_bucket(
    rate: str, size: int
) -> None:
    assert ratelimit.lease_size(parse(rate)) == size


async def test_one_call_serves_a_tenth_of_a_second_of_a_busy_key() -> None:
    # Given a key allowed 100 sends a second (6000/minute), its app twice that
    kv, clock = CountingStore(), Clock()
    limits = limiter(kv, clock, key_send="6000/minute", app_send="12000/minute")

    # When it sends ten requests in the same instant
    quotas = [await check(limits) for _ in range(10)]

    # Then one call took ten tokens, and the fields count down as if each had been asked
    assert kv.takes == [10]
    assert [q.remaining for q in quotas] == list(range(5999, 5989, -1))
    assert {q.limit for q in quotas} == {6000}

    # When an eleventh comes, the lease spent
    await check(limits)

    # Then it takes another lease
    assert kv.takes == [10, 10]


async def test_concurrent_requests_share_one_lease() -> None:
    # Given a busy key whose process has no lease yet
    kv, clock = CountingStore(), Clock()
    limits = limiter(kv, clock, key_send="6000/minute", app_send="off")

    # When eight requests come at once
    quotas = await asyncio.gather(*(check(limits) for _ in range(8)))

    # Then one take served them all: the bucket lost ten tokens, not eighty
    assert kv.takes == [10]
    assert sorted(q.remaining for q in quotas) == list(range(5992, 6000))


async def test_a_lease_not_spent_within_its_tenth_of_a_second_is_dropped() -> None:
    kv, clock = CountingStore(), Clock()
    limits = limiter(kv, clock, key_send="6000/minute", app_send="off")
    await check(limits)

    clock.now += ratelimit.LEASE_SECONDS
    await check(limits)

    assert kv.takes == [10, 10]


async def test_processes_leasing_one_bucket_never_let_more_through_than_it_holds() -> None:
    # Given three API processes sharing a key's bucket of 300 (leases of 3: 1% of it)
    kv, clock = CountingStore(), Clock()
    processes = [limiter(kv, clock, key_send="300/second", app_send="off") for _ in range(3)]

    # When they take turns with requests in the same instant until all refuse
    allowed = 0
    refused = 0
    while refused < 3:
        refused = 0
        for process in processes:
            try:
                await check(process)
                allowed += 1
            except RateLimitedError:
                refused += 1

    # Then exactly the bucket's 300 went through
    assert allowed == 300


async def test_a_slow_limit_is_counted_request_by_request() -> None:
    kv, clock = CountingStore(), Clock()
    limits = limiter(kv, clock, key_send="2/minute", app_send="off")

    await check(limits)
    await check(limits)
    with pytest.raises(RateLimitedError):
        await check(limits)

    assert kv.takes == [1, 1, 1]


async def test_without_the_key_value_store_requests_go_through_unlimited() -> None:
    class Unreachable(CountingStore):
        async def take(self, buckets: Sequence[Bucket], *, now: float, want: int = 1) -> Taken:
            raise RedisConnectionError("Connection refused")

    limits = limiter(Unreachable(), Clock(), key_send="1/minute")

    assert [await check(limits) for _ in range(3)] == [None, None, None]
