"""The sweeper's evidence that deliveries are not queued: the moments the deliver queue was seen
with nothing ready, counted only once they are `settle` seconds old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pushgate.sending.sweeper import Backlog

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_queue_never_seen_empty_has_not_drained() -> None:
    backlog = Backlog(settle=2)
    for second in range(10):
        backlog.saw(at(second), ready=5)
    assert backlog.drained(at(10)) is None


def test_an_empty_queue_counts_once_it_is_settle_seconds_old() -> None:
    # Given a queue seen empty at 3 s, and busy since
    backlog = Backlog(settle=2)
    backlog.saw(at(3), ready=0)
    backlog.saw(at(4), ready=7)

    # Then that moment counts from 5 s on, and stays the answer until a later empty look is old
    assert backlog.drained(at(4.5)) is None
    assert backlog.drained(at(5)) == at(3)
    backlog.saw(at(6), ready=0)
    assert backlog.drained(at(7)) == at(3)
    assert backlog.drained(at(8)) == at(6)


def test_without_settling_the_latest_look_counts_at_once() -> None:
    backlog = Backlog(settle=0)
    backlog.saw(at(1), ready=0)
    assert backlog.drained(at(1)) == at(1)
