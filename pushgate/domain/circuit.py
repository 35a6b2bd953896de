"""Circuit breakers: stop calling an upstream that keeps failing, probe it again after a pause.

One breaker per (app, provider, push-service origin). Closed: calls flow, consecutive failures
are counted. Open (after `threshold` failures in a row): calls wait instead of failing. Half-open
(after `timeout`): one probe is let through; its success closes the circuit, its failure opens it
again for another `timeout`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 5
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return State.CLOSED
        if self.clock() - self.opened_at >= self.timeout:
            return State.HALF_OPEN
        return State.OPEN

    def retry_in(self) -> float:
        """Seconds until a call may be tried (0 when it may be tried now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.timeout - self.clock())

    def allow(self) -> bool:
        """Whether a call may go now. In half-open, only one probe at a time."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def record_failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self.probing = False


@dataclass
class CircuitBoard:
    """All breakers of a process, created on first use, and their states for /health/ready."""

    threshold: int = 5
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    breakers: dict[tuple[str, str, str], CircuitBreaker] = field(default_factory=dict)

    def get(self, app_id: str, provider: str, origin: str) -> CircuitBreaker:
        key = (app_id, provider, origin)
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(
                threshold=self.threshold, timeout=self.timeout, clock=self.clock
            )
            self.breakers[key] = breaker
        return breaker

    def not_closed(self) -> dict[str, str]:
        """`app/provider/origin` -> state, for every breaker that is open or half-open."""
        return {
            "/".join(key): breaker.state.value
            for key, breaker in self.breakers.items()
            if breaker.state is not State.CLOSED
        }
