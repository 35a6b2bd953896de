"""Webhooks, pure rules: event types, secrets, the Standard Webhooks signature and body, and
the retry schedule of an event. No I/O (the outbox is store/webhooks.py, the sender
sending/webhooks.py).

Signature (https://www.standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, the key the base64-decoded part of the secret after `whsec_`.
Several signatures are separated by spaces (a rotated-out secret signs beside the new one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
SECRET_BYTES = 32


class EventType(StrEnum):
    DEVICE_REGISTERED = "device.registered"
    DEVICE_INVALIDATED = "device.invalidated"
    # Unseen for `devices.stale_after_days`: deactivated after the grace unless seen again.
    DEVICE_EXPIRING = "device.expiring"
    DELIVERY_FAILED = "delivery.failed"
    NOTIFICATION_COMPLETED = "notification.completed"


EVENT_TYPES = tuple(t.value for t in EventType)


class EventStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the message with the secret (`whsec_...`)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(
    secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers, signed with every secret given (the current first)."""
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_),
    }


def message_id(event_id: int) -> str:
    """The `webhook-id`: the same on every attempt of one event, so receivers can deduplicate."""
    return f"msg_{event_id}"


def body(event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {"type": event_type, "timestamp": created_at.isoformat(), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones (exponential, capped)."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))
