"""Redis KeyValueStore for the services profile, shared by every api and worker process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from pushgate.kv.base import Bucket, KeyValueStore, SlotRequest, Slots, Taken

# Seconds to connect, and to wait for an answer: past them a command fails (and the caller
# falls back or answers 503) rather than holding a request as long as Redis stalls.
SOCKET_TIMEOUT_SECONDS = 5.0

# A pooled connection idle this long is pinged before its next command.
HEALTH_CHECK_SECONDS = 15

# INCR and set the expiry only on creation, atomically (a crash between the two would otherwise
# leave a counter that never expires).
_INCR_WITH_TTL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# kv/memory.py's `refill` and `grant`, for several requests in turn, each taking the same number
# of tokens from every one of its buckets (up to what it wants, none when one has not a whole
# token). A bucket is a hash (t: tokens, s: when), expiring once it would be full again (absent
# reads as full). ARGV: per request its time, number of buckets and tokens wanted, then per
# bucket its capacity and rate; KEYS: every request's buckets in order. The answer is one
# string, per request `granted tokens...` (Redis would truncate Lua numbers to integers, and
# one string parses faster than nested arrays).
_TAKE = """
local out = {}
local a = 1
local k = 1
while a <= #ARGV do
  local now = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local granted = tonumber(ARGV[a + 2])
  a = a + 3
  local levels = {}
  for i = 0, n - 1 do
    local capacity = tonumber(ARGV[a + 2 * i])
    local rate = tonumber(ARGV[a + 2 * i + 1])
    local state = redis.call('HMGET', KEYS[k + i], 't', 's')
    local level = capacity
    if state[1] then
      level = tonumber(state[1])
      local elapsed = now - tonumber(state[2])
      if elapsed > 0 then level = math.min(capacity, level + elapsed * rate) end
    end
    levels[i] = level
    granted = math.min(granted, math.floor(level))
  end
  if granted < 0 then granted = 0 end
  out[#out + 1] = tostring(granted)
  for i = 0, n - 1 do
    local capacity = tonumber(ARGV[a + 2 * i])
    local rate = tonumber(ARGV[a + 2 * i + 1])
    local level = levels[i] - granted
    local text = string.format('%.17g', level)
    redis.call('HSET', KEYS[k + i], 't', text, 's', ARGV[a - 3])
    redis.call('PEXPIRE', KEYS[k + i], math.ceil((capacity - level) / rate * 1000) + 1000)
    out[#out + 1] = text
  end
  a = a + 2 * n
  k = k + n
end
return table.concat(out, ' ')
"""

# kv/memory.py's `schedule`, per key: the key holds the schedule's next free slot.
# ARGV: now, horizon, then count, interval and burst per key.
_RESERVE = """
local now = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local count = tonumber(ARGV[3 * i])
  local interval = tonumber(ARGV[3 * i + 1])
  local burst = tonumber(ARGV[3 * i + 2])
  local start = now - burst
  local free = redis.call('GET', KEYS[i])
  if free then start = math.max(tonumber(free), start) end
  local room = now + horizon - start
  local granted = 0
  if room >= 0 then granted = math.min(count, math.floor(room / interval + 1e-9) + 1) end
  local next_free = start + granted * interval
  redis.call('SET', KEYS[i], string.format('%.17g', next_free),
    'PX', math.max(1000, math.ceil((next_free - now) * 1000) + 1000))
  out[2 * i - 1] = granted
  out[2 * i] = string.format('%.17g', start)
end
return out
"""

# One caller's take: its buckets, its time, the tokens it wants.
_TakeRequest = tuple[Sequence[Bucket], float, int]


class RedisKeyValueStore(KeyValueStore):
    def __init__(self, url: str, *, prefix: str = "pushgate:") -> None:
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            # After a Redis restart every pooled connection is dead, and each would fail its
            # next command: a command that fails on a broken connection is sent once more, at
            # once, on a new one. Not after a timeout: that would double the wait on a Redis
            # that stalls.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=HEALTH_CHECK_SECONDS,
        )
        self._prefix = prefix
        self._incr = self._redis.register_script(_INCR_WITH_TTL)
        self._take = self._redis.register_script(_TAKE)
        self._taking = False
        self._waiting: list[tuple[_TakeRequest, asyncio.Future[Taken]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._reserve = self._redis.register_script(_RESERVE)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        return cast(bytes | None, await self._redis.get(self._k(key)))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self._redis.set(self._k(key), value, px=_ms(ttl))

    async def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        return bool(await self._redis.set(self._k(key), value, px=_ms(ttl), nx=True))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._k(key))

    async def scan(self, prefix: str) -> dict[str, bytes]:
        # SCAN matches a glob: the prefix's own glob characters are escaped.
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._k(prefix)) + "*"
        keys = [key async for key in self._redis.scan_iter(match=pattern, count=500)]
        if not keys:
            return {}
        values = cast(list[bytes | None], await self._redis.mget(keys))
        start = len(self._prefix)
        return {
            key.decode()[start:]: value
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    async def incr(self, key: str, *, ttl: float) -> int:
        result: Any = await self._incr(keys=[self._k(key)], args=[_ms(ttl) or 1])
        return int(result)

    async def take(self, buckets: Sequence[Bucket], *, now: float, want: int = 1) -> Taken:
        # Takes that come while one is in flight go together in the next call: one round
        # trip then serves every request that arrived meanwhile (a round trip costs the API
        # ~0.1 ms of CPU, a third of what the rest of a request costs).
        if self._taking:
            waiter: asyncio.Future[Taken] = asyncio.get_running_loop().create_future()
            self._waiting.append(((buckets, now, want), waiter))
            return await waiter
        self._taking = True
        try:
            [taken] = await self._take_many([(buckets, now, want)])
        finally:
            self._next_takes()
        return taken

    def _next_takes(self) -> None:
        if not self._waiting:
            self._taking = False
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._take_for(batch))
        # Kept until done: the loop holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_for(self, batch: list[tuple[_TakeRequest, asyncio.Future[Taken]]]) -> None:
        try:
            found = await self._take_many([request for request, _ in batch])
        except BaseException as exc:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, waiter), taken in zip(batch, found, strict=True):
                if not waiter.done():  # its request may have gone (cancelled)
                    waiter.set_result(taken)
        finally:
            self._next_takes()

    async def _take_many(self, requests: list[_TakeRequest]) -> list[Taken]:
        keys: list[str] = []
        args: list[float] = []
        for buckets, now, want in requests:
            args += (now, len(buckets), want)
            for bucket in buckets:
                keys.append(self._prefix + bucket.key)
                args += (bucket.capacity, bucket.rate)
        result: Any = await self._take(keys=keys, args=args)
        words = result.split()
        found = []
        at = 0
        for buckets, _, _ in requests:
            n = len(buckets)
            found.append(Taken(int(words[at]), [float(w) for w in words[at + 1 : at + 1 + n]]))
            at += 1 + n
        return found

    async def reserve(
        self, requests: Sequence[SlotRequest], *, now: float, horizon: float
    ) -> list[Slots]:
        args: list[float] = [now, horizon]
        for request in requests:
            args += (request.count, request.interval, request.burst)
        result: Any = await self._reserve(keys=[self._k(r.key) for r in requests], args=args)
        found = []
        for i, request in enumerate(requests):
            granted, first = int(result[2 * i]), float(result[2 * i + 1])
            found.append(Slots(granted, first, first + granted * request.interval))
        return found

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))
