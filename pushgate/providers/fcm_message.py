"""FCM HTTP v1's pure protocol core: the message for `messages:send` (`build_message`,
`build_topic_message`, `deep_merge`) and FCM's answer read as an outcome (`map_response`,
`is_oauth_failure`, `quota_scope`). No I/O: `fcm.py` sends.

Reference: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages and
https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode.
"""

from __future__ import annotations

import copy
import hashlib
import http
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

from pushgate.domain.message import MAX_TTL_SECONDS, Message, Priority
from pushgate.domain.outcome import HoldScope, Outcome
from pushgate.errors import InvalidInputError
from pushgate.providers import answers, webpush
from pushgate.providers.base import Target

# --- the message -----------------------------------------------------------------------------

# `fid` (a Firebase installation ID) is the newer alternative to `token`.
_TARGETS = ("token", "fid", "topic", "condition")
# The topic names firebase-admin accepts (messaging `sanitize_topic_name`).
_TOPIC = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")
# https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
_MAX_APNS_COLLAPSE_ID_BYTES = 64


def build_message(
    target: Target, message: Message, *, validate_only: bool = False, now: float | None = None
) -> dict[str, Any]:
    """The body of `POST /v1/projects/{project}/messages:send` for one registration token.

    Fields map as follows; empty ones are left out:

    - `notification {title, body, image}` and `data` (values must be strings);
    - `android {priority, ttl "Ns", collapse_key, notification {icon, sound, tag}}`;
    - `apns {headers {apns-priority, apns-expiration, apns-push-type, apns-collapse-id},
      payload {aps {alert, sound, mutable-content | content-available}}, fcm_options {image}}`;
    - `webpush {headers {TTL, Urgency, Topic}, notification {icon, badge, tag, actions},
      fcm_options {link}}` (`link` only for an https `url`: FCM refuses any other);

    then `message.fcm` is deep-merged over the whole `message` object (see `deep_merge`), so
    `{"android": {"notification": {"channel_id": "orders"}}}` adds one field and
    `{"apns": None}` drops the APNs block.

    Args:
        target: `target.token` is the registration token.
        message: what to send.
        validate_only: FCM checks the message without delivering it (dry run).
        now: unix time for `apns-expiration` (default: the wall clock).

    Raises:
        InvalidInputError: a data value is not a string, or the `fcm` override touches the
            target (`token`, `fid`, `topic`, `condition`).
    """
    return _build({"token": target.token}, message, validate_only=validate_only, now=now)


