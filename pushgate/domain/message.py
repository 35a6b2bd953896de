"""The provider-neutral message one delivery sends, and the Web Push payload built from it.

The payload limit lives here (not in the provider) so the API can refuse an oversized
notification when it is accepted instead of failing every delivery later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from pushgate.errors import PayloadTooLargeError

# RFC 8291 section 4 / RFC 8188: a push service must accept 4096-byte bodies. One aes128gcm
# record of 4096 bytes = 86-byte header + plaintext + 1 delimiter byte + 16-byte tag.
MAX_WEBPUSH_PLAINTEXT = 4096 - 86 - 1 - 16

# RFC 8030 section 5.2: push services may cap TTL; 28 days is the longest any of them keeps.
MAX_TTL_SECONDS = 28 * 24 * 3600
DEFAULT_TTL_SECONDS = MAX_TTL_SECONDS


# A first attempt this soon after the send time carries the `ttl` as it was sent.
FIRST_ATTEMPT_GRACE_SECONDS = 60


def attempt_ttl(ttl: int, *, first_attempt: bool, seconds_left: float) -> int:
    """The TTL one delivery attempt gives the provider.

    A first attempt made within a minute of the send time carries the notification's `ttl` as
    it was sent (`ttl: 0`, "now or never", stays 0). Any later attempt (a retry, or a first
    attempt held back: deferred past quiet hours, or behind a long queue) carries what is left
    of the notification's lifetime, rounded up (a whole second short would drop a message the
    notification still allows), never more than `ttl` and never below 0, so the provider shows
    nothing after the notification expired.
    """
    if first_attempt and seconds_left > ttl - FIRST_ATTEMPT_GRACE_SECONDS:
        return ttl
    return max(0, min(ttl, math.ceil(seconds_left)))


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class Action:
    """A notification button: `action` is the id the service worker receives on click."""

    action: str
    title: str
    icon: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery sends, whatever the platform. Treat the mappings as read-only.

    Attributes:
        url: where a click leads (Web Push `url`, FCM `link`, APNs custom key).
        data: custom key-value pairs; values are strings because FCM requires it.
        ttl: seconds the provider keeps an undelivered message; 0 means now or never.
        collapse_key: a newer message with the same key replaces an undelivered older one.
        webpush, fcm, apns: per-platform overrides merged over what is built from the fields.
        dry_run: check, do not show: FCM validates the message at Google (`validate_only`);
            APNs and Web Push, which have no such mode, build and check the request locally
            and contact no one. A delivery that passes is recorded `sent` with the provider
            message id `dry-run`.
    """

    title: str | None = None
    body: str | None = None
    icon: str | None = None
    image: str | None = None
    badge: str | None = None
    url: str | None = None
    tag: str | None = None
    sound: str | None = None
    actions: Sequence[Action] = ()
    data: Mapping[str, str] = field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    ttl: int = DEFAULT_TTL_SECONDS
    collapse_key: str | None = None
    webpush: Mapping[str, Any] = field(default_factory=dict)
    fcm: Mapping[str, Any] = field(default_factory=dict)
    apns: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False


def webpush_payload(message: Message) -> bytes:
    """The JSON the service worker receives in its `push` event (`event.data.json()`).

    Empty fields are left out; the `webpush` override is merged over the top level, so
    `{"requireInteraction": true}` adds a field and `{"icon": null}` removes one.
    """
    payload: dict[str, Any] = {}
    for name in ("title", "body", "icon", "image", "badge", "url", "tag"):
        value = getattr(message, name)
        if value:
            payload[name] = value
    if message.actions:
        payload["actions"] = [
            {"action": a.action, "title": a.title} | ({"icon": a.icon} if a.icon else {})
            for a in message.actions
        ]
    if message.data:
        payload["data"] = dict(message.data)
    for key, value in message.webpush.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return orjson.dumps(payload)


def check_webpush_payload(message: Message, *, field: str = "payload") -> bytes:
    """The Web Push payload, if it fits in one 4096-byte encrypted record.

    Raises:
        PayloadTooLargeError: over `MAX_WEBPUSH_PLAINTEXT` bytes; `details` names the field.
    """
    payload = webpush_payload(message)
    if len(payload) > MAX_WEBPUSH_PLAINTEXT:
        raise PayloadTooLargeError(
            f"the Web Push payload is {len(payload)} bytes;"
            f" at most {MAX_WEBPUSH_PLAINTEXT} fit in one encrypted message",
            details={
                "field": field,
                "size_bytes": len(payload),
                "limit_bytes": MAX_WEBPUSH_PLAINTEXT,
            },
        )
    return payload
