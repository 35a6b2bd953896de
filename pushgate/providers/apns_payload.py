"""APNs's pure protocol core: the request for one notification (`build_request`, `build_payload`,
`PushType`) and Apple's answer read as an outcome with the client's follow-up (`classify`,
`map_response`). No I/O: `apns.py` sends.

Apple's documentation, cited below as [send] and [errors]:
- [send] https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
- [errors] https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
"""

from __future__ import annotations

import hashlib
import http
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

import orjson

from pushgate.domain.message import Message, Priority
from pushgate.domain.outcome import HoldScope, Outcome
from pushgate.errors import PayloadTooLargeError
from pushgate.providers import answers
from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.base import Target

# [send] "Create the POST notification": 4 KB for regular notifications, 5 KB for VoIP.
MAX_PAYLOAD_BYTES = 4096
MAX_VOIP_PAYLOAD_BYTES = 5120
# [send] apns-collapse-id: "The value of this key must not exceed 64 bytes."
MAX_COLLAPSE_ID_BYTES = 64

_HEX = frozenset("0123456789abcdefABCDEF")


class PushType(StrEnum):
    """`apns-push-type` values ([send], "apns-push-type")."""

    ALERT = "alert"
    BACKGROUND = "background"
    VOIP = "voip"
    LIVEACTIVITY = "liveactivity"
    COMPLICATION = "complication"
    FILEPROVIDER = "fileprovider"
    LOCATION = "location"
    PUSHTOTALK = "pushtotalk"
    MDM = "mdm"


# [send]: some push types must go to the bundle id plus a suffix.
_TOPIC_SUFFIXES = {
    PushType.VOIP: ".voip",
    PushType.LIVEACTIVITY: ".push-type.liveactivity",
    PushType.COMPLICATION: ".complication",
    PushType.FILEPROVIDER: ".pushkit.fileprovider",
    PushType.LOCATION: ".location-query",
    PushType.PUSHTOTALK: ".voip-ptt",
}


# --- the request -----------------------------------------------------------------------------


class InvalidDeviceTokenError(ValueError):
    """The device token can never be valid (APNs tokens are hexadecimal)."""


def collapse_id_for(collapse_key: str) -> str:
    """At most 64 bytes ([send]); a longer key maps to a stable 64-character digest of itself,
    so messages with the same long key still replace each other."""
    if len(collapse_key.encode()) <= MAX_COLLAPSE_ID_BYTES:
        return collapse_key
    return hashlib.blake2b(collapse_key.encode(), digest_size=32).hexdigest()


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key; a None removes the key; anything else replaces it."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        elif isinstance(value, Mapping):
            merged[key] = _deep_merge({}, value)
        else:
            merged[key] = value
    return merged


# [send] "Send a background notification": the app is woken only when `aps` has
# content-available and none of these; any of them makes the push one the user sees.
_VISIBLE_APS_KEYS = ("alert", "sound", "badge")


def build_payload(message: Message) -> dict[str, Any]:
    """The JSON payload: `aps` from the message's fields, custom keys beside it, then the
    message's `apns` override deep-merged over the whole document.

    `badge` is used only when it is a count (Message.badge is also the Web Push badge icon URL,
    which is never all digits); `image` sets `mutable-content` so a notification service
    extension can fetch it; `url` and `image` travel as custom keys. A message with nothing to
    show (no title, body, sound or badge count: data only) is a background push,
    `content-available: 1`, which wakes the app so it receives the data; an empty `aps` would
    be an alert that shows nothing and wakes nothing.
    """
    alert = {k: v for k, v in (("title", message.title), ("body", message.body)) if v}
    aps: dict[str, Any] = {}
    if alert:
        aps["alert"] = alert
    if message.badge and message.badge.isdigit():
        aps["badge"] = int(message.badge)
    if message.sound:
        aps["sound"] = message.sound
    if not aps:
        aps["content-available"] = 1
    elif message.image:
        aps["mutable-content"] = 1
    payload: dict[str, Any] = dict(message.data)
    for name in ("url", "image"):
        value = getattr(message, name)
        if value:
            payload[name] = value
    # `aps` is Apple's key: a custom data key of that name must not replace it.
    payload["aps"] = aps
    return _deep_merge(payload, message.apns)


