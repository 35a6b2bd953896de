"""When to try a delivery again: exponential backoff with jitter, floored by Retry-After, for as
long as the notification's lifetime allows (capped by a number of attempts)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

# The last try is scheduled at least this long before the lifetime ends, so that the broker's
# and the claim's own delays do not carry it past the end (where it would only expire).
LAST_TRY_MARGIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt n (1-based, the one that just failed) waits a random time in
    [c/2, c] with c = min(cap, base * 2**(n-1)), but never less than the provider's Retry-After
    or `floor`.

    The jitter spreads a burst of failures out instead of retrying them in lockstep; its lower
    half-ceiling makes the time the attempts cover predictable (with "full jitter", [0, c], a
    run of small draws could spend every attempt within seconds). `cap` bounds one step, so a
    push service that comes back is tried again within `cap` seconds. A delivery stops when its
    notification's lifetime has no room for another try (it expires), or after `max_attempts`
    attempts (0: no limit but the lifetime) when it fails for good.
    """

    max_attempts: int = 100
    base: float = 1.0
    cap: float = 600.0
    # The only waits the transport keeps (RabbitMQ's delay queues, which round a delay up to
    # the next level); empty: any. The last try before the lifetime ends is rounded down to
    # one, or the transport would carry it past the end.
    levels: tuple[float, ...] = ()

    def exhausted(self, attempts: int) -> bool:
        return 0 < self.max_attempts <= attempts

    def delay(
        self,
        attempts: int,
        *,
        retry_after: float | None = None,
        floor: float = 0.0,
        left: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after the `attempts`-th failed attempt.

        Args:
            left: seconds of the notification's lifetime left, if it has an end. A backoff
                that would run past it is shortened to leave one last try before the end
                (an outage that ends before the lifetime must not lose the message);
                Retry-After and `floor` are never shortened (the caller sees the delay reach
                past `left` and gives up).
        """
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempts - 1))
        backoff = ceiling * (0.5 + 0.5 * rand())
        if left is not None:
            room = left - LAST_TRY_MARGIN_SECONDS
            if self.levels:
                room = max((level for level in self.levels if level <= room), default=0.0)
            # One last try before the end, unless the lifetime is about over already (then
            # the backoff runs past the end and the caller lets the delivery expire).
            if backoff > room >= LAST_TRY_MARGIN_SECONDS:
                backoff = room
        return max(backoff, retry_after or 0.0, floor)

    def next_try(
        self,
        attempts: int,
        *,
        left: float,
        retry_after: float | None = None,
        floor: float = 0.0,
        rand: Callable[[], float] = random.random,
    ) -> int | None:
        """Whole seconds until the next try after the `attempts`-th failed one, or None when
        it would come at or after the end of the lifetime (`left` seconds from now).

        Whole seconds, so a batch's retries share a few delayed jobs; rounded up, so a
        Retry-After is never cut short.
        """
        delay = self.delay(attempts, retry_after=retry_after, floor=floor, left=left, rand=rand)
        seconds = max(1, math.ceil(delay))
        return None if seconds >= left else seconds
