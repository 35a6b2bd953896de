"""When to try a delivery again: exponential backoff with full jitter, floored by Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based, the one that just failed) waits a random time in
    [0, min(cap, base * 2**(n-1))] ("full jitter", which spreads a burst of failures out instead
    of retrying them in lockstep), but never less than the provider's Retry-After or `floor`."""

    max_attempts: int = 5
    base: float = 1.0
    cap: float = 3600.0

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def delay(
        self,
        attempts: int,
        *,
        retry_after: float | None = None,
        floor: float = 0.0,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempts - 1))
        jittered = ceiling * rand()
        return max(jittered, retry_after or 0.0, floor)
