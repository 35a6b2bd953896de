"""build_request: the APNs path, headers, push types, priorities, expiration, collapse id and
payload (with the `apns` override), and the payload limits."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.domain.message import Message, Priority
from pushgate.errors import InvalidInputError, PayloadTooLargeError
from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.apns_payload import InvalidDeviceTokenError, PushType, build_request
from pushgate.providers.base import Target

NOW = 1_700_000_000.0
TOKEN = "a1" * 32


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def credentials() -> APNSCredentials:
    key = _pem(ec.generate_private_key(ec.SECP256R1()))
    return APNSCredentials(key, "ABC123DEFG", "TEAM123456", "com.example.shop", "sandbox")


def build(
    credentials: APNSCredentials, message: Message | None = None, **kwargs: Any
) -> tuple[str, dict[str, str], Any]:
    path, headers, body = build_request(
        Target(TOKEN), message or Message(title="Hi", body="There"), credentials, now=NOW, **kwargs
    )
    return path, headers, orjson.loads(body)


def test_an_alert_goes_to_the_device_path_with_every_header(credentials):
    path, headers, payload = build(
        credentials, Message(title="Order 42", body="Shipped", priority=Priority.HIGH, ttl=600)
    )

    assert path == f"/3/device/{TOKEN}"
    assert headers["apns-topic"] == "com.example.shop"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(NOW) + 600)
    assert uuid.UUID(headers["apns-id"])
    assert "authorization" not in headers
    assert "apns-collapse-id" not in headers
    assert payload == {"aps": {"alert": {"title": "Order 42", "body": "Shipped"}}}


def test_each_request_has_its_own_apns_id(credentials):
    assert build(credentials)[1]["apns-id"] != build(credentials)[1]["apns-id"]


def test_normal_priority_is_5_and_ttl_0_means_no_storing(credentials):
    _, headers, _ = build(credentials, Message(body="x", priority=Priority.NORMAL, ttl=0))

    assert headers["apns-priority"] == "5"
    assert headers["apns-expiration"] == "0"


def test_content_available_without_alert_is_a_background_push_at_priority_5(credentials):
    message = Message(
        priority=Priority.HIGH, data={"sync": "1"}, apns={"aps": {"content-available": 1}}
    )

    _, headers, payload = build(credentials, message)

    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert payload == {"sync": "1", "aps": {"content-available": 1}}


def test_a_data_only_message_is_a_background_push_that_wakes_the_app(credentials):
    message = Message(data={"order": "42", "state": "shipped"}, priority=Priority.HIGH)

    _, headers, payload = build(credentials, message)

    assert headers["apns-push-type"] == "background"
    assert headers["apns-priority"] == "5"
    assert headers["apns-topic"] == "com.example.shop"
    assert payload == {"order": "42", "state": "shipped", "aps": {"content-available": 1}}


@pytest.mark.parametrize(
    "message",
    [Message(sound="chime.caf", data={"k": "v"}), Message(badge="3", data={"k": "v"})],
    ids=["sound", "badge"],
)
def test_a_sound_or_badge_count_without_text_is_still_an_alert(credentials, message):
    _, headers, payload = build(credentials, message)

    assert headers["apns-push-type"] == "alert"
    assert "content-available" not in payload["aps"]


def test_an_apns_override_with_an_alert_makes_a_data_only_message_visible(credentials):
    # The override is merged last and wins: an alert makes it an alert push (that also wakes
    # the app), at the message's priority.
    message = Message(
        data={"k": "v"}, priority=Priority.HIGH, apns={"aps": {"alert": {"body": "Shipped"}}}
    )

    _, headers, payload = build(credentials, message)

    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert payload["aps"] == {"content-available": 1, "alert": {"body": "Shipped"}}


def test_content_available_with_an_alert_stays_an_alert(credentials):
    message = Message(title="t", priority=Priority.HIGH, apns={"aps": {"content-available": 1}})

    _, headers, _ = build(credentials, message)

    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"


@pytest.mark.parametrize(
    ("push_type", "topic"),
    [
        ("voip", "com.example.shop.voip"),
        (PushType.LIVEACTIVITY, "com.example.shop.push-type.liveactivity"),
        ("complication", "com.example.shop.complication"),
        ("alert", "com.example.shop"),
    ],
)
def test_push_types_add_their_topic_suffix(credentials, push_type, topic):
    _, headers, _ = build(credentials, push_type=push_type)

    assert headers["apns-topic"] == topic
    assert headers["apns-push-type"] == str(push_type)


def test_an_unknown_push_type_is_refused(credentials):
    with pytest.raises(ValueError, match="bogus"):
        build(credentials, push_type="bogus")


def test_collapse_key_up_to_64_bytes_is_sent_as_is(credentials):
    key = "k" * 64
    _, headers, _ = build(credentials, Message(body="x", collapse_key=key))

    assert headers["apns-collapse-id"] == key


def test_a_longer_collapse_key_becomes_a_stable_64_byte_id(credentials):
    long_key = "é" * 33  # 33 characters, 66 bytes
    _, first, _ = build(credentials, Message(body="x", collapse_key=long_key))
    _, again, _ = build(credentials, Message(body="y", collapse_key=long_key))
    _, other, _ = build(credentials, Message(body="x", collapse_key=long_key + "!"))

    assert len(first["apns-collapse-id"].encode()) == 64
    assert first["apns-collapse-id"] == again["apns-collapse-id"]
    assert first["apns-collapse-id"] != other["apns-collapse-id"]


def test_payload_carries_sound_badge_count_custom_data_and_the_deep_merged_override(credentials):
    message = Message(
        title="Sale",
        body="50% off",
        sound="chime.caf",
        badge="3",
        url="https://shop.example.com/sale",
        image="https://cdn.example.com/sale.png",
        data={"campaign": "spring", "aps": "must not replace aps"},
        apns={
            "aps": {
                "alert": {"subtitle": "Today only", "body": "60% off"},
                "thread-id": "sales",
                "category": "SALE",
                "sound": None,
            },
            "campaign": None,
            "extra": {"k": 1},
        },
    )

    _, _, payload = build(credentials, message)

    assert payload == {
        "url": "https://shop.example.com/sale",
        "image": "https://cdn.example.com/sale.png",
        "extra": {"k": 1},
        "aps": {
            "alert": {"title": "Sale", "body": "60% off", "subtitle": "Today only"},
            "badge": 3,
            "mutable-content": 1,
            "thread-id": "sales",
            "category": "SALE",
        },
    }


def test_a_badge_icon_url_is_not_an_apns_badge(credentials):
    _, _, payload = build(credentials, Message(body="x", badge="https://cdn.example.com/b.png"))

    assert "badge" not in payload["aps"]


def test_the_payload_limit_is_4096_bytes(credentials):
    overhead = len(orjson.dumps({"aps": {"alert": {"body": ""}}}))
    fits = Message(body="x" * (4096 - overhead))
    build(credentials, fits)

    with pytest.raises(PayloadTooLargeError) as caught:
        build(credentials, Message(body="x" * (4097 - overhead)))
    assert caught.value.details["limit_bytes"] == 4096


def test_voip_may_carry_5120_bytes(credentials):
    message = Message(body="x" * 5000)
    with pytest.raises(PayloadTooLargeError):
        build(credentials, message)

    _, headers, _ = build(credentials, message, push_type="voip")
    assert headers["apns-push-type"] == "voip"

    with pytest.raises(PayloadTooLargeError) as caught:
        build(credentials, Message(body="x" * 5120), push_type="voip")
    assert caught.value.details["limit_bytes"] == 5120


@pytest.mark.parametrize("token", ["", "not-hex", "ab/../../x", "zz" * 32])
def test_a_non_hex_device_token_is_refused(credentials, token):
    with pytest.raises(InvalidDeviceTokenError):
        build_request(Target(token), Message(body="x"), credentials)


def test_credentials_refuse_a_malformed_key():
    with pytest.raises(InvalidInputError, match="not a PEM private key") as caught:
        APNSCredentials("-----BEGIN PRIVATE KEY-----\nnope\n", "ABC123DEFG", "TEAM123456", "a.b")
    assert caught.value.field == "key"


def test_credentials_refuse_a_key_that_is_not_p256():
    rsa_key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()))

    for pem in (rsa_key, p384):
        with pytest.raises(InvalidInputError, match="EC P-256"):
            APNSCredentials(pem, "ABC123DEFG", "TEAM123456", "com.example.shop")


@pytest.mark.parametrize(
    ("key_id", "team_id", "topic", "environment", "field"),
    [
        ("SHORT", "TEAM123456", "a.b", "production", "key_id"),
        ("ABC123DEFG", "team123456", "a.b", "production", "team_id"),
        ("ABC123DEFG", "TEAM123456", "", "production", "topic"),
        ("ABC123DEFG", "TEAM123456", "a.b", "staging", "environment"),
    ],
)
def test_credentials_name_the_bad_field(credentials, key_id, team_id, topic, environment, field):
    with pytest.raises(InvalidInputError) as caught:
        APNSCredentials(credentials.key, key_id, team_id, topic, environment)
    assert caught.value.field == field


def test_credentials_do_not_show_the_key_in_their_repr(credentials):
    assert "PRIVATE KEY" not in repr(credentials)
