"""Retry policy, circuit breaker and topic-condition rules."""

from __future__ import annotations

import pytest

from pushgate.domain import condition
from pushgate.domain.circuit import CircuitBoard, CircuitBreaker, State
from pushgate.domain.retry import RetryPolicy
from pushgate.errors import InvalidInputError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base=1.0, cap=10.0)
    always_max = [policy.delay(n, rand=lambda: 1.0) for n in range(1, 7)]
    assert always_max == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_jitter_spans_zero_to_ceiling() -> None:
    policy = RetryPolicy(base=2.0)
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    assert policy.delay(3, rand=lambda: 0.5) == 4.0


def test_retry_after_is_a_floor_over_jitter() -> None:
    policy = RetryPolicy(base=1.0)
    assert policy.delay(1, retry_after=30.0, rand=lambda: 1.0) == 30.0
    assert policy.delay(1, floor=60.0, rand=lambda: 0.1) == 60.0


def test_attempts_are_exhausted_at_max() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, timeout=30, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow()
    breaker.record_success()
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 30


def test_breaker_half_opens_lets_one_probe_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, timeout=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe in flight
    breaker.record_success()
    assert breaker.state.value == "closed"
    assert breaker.allow()


def test_failed_probe_reopens_for_another_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, timeout=10, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 11
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is State.OPEN
    assert breaker.retry_in() == 10


def test_board_reports_only_unhealthy_breakers() -> None:
    board = CircuitBoard(threshold=1, timeout=5, clock=Clock())
    board.get("app", "webpush", "https://a.example").record_failure()
    board.get("app", "webpush", "https://b.example").record_success()
    assert board.not_closed() == {"app/webpush/https://a.example": "open"}


@pytest.mark.parametrize(
    ("text", "topics", "expected"),
    [
        ("'a' in topics", {"a"}, True),
        ("'a' in topics && 'b' in topics", {"a"}, False),
        ("'a' in topics || 'b' in topics", {"b"}, True),
        ("'a' in topics && ('b' in topics || 'c' in topics)", {"a", "c"}, True),
        ("'a' in topics || 'b' in topics && 'c' in topics", {"a"}, True),
        ("!('a' in topics)", set(), True),
        ('"x-y_z.1" in topics', {"x-y_z.1"}, True),
    ],
)
def test_condition_evaluates_like_fcm(text: str, topics: set[str], expected: bool) -> None:
    assert condition.evaluate(condition.parse(text), topics) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "'a' in topics &&",
        "('a' in topics",
        "'a' in topic",
        "a in topics",
        "'a' in topics 'b' in topics",
        "'a' in topics & 'b' in topics",
    ],
)
def test_bad_condition_is_refused_with_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        condition.parse(text)
    assert caught.value.field == "condition"


def test_negated_condition_needs_every_device() -> None:
    assert condition.needs_every_device(condition.parse("!('a' in topics)"))
    assert not condition.needs_every_device(condition.parse("'a' in topics || 'b' in topics"))
    assert condition.topics_of(condition.parse("'a' in topics && !('b' in topics)")) == {"a", "b"}
