"""The fields the two legacy queue consumers (`template_consumer`, `flask_consumer`) send in
the same form: an integer priority, ids that may be JSON numbers, and `metadata` whose values
become FCM `data`. Pure: each turns one legacy value into the value the `/v1` request takes,
or raises ValueError with the reason the message is dead-lettered with."""

from __future__ import annotations

import math
from typing import Any

# The consumers took a RabbitMQ-style priority, 0 (lowest) to 10 (highest); pushgate has two
# levels. From this one up a notification is `high` (FCM `android.priority: high`, APNs 10,
# Web Push `Urgency: high`); below it `normal`.
HIGH_PRIORITY_FROM = 5
MAX_PRIORITY = 10


def priority(value: Any) -> str:
    """`high` or `normal` for a legacy priority: an integer 0-10 (or pushgate's own words).
    A missing priority is `normal`, as it was.

    Raises:
        ValueError: anything else (a bool, a float, a number out of range, another word).
    """
    if value is None:
        return "normal"
    if isinstance(value, str) and value in ("high", "normal"):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise ValueError(
            f"invalid_input: priority: must be an integer from 0 to {MAX_PRIORITY}"
            f" ({HIGH_PRIORITY_FROM} and up is high), got {value!r}"[:500]
        )
    return "high" if value >= HIGH_PRIORITY_FROM else "normal"


def text_id(data: dict[str, Any], name: str) -> Any:
    """The value of an id field (`user_id`, `notification_id` ...) as text: producers that kept
    ids as integers sent JSON numbers, which mean the same id as their decimal text. Anything
    else is returned as it is, for the request's own validation to name."""
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def data_of(metadata: Any) -> dict[str, Any]:
    """The FCM `data` of a legacy `metadata` object: its strings as they are, numbers and
    booleans as `/v1` converts `data` values (`3` -> `"3"`, `true` -> `"true"`); nulls and
    nested values are left out (FCM data holds flat strings; the whole `metadata` is still
    stored with the notification)."""
    if not isinstance(metadata, dict):
        return {}
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        finite = not isinstance(value, float) or math.isfinite(value)
        if isinstance(value, str | bool | int | float) and finite:
            kept[key] = value
    return kept