def _push_type_of(aps: Mapping[str, Any], requested: PushType | str | None) -> PushType:
    if requested is not None:
        return PushType(requested)
    # [send] apns-push-type: background "for notifications that deliver content in the
    # background, and don't trigger any user interactions": content-available and nothing
    # shown (an `apns` override that adds an alert, sound or badge makes it an alert).
    if aps.get("content-available") and not any(aps.get(k) for k in _VISIBLE_APS_KEYS):
        return PushType.BACKGROUND
    return PushType.ALERT


def build_request(
    target: Target,
    message: Message,
    credentials: APNSCredentials,
    *,
    push_type: PushType | str | None = None,
    now: float | None = None,
) -> tuple[str, dict[str, str], bytes]:
    """The POST for one notification ([send]), without `authorization` (the client adds it).

    Args:
        push_type: forces `apns-push-type`; by default `background` when the payload's
            final `aps` (after the `apns` override) has `content-available` and no alert,
            sound or badge, else `alert`. A background push always goes at priority 5 (Apple
            refuses 10 for it), whatever the message's priority.
        now: wall-clock seconds, for `apns-expiration`.

    Returns:
        (path, headers, body).

    Raises:
        InvalidDeviceTokenError: the token is not hexadecimal.
        PayloadTooLargeError: the payload is over 4096 bytes (5120 for VoIP).
    """
    token = target.token
    if not token or not set(token) <= _HEX:
        raise InvalidDeviceTokenError("an APNs device token is hexadecimal")
    payload = build_payload(message)
    aps = payload.get("aps")
    kind = _push_type_of(aps if isinstance(aps, dict) else {}, push_type)
    body = orjson.dumps(payload)
    limit = MAX_VOIP_PAYLOAD_BYTES if kind is PushType.VOIP else MAX_PAYLOAD_BYTES
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the APNs payload is {len(body)} bytes; at most {limit} are allowed",
            details={"field": "payload", "size_bytes": len(body), "limit_bytes": limit},
        )
    # [send] apns-priority: 10 is an error for a background notification; it must be 5.
    high = message.priority is Priority.HIGH and kind is not PushType.BACKGROUND
    # [send] apns-expiration: 0 means deliver now or never, no storing.
    expiration = 0 if message.ttl <= 0 else int(time.time() if now is None else now) + message.ttl
    headers = {
        "apns-topic": credentials.topic + _TOPIC_SUFFIXES.get(kind, ""),
        "apns-push-type": kind.value,
        "apns-priority": "10" if high else "5",
        "apns-expiration": str(expiration),
        "apns-id": str(uuid.uuid4()),
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = collapse_id_for(message.collapse_key)
    return f"/3/device/{token.lower()}", headers, body


# --- the response ----------------------------------------------------------------------------


class FollowUp(Enum):
    """What the client does besides returning the outcome."""

    NONE = "none"
    REFRESH_TOKEN_AND_RETRY = "refresh_token_and_retry"  # noqa: S105 (not a secret)
    """ExpiredProviderToken: mint a new token (if the 20-minute floor allows) and resend once."""
    NEW_CONNECTION = "new_connection"
    """Shutdown: the server is going away; send nothing more on this connection."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    follow_up: FollowUp = FollowUp.NONE
    reason: str = ""


_CREDENTIAL_REASONS = frozenset(
    {"InvalidProviderToken", "MissingProviderToken", "Forbidden", "BadCertificate"}
)
# [errors] 429 TooManyRequests: "too many requests were made consecutively to the same device
# token". Apple sends no Retry-After; an immediate retry only extends the throttling. It is
# about that token: only it waits, the app's other devices go on.
TOO_MANY_REQUESTS_RETRY_AFTER = 60.0


def _reason(body: bytes) -> tuple[str, float | None]:
    """(reason, timestamp in ms) from `{"reason": ..., "timestamp": ...}`."""
    if not body:
        return "", None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", None
    if not isinstance(document, dict):
        return "", None
    reason = document.get("reason")
    timestamp = document.get("timestamp")
    return (
        reason if isinstance(reason, str) else "",
        float(timestamp) if isinstance(timestamp, int | float) else None,
    )


def _as_epoch(value: datetime | float) -> float:
    # A naive datetime is UTC: that is how the store (and SQLite) keep timestamps.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return (value - datetime(1970, 1, 1)).total_seconds()
        return value.timestamp()
    return float(value)


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    device_registered_at: datetime | float | None = None,
    environment: str | None = None,
) -> Verdict:
    """Classify an APNs answer as in docs/protocols.md#apns-errors, with the client's follow-up.

    A 410 whose `timestamp` is older than the device's latest registration is `rejected`, not
    `token_invalid`: the app handed us this token again after Apple stopped accepting it, so
    the registration is newer than Apple's verdict and deactivating it would discard the
    newest thing we know; retrying unchanged would only earn another 410.
    """
    if status == 200:
        return Verdict(Outcome.sent(answers.header(headers, "apns-id"), status_code=200))
    reason, timestamp = _reason(body)
    text = f"{status} {reason or _phrase(status)}"
    if status == 410:
        if (
            timestamp is not None
            and device_registered_at is not None
            and _as_epoch(device_registered_at) * 1000 > timestamp
        ):
            return Verdict(
                Outcome.rejected(
                    f"{text}: the device re-registered after APNs invalidated the token",
                    status_code=status,
                ),
                reason=reason,
            )
        return Verdict(Outcome.token_invalid(text, status_code=status), reason=reason)
    if status == 400 and reason == "BadDeviceToken":
        # [errors]: also what a development token sent to production (or back) looks like.
        where = f" for the {environment} environment" if environment else ""
        return Verdict(
            Outcome.token_invalid(
                f"{text}: the token is not valid{where} (a sandbox/production mix-up looks the"
                " same)",
                status_code=status,
            ),
            reason=reason,
        )
    if status == 400 and reason == "DeviceTokenNotForTopic":
        return Verdict(
            Outcome.token_invalid(f"{text}: the token belongs to another app", status_code=status),
            reason=reason,
        )
    if status == 403 and reason == "ExpiredProviderToken":
        return Verdict(
            Outcome.retry_later(
                f"{text}: refresh the provider token and retry once", status_code=status
            ),
            FollowUp.REFRESH_TOKEN_AND_RETRY,
            reason,
        )
    if status in (401, 403):
        # InvalidProviderToken, MissingProviderToken, Forbidden, BadCertificate*,
        # BadCertificateEnvironment, and any 403 Apple adds later: all about our credentials.
        return Verdict(Outcome.credential_alarm(text, status_code=status), reason=reason)
    if status == 429:
        if reason == "TooManyProviderTokenUpdates":
            return Verdict(Outcome.retry_later(text, status_code=status), reason=reason)
        retry_after = _retry_after(headers) or TOO_MANY_REQUESTS_RETRY_AFTER
        return Verdict(
            Outcome.retry_later(
                text, retry_after=retry_after, status_code=status, hold=HoldScope.DEVICE
            ),
            reason=reason,
        )
    if status >= 500:
        follow_up = FollowUp.NEW_CONNECTION if reason == "Shutdown" else FollowUp.NONE
        return Verdict(
            Outcome.retry_later(text, retry_after=_retry_after(headers), status_code=status),
            follow_up,
            reason,
        )
    # 400 (BadTopic, PayloadEmpty, BadPriority, InvalidPushType, ...), 404 BadPath, 405,
    # 413 PayloadTooLarge: our request is wrong.
    return Verdict(Outcome.rejected(text, status_code=status), reason=reason)


def map_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    device_registered_at: datetime | float | None = None,
    environment: str | None = None,
) -> Outcome:
    """The outcome of an APNs answer (see `classify`, which also says what the client does)."""
    return classify(
        status,
        headers,
        body,
        device_registered_at=device_registered_at,
        environment=environment,
    ).outcome


def _retry_after(headers: Mapping[str, str]) -> float | None:
    return answers.retry_after(answers.header(headers, "retry-after"))


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"
