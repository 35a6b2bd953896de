"""Rates as written, and what a token bucket's level says in the RateLimit fields."""

from __future__ import annotations

import pytest

from pushgate.domain import rates
from pushgate.domain.rates import Quota, Rate
from pushgate.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600/minute", Rate(600, 60.0)),
        ("10/s", Rate(10, 1.0)),
        ("36000 per hour", Rate(36000, 3600.0)),
        ("5/minutes", Rate(5, 60.0)),
        (" 1 / day ", Rate(1, 86400.0)),
        ("off", rates.UNLIMITED),
        ("0", rates.UNLIMITED),
    ],
)
def test_rates_read_as_people_write_them(text: str, expected: Rate) -> None:
    assert rates.parse(text) == expected


@pytest.mark.parametrize("text", ["", "600", "600/ms", "6/fortnight", "-1/minute", "x/minute"])
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        rates.parse(text, field="--rate-limit")

    assert caught.value.field == "--rate-limit"


def test_a_rate_writes_back_as_it_reads() -> None:
    assert str(rates.parse("600/min")) == "600/minute"
    assert str(rates.parse("off")) == "off"


def test_a_full_bucket_has_its_whole_quota_and_nothing_to_wait() -> None:
    assert rates.quota(Rate(60, 60.0), 60) == Quota(limit=60, remaining=60, reset=0, retry_after=0)


def test_a_bucket_part_used_resets_when_refilled() -> None:
    # 10 of 60 used at one a second: full in 10 s
    assert rates.quota(Rate(60, 60.0), 50) == Quota(60, 50, 10, 0)


def test_an_empty_bucket_says_when_one_token_is_back() -> None:
    # Half a token at one every 30 s: 15 s to the next, 60 s to full
    assert rates.quota(Rate(2, 60.0), 0.5) == Quota(2, 0, 45, 15)


def test_the_quota_closest_to_running_out_is_shown() -> None:
    key, app = Quota(100, 40, 36, 0), Quota(1000, 3, 60, 0)

    assert rates.tightest([key, app]) == app


def test_own_limits_that_do_not_read_fall_back_to_the_defaults() -> None:
    own = rates.own_limits("nonsense", {"send": "10/minute", "read": "bad", "other": "1/s"})

    assert own is not None
    assert own.key is None
    assert own.app == {rates.RouteClass.SEND: Rate(10, 60.0)}
    assert rates.own_limits(None, None) is None
