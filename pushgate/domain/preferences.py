"""What a user's preferences say about one delivery: whether it may go at all (a global mute,
an opt-out per category or per platform) and whether it lands inside their quiet hours, and
if so when those end. Pure: no I/O; time zones come from `zoneinfo`.

Skip reasons are stable codes, shown as a skipped delivery's `error` (and documented in the
README): `muted`, `category_opted_out:<category>`, `platform_opted_out:<platform>`.

Quiet hours are a daily window of wall-clock times in the window's own time zone, from
`start` (included) to `end` (excluded); a window whose end is not after its start crosses
midnight (`22:00`-`07:00`). `start == end` is no window at all (nothing is quiet), not a
whole day: muting is what silences a user all day. On a day the clocks change, the window
opens the first time the user's clock reads `start` and closes the first time it reads `end`:
a time the clock skips (in a spring-forward gap) is reached when the clock jumps past it, and
a time the clock shows twice (in a fall-back overlap) counts on its first pass, so the
window is never longer than the wall clock says.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from pydantic import StringConstraints

from pushgate.domain import storable

MUTED = "muted"
CATEGORY_OPTED_OUT = "category_opted_out"
PLATFORM_OPTED_OUT = "platform_opted_out"

# A notification's `category`, and a category named in preferences: the same rule.
Category = Annotated[str, StringConstraints(min_length=1, max_length=100), storable.TEXT]

CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_CLOCK = re.compile(CLOCK_PATTERN)


def clock(value: str) -> time:
    """A wall-clock time from its `HH:MM` spelling (00:00 to 23:59).

    Raises:
        ValueError: not `HH:MM`.
    """
    if not _CLOCK.match(value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return time(int(value[:2]), int(value[3:]))


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name` (`Europe/Paris`).

    Raises:
        ValueError: no such zone in the installed time zone database.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone name") from None


def first_reached(day: date, wall: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first instant at which the clock in `tz` reads `wall` (or later) on `day`.

    Usually the one instant that wall time names. In a fall-back overlap the wall time names
    two instants: the first. In a spring-forward gap it names none: the instant the clock jumps
    past it.
    """
    naive = datetime.combine(day, wall)
    # fold=0 is the first pass of an overlap (PEP 495), and for a time in a gap the instant
    # computed with the offset before the change, which lies after the jump.
    high = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if high.astimezone(tz).replace(tzinfo=None) == naive:
        return high
    # In a gap: `high`'s clock reads after `wall`, and with the offset after the change the
    # clock reads before it; the jump lies between. Find it to the second (transitions fall
    # on whole seconds): a dozen steps, on one night a year.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in which a user gets nothing (see the module docstring).

    Args:
        start: the wall-clock time it opens (included).
        end: the wall-clock time it closes (excluded); not after `start`: the next day.
        timezone: the IANA zone of both times.
    """

    start: time
    end: time
    timezone: str

    @classmethod
    def parse(cls, start: str, end: str, timezone: str) -> QuietHours:
        """From the stored spelling (`"22:00"`, `"07:00"`, `"Europe/Paris"`).

        Raises:
            ValueError: a time that is not `HH:MM`, or an unknown zone.
        """
        zone(timezone)
        return cls(start=clock(start), end=clock(end), timezone=timezone)

    def ends(self, at: datetime) -> datetime | None:
        """When the window that `at` (an aware instant) falls inside closes; None when `at` is
        outside every window."""
        if self.start == self.end:
            return None
        tz = zone(self.timezone)
        today = at.astimezone(tz).date()
        crosses_midnight = self.end < self.start
        # The window opened yesterday (across midnight) or today may hold `at`.
        for opened in (today - timedelta(days=1), today):
            closes_on = opened + timedelta(days=1) if crosses_midnight else opened
            opens_at = first_reached(opened, self.start, tz)
            closes_at = first_reached(closes_on, self.end, tz)
            if opens_at <= at < closes_at:
                return closes_at
        return None


@dataclass(frozen=True, slots=True)
class Preferences:
    """One user's preferences. A user without stored preferences has the defaults: nothing
    muted, nothing opted out, no quiet hours.

    Args:
        categories: `{category: False}` opts out of it; a category not named (or True) is
            received.
        platforms: `{platform: False}` opts out of it.
        locale: the user's language (BCP 47), for a template's variant.
        timezone: the user's IANA zone, for local-time delivery.
    """

    muted: bool = False
    categories: Mapping[str, bool] = field(default_factory=dict)
    platforms: Mapping[str, bool] = field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    locale: str | None = None
    timezone: str | None = None

    def skip_reason(
        self, *, platform: str, category: str | None, transactional: bool
    ) -> str | None:
        """Why a delivery to this user on `platform` of a notification in `category` must not
        go, as a stable code; None when it may. A transactional notification (a security code)
        ignores category opt-outs, never the mute."""
        if self.muted:
            return MUTED
        if category is not None and not transactional and self.categories.get(category) is False:
            return f"{CATEGORY_OPTED_OUT}:{category}"
        if self.platforms.get(platform) is False:
            return f"{PLATFORM_OPTED_OUT}:{platform}"
        return None
