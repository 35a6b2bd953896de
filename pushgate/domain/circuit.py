"""Circuit breakers: stop calling an upstream that keeps failing, probe it again after a pause.

One breaker per (app, provider, push-service origin). Closed: calls flow, consecutive failures
are counted. Open (after `threshold` failures in a row, or at once on a credential alarm): calls
wait instead of failing. Half-open (after `timeout`): one probe is let through; its success
closes the circuit, its failure opens it again for another `timeout`.

Separately, an upstream that answers 429 with Retry-After is *held* for that long: calls wait,
but nothing counts as a failure (the service is up, it asks us to slow down). What is held is
what the answer is about (`outcome.HoldScope`): a Web Push service's origin or an FCM project
holds its breaker; one device token (APNs's 429, FCM's device quota) is held on the board by
itself, so the app's other devices go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    RATE_LIMITED = "rate_limited"


@dataclass
class CircuitBreaker:
    threshold: int = 5
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    probe_started: float = 0.0
    held_until: float | None = None
    # The state someone last announced (logs, shared states), to spot transitions once.
    noted: State = State.CLOSED

    @property
    def state(self) -> State:
        now = self.clock()
        if self.opened_at is not None:
            return State.HALF_OPEN if now - self.opened_at >= self.timeout else State.OPEN
        if self.held_until is not None and now < self.held_until:
            return State.RATE_LIMITED
        return State.CLOSED

    def retry_in(self) -> float:
        """Seconds until a call may be tried (0 when it may be tried now)."""
        now = self.clock()
        wait = 0.0
        if self.opened_at is not None:
            wait = self.opened_at + self.timeout - now
        if self.held_until is not None:
            wait = max(wait, self.held_until - now)
        return max(0.0, wait)

    def allow(self) -> bool:
        """Whether a call may go now. In half-open, only one probe at a time; a probe that
        never reported back (its worker task died) is replaced after another `timeout`."""
        now = self.clock()
        if self.held_until is not None and now < self.held_until:
            return False
        state = self.state
        if state is State.CLOSED or state is State.RATE_LIMITED:
            return True
        if state is State.HALF_OPEN and (
            not self.probing or now - self.probe_started >= self.timeout
        ):
            self.probing = True
            self.probe_started = now
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def record_failure(self) -> bool:
        """Count a failure; True when this one opened a circuit that was not open."""
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            was_open = self.opened_at is not None and not self.probing
            self.opened_at = self.clock()
            self.probing = False
            return not was_open
        return False

    def trip(self) -> bool:
        """Open now, whatever the count (a credential alarm); True when it was not open."""
        was_open = self.opened_at is not None and not self.probing
        self.failures = max(self.failures, self.threshold)
        self.opened_at = self.clock()
        self.probing = False
        return not was_open

    def release(self) -> None:
        """The last call said nothing about the upstream (it never reached it, or it was a
        429): let another probe go instead of waiting for this one's verdict."""
        self.probing = False

    def hold(self, seconds: float) -> None:
        """Make calls wait `seconds` (a 429's Retry-After) without counting a failure."""
        until = self.clock() + max(0.0, seconds)
        if self.held_until is None or until > self.held_until:
            self.held_until = until


@dataclass(frozen=True, slots=True)
class CircuitReport:
    """One breaker that is not closed, for /health/ready."""

    app_id: str
    provider: str
    origin: str
    state: State
    retry_in: float


# Device holds kept before lapsed ones are swept out; each lapses by itself within the hold cap.
DEVICE_HOLDS_SWEEP_AT = 10_000


@dataclass
class CircuitBoard:
    """All breakers of a process, created on first use, and their states for /health/ready;
    and the device tokens held by a 429 about that device alone."""

    threshold: int = 5
    timeout: float = 30.0
    clock: Callable[[], float] = time.monotonic
    breakers: dict[tuple[str, str, str], CircuitBreaker] = field(default_factory=dict)
    # (app, provider, token) -> clock time until which sends to that token wait.
    device_holds: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def hold_device(self, app_id: str, provider: str, token: str, seconds: float) -> None:
        """Make sends to one device token wait `seconds` (a 429 about that device)."""
        now = self.clock()
        if len(self.device_holds) >= DEVICE_HOLDS_SWEEP_AT:
            self.device_holds = {k: t for k, t in self.device_holds.items() if t > now}
        key = (app_id, provider, token)
        until = now + max(0.0, seconds)
        if until > self.device_holds.get(key, 0.0):
            self.device_holds[key] = until

    def device_wait(self, app_id: str, provider: str, token: str) -> float:
        """Seconds until a send to this device token may go (0 when it may go now)."""
        until = self.device_holds.get((app_id, provider, token))
        if until is None:
            return 0.0
        wait = until - self.clock()
        if wait <= 0:
            del self.device_holds[app_id, provider, token]
            return 0.0
        return wait

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
        """`app/provider/origin` -> state, for every breaker that is not closed."""
        return {"/".join(key): report.state.value for key, report in self._reports()}

    def reports(self) -> list[CircuitReport]:
        """Every breaker that is open, half-open or rate-limited."""
        return [report for _, report in self._reports()]

    def _reports(self) -> list[tuple[tuple[str, str, str], CircuitReport]]:
        result = []
        for key, breaker in self.breakers.items():
            state = breaker.state
            if state is not State.CLOSED:
                result.append((key, CircuitReport(*key, state, round(breaker.retry_in(), 3))))
        return result


# --- sharing states between processes ---------------------------------------------------------
#
# Breakers live in the worker processes, while /health/ready is answered by the API processes:
# workers merge their not-closed breakers into one key-value entry, the API reads it. Entries
# carry wall-clock times (processes share no monotonic clock) and lapse by themselves, so a
# worker that died, or a lost update between two workers, heals without anyone cleaning up.

SHARED_KEY = "circuits"


def merge_shared(
    raw: bytes | None,
    mine: Mapping[tuple[str, str, str], CircuitReport | None],
    *,
    now: float,
    linger: float,
) -> bytes:
    """The shared entry with this process's breakers applied (None: closed here, remove it)
    and lapsed entries dropped. `linger`: seconds an entry outlives its `retry_in`."""
    entries = {k: v for k, v in _entries(raw).items() if v["until"] > now}
    for key, report in mine.items():
        name = "/".join(key)
        if report is None:
            entries.pop(name, None)
            continue
        entries[name] = {
            "app_id": report.app_id,
            "provider": report.provider,
            "origin": report.origin,
            "state": report.state.value,
            "retry_at": now + report.retry_in,
            "until": now + report.retry_in + linger,
        }
    return orjson.dumps(entries)


def read_shared(raw: bytes | None, *, now: float) -> list[CircuitReport]:
    """The live entries of the shared states; an unreadable entry reads as none."""
    reports = []
    for entry in _entries(raw).values():
        if entry["until"] <= now:
            continue
        try:
            reports.append(
                CircuitReport(
                    str(entry["app_id"]),
                    str(entry["provider"]),
                    str(entry["origin"]),
                    State(entry["state"]),
                    round(max(0.0, float(entry["retry_at"]) - now), 3),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return reports


def _entries(raw: bytes | None) -> dict[str, dict[str, Any]]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, dict) and isinstance(v.get("until"), int | float)
    }
