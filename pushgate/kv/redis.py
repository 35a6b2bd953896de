"""Redis KeyValueStore for the services profile, shared by every api and worker process."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from pushgate.kv.base import KeyValueStore

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

    async def incr(self, key: str, *, ttl: float) -> int:
        result: Any = await self._incr(keys=[self._k(key)], args=[_ms(ttl) or 1])
        return int(result)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))
