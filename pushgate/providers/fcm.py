"""FCM HTTP v1 delivery: service-account credentials, the pure protocol core (`build_message`,
`build_topic_message`, `map_response`, `is_oauth_failure`) and the thin `FCMProvider`; its OAuth2
access tokens are `providers/fcm_tokens.py`'s.

The provider holds one OAuth2 access token per service account (google-auth signs the JWT-bearer
grant; one refresh in flight per account; cached until shortly before it expires) and one
keep-alive connection pool shared by every app: `http1.HTTP1Pool`, HTTP/1.1 over asyncio and
httptools, chosen by measurement on this machine (a quarter of aiohttp's CPU per POST, which did
~5,000-7,700 requests/s per process against ~3,000 for the `h2` library on asyncio and ~800 for
httpx over HTTP/2). FCM accepts HTTP/1.1; HTTP/2 would only save connections, which a bounded
keep-alive pool already keeps few.

Reference: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages and
https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import http
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote, urlsplit

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pushgate.domain import subscription
from pushgate.domain.message import MAX_TTL_SECONDS, Message, Priority
from pushgate.domain.outcome import HoldScope, Outcome
from pushgate.errors import InvalidInputError
from pushgate.providers import answers, fcm_tokens, http1, webpush
from pushgate.providers.base import Capabilities, DeliveryProvider, StoredCredentials, Target
from pushgate.providers.tls import LazyContext
from pushgate.settings import FCMSettings, Settings

SCOPE = fcm_tokens.SCOPE
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
# Where Google's service-account keys send the JWT-bearer grant (older keys name the second).
# The token_uri comes from an app's uploaded JSON, so any other is refused unless the operator
# allows it: otherwise a tenant could make us POST to an internal https service (SSRF) and read
# its answer back in the delivery's error text.
GOOGLE_TOKEN_URIS = (GOOGLE_TOKEN_URI, "https://accounts.google.com/o/oauth2/token")

# --- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FCMCredentials:
    """An app's Firebase service account: what FCM needs to mint access tokens and address
    the project. Hashable, so the provider keys its token cache on it.

    Build it with `from_service_account`, which validates; the fields are the service-account
    JSON's own names.
    """

    platform: ClassVar[str] = "fcm"

    project_id: str
    client_email: str
    private_key: str = field(repr=False)
    token_uri: str = GOOGLE_TOKEN_URI
    private_key_id: str | None = None

    @classmethod
    def from_service_account(cls, source: Mapping[str, Any] | str) -> FCMCredentials:
        """Check a service-account key (the JSON the Firebase console downloads) given as
        content: never a path, so a tenant's upload cannot make the server read its files
        (the operator's files go through `from_file`).

        Args:
            source: the parsed JSON, or the JSON text itself.

        Raises:
            InvalidInputError: not JSON, not a service account, or a field is missing or
                malformed; the message names the problem (`field` is `service_account`).
        """
        info = _parse_service_account(source)
        kind = info.get("type", "service_account")
        if kind != "service_account":
            _bad(f'"type" is {kind!r}, not "service_account"')
        values: dict[str, str] = {}
        for name in ("project_id", "client_email", "private_key"):
            value = info.get(name)
            if not isinstance(value, str) or not value.strip():
                _bad(f'"{name}" is missing or empty')
            if not _storable(value):
                _bad(f'"{name}" holds a NUL character or a lone surrogate')
            values[name] = value.strip()
        token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
        if not isinstance(token_uri, str) or urlsplit(token_uri).scheme != "https":
            _bad('"token_uri" must be an https URL')
        key_id = info.get("private_key_id")
        if key_id is not None and not isinstance(key_id, str):
            _bad('"private_key_id" must be a string')
        if "@" not in values["client_email"]:
            _bad('"client_email" is not an e-mail address')
        private_key = values["private_key"]
        # Keys pasted into environment variables often arrive with literal "\n" sequences.
        if "\\n" in private_key and "\n" not in private_key:
            private_key = private_key.replace("\\n", "\n")
        _check_private_key(private_key)
        return cls(
            project_id=values["project_id"],
            client_email=values["client_email"],
            private_key=private_key + ("" if private_key.endswith("\n") else "\n"),
            token_uri=token_uri,
            private_key_id=key_id or None,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FCMCredentials:
        """Read and check the service-account file at `path`: for the operator (the CLI and
        the settings), never for anything a tenant sends.

        Raises:
            InvalidInputError: unreadable, or not a usable service account.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            _bad(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return cls.from_service_account(text)

    def service_account_info(self) -> dict[str, str]:
        """The fields google-auth's `from_service_account_info` reads."""
        info = {
            "type": "service_account",
            "project_id": self.project_id,
            "client_email": self.client_email,
            "private_key": self.private_key,
            "token_uri": self.token_uri,
        }
        if self.private_key_id:
            info["private_key_id"] = self.private_key_id
        return info

    def record(self) -> tuple[str, dict[str, str | None]]:
        secret = json.dumps(self.service_account_info(), sort_keys=True)
        return secret, {"project_id": self.project_id, "client_email": self.client_email}

    def check(self, settings: Settings) -> None:
        """Refuse a token_uri the provider would refuse at every send (`allowed_token_uris`)."""
        if self.token_uri not in allowed_token_uris(settings):
            raise InvalidInputError(
                f"the FCM service account is not usable: its token_uri {self.token_uri} is"
                " not Google's OAuth endpoint (an operator may allow others with"
                " PUSHGATE_FCM__TOKEN_URIS)",
                field="service_account.token_uri",
            )


def allowed_token_uris(settings: Settings) -> tuple[str, ...]:
    """The OAuth token endpoints a service account may name: Google's, and the settings'."""
    return (*GOOGLE_TOKEN_URIS, *settings.fcm.token_uris)


class FCMStoredCredentials(StoredCredentials[FCMCredentials]):
    """An app's service account as stored (the JSON, sorted), or the settings' one."""

    def __init__(self, settings: FCMSettings) -> None:
        self._settings = settings

    def read(self, secret: str | Mapping[str, Any], metadata: Mapping[str, Any]) -> FCMCredentials:
        return FCMCredentials.from_service_account(secret)

    def from_settings(self) -> FCMCredentials | None:
        if self._settings.service_account_path is None:
            return None
        account = FCMCredentials.from_file(self._settings.service_account_path)
        if self._settings.project_id:
            account = dataclasses.replace(account, project_id=self._settings.project_id)
        return account

    def how_to_set(self, app_name: str) -> str:
        return (
            f"`pushgate credentials set-fcm --app {app_name} --service-account FILE`, or"
            " PUT /v1/apps/current/credentials/fcm with an admin key"
        )


def _bad(problem: str) -> NoReturn:
    raise InvalidInputError(
        f"the FCM service account is not usable: {problem}", field="service_account"
    )


def _parse_service_account(source: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, str):
        # A Path here would be a caller meaning `from_file`: refuse rather than guess.
        raise TypeError("a service account is given as JSON text or a mapping; use from_file")
    try:
        document = json.loads(source)
    except json.JSONDecodeError as exc:
        _bad(f"not JSON ({exc.msg} at line {exc.lineno})")
    if not isinstance(document, dict):
        _bad("the JSON is not an object")
    return document


def _storable(text: str) -> bool:
    """Text a database column takes: PostgreSQL refuses NUL and lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_private_key(pem: str) -> None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        _bad('"private_key" is not an unencrypted PEM private key')
    # google-auth signs the grant with RS256; Google issues RSA keys for service accounts.
    if not isinstance(key, rsa.RSAPrivateKey):
        _bad('"private_key" is not an RSA key')


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
    """Classify FCM's answer as in PROTOCOLS.md (FCM HTTP v1 table).

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


# --- the client ------------------------------------------------------------------------------

_MAX_RESPONSE_BYTES = 16_384


class FCMProvider(DeliveryProvider[FCMCredentials]):
    """Sends FCM HTTP v1 messages over one keep-alive connection pool shared by all apps.

    Args:
        base_url: FCM's origin; tests point it at a fake.
        ssl_context: verifies TLS, for FCM and the token endpoint alike.
        cafile: a CA bundle to verify with when no `ssl_context` is given; neither means the
            system trust store. There is deliberately no way to turn verification off.
        timeout: seconds for one FCM request end to end (and one token request).
        concurrency: requests in flight at once, and open connections at most.
        token_uris: the OAuth token endpoints a service account may name (Google's by
            default; tests add their fake's). Credentials naming another are a credential
            alarm, and nothing is sent to that URI.
        renew_before: seconds before expiry that an access token is renewed.
        clock: wall-clock seconds, for token lifetimes, `apns-expiration` and Retry-After.
        credentials: how apps' credentials are read (the registry gives the settings').
    """

    name: ClassVar[str] = "fcm"
    capabilities: ClassVar[Capabilities] = Capabilities(dry_run=True, topics=True)

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        concurrency: int = 100,
        token_uris: Collection[str] = GOOGLE_TOKEN_URIS,
        renew_before: float = fcm_tokens.TOKEN_RENEW_BEFORE_SECONDS,
        clock: Callable[[], float] = time.time,
        max_accounts: int = 10_000,
        credentials: StoredCredentials[FCMCredentials] | None = None,
    ) -> None:
        self.credentials = credentials
        if urlsplit(base_url).scheme != "https":
            raise ValueError("the FCM base URL must be https")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._tls = LazyContext(cafile=cafile, alpn=["http/1.1"], context=ssl_context)
        self._timeout = timeout
        # Every send goes to one host: the pool's limit is the concurrency.
        self._http = http1.HTTP1Pool(
            tls=self._tls,
            request_timeout=timeout,
            limit=concurrency,
            limit_per_host=concurrency,
            max_body=_MAX_RESPONSE_BYTES,
        )
        self._token_uris = frozenset(token_uris)
        self._renew_before = renew_before
        self._clock = clock
        self._max_accounts = max_accounts
        self._tokens: dict[FCMCredentials, fcm_tokens.AccessTokens] = {}
        self._closed = False

    async def send(
        self,
        target: Target,
        message: Message,
        credentials: FCMCredentials,
        *,
        validate_only: bool = False,
    ) -> Outcome:
        """Send to one registration token; `validate_only` (or the message's `dry_run`) asks
        FCM for a dry run."""
        if not target.token:
            return Outcome.token_invalid("empty FCM registration token")
        try:
            body = build_message(
                target, message, validate_only=validate_only or message.dry_run, now=self._clock()
            )
        except InvalidInputError as exc:
            return Outcome.rejected(exc.message)
        return await self._post(credentials, body)

    async def send_to_topic(
        self,
        topic_or_condition: str,
        message: Message,
        credentials: FCMCredentials,
        *,
        validate_only: bool = False,
    ) -> Outcome:
        """Send to an FCM topic or condition (see `build_topic_message`)."""
        try:
            body = build_topic_message(
                topic_or_condition,
                message,
                validate_only=validate_only or message.dry_run,
                now=self._clock(),
            )
        except InvalidInputError as exc:
            return Outcome.rejected(exc.message)
        return await self._post(credentials, body)

    def address(self, token: str) -> str:
        return subscription.fcm_token(token)

    def token_requests(self, credentials: FCMCredentials) -> int:
        """How many times this provider asked for an access token for `credentials`."""
        tokens = self._tokens.get(credentials)
        return tokens.refreshes if tokens else 0

    async def close(self) -> None:
        self._closed = True
        await self._http.close()

    async def _post(self, credentials: FCMCredentials, body: dict[str, Any]) -> Outcome:
        if self._closed:
            return Outcome.retry_later("the FCM provider is closed")
        url = f"{self._base_url}/v1/projects/{quote(credentials.project_id, safe='')}/messages:send"
        if credentials.token_uri not in self._token_uris:
            return Outcome.credential_alarm(
                f"the service account's token_uri {credentials.token_uri} is not an allowed"
                " OAuth endpoint"
            )
        data = orjson.dumps(body)
        tokens = self._tokens_for(credentials)
        for attempt in range(2):
            try:
                token = await tokens.get()
            except fcm_tokens.TokenError as exc:
                return exc.outcome
            answer = await self._request(url, data, token)
            if isinstance(answer, Outcome):
                return answer
            status, headers, raw = answer
            # PROTOCOLS.md: a 401/403 from OAuth means refresh once, then credential alarm.
            if attempt == 0 and is_oauth_failure(status, raw):
                tokens.invalidate(token)
                continue
            return map_response(status, headers, raw, now=self._clock())
        raise AssertionError("unreachable: the second attempt always returns")

    async def _request(
        self, url: str, data: bytes, token: str
    ) -> tuple[int, Mapping[str, str], bytes] | Outcome:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=UTF-8",
            # What firebase-admin sends: the v1 API's current error format.
            "X-GOOG-API-FORMAT-VERSION": "2",
        }
        try:
            response = await self._http.request("POST", url, headers=headers, body=data)
        except TimeoutError:
            return Outcome.retry_later(f"no answer from FCM within {self._timeout} s")
        except http1.ConnectError as exc:
            if isinstance(exc.os_error, ssl.SSLCertVerificationError):
                return Outcome.retry_later(
                    f"TLS certificate not trusted: {exc.os_error.verify_message}"
                )
            return Outcome.retry_later(f"cannot reach FCM: {exc}")
        except http1.HTTPError as exc:
            return Outcome.retry_later(f"cannot reach FCM: {type(exc).__name__}: {exc}")
        return response.status, response.headers, response.body

    def _tokens_for(self, credentials: FCMCredentials) -> fcm_tokens.AccessTokens:
        tokens = self._tokens.get(credentials)
        if tokens is None:
            if len(self._tokens) >= self._max_accounts:
                # Rotated keys leave stale entries behind; drop the oldest.
                del self._tokens[next(iter(self._tokens))]
            tokens = self._tokens[credentials] = fcm_tokens.AccessTokens(
                credentials,
                context=self._tls.get(),
                clock=self._clock,
                timeout=self._timeout,
                renew_before=self._renew_before,
            )
        return tokens
