"""Validation of Web Push subscription keys and of FCM and APNs tokens."""

from __future__ import annotations

import base64
import math
import os
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushgate.domain import subscription
from pushgate.domain.subscription import Platform
from pushgate.errors import InvalidInputError


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_point() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def test_browser_p256dh_is_accepted_and_stored_unpadded() -> None:
    point = browser_point()
    padded = base64.urlsafe_b64encode(point).decode()
    assert padded.endswith("=")
    assert subscription.p256dh_key(padded) == b64url(point)


def test_off_curve_p256dh_is_refused() -> None:
    # Given 65 bytes with the right prefix but a point that is not on P-256
    off_curve = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
    # When it is checked, Then it is refused as an invalid subscription key
    with pytest.raises(InvalidInputError, match="not a point on the P-256 curve") as caught:
        subscription.p256dh_key(b64url(off_curve))
    assert caught.value.code == "invalid_subscription"
    assert caught.value.field == "subscription.keys.p256dh"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x04" + b"\x01" * 63,
        b"\x02" + b"\x01" * 32,
        b"\x05" + b"\x01" * 64,
        b"",
    ],
    ids=["short", "compressed", "wrong-prefix", "empty"],
)
def test_p256dh_of_wrong_shape_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidInputError) as caught:
        subscription.p256dh_key(b64url(raw))
    assert caught.value.code == "invalid_subscription"


@pytest.mark.parametrize("text", ["not base64url!", "a+b/c", "AAAAA", "AA=A"])
def test_p256dh_that_is_not_base64url_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="p256dh is not base64url"):
        subscription.p256dh_key(text)


def test_auth_secret_of_16_bytes_is_accepted() -> None:
    secret = os.urandom(16)
    assert subscription.auth_secret(base64.urlsafe_b64encode(secret).decode()) == b64url(secret)


@pytest.mark.parametrize("length", [0, 8, 15, 17, 32])
def test_auth_secret_of_other_lengths_is_refused(length: int) -> None:
    with pytest.raises(InvalidInputError) as caught:
        subscription.auth_secret(b64url(os.urandom(length)))
    assert caught.value.code == "invalid_subscription"
    assert caught.value.field == "subscription.keys.auth"


def test_expiration_time_is_read_as_unix_milliseconds() -> None:
    assert subscription.expiration(None) is None
    assert subscription.expiration(1_700_000_000_123) == datetime(
        2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC
    )


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, 1e300])
def test_unusable_expiration_time_is_refused(value: float) -> None:
    with pytest.raises(InvalidInputError) as caught:
        subscription.expiration(value)
    assert caught.value.field == "subscription.expirationTime"


def test_webpush_address_keeps_the_endpoint_and_normalises_keys() -> None:
    point, secret = browser_point(), os.urandom(16)
    address = subscription.webpush_address(
        endpoint="https://fcm.googleapis.com/fcm/send/abc",
        p256dh=base64.urlsafe_b64encode(point).decode(),
        auth=b64url(secret),
        expiration_time=None,
    )
    assert address.platform is Platform.WEBPUSH
    assert address.token == "https://fcm.googleapis.com/fcm/send/abc"
    assert (address.p256dh, address.auth) == (b64url(point), b64url(secret))


FCM_TOKEN = (
    "fGw0qy4TGgk:APA91bGtWGjuhp4WRhHXgbabIYp1jxEKI08ofj_v1bKhWAGJQ4e3arRCWzeTfHaLz83mBnDh0a"
    "PWB1AykXAVUUGl2h1wT4XI6XazWpvY7RBUSYfoxtqSWGIm2nvWh2BOP1YG501SsRoE"
)


def test_fcm_token_is_accepted_as_given() -> None:
    assert subscription.fcm_token(FCM_TOKEN) == FCM_TOKEN
    assert subscription.fcm_token("x" * 4096) == "x" * 4096


@pytest.mark.parametrize(
    "token",
    ["", "x" * 4097, "has space", "slash/inside", "new\nline", "tok\n", "ümlaut"],
    ids=["empty", "too-long", "space", "slash", "newline", "trailing-newline", "non-ascii"],
)
def test_malformed_fcm_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        subscription.fcm_token(token)
    assert caught.value.code == "invalid_token"
    assert caught.value.field == "token"


def test_apns_token_is_stored_lowercase() -> None:
    token = os.urandom(32).hex().upper()
    address = subscription.token_address(Platform.APNS, token)
    assert address.token == token.lower()


def test_apns_token_of_100_bytes_is_accepted() -> None:
    assert subscription.apns_token("ab" * 100) == "ab" * 100


@pytest.mark.parametrize(
    "token",
    ["ab" * 31, "a" * 65, "ab" * 101, "g" * 64, "ab" * 31 + "zz", "ab " * 32],
    ids=["too-short", "odd-length", "too-long", "not-hex", "trailing-non-hex", "spaces"],
)
def test_malformed_apns_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        subscription.apns_token(token)
    assert caught.value.code == "invalid_token"
