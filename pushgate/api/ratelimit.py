"""Per-API-key request limits: a fixed one-minute window counted in the key-value store, so
every API process behind a balancer shares the count when the store is Redis."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

from pushgate.errors import RateLimitedError
from pushgate.kv.base import KeyValueStore

WINDOW_SECONDS = 60


async def check(
    kv: KeyValueStore,
    key_id: uuid.UUID,
    *,
    per_minute: int,
    clock: Callable[[], float] = time.time,
) -> None:
    """Count one request of this key.

    Raises:
        RateLimitedError: 429 with `Retry-After` (seconds until the window ends) when the key
            has used its `per_minute` requests.
    """
    now = clock()
    window = int(now // WINDOW_SECONDS)
    count = await kv.incr(f"ratelimit:{key_id}:{window}", ttl=WINDOW_SECONDS + 1)
    if count > per_minute:
        retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        raise RateLimitedError(
            f"this API key may make {per_minute} requests a minute; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after), "X-RateLimit-Limit": str(per_minute)},
            details={"limit_per_minute": per_minute, "retry_after_seconds": retry_after},
        )
