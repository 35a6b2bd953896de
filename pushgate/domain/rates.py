"""Rates as people write them (`600/minute`), and what a token bucket's level means for the
RateLimit header fields and `Retry-After`. Pure: the buckets themselves live in the key-value
store (`KeyValueStore.take`), shared by every API process.

A limit of `N/period` is a bucket of N tokens refilled at N per period: a client may burst up to
N requests, then goes on at the steady rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pushgate.errors import InvalidInputError

PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_NAMES = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
_RATE = re.compile(r"\s*(\d{1,12})\s*(?:/|per\s)\s*([a-z]+)\s*", re.IGNORECASE)
OFF = ("0", "off", "none", "unlimited")


class RouteClass(StrEnum):
    """Which default limit a request counts against."""

    SEND = "send"  # POST /v1/notifications and its sub-routes
    SUBSCRIBE = "subscribe"  # writes to /v1/devices...
    READ = "read"  # every GET, and the admin routes


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` requests (or sends) per `period` seconds; count 0 means unlimited."""

    count: int
    period: float

    @property
    def unlimited(self) -> bool:
        return self.count == 0

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        if self.unlimited:
            return "off"
        return f"{self.count}/{_NAMES.get(self.period, f'{self.period:g}s')}"


UNLIMITED = Rate(0, 60.0)


def parse(text: str | int, *, field: str = "rate_limit") -> Rate:
    """`600/minute`, `10/s`, `36000 per hour`, or `off` (also `0`).

    Raises:
        InvalidInputError: anything else; `field` names where it came from.
    """
    if isinstance(text, int):
        text = str(text)
    if text.strip().lower() in OFF:
        return UNLIMITED
    match = _RATE.fullmatch(text)
    period = _period(match.group(2).lower()) if match else None
    if match is None or period is None:
        raise InvalidInputError(
            f"{text!r} is not a rate: write N/second, N/minute, N/hour, N/day, or off",
            field=field,
        )
    return Rate(int(match.group(1)), period)


def _period(name: str) -> float | None:
    if name in PERIODS:
        return PERIODS[name]
    # Plurals (`minutes`), but not `ms`: a one-letter unit takes no s.
    singular = name[:-1]
    return PERIODS.get(singular) if name.endswith("s") and len(singular) > 1 else None


def parse_optional(text: str | None, *, field: str = "rate_limit") -> Rate | None:
    return None if text is None else parse(text, field=field)


@dataclass(frozen=True, slots=True)
class Quota:
    """One bucket's state after a request, as the RateLimit header fields say it
    (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Limit`, `-Remaining`, `-Reset`)."""

    limit: int
    remaining: int
    # Seconds until the bucket is full again: the whole quota available.
    reset: int
    # Seconds until the next request would be allowed (0 when one is allowed now).
    retry_after: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset).encode()),
        ]


def quota(rate: Rate, tokens: float) -> Quota:
    """What a bucket of `rate` holding `tokens` tells the client."""
    per_second = rate.per_second
    tokens = max(0.0, tokens)
    missing = rate.count - tokens
    return Quota(
        limit=rate.count,
        remaining=math.floor(tokens + 1e-9),
        reset=max(0, math.ceil(missing / per_second - 1e-9)),
        retry_after=0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / per_second - 1e-9)),
    )


def tightest(quotas: list[Quota]) -> Quota:
    """The quota a client should heed when several apply: the one closest to running out
    (the draft's advice for several policies on one resource)."""
    return min(quotas, key=lambda q: (q.remaining, -q.reset))


@dataclass(frozen=True, slots=True)
class OwnLimits:
    """A key's own limit (every route class) and its app's own limits (per route class), where
    they replace the settings' defaults."""

    key: Rate | None
    app: dict[RouteClass, Rate]


def app_limits(stored: dict[str, Any] | None) -> dict[RouteClass, Rate]:
    """An app's own limits as stored (`{"send": "6000/minute"}`); a value that does not read
    (written by hand) leaves that class to the defaults rather than failing every request."""
    found: dict[RouteClass, Rate] = {}
    for name, text in (stored or {}).items():
        try:
            found[RouteClass(name)] = parse(text)
        except (ValueError, InvalidInputError):
            continue
    return found


def own_limits(key: str | None, app: dict[str, Any] | None) -> OwnLimits | None:
    """What a key and its app set for themselves, or None when neither set anything."""
    if key is None and not app:
        return None
    try:
        mine = parse_optional(key)
    except InvalidInputError:
        mine = None
    return OwnLimits(key=mine, app=app_limits(app))
