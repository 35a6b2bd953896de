"""Wall-clock times in IANA time zones: which names are zones, and the instant a wall-clock
time happens in one, daylight-saving gaps and overlaps included (`zoneinfo`'s rules)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@functools.lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo | None:
    """The time zone an IANA name (`Europe/Paris`) names; None for no name or one that is not
    a zone here (a typo, a malformed key, a zone this system's tz database lacks), so a bad
    name a device sent falls back to the next source instead of failing a dispatch."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def instant(wall: datetime, where: tzinfo) -> datetime:
    """The UTC instant the naive wall-clock time `wall` happens in `where`.

    A time the clocks skip (a daylight-saving gap: 02:30 on a night 02:00 becomes 03:00) is
    read with the offset in force before the change, which moves it forward by the gap: 02:30
    goes at 03:30. A time that happens twice (the clocks go back) goes at its first occurrence
    (`fold=0`, the offset before the change).
    """
    return wall.replace(tzinfo=where, fold=0).astimezone(UTC)
