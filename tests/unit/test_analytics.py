"""Analytics' pure parts: the latency buckets and the percentiles read back from them (within
the documented error), the time window and its buckets, and a group's statistics."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pushgate.domain import latency
from pushgate.domain.analytics import MAX_BUCKETS, Interval, Stats, Window
from pushgate.errors import InvalidInputError

NOW = datetime(2026, 12, 3, 14, 25, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(-5, 0), (0, 0), (9.99, 0), (10, 1), (12.49, 1), (12.5, 2), (60_000, 39), (61_000, 40)],
)
def test_latency_falls_in_its_log_spaced_bucket(ms: float, bucket: int) -> None:
    assert latency.bucket_of(ms) == bucket
    if 0 < bucket < latency.BUCKETS - 1:
        assert latency.LOWER[bucket] <= ms < latency.LOWER[bucket] * latency.RATIO


def test_latencies_past_a_day_land_in_the_last_bucket() -> None:
    assert latency.bucket_of(86_400_000) == latency.BUCKETS - 1


def test_no_latencies_have_no_percentiles() -> None:
    assert latency.percentiles([0] * latency.BUCKETS) == {"p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_stay_within_a_bucket_of_the_truth(seed: int) -> None:
    # Given latencies spread from ~10 ms to ~30 s
    rng = random.Random(seed)
    samples = sorted(rng.lognormvariate(5.5, 1.2) + 10 for _ in range(5000))
    counts = [0] * latency.BUCKETS
    for ms in samples:
        counts[latency.bucket_of(ms)] += 1
    for q in (0.5, 0.95, 0.99):
        # When read back from the buckets, Then off by at most the bucket ratio (25 %)
        estimate = latency.percentile(counts, q)
        truth = samples[int(q * len(samples)) - 1]
        assert estimate is not None
        assert truth / latency.RATIO <= estimate <= truth * latency.RATIO, (q, estimate, truth)


def test_percentiles_of_one_latency_stay_in_its_bucket_in_order() -> None:
    counts = [0] * latency.BUCKETS
    counts[latency.bucket_of(250.0)] = 1
    found = latency.percentiles(counts)
    p50, p95, p99 = found["p50"], found["p95"], found["p99"]
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert 250.0 / latency.RATIO <= p50 <= p95 <= p99 <= 250.0 * latency.RATIO


def test_window_defaults_to_a_day_by_the_hour_and_30_days_by_the_day() -> None:
    hourly = Window.of(Interval.HOUR, None, None, now=NOW)
    assert hourly.since == datetime(2026, 12, 2, 14, tzinfo=UTC)
    assert hourly.until == NOW
    assert hourly.count() == 25
    assert hourly.starts()[-1] == datetime(2026, 12, 3, 14, tzinfo=UTC)
    assert hourly.end == datetime(2026, 12, 3, 15, tzinfo=UTC)
    daily = Window.of(Interval.DAY, None, None, now=NOW)
    assert daily.since == datetime(2026, 11, 3, tzinfo=UTC)
    assert daily.count() == 31
    assert daily.starts()[-1] == datetime(2026, 12, 3, tzinfo=UTC)


def test_window_on_a_bucket_boundary_ends_before_it() -> None:
    window = Window.of(
        Interval.DAY,
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 3, tzinfo=UTC),
        now=NOW,
    )
    assert window.starts() == [datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)]
    same = Window.of(Interval.HOUR, NOW, NOW, now=NOW)
    assert same.starts() == [datetime(2026, 12, 3, 14, tzinfo=UTC)]


def test_window_refuses_since_after_until_and_too_many_buckets() -> None:
    with pytest.raises(InvalidInputError) as backwards:
        Window.of(Interval.HOUR, NOW, NOW - timedelta(seconds=1), now=NOW)
    assert backwards.value.code == "invalid_range"
    longest = Window.of(Interval.HOUR, NOW - timedelta(hours=MAX_BUCKETS - 1), NOW, now=NOW)
    assert longest.count() == MAX_BUCKETS
    with pytest.raises(InvalidInputError) as too_long:
        Window.of(Interval.HOUR, NOW - timedelta(hours=MAX_BUCKETS), NOW, now=NOW)
    assert too_long.value.code == "range_too_long"


@pytest.mark.parametrize(
    ("interval", "since", "until"),
    [
        # Found by the OpenAPI fuzz: the default `since` a span before year 1 (an OverflowError)
        (Interval.DAY, None, datetime(1, 1, 1, tzinfo=UTC)),
        (Interval.HOUR, None, datetime(1, 1, 1, 5, tzinfo=UTC)),
        # the last bucket's end past year 9999
        (Interval.DAY, datetime(9999, 12, 31, tzinfo=UTC), datetime(9999, 12, 31, 1, tzinfo=UTC)),
        # a start that is a date in its own offset but not in UTC
        (Interval.HOUR, datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=14))), None),
    ],
)
def test_window_past_the_calendar_is_an_invalid_range(
    interval: Interval, since: datetime | None, until: datetime | None
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Window.of(interval, since, until or datetime(1, 1, 2, tzinfo=UTC), now=NOW)

    assert (caught.value.code, caught.value.field) == ("invalid_range", "until")


def test_success_rate_leaves_out_skipped_and_canceled() -> None:
    stats = Stats()
    histogram = [0] * latency.BUCKETS
    stats.add("sent", 3, histogram)
    stats.add("failed", 1, histogram)
    stats.add("skipped", 5, histogram)
    stats.add("canceled", 2, histogram)
    assert stats.total == 11
    assert stats.success_rate == 0.75
    nothing_meant = Stats()
    nothing_meant.add("skipped", 4, histogram)
    assert nothing_meant.public()["success_rate"] is None
