"""Dead letters, read for people: what a letter's body and reason say (its app, provider,
notification, delivery, last answer) and a bounded reason code to filter on. Pure: no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from pushgate.sending import jobs

# The outcome kind or error code a reason starts with (`retry_later: HTTP 500 ...`,
# `invalid_input: title: ...`, `missing_variable: ...`).
_CODE = re.compile(r"^([a-z][a-z0-9_]{1,62}):")
# Reasons written without a code, by the handlers that cannot read a job or gave up on it.
_KNOWN = (
    ("not a dispatch job", "bad_job"),
    ("not a deliver job", "bad_job"),
    ("dispatch failed", "dispatch_failed"),
    ("accept failed", "accept_failed"),
    ("not JSON", "bad_job"),
    ("the message must be a JSON object", "bad_job"),
)
UNKNOWN = "unknown"


def reason_code(reason: str) -> str:
    """A word for `reason` from a small set, fit to filter on (never free text)."""
    for start, code in _KNOWN:
        if reason.startswith(start):
            return code
    match = _CODE.match(reason)
    return match.group(1) if match else UNKNOWN


@dataclass(frozen=True, slots=True)
class Described:
    """What a letter's body tells about it; None where it does not say."""

    app_ref: str | None = None
    provider: str | None = None
    notification_id: uuid.UUID | None = None
    delivery_id: int | None = None
    outcome: str | None = None
    status_code: int | None = None
    error: str | None = None


def describe(origin: str, body: bytes) -> Described:
    """Read a letter's body the way its origin queue's handler wrote or read it. Any body,
    however broken, gives an answer."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Described()
    if not isinstance(data, dict):
        return Described()
    if data.get("kind") == jobs.DELIVERY_FAILED:
        return Described(
            app_ref=_text(data.get("app_id")),
            provider=_text(data.get("platform")),
            notification_id=_uuid(data.get("notification_id")),
            delivery_id=data["delivery_id"] if isinstance(data.get("delivery_id"), int) else None,
            outcome=_text(data.get("last_outcome")),
            status_code=data.get("last_status_code")
            if isinstance(data.get("last_status_code"), int)
            else None,
            error=_text(data.get("last_error")),
        )
    if origin == "dispatch":
        return Described(notification_id=_uuid(data.get("notification_id")))
    if origin == "push":
        return Described(app_ref=_text(data.get("app")) or _text(data.get("app_id")))
    return Described()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
