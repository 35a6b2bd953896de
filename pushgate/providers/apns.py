"""APNs delivery (HTTP/2 provider API, token auth): the pure protocol core (`APNSCredentials`,
`ProviderTokenCache`, `build_request`, `classify` / `map_response`) and the thin `APNSProvider`.

The HTTP client is the `h2` library driven directly on asyncio (`pushgate.providers.h2client`),
chosen by measurement on this machine: ~3,000 requests/s per process, against ~800 for httpx over
HTTP/2. APNs accepts only HTTP/2, so aiohttp (HTTP/1.1, faster still) is not an option.

Apple's documentation, cited below as [send] and [token]:
- [send] https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns
- [token] https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns
- [errors] https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http
import re
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hpack import NeverIndexedHeaderTuple
from hpack.struct import HeaderWeaklyTyped

from pushgate.domain.message import Message, Priority
from pushgate.domain.outcome import HoldScope, Outcome
from pushgate.errors import InvalidInputError, PayloadTooLargeError
from pushgate.logs import get_logger
from pushgate.providers import answers, h2client, h2connection
from pushgate.providers.base import DeliveryProvider, Platform, Target
from pushgate.providers.tls import LazyContext

log = get_logger(__name__)

APNSEnvironment = Literal["production", "sandbox"]

PRODUCTION_URL = "https://api.push.apple.com:443"
SANDBOX_URL = "https://api.sandbox.push.apple.com:443"

# [send] "Create the POST notification": 4 KB for regular notifications, 5 KB for VoIP.
MAX_PAYLOAD_BYTES = 4096
MAX_VOIP_PAYLOAD_BYTES = 5120
# [send] apns-collapse-id: "The value of this key must not exceed 64 bytes."
MAX_COLLAPSE_ID_BYTES = 64

# [token]: the token is refused after one hour; Apple asks for a refresh "no more than once
# every 20 minutes" and answers TooManyProviderTokenUpdates to anyone who refreshes faster.
TOKEN_REUSE_SECONDS = 50 * 60
TOKEN_MIN_INTERVAL_SECONDS = 20 * 60

_ID_RE = re.compile(r"[A-Z0-9]{10}")
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


# --- credentials and provider tokens ---------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _signing_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The parsed .p8 key. Parsing costs ~50 µs; credentials are rebuilt per job, keys rarely."""
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"the APNs key is not a PEM private key (paste the whole .p8 file): {exc}",
            field="key",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidInputError(
            "the APNs key must be an EC P-256 private key (the .p8 file from Apple)", field="key"
        )
    return key


@dataclass(frozen=True, slots=True)
class APNSCredentials:
    """An app's APNs token-auth identity ([token]).

    Attributes:
        key: the .p8 signing key, PEM text (EC P-256 private key).
        key_id: the key's 10-character id (the JWT `kid`).
        team_id: the 10-character developer team id (the JWT `iss`).
        topic: the app's bundle id; push-type suffixes are added per request.
        environment: `production` or `sandbox` (development builds).

    Raises:
        InvalidInputError: a malformed field; `field` names it.
    """

    key: str = field(repr=False)
    key_id: str
    team_id: str
    topic: str
    environment: APNSEnvironment = "production"

    def __post_init__(self) -> None:
        if not _ID_RE.fullmatch(self.key_id):
            raise InvalidInputError(
                "the APNs key id must be 10 capital letters or digits", field="key_id"
            )
        if not _ID_RE.fullmatch(self.team_id):
            raise InvalidInputError(
                "the APNs team id must be 10 capital letters or digits", field="team_id"
            )
        # Not printable: NUL and lone surrogates, which no bundle id has and PostgreSQL refuses.
        if not self.topic or any(
            c.isspace() or c == "/" or not c.isprintable() for c in self.topic
        ):
            raise InvalidInputError("the APNs topic must be the app's bundle id", field="topic")
        if self.environment not in ("production", "sandbox"):
            raise InvalidInputError(
                "the APNs environment must be production or sandbox", field="environment"
            )
        _signing_key(self.key)

    @property
    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        return _signing_key(self.key)


def provider_token(credentials: APNSCredentials, issued_at: int) -> str:
    """A provider authentication token: ES256 JWT, header `{alg, kid}`, claims `{iss, iat}`."""
    return jwt.encode(
        {"iss": credentials.team_id, "iat": issued_at},
        credentials.signing_key,
        algorithm="ES256",
        # [token] lists only alg and kid; PyJWT would add typ, which Apple ignores but we omit.
        headers={"kid": credentials.key_id, "typ": None},
    )


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    issued_at: float