def build_topic_message(
    topic_or_condition: str,
    message: Message,
    *,
    validate_only: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Like `build_message`, addressed to a topic (`news`, `/topics/news`) or a condition
    (`'news' in topics && 'sports' in topics`).

    Raises:
        InvalidInputError: as `build_message`, or the topic name is malformed.
    """
    text = topic_or_condition.strip()
    if "'" in text or '"' in text:
        destination = {"condition": text}
    else:
        topic = text.removeprefix("/topics/")
        if not _TOPIC.match(topic):
            raise InvalidInputError(f"malformed FCM topic name {text!r}", field="topic")
        destination = {"topic": topic}
    return _build(destination, message, validate_only=validate_only, now=now)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` merged over `base`, neither modified: where both hold a mapping the two
    merge recursively; a None in `override` removes the key; any other value (lists too)
    replaces what was there."""
    result = dict(base)
    for key, value in override.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            below = result.get(key)
            result[key] = deep_merge(below if isinstance(below, Mapping) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _build(
    destination: dict[str, str], message: Message, *, validate_only: bool, now: float | None
) -> dict[str, Any]:
    body: dict[str, Any] = dict(destination)
    notification = _compact(title=message.title, body=message.body, image=message.image)
    if notification:
        body["notification"] = notification
    if message.data:
        body["data"] = dict(message.data)
    body["android"] = _android(message)
    body["apns"] = _apns(message, time.time() if now is None else now)
    body["webpush"] = _webpush(message)
    touched = [name for name in _TARGETS if name in message.fcm]
    if touched:
        raise InvalidInputError(
            "the fcm override cannot change where the message goes", field=f"fcm.{touched[0]}"
        )
    merged = deep_merge(body, message.fcm)
    data = merged.get("data", {})
    if not isinstance(data, Mapping):
        raise InvalidInputError("FCM data must be an object", field="data")
    for key, value in data.items():
        if not isinstance(value, str):
            # https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages:
            # "data: ... map (key: string, value: string)"; anything else is INVALID_ARGUMENT.
            raise InvalidInputError(f"FCM data values must be strings: {key!r}", field="data")
    return {"message": merged, "validate_only": validate_only}


def _compact(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != ""}


def _ttl(message: Message) -> int:
    # FCM keeps messages at most 4 weeks (28 days), the same cap as Web Push.
    return min(max(message.ttl, 0), MAX_TTL_SECONDS)


def _android(message: Message) -> dict[str, Any]:
    android: dict[str, Any] = {
        "priority": "high" if message.priority is Priority.HIGH else "normal",
        "ttl": f"{_ttl(message)}s",
    }
    if message.collapse_key:
        android["collapse_key"] = message.collapse_key
    notification = _compact(icon=message.icon, sound=message.sound, tag=message.tag)
    if notification:
        android["notification"] = notification
    return android


def _apns(message: Message, now: float) -> dict[str, Any]:
    ttl = _ttl(message)
    alert = _compact(title=message.title, body=message.body)
    aps: dict[str, Any] = {}
    if alert:
        aps["alert"] = alert
    if message.sound:
        aps["sound"] = message.sound
    # Apple: a push without an alert is a background push: content-available, priority 5
    # and push type `background` (priority 10 with content-available is an error).
    # https://developer.apple.com/documentation/usernotifications/pushing-background-updates-to-your-app
    background = not alert and not message.sound
    if background:
        aps["content-available"] = 1
    headers = {
        "apns-priority": "10" if message.priority is Priority.HIGH and not background else "5",
        # apns-expiration is a unix time; 0 means deliver now or never.
        "apns-expiration": "0" if ttl == 0 else str(int(now) + ttl),
        "apns-push-type": "background" if background else "alert",
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = _apns_collapse_id(message.collapse_key)
    apns: dict[str, Any] = {"headers": headers, "payload": {"aps": aps}}
    if message.image and alert:
        # FCM docs, "Send an image in the notification payload": on Apple platforms the
        # notification service extension needs mutable-content and fcm_options.image.
        aps["mutable-content"] = 1
        apns["fcm_options"] = {"image": message.image}
    return apns


def _apns_collapse_id(collapse_key: str) -> str:
    if len(collapse_key.encode()) <= _MAX_APNS_COLLAPSE_ID_BYTES:
        return collapse_key
    return hashlib.blake2b(collapse_key.encode(), digest_size=32).hexdigest()


def _webpush(message: Message) -> dict[str, Any]:
    headers = {
        "TTL": str(_ttl(message)),
        "Urgency": "high" if message.priority is Priority.HIGH else "normal",
    }
    if message.collapse_key:
        headers["Topic"] = webpush.topic_for(message.collapse_key)
    result: dict[str, Any] = {"headers": headers}
    notification = _compact(icon=message.icon, badge=message.badge, tag=message.tag)
    if message.actions:
        notification["actions"] = [
            _compact(action=a.action, title=a.title, icon=a.icon) for a in message.actions
        ]
    if notification:
        result["notification"] = notification
    if message.url and message.url.startswith("https://"):
        result["fcm_options"] = {"link": message.url}
    return result


# --- the response ----------------------------------------------------------------------------

_FCM_ERROR_TYPE = "google.firebase.fcm.v1.FcmError"
# FCM's words for a malformed token under INVALID_ARGUMENT: "The registration token is not a
# valid FCM registration token". Other INVALID_ARGUMENTs are about our payload.
_TOKEN_NOT_VALID = re.compile(
    r"registration token is not a valid|invalid registration token", re.IGNORECASE
)
QUOTA_RETRY_SECONDS = 60.0
UNAVAILABLE_RETRY_SECONDS = 10.0
_QUOTA_FAILURE_TYPE = "google.rpc.QuotaFailure"
# QUOTA_EXCEEDED is one of three quotas (FCM's ErrorCode reference): the project's message
# rate, one device's message rate, or one topic's. The `QuotaFailure` detail's violations say
# which in their words; these are the words that name a destination rather than the project.
_DESTINATION_QUOTA = re.compile(r"device|topic", re.IGNORECASE)
_PROJECT_QUOTA = re.compile(r"project", re.IGNORECASE)


def fcm_error_code(body: bytes) -> str | None:
    """The `errorCode` of the `FcmError` entry in `error.details[]`, if the body has one."""
    error = _error_object(_json(body))
    details = error.get("details") if error else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if (
            isinstance(detail, dict)
            and str(detail.get("@type", "")).endswith(_FCM_ERROR_TYPE)
            and isinstance(detail.get("errorCode"), str)
        ):
            return str(detail["errorCode"])
    return None


def quota_scope(body: bytes) -> HoldScope:
    """What a `QUOTA_EXCEEDED` is about, from the `google.rpc.QuotaFailure` detail: the
    project's quota holds every send of the app; a device's (or topic's) holds only that
    destination. When FCM does not say, the device: holding the whole project for one
    device's limit stops every healthy device, holding one device for the project's limit
    only costs a few more 429s."""
    error = _error_object(_json(body))
    details = error.get("details") if error else None
    violations = [
        violation
        for detail in (details if isinstance(details, list) else [])
        if isinstance(detail, dict)
        and str(detail.get("@type", "")).endswith(_QUOTA_FAILURE_TYPE)
        and isinstance(detail.get("violations"), list)
        for violation in detail["violations"]
        if isinstance(violation, dict)
    ]
    # A violation's subject is often the calling project whatever the quota: its description
    # and metric name the quota, so a destination named anywhere wins over "project".
    words = [
        " ".join(str(v.get(k, "")) for k in ("subject", "description", "quotaMetric", "quotaId"))
        for v in violations
    ]
    if any(_DESTINATION_QUOTA.search(text) for text in words):
        return HoldScope.DEVICE
    if any(_PROJECT_QUOTA.search(text) for text in words):
        return HoldScope.PROJECT
    return HoldScope.DEVICE


def is_oauth_failure(status: int, body: bytes) -> bool:
    """True for a 401/403 that is about our access token, not the message: no `FcmError`
    detail. The client refreshes the token once and retries; `map_response` gives the
    outcome (a credential alarm) if the retry fails the same way."""
    return status in (401, 403) and fcm_error_code(body) is None


def map_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Outcome:
    """Classify FCM's answer in docs/protocols.md#fcm-errors.

    The `FcmError` code decides where there is one; otherwise the HTTP status: 401/403
    credential alarm (after the client's one refresh), 429 and 5xx retry later, 408 retry
    later, any other 4xx rejected.
    """
    if 200 <= status < 300:
        document = _json(body)
        name = document.get("name") if isinstance(document, dict) else None
        return Outcome.sent(name if isinstance(name, str) else None, status_code=status)
    document = _json(body)
    if document is None and status == 404 and _looks_like_html(headers, body):
        # The legacy endpoint (fcm.googleapis.com/fcm/send) answers an HTML 404 since it
        # was shut down; so does any wrong path. Either way the request is ours to fix.
        return Outcome.rejected(
            "FCM answered an HTML 404: the legacy endpoint or a wrong URL was called",
            status_code=status,
        )
    code = fcm_error_code(body)
    text = _error_text(status, document, code, body)
    retry_after = answers.retry_after(answers.header(headers, "Retry-After"), now)
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        return Outcome.token_invalid(text, status_code=status)
    if code == "INVALID_ARGUMENT":
        if _TOKEN_NOT_VALID.search(text):
            return Outcome.token_invalid(text, status_code=status)
        return Outcome.rejected(text, status_code=status)
    if code == "QUOTA_EXCEEDED" or (code is None and status == 429):
        # A 429 without an FcmError is Google's front end pushing back on the project.
        hold = quota_scope(body) if code == "QUOTA_EXCEEDED" else HoldScope.PROJECT
        return Outcome.retry_later(
            text,
            retry_after=_or(retry_after, QUOTA_RETRY_SECONDS),
            status_code=status,
            hold=hold,
        )
    if code in ("UNAVAILABLE", "INTERNAL") or status >= 500:
        return Outcome.retry_later(
            text, retry_after=_or(retry_after, UNAVAILABLE_RETRY_SECONDS), status_code=status
        )
    if code == "THIRD_PARTY_AUTH_ERROR" or status in (401, 403):
        return Outcome.credential_alarm(text, status_code=status)
    if status == 408:
        return Outcome.retry_later(text, retry_after=retry_after, status_code=status)
    return Outcome.rejected(text, status_code=status)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _error_object(document: Any) -> dict[str, Any] | None:
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else None


def _looks_like_html(headers: Mapping[str, str], body: bytes) -> bool:
    content_type = (answers.header(headers, "Content-Type") or "").lower()
    return "html" in content_type or body.lstrip()[:1] == b"<"


def _error_text(status: int, document: Any, code: str | None, body: bytes) -> str:
    error = _error_object(document)
    if error is not None:
        label = code or str(error.get("status") or _phrase(status))
        message = error.get("message")
        return f"{label}: {message}" if isinstance(message, str) and message else label
    if body:
        return f"{_phrase(status)}: {body[:300].decode('utf-8', 'replace')}"
    return _phrase(status)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
