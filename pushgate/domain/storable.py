"""What text, JSON and times pushgate accepts for storage: one rule for SQLite and PostgreSQL.

The two databases disagree at the edges (PostgreSQL refuses a NUL character in text and JSONB
and a NaN in JSONB, SQLite stores the NUL and turns NaN into null; neither driver can encode a
lone surrogate as UTF-8), so every value a client sends is held to what both store alike, and
refused at the door as a validation error on its field rather than failing at the database:

- text: no NUL character (U+0000) and no lone surrogate (U+D800 to U+DFFF, which JSON's
  `\\udc00` escapes can make and UTF-8 cannot hold);
- JSON values (metadata, overrides, variables): the same rule for every string and key, finite
  numbers only (no NaN, Infinity or numbers like 1e400 that overflow to it), and integers within
  signed 64 bits (what orjson and most JSON readers hold exactly; a bigger number can be sent
  as a string);
- instants: representable in UTC (`0001-01-01T00:00:00+14:00` is not: it is a moment of the
  year 0), and taken as UTC when they have no offset.

Apply them by type: `Annotated[str, ..., storable.TEXT]`, `storable.JSONObject`,
`storable.Instant`.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(found.group()):04x})"


def check_text(value: str) -> str:
    """The text, if both databases store it as sent.

    Raises:
        PydanticCustomError: `unstorable_text`, saying which character.
    """
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError(
            "unstorable_text", "text must not contain {problem}", {"problem": problem}
        )
    return value


def _json_problem(value: Any, where: str) -> str | None:
    """What in a JSON value cannot be stored, and where (`a.b.0`), or None. One walk."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str):
                return f"{path}: keys must be strings"
            problem = text_problem(key)
            found = (
                f"{where or 'object'}: a key must not contain {problem}"
                if problem is not None
                else _json_problem(item, path)
            )
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _json_problem(item, f"{where}.{index}" if where else str(index))
            if found is not None:
                return found
        return None
    return _scalar_problem(value, where or "value")


def _scalar_problem(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else f"{where}: a string must not contain {problem}"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"{where}: integers must fit in 64 bits (send a bigger number as a string)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where}: numbers must be finite, not {value}"
    return f"{where}: {type(value).__name__} is not a JSON value"


def check_json(value: Any) -> Any:
    """The JSON value, if both databases store it as sent.

    Raises:
        PydanticCustomError: `unstorable_json`, naming the path inside the value.
    """
    problem = _json_problem(value, "")
    if problem is not None:
        raise PydanticCustomError("unstorable_json", "{problem}", {"problem": problem})
    return value


def check_instant(value: datetime) -> datetime:
    """The time with an offset (a time without one is taken as UTC), if it is an instant the
    calendar holds in UTC too. Its offset is kept: the stored request is what was sent.

    Raises:
        PydanticCustomError: `datetime_range`, when the instant falls outside the calendar.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "the time is outside the calendar (years 1 to 9999) in UTC"
        ) from None
    return value


TEXT = AfterValidator(check_text)
JSONObject = Annotated[dict[str, Any], AfterValidator(check_json)]
Instant = Annotated[datetime, AfterValidator(check_instant)]
