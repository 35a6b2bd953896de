"""Circuit breakers beyond open/closed: 429 holds, probes that never report, credential
alarms, and the states workers share with API processes."""

from __future__ import annotations

from pushgate.domain import circuit
from pushgate.domain.circuit import CircuitBreaker, CircuitReport, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hold_makes_calls_wait_without_counting_a_failure() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, timeout=30, clock=clock)
    breaker.hold(2.0)
    assert breaker.state is State.RATE_LIMITED
    assert not breaker.allow()
    assert breaker.retry_in() == 2.0
    assert breaker.failures == 0
    clock.now += 2.0
    assert breaker.allow()
    assert breaker.state.value == "closed"


def test_a_held_device_token_waits_while_the_others_go() -> None:
    clock = Clock()
    board = circuit.CircuitBoard(clock=clock)
    board.hold_device("app", "apns", "throttled", 60.0)
    assert board.device_wait("app", "apns", "throttled") == 60.0
    assert board.device_wait("app", "apns", "healthy") == 0.0
    assert board.device_wait("other-app", "apns", "throttled") == 0.0
    # A device hold is no circuit: the provider stays closed for everyone else.
    assert board.get("app", "apns", "apns").allow()
    assert board.reports() == []
    board.hold_device("app", "apns", "throttled", 10.0)  # a shorter hold does not shorten it
    clock.now += 59.0
    assert board.device_wait("app", "apns", "throttled") == 1.0
    clock.now += 1.0
    assert board.device_wait("app", "apns", "throttled") == 0.0
    assert board.device_holds == {}


def test_lapsed_device_holds_are_swept_out() -> None:
    clock = Clock()
    board = circuit.CircuitBoard(clock=clock)
    for n in range(circuit.DEVICE_HOLDS_SWEEP_AT):
        board.hold_device("app", "apns", f"token-{n}", 1.0)
    clock.now += 2.0
    board.hold_device("app", "apns", "new", 5.0)
    assert board.device_holds == {("app", "apns", "new"): clock.now + 5.0}


def test_probe_that_never_reports_is_replaced_after_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, timeout=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    assert not breaker.allow()
    clock.now += 10
    assert breaker.allow()


def test_released_probe_lets_another_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, timeout=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_trip_opens_at_once_and_reports_the_transition_once() -> None:
    breaker = CircuitBreaker(threshold=5, timeout=10, clock=Clock())
    assert breaker.trip()
    assert breaker.state is State.OPEN
    assert not breaker.trip()


def test_shared_states_merge_and_lapse() -> None:
    key = ("app", "webpush", "https://push.example")
    report = CircuitReport(*key, State.OPEN, 5.0)
    raw = circuit.merge_shared(None, {key: report}, now=100.0, linger=30.0)
    [seen] = circuit.read_shared(raw, now=101.0)
    assert (seen.origin, seen.state, seen.retry_in) == ("https://push.example", State.OPEN, 4.0)
    assert circuit.read_shared(raw, now=136.0) == []
    closed = circuit.merge_shared(raw, {key: None}, now=102.0, linger=30.0)
    assert circuit.read_shared(closed, now=102.0) == []
    assert circuit.read_shared(b"not json", now=0.0) == []
