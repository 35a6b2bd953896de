"""The TTL each delivery attempt gives the provider: the notification's own on a first attempt
within a minute of the send time, what is left of its lifetime, rounded up, on a retry or on a
first attempt held back longer (deferred past quiet hours, a long queue)."""

from __future__ import annotations

import pytest

from pushgate.domain.message import attempt_ttl


@pytest.mark.parametrize("seconds_left", [3599.4, 3599.999, 3600.0, 3540.5])
def test_the_first_attempt_carries_the_ttl_that_was_sent(seconds_left: float) -> None:
    assert attempt_ttl(3600, first_attempt=True, seconds_left=seconds_left) == 3600


@pytest.mark.parametrize(("seconds_left", "expected"), [(3540.0, 3540), (600.2, 601), (-5.0, 0)])
def test_a_first_attempt_held_back_carries_the_lifetime_left(
    seconds_left: float, expected: int
) -> None:
    # Deferred past quiet hours: sent when the window ends, shown no later than the ttl allows
    assert attempt_ttl(3600, first_attempt=True, seconds_left=seconds_left) == expected


def test_ttl_0_stays_0_on_the_first_attempt() -> None:
    assert attempt_ttl(0, first_attempt=True, seconds_left=0.5) == 0


@pytest.mark.parametrize(
    ("seconds_left", "expected"),
    [(3599.001, 3600), (3599.0, 3599), (1799.2, 1800), (0.1, 1), (0.0, 0), (-3.0, 0)],
)
def test_a_retry_carries_the_lifetime_left_rounded_up(seconds_left: float, expected: int) -> None:
    assert attempt_ttl(3600, first_attempt=False, seconds_left=seconds_left) == expected


def test_a_retry_never_carries_more_than_the_ttl() -> None:
    # The deadline can be later than the ttl (a minimum delivery window for short ttls).
    assert attempt_ttl(30, first_attempt=False, seconds_left=59.5) == 30
