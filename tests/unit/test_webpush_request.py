"""The Web Push request: headers, TTL cap, Urgency, Topic, and the VAPID JWT and its cache."""

from __future__ import annotations

import re
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.domain.message import Message, Priority
from pushgate.domain.vapid import b64url_decode, generate_key_pair
from pushgate.errors import PayloadTooLargeError
from pushgate.providers.base import Target
from pushgate.providers.webpush import (
    InvalidSubscriptionError,
    VapidCredentials,
    VapidSigner,
    build_request,
    endpoint_origin,
    topic_for,
)
from tests.fakes.ece import Receiver, b64u

ENDPOINT = "https://fcm.googleapis.com/fcm/send/dXJ1bi1hYmM:APA91bHk"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Receiver:
    return Receiver.generate()


@pytest.fixture
def target(receiver: Receiver) -> Target:
    return Target(ENDPOINT, b64u(receiver.public_key), b64u(receiver.auth_secret))


@pytest.fixture
def credentials() -> VapidCredentials:
    return VapidCredentials(generate_key_pair(), "mailto:ops@shop.example.com")


def request_for(target: Target, message: Message, credentials: VapidCredentials):
    signer = VapidSigner()
    return build_request(
        target, message, authorization=signer.authorization(target.token, credentials)
    )


def claims_of(authorization: str, credentials: VapidCredentials) -> dict[str, Any]:
    match = re.fullmatch(r"vapid t=([^,]+), k=(\S+)", authorization)
    assert match, authorization
    token, key = match.groups()
    assert key == credentials.key_pair.public_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    return jwt.decode(
        token, public, algorithms=["ES256"], options={"verify_exp": False, "verify_aud": False}
    )


def test_request_is_an_encrypted_post_with_the_required_headers(target, credentials, receiver):
    message = Message(title="Hi", body="there", ttl=3600)

    request = request_for(target, message, credentials)

    assert request.method == "POST"
    assert request.url == ENDPOINT
    assert request.headers["TTL"] == "3600"
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Authorization"].startswith("vapid t=")
    assert "Topic" not in request.headers
    assert orjson.loads(receiver.decrypt(request.body)) == {"title": "Hi", "body": "there"}


@pytest.mark.parametrize(
    ("ttl", "header"),
    [(0, "0"), (60, "60"), (2_419_200, "2419200"), (2_419_201, "2419200"), (10**9, "2419200")],
)
def test_ttl_is_always_present_and_capped_at_28_days(target, credentials, ttl, header):
    request = request_for(target, Message(body="x", ttl=ttl), credentials)

    assert request.headers["TTL"] == header


@pytest.mark.parametrize(
    ("priority", "urgency"), [(Priority.HIGH, "high"), (Priority.NORMAL, "normal")]
)
def test_urgency_follows_priority(target, credentials, priority, urgency):
    request = request_for(target, Message(body="x", priority=priority), credentials)

    assert request.headers["Urgency"] == urgency


def test_a_short_base64url_collapse_key_is_the_topic(target, credentials):
    request = request_for(target, Message(body="x", collapse_key="order-42_status"), credentials)

    assert request.headers["Topic"] == "order-42_status"


@pytest.mark.parametrize(
    "collapse_key", ["x" * 33, "order:42", "commandes/été", "a b"], ids=str.__len__
)
def test_other_collapse_keys_become_a_stable_32_char_base64url_topic(
    target, credentials, collapse_key
):
    first = request_for(target, Message(body="x", collapse_key=collapse_key), credentials)
    again = request_for(target, Message(body="y", collapse_key=collapse_key), credentials)

    topic = first.headers["Topic"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic)
    assert again.headers["Topic"] == topic
    assert topic_for(collapse_key + "!") != topic


def test_jwt_claims_name_the_push_service_origin_and_the_app(target, credentials):
    clock = Clock()
    signer = VapidSigner(clock=clock)

    claims = claims_of(signer.authorization(ENDPOINT, credentials), credentials)

    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int(T0) + 12 * 3600,
        "sub": "mailto:ops@shop.example.com",
    }


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        (
            "https://Updates.Push.Services.Mozilla.com:443/wpush/v2/x",
            "https://updates.push.services.mozilla.com",
        ),
        ("https://127.0.0.1:8443/push/abc", "https://127.0.0.1:8443"),
        ("https://user:pw@web.push.apple.com/QGx", "https://web.push.apple.com"),
        ("https://[::1]:9000/push/abc", "https://[::1]:9000"),
    ],
)
def test_audience_is_the_endpoint_origin(endpoint, origin):
    assert endpoint_origin(endpoint) == origin


def test_the_same_jwt_is_reused_until_an_hour_before_it_expires(credentials):
    clock = Clock()
    signer = VapidSigner(clock=clock)
    first = signer.authorization(ENDPOINT, credentials)

    clock.now = T0 + 11 * 3600 - 1
    assert signer.authorization(ENDPOINT + "/other-subscription", credentials) == first

    clock.now = T0 + 11 * 3600
    renewed = signer.authorization(ENDPOINT, credentials)
    assert renewed != first
    assert claims_of(renewed, credentials)["exp"] == int(T0) + 23 * 3600


def test_each_push_service_origin_gets_its_own_jwt(credentials):
    signer = VapidSigner(clock=Clock())

    google = signer.authorization(ENDPOINT, credentials)
    mozilla = signer.authorization(
        "https://updates.push.services.mozilla.com/wpush/v2/x", credentials
    )

    assert google != mozilla
    assert claims_of(mozilla, credentials)["aud"] == "https://updates.push.services.mozilla.com"
    assert signer.authorization(ENDPOINT, credentials) == google


def test_each_app_key_gets_its_own_jwt(credentials):
    signer = VapidSigner(clock=Clock())
    other_app = VapidCredentials(generate_key_pair(), "https://other.example.org/contact")

    mine = signer.authorization(ENDPOINT, credentials)
    theirs = signer.authorization(ENDPOINT, other_app)

    assert claims_of(theirs, other_app)["sub"] == "https://other.example.org/contact"
    assert mine != theirs


def test_jwt_lifetime_cannot_exceed_24_hours():
    with pytest.raises(ValueError, match="24 h"):
        VapidSigner(lifetime=25 * 3600)


def test_an_oversized_payload_is_refused_before_encryption(target, credentials):
    with pytest.raises(PayloadTooLargeError):
        request_for(target, Message(body="x" * 4000), credentials)


@pytest.mark.parametrize(
    "target",
    [
        Target("http://push.example.com/x", "k", "a"),
        Target("https://push.example.com/x", None, None),
    ],
    ids=["plain-http", "no-keys"],
)
def test_an_unusable_subscription_is_refused(target, credentials):
    with pytest.raises(InvalidSubscriptionError):
        request_for(target, Message(body="x"), credentials)
