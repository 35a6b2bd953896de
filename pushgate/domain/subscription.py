"""Validation of push addresses: a browser's PushSubscription keys, FCM and APNs device tokens."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.domain import vapid
from pushgate.errors import InvalidInputError

FCM_TOKEN_MAX = 4096
APNS_TOKEN_MIN = 64
APNS_TOKEN_MAX = 200
P256_POINT_LENGTH = 65
AUTH_SECRET_LENGTH = 16

_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:.-]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class Platform(StrEnum):
    """The built-in providers' names. A device's platform may also be a plugin's (see
    `domain.platforms`), so stored and requested platforms are plain strings."""

    FCM = "fcm"
    APNS = "apns"
    WEBPUSH = "webpush"


@dataclass(frozen=True, slots=True)
class PushAddress:
    """Where a device is reached, normalised: `token` is the FCM/APNs (or a plugin provider's)
    token, or the endpoint URL."""

    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None
    expires_at: datetime | None = None


def fcm_token(token: str, *, field: str = "token") -> str:
    """An FCM registration token, as given.

    Raises:
        InvalidInputError: code `invalid_token`.
    """
    if not 1 <= len(token) <= FCM_TOKEN_MAX or not _FCM_TOKEN.fullmatch(token):
        raise InvalidInputError(
            f"an FCM token is 1 to {FCM_TOKEN_MAX} characters of A-Z a-z 0-9 _ : . -",
            field=field,
            code="invalid_token",
        )
    return token


def apns_token(token: str, *, field: str = "token") -> str:
    """An APNs device token in lowercase hex (Apple's tokens are 32 bytes today, longer allowed).

    Raises:
        InvalidInputError: code `invalid_token`.
    """
    if (
        not APNS_TOKEN_MIN <= len(token) <= APNS_TOKEN_MAX
        or len(token) % 2
        or not _HEX.fullmatch(token)
    ):
        raise InvalidInputError(
            f"an APNs token is hexadecimal, {APNS_TOKEN_MIN} to {APNS_TOKEN_MAX} characters,"
            " of even length",
            field=field,
            code="invalid_token",
        )
    return token.lower()


def p256dh_key(text: str, *, field: str = "subscription.keys.p256dh") -> str:
    """The subscription's P-256 public key, checked to be a point on the curve; base64url, unpadded.

    Raises:
        InvalidInputError: code `invalid_subscription`.
    """
    raw = _decode(text, field)
    if len(raw) != P256_POINT_LENGTH or raw[0] != 0x04:
        raise _invalid("p256dh must be an uncompressed P-256 point (65 bytes, 0x04 first)", field)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise _invalid("p256dh is not a point on the P-256 curve", field) from None
    return vapid.b64url_encode(raw)


def auth_secret(text: str, *, field: str = "subscription.keys.auth") -> str:
    """The subscription's 16-byte authentication secret; base64url, unpadded.

    Raises:
        InvalidInputError: code `invalid_subscription`.
    """
    raw = _decode(text, field)
    if len(raw) != AUTH_SECRET_LENGTH:
        raise _invalid(f"auth must decode to {AUTH_SECRET_LENGTH} bytes, not {len(raw)}", field)
    return vapid.b64url_encode(raw)


def expiration(
    milliseconds: float | None, *, field: str = "subscription.expirationTime"
) -> datetime | None:
    """The browser's `expirationTime` (Unix milliseconds, or null) as a UTC timestamp.

    Raises:
        InvalidInputError: code `invalid_subscription`.
    """
    if milliseconds is None:
        return None
    try:
        if not math.isfinite(milliseconds) or milliseconds < 0:
            raise ValueError
        return datetime.fromtimestamp(milliseconds / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise _invalid("expirationTime must be Unix milliseconds or null", field) from None


def webpush_address(
    *, endpoint: str, p256dh: str, auth: str, expiration_time: float | None = None
) -> PushAddress:
    """A Web Push subscription with checked keys. The endpoint's host policy is not checked here:
    it needs settings and DNS (`pushgate.netguard.check_endpoint`)."""
    return PushAddress(
        platform=Platform.WEBPUSH,
        token=endpoint,
        p256dh=p256dh_key(p256dh),
        auth=auth_secret(auth),
        expires_at=expiration(expiration_time),
    )


def token_address(platform: Platform, token: str) -> PushAddress:
    """An FCM or APNs token, normalised."""
    if platform is Platform.FCM:
        return PushAddress(platform=platform, token=fcm_token(token))
    if platform is Platform.APNS:
        return PushAddress(platform=platform, token=apns_token(token))
    raise ValueError(f"{platform} is not a token platform")


def _decode(text: str, field: str) -> bytes:
    try:
        return vapid.b64url_decode(text)
    except ValueError:
        raise _invalid(f"{field.rsplit('.', 1)[-1]} is not base64url", field) from None


def _invalid(message: str, field: str) -> InvalidInputError:
    return InvalidInputError(message, field=field, code="invalid_subscription")
