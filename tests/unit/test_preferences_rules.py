"""A user's preferences judged per delivery: the mute, category and platform opt-outs (and
`transactional`), and quiet hours: windows inside a day and across midnight, an empty window,
and the nights the clocks change (a window end in the spring-forward gap or in the fall-back
overlap), with `zoneinfo`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pushgate.domain.preferences import Preferences, QuietHours, clock, zone

PARIS = "Europe/Paris"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def night(end: str = "07:00", start: str = "22:00", where: str = PARIS) -> QuietHours:
    return QuietHours.parse(start, end, where)


# --- who is skipped ------------------------------------------------------------------------


def test_a_muted_user_gets_nothing_even_transactional() -> None:
    prefs = Preferences(muted=True)
    assert prefs.skip_reason(platform="fcm", category=None, transactional=False) == "muted"
    assert prefs.skip_reason(platform="fcm", category="security", transactional=True) == "muted"


def test_an_opted_out_category_is_skipped_unless_the_notification_is_transactional() -> None:
    prefs = Preferences(categories={"promo": False, "news": True})
    assert (
        prefs.skip_reason(platform="fcm", category="promo", transactional=False)
        == "category_opted_out:promo"
    )
    assert prefs.skip_reason(platform="fcm", category="promo", transactional=True) is None
    assert prefs.skip_reason(platform="fcm", category="news", transactional=False) is None
    assert prefs.skip_reason(platform="fcm", category="other", transactional=False) is None
    assert prefs.skip_reason(platform="fcm", category=None, transactional=False) is None


def test_an_opted_out_platform_is_skipped_even_transactional() -> None:
    prefs = Preferences(platforms={"webpush": False, "fcm": True})
    assert (
        prefs.skip_reason(platform="webpush", category=None, transactional=True)
        == "platform_opted_out:webpush"
    )
    assert prefs.skip_reason(platform="fcm", category=None, transactional=False) is None


def test_the_defaults_skip_nothing() -> None:
    assert Preferences().skip_reason(platform="apns", category="promo", transactional=False) is None


# --- quiet hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "ends"),
    [
        # Paris is UTC+1 in January.
        (utc(2026, 1, 10, 20, 59), None),  # 21:59: not yet
        (utc(2026, 1, 10, 21, 0), utc(2026, 1, 11, 6, 0)),  # 22:00: opens
        (utc(2026, 1, 10, 23, 30), utc(2026, 1, 11, 6, 0)),  # 00:30: past midnight
        (utc(2026, 1, 11, 5, 59), utc(2026, 1, 11, 6, 0)),  # 06:59
        (utc(2026, 1, 11, 6, 0), None),  # 07:00: over
        (utc(2026, 1, 11, 12, 0), None),
    ],
)
def test_a_window_across_midnight(at: datetime, ends: datetime | None) -> None:
    assert night().ends(at) == ends


@pytest.mark.parametrize(
    ("at", "ends"),
    [
        (utc(2026, 7, 1, 9, 59), None),  # 11:59 in Paris (UTC+2 in July)
        (utc(2026, 7, 1, 10, 0), utc(2026, 7, 1, 12, 0)),
        (utc(2026, 7, 1, 11, 59), utc(2026, 7, 1, 12, 0)),
        (utc(2026, 7, 1, 12, 0), None),
        (utc(2026, 7, 1, 23, 0), None),
    ],
)
def test_a_window_inside_one_day(at: datetime, ends: datetime | None) -> None:
    assert night(start="12:00", end="14:00").ends(at) == ends


def test_a_window_whose_start_is_its_end_is_no_window() -> None:
    quiet = night(start="09:00", end="09:00")
    assert all(quiet.ends(utc(2026, 1, 1, hour)) is None for hour in range(24))


def test_a_window_end_in_the_spring_forward_gap_closes_when_the_clock_jumps_past_it() -> None:
    # Paris, 29 March 2026: at 02:00 CET (01:00 UTC) the clocks jump to 03:00 CEST; 02:30
    # never shows. The window meant to close at 02:30 closes at the jump.
    quiet = night(start="23:00", end="02:30")
    assert quiet.ends(utc(2026, 3, 28, 22, 0)) == utc(2026, 3, 29, 1, 0)  # 23:00 CET
    assert quiet.ends(utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 29, 1, 0)  # 01:59 CET
    assert quiet.ends(utc(2026, 3, 29, 1, 0)) is None  # 03:00 CEST
    # The next night is an ordinary one, in summer time.
    assert quiet.ends(utc(2026, 3, 29, 21, 0)) == utc(2026, 3, 30, 0, 30)


def test_a_window_end_in_the_fall_back_overlap_closes_on_its_first_pass() -> None:
    # Paris, 25 October 2026: at 03:00 CEST (01:00 UTC) the clocks go back to 02:00 CET, so
    # 02:30 shows twice: at 00:30 UTC and at 01:30 UTC. The window closes at the first.
    quiet = night(start="23:00", end="02:30")
    assert quiet.ends(utc(2026, 10, 24, 21, 0)) == utc(2026, 10, 25, 0, 30)  # 23:00 CEST
    assert quiet.ends(utc(2026, 10, 25, 0, 29)) == utc(2026, 10, 25, 0, 30)  # 02:29 CEST
    # 02:10 CET, the second time the clock reads it: the window is over for the night.
    assert quiet.ends(utc(2026, 10, 25, 1, 10)) is None


def test_a_night_window_spans_the_hour_the_clocks_go_back() -> None:
    # 22:00 CEST to 07:00 CET is ten hours that night, not nine.
    quiet = night()
    assert quiet.ends(utc(2026, 10, 24, 20, 0)) == utc(2026, 10, 25, 6, 0)
    assert quiet.ends(utc(2026, 10, 25, 5, 59)) == utc(2026, 10, 25, 6, 0)
    assert quiet.ends(utc(2026, 10, 25, 6, 0)) is None


def test_a_window_opening_in_the_gap_opens_at_the_jump() -> None:
    # New York, 8 March 2026: 02:00 EST (07:00 UTC) jumps to 03:00 EDT; 02:30 never shows.
    quiet = night(start="02:30", end="05:00", where="America/New_York")
    assert quiet.ends(utc(2026, 3, 8, 6, 59)) is None  # 01:59 EST
    assert quiet.ends(utc(2026, 3, 8, 7, 0)) == utc(2026, 3, 8, 9, 0)  # 03:00 EDT to 05:00 EDT


def test_quiet_hours_in_utc_and_far_from_it() -> None:
    assert night(where="UTC").ends(utc(2026, 5, 1, 23, 0)) == utc(2026, 5, 2, 7, 0)
    # Kathmandu is UTC+5:45.
    kathmandu = night(where="Asia/Kathmandu")
    assert kathmandu.ends(utc(2026, 5, 1, 16, 15)) == utc(2026, 5, 2, 1, 15)
    assert kathmandu.ends(utc(2026, 5, 1, 16, 14)) is None


@pytest.mark.parametrize("text", ["24:00", "7:00", "07:60", "07:00:00", "", "ab:cd", "０７:００"])
def test_a_time_of_day_is_hh_mm(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        clock(text)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "europe/paris "])
def test_an_unknown_zone_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="IANA"):
        zone(name)