class ProviderTokenCache:
    """One provider token per (team id, key id), reused for ~50 minutes.

    Tokens are never minted more often than every `min_interval` seconds for the same
    (team, key), not even after Apple answers ExpiredProviderToken: refreshing faster earns
    TooManyProviderTokenUpdates ([token]), which stops every app of that team.

    Args:
        clock: wall-clock seconds (the JWT `iat` is wall-clock time).
        reuse: seconds a token is used before a fresh one is minted (Apple refuses it after 3600).
        min_interval: the floor between two tokens for the same (team, key).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        reuse: float = TOKEN_REUSE_SECONDS,
        min_interval: float = TOKEN_MIN_INTERVAL_SECONDS,
    ) -> None:
        if not 0 < min_interval <= reuse < 3600:
            raise ValueError("need 0 < min_interval <= reuse < 3600 s")
        self._clock = clock
        self._reuse = reuse
        self._min_interval = min_interval
        self._tokens: dict[tuple[str, str], _Token] = {}

    def token(self, credentials: APNSCredentials) -> str:
        """The current token, minting one when none exists or it is `reuse` seconds old."""
        key = (credentials.team_id, credentials.key_id)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and now - cached.issued_at < self._reuse:
            return cached.value
        return self._mint(key, credentials, now)

    def refresh(self, credentials: APNSCredentials, rejected: str) -> str | None:
        """A replacement for `rejected` (refused as expired), or None when the floor forbids one.

        If another send already replaced `rejected`, that newer token is returned.
        """
        key = (credentials.team_id, credentials.key_id)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached.value != rejected:
            return cached.value
        if cached is not None and now - cached.issued_at < self._min_interval:
            return None
        return self._mint(key, credentials, now)

    def _mint(self, key: tuple[str, str], credentials: APNSCredentials, now: float) -> str:
        token = _Token(provider_token(credentials, int(now)), now)
        self._tokens[key] = token
        return token.value


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
    """Classify an APNs answer as in PROTOCOLS.md (APNs table), with the client's follow-up.

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


# --- the client ------------------------------------------------------------------------------

# Values new on every request. Sent as never-indexed literals so they do not churn the HPACK
# dynamic table (4 KiB), which then keeps the ~200-byte provider token and the topic indexed:
# re-encoding the token each time cost more than the rest of a send.
_UNIQUE_HEADERS = frozenset({"apns-id", "apns-expiration"})


