"""Retry policy, circuit breaker and topic-condition rules."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from pushgate.domain import condition
from pushgate.domain.circuit import CircuitBoard, CircuitBreaker, State
from pushgate.domain.retry import LAST_TRY_MARGIN_SECONDS, RetryPolicy
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


def test_backoff_jitter_spans_half_the_ceiling_to_the_ceiling() -> None:
    policy = RetryPolicy(base=2.0)
    assert policy.delay(3, rand=lambda: 0.0) == 4.0
    assert policy.delay(3, rand=lambda: 0.5) == 6.0
    assert policy.delay(3, rand=lambda: 1.0) == 8.0


def test_retry_after_is_a_floor_over_jitter() -> None:
    policy = RetryPolicy(base=1.0)
    assert policy.delay(1, retry_after=30.0, rand=lambda: 1.0) == 30.0
    assert policy.delay(1, floor=60.0, rand=lambda: 0.1) == 60.0


def test_attempts_are_exhausted_at_max() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


def test_max_attempts_zero_leaves_only_the_lifetime() -> None:
    assert not RetryPolicy(max_attempts=0).exhausted(1_000_000)


def run_outage(
    policy: RetryPolicy,
    *,
    ttl: float,
    outage: float,
    rand: Callable[[], float],
    transport: Callable[[int], float] = float,
) -> tuple[str, list[float]]:
    """Drive the policy on a simulated clock the way the deliverer does: a notification sent at
    0 with `ttl`, a push service failing every attempt made before `outage` seconds, retries
    waiting what `transport` makes of their delay. Returns how the delivery ended (sent /
    expired / failed) and when each attempt was made."""
    now, attempts = 0.0, 0
    made: list[float] = []
    while True:
        attempts += 1
        if now >= ttl:
            return "expired", made  # arrived too late: never sent late
        made.append(now)
        if now >= outage:
            return "sent", made
        if policy.exhausted(attempts):
            return "failed", made
        seconds = policy.next_try(attempts, left=ttl - now, rand=rand)
        if seconds is None:
            return "expired", made
        now += transport(seconds)


RABBITMQ_LEVELS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


def rabbitmq(seconds: int) -> float:
    """RabbitMQ's wait for a delay: the next delay level up."""
    return next((level for level in RABBITMQ_LEVELS if level >= seconds), RABBITMQ_LEVELS[-1])


DRAWS = {"lowest": lambda: 0.0, "middle": lambda: 0.5, "highest": lambda: 1.0}


@pytest.mark.parametrize("draw", list(DRAWS), ids=list(DRAWS))
def test_the_default_schedule_outlasts_a_30_minute_outage_within_a_one_hour_ttl(
    draw: str,
) -> None:
    # Given the default policy (the old one gave up after 5 attempts in about 35 s)
    policy = RetryPolicy()

    # When a push service is down for 30 minutes of a notification's hour
    ended, made = run_outage(policy, ttl=3600, outage=1800, rand=DRAWS[draw])

    # Then it is sent once the service is back, before its TTL ran out
    assert ended == "sent"
    assert 1800 <= made[-1] < 3600


def test_the_default_schedule_outlasts_an_outage_that_ends_just_before_the_ttl() -> None:
    ended, made = run_outage(RetryPolicy(), ttl=3600, outage=3590, rand=lambda: 1.0)
    assert ended == "sent"
    assert made[-1] < 3600


@pytest.mark.parametrize("outage", [1800, 3000, 3500, 3590])
@pytest.mark.parametrize("draw", list(DRAWS), ids=list(DRAWS))
def test_on_rabbitmq_delay_levels_the_last_try_still_comes_before_the_ttl(
    outage: int, draw: str
) -> None:
    # Given RabbitMQ, whose delay queues round every wait up to a level
    policy = RetryPolicy(levels=RABBITMQ_LEVELS)

    # When a push service is down for most of a notification's hour
    ended, made = run_outage(policy, ttl=3600, outage=outage, rand=DRAWS[draw], transport=rabbitmq)

    # Then the rounded-up waits never carry a try past the TTL: it is sent
    assert ended == "sent"
    assert made[-1] < 3600


def test_retries_stop_at_the_ttl_and_the_delivery_expires() -> None:
    # Given a push service down for longer than the notification lives
    ended, made = run_outage(
        RetryPolicy(max_attempts=0), ttl=3600, outage=10**9, rand=random.random
    )

    # Then it expires (not failed, not sent late): every attempt came before the TTL, the
    # last one close to it
    assert ended == "expired"
    assert all(t < 3600 for t in made)
    assert made[-1] >= 3600 - 2 * LAST_TRY_MARGIN_SECONDS


def test_no_step_is_longer_than_the_cap() -> None:
    _, made = run_outage(RetryPolicy(), ttl=24 * 3600, outage=10**9, rand=lambda: 1.0)
    assert max(b - a for a, b in itertools.pairwise(made)) <= RetryPolicy().cap


@pytest.mark.parametrize("cap", [3, 5])
def test_max_attempts_caps_the_schedule_within_the_ttl(cap: int) -> None:
    ended, made = run_outage(
        RetryPolicy(max_attempts=cap), ttl=3600, outage=10**9, rand=random.random
    )
    assert (ended, len(made)) == ("failed", cap)


def test_a_retry_after_past_the_end_of_the_lifetime_expires_now() -> None:
    # Shortening the provider's Retry-After to fit would only earn another 429.
    assert RetryPolicy().next_try(1, left=100.0, retry_after=120.0) is None
    assert RetryPolicy().next_try(1, left=0.5) is None
    assert RetryPolicy().next_try(1, left=100.0, retry_after=60.0) == 60


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
