"""Analytics answers from rollup counts: the time window and its buckets, and the statistics
of a group of deliveries (counts per final outcome, success rate, latency percentiles).
Pure: the store reads the sums, this shapes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pushgate.domain import latency
from pushgate.errors import InvalidInputError

# The statuses a delivery ends in, in the order the answers list them.
OUTCOMES = ("sent", "failed", "invalid", "expired", "rejected", "skipped", "canceled")
# Buckets in one answer at most (about 83 days by the hour, 5 years by the day).
MAX_BUCKETS = 2000


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self is Interval.HOUR else timedelta(days=1)

    @property
    def default_span(self) -> timedelta:
        return timedelta(hours=24) if self is Interval.HOUR else timedelta(days=30)

    def floor(self, moment: datetime) -> datetime:
        moment = moment.replace(minute=0, second=0, microsecond=0)
        return moment if self is Interval.HOUR else moment.replace(hour=0)


def _outside_calendar() -> InvalidInputError:
    # Found by the OpenAPI fuzz: `until=0001-01-01T00:00:00Z` was an OverflowError (a 500).
    return InvalidInputError(
        "the window reaches past the calendar (years 1 to 9999); move until",
        field="until",
        code="invalid_range",
    )


@dataclass(frozen=True, slots=True)
class Window:
    """A time range in whole buckets: from the bucket holding `since` to the last bucket that
    starts before `until`."""

    interval: Interval
    since: datetime
    until: datetime

    @classmethod
    def of(
        cls,
        interval: Interval,
        since: datetime | None,
        until: datetime | None,
        *,
        now: datetime,
    ) -> Window:
        """The window asked for; `until` defaults to now, `since` to a day (by the hour) or
        30 days (by the day) before `until`.

        Raises:
            InvalidInputError: `invalid_range` when since is after until or the window reaches
                past the calendar (years 1 to 9999), `range_too_long` past `MAX_BUCKETS`
                buckets.
        """
        until = until or now
        try:
            since = since if since is not None else until - interval.default_span
        except OverflowError:
            raise _outside_calendar() from None
        if since > until:
            raise InvalidInputError(
                "since must not be after until", field="since", code="invalid_range"
            )
        window = cls(interval, interval.floor(since), until)
        if window.count() > MAX_BUCKETS:
            raise InvalidInputError(
                f"at most {MAX_BUCKETS} {interval.value}s per answer; narrow since and until",
                field="since",
                code="range_too_long",
            )
        try:
            # Both ends are instants the database stores in UTC: they must be dates there too.
            window.since.astimezone(UTC)
            window.end.astimezone(UTC)
        except OverflowError:
            raise _outside_calendar() from None
        return window

    def count(self) -> int:
        span = self.until - self.since
        return max(1, -(-span // self.interval.step))  # a zero-length window still has one

    def starts(self) -> list[datetime]:
        step = self.interval.step
        return [self.since + i * step for i in range(self.count())]

    @property
    def end(self) -> datetime:
        """The end of the last bucket: what the rollups are read up to."""
        return self.since + self.count() * self.interval.step


@dataclass(slots=True)
class Stats:
    """Deliveries of one group, summed from rollup rows."""

    by_outcome: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    histogram: list[int] = field(default_factory=lambda: [0] * latency.BUCKETS)

    def add(self, outcome: str, count: int, histogram: Sequence[int]) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + int(count)
        if outcome == "sent":
            for k, n in enumerate(histogram):
                self.histogram[k] += int(n)

    def merge(self, other: Stats) -> None:
        for outcome, count in other.by_outcome.items():
            self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + count
        for k, n in enumerate(other.histogram):
            self.histogram[k] += n

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())

    @property
    def success_rate(self) -> float | None:
        """Sent over those that were meant to go: skipped and canceled ones do not count."""
        counted = self.total - self.by_outcome["skipped"] - self.by_outcome["canceled"]
        return None if counted <= 0 else round(self.by_outcome["sent"] / counted, 6)

    def public(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_outcome": dict(self.by_outcome),
            "success_rate": self.success_rate,
            "latency_ms": latency.percentiles(self.histogram),
        }