class APNSProvider(DeliveryProvider[APNSCredentials]):
    """Sends APNs notifications over HTTP/2, one connection pool per (team, environment).

    Connections are opened lazily, kept, and multiplexed up to the server's
    MAX_CONCURRENT_STREAMS (one stream until a token was accepted on the connection, as Apple
    requires); idle ones are PING-checked before reuse; a GOAWAY re-sends the streams the
    server did not process on a new connection.

    Args:
        production_url, sandbox_url: `https://host[:port]` of each environment (tests point
            both at a fake).
        ca_file: a CA bundle to verify the servers with; the system trust store when None.
            There is deliberately no way to turn verification off.
        timeout: seconds for one request end to end (connecting included).
        max_connections: connections per (team, environment) pool.
        max_streams: concurrent streams per connection (APNs allows up to 1000; the server's
            MAX_CONCURRENT_STREAMS wins when lower).
        idle_ping_after: a connection idle this long is PING-checked before its next use.
        tokens: the provider-token cache; one per provider by default.
        clock: wall-clock seconds, for `apns-expiration` and the token cache.
    """

    platform: ClassVar[Platform] = "apns"

    def __init__(
        self,
        *,
        production_url: str = PRODUCTION_URL,
        sandbox_url: str = SANDBOX_URL,
        ca_file: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 4,
        # Measured against the fake in another process (2 loaded CPUs): 4 x 100 streams did
        # ~680 sends/s, 1 x 1000 ~250, because h2 walks every open stream per new stream.
        max_streams: int = 100,
        idle_ping_after: float = 60.0,
        tokens: ProviderTokenCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._origins: dict[str, tuple[str, int]] = {
            "production": _host_port(production_url),
            "sandbox": _host_port(sandbox_url),
        }
        self._tls = LazyContext(cafile=ca_file, alpn=["h2"])
        self._timeout = timeout
        self._max_connections = max_connections
        self._max_streams = max_streams
        self._idle_ping_after = idle_ping_after
        self._tokens = tokens or ProviderTokenCache(clock=clock)
        self._clock = clock
        self._pools: dict[tuple[str, str], h2client.H2Pool] = {}
        self._closed = False

    async def send(
        self,
        target: Target,
        message: Message,
        credentials: APNSCredentials,
        *,
        push_type: PushType | str | None = None,
        device_registered_at: datetime | float | None = None,
    ) -> Outcome:
        if self._closed:
            return Outcome.retry_later("the APNs provider is closed")
        try:
            path, headers, body = build_request(
                target, message, credentials, push_type=push_type, now=self._clock()
            )
        except PayloadTooLargeError as exc:
            return Outcome.rejected(exc.message)
        except InvalidDeviceTokenError as exc:
            return Outcome.token_invalid(str(exc))
        pool = self._pool(credentials)
        token = self._tokens.token(credentials)
        verdict = await self._exchange(
            pool, path, headers, body, token, device_registered_at, credentials
        )
        if verdict.follow_up is FollowUp.REFRESH_TOKEN_AND_RETRY:
            fresh = self._tokens.refresh(credentials, token)
            if fresh is None:
                return Outcome.retry_later(
                    f"{verdict.outcome.error}; not refreshed: the last token is under"
                    f" {TOKEN_MIN_INTERVAL_SECONDS // 60} minutes old",
                    status_code=verdict.outcome.status_code,
                )
            verdict = await self._exchange(
                pool, path, headers, body, fresh, device_registered_at, credentials
            )
        if verdict.reason == "TooManyProviderTokenUpdates":
            log.error(
                "APNs says we refresh provider tokens too often: a bug in pushgate",
                team_id=credentials.team_id,
                key_id=credentials.key_id,
            )
        return verdict.outcome

    async def _exchange(
        self,
        pool: h2client.H2Pool,
        path: str,
        headers: dict[str, str],
        body: bytes,
        token: str,
        device_registered_at: datetime | float | None,
        credentials: APNSCredentials,
    ) -> Verdict:
        request_headers: list[HeaderWeaklyTyped] = [
            (":method", "POST"),
            (":scheme", "https"),
            NeverIndexedHeaderTuple(":path", path),
            (":authority", pool.authority),
            ("authorization", f"bearer {token}"),
        ]
        for name, value in headers.items():
            request_headers.append(
                NeverIndexedHeaderTuple(name, value) if name in _UNIQUE_HEADERS else (name, value)
            )
        try:
            async with asyncio.timeout(self._timeout):
                response = await pool.request(request_headers, body)
        except TimeoutError:
            return Verdict(
                Outcome.retry_later(f"no answer from {pool.authority} within {self._timeout} s")
            )
        except ssl.SSLCertVerificationError as exc:
            return Verdict(
                Outcome.retry_later(f"TLS certificate not trusted: {exc.verify_message}")
            )
        except (h2connection.H2Error, OSError) as exc:
            return Verdict(Outcome.retry_later(f"{type(exc).__name__}: {exc}"))
        verdict = classify(
            response.status,
            response.headers,
            response.body,
            device_registered_at=device_registered_at,
            environment=credentials.environment,
        )
        if verdict.follow_up is FollowUp.NEW_CONNECTION:
            response.connection.retire()
        return verdict

    def _pool(self, credentials: APNSCredentials) -> h2client.H2Pool:
        # [token]: a connection carries the tokens of one team; a pool per (team, environment).
        key = (credentials.team_id, credentials.environment)
        pool = self._pools.get(key)
        if pool is None:
            host, port = self._origins[credentials.environment]
            pool = self._pools[key] = h2client.H2Pool(
                host,
                port,
                self._tls.get(),
                max_connections=self._max_connections,
                max_streams=self._max_streams,
                idle_ping_after=self._idle_ping_after,
                ping_timeout=min(self._timeout / 2, 1.0),
                # [token]: one stream until a request with a valid token succeeded.
                accepted=lambda status: status != 403,
            )
        return pool

    async def close(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))


def _host_port(url: str) -> tuple[str, int]:
    rest = url.removeprefix("https://").rstrip("/")
    if "://" in rest:
        raise ValueError(f"APNs URLs must be https: {url}")
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "443")
    return host, int(port or 443)
