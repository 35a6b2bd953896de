"""RFC 8291 message encryption: the RFC's own example byte for byte, and round trips through the
independent receiver in tests/fakes/ece.py."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.domain.message import MAX_WEBPUSH_PLAINTEXT
from pushgate.domain.vapid import b64url_decode, b64url_encode
from pushgate.providers.webpush import InvalidSubscriptionError, encrypt
from tests.fakes.ece import DecryptionError, Receiver

# RFC 8291 Appendix A (and section 5).
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def rfc_sender_key() -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(b64url_decode(RFC_AS_PRIVATE), "big")
    return ec.derive_private_key(scalar, ec.SECP256R1())


def test_encryption_reproduces_the_rfc_8291_example_byte_for_byte():
    body = encrypt(
        RFC_PLAINTEXT,
        RFC_UA_PUBLIC,
        RFC_AUTH,
        salt=b64url_decode(RFC_SALT),
        sender_private_key=rfc_sender_key(),
    )

    assert len(body) == 144
    assert b64url_encode(body) == RFC_BODY


def test_the_rfc_receiver_keys_decrypt_the_rfc_example():
    # Checks the test receiver against the RFC too, so the round trips below mean something.
    receiver = Receiver.from_private(RFC_UA_PRIVATE, RFC_AUTH)

    assert b64url_encode(receiver.public_key) == RFC_UA_PUBLIC
    assert receiver.decrypt(b64url_decode(RFC_BODY)) == RFC_PLAINTEXT


def test_a_browser_decrypts_what_was_encrypted_for_its_subscription():
    receiver = Receiver.generate()
    plaintext = '{"title": "Olá", "body": "café ☕"}'.encode()

    body = encrypt(plaintext, b64url_encode(receiver.public_key), receiver.auth_secret)

    assert receiver.decrypt(body) == plaintext


def test_the_header_is_salt_record_size_and_the_65_byte_sender_key():
    receiver = Receiver.generate()

    body = encrypt(b"x", receiver.public_key, receiver.auth_secret)

    assert int.from_bytes(body[16:20], "big") == 4096
    assert body[20] == 65
    assert body[21] == 0x04  # an uncompressed P-256 point
    assert len(body) == 86 + 1 + 1 + 16


def test_every_message_gets_a_fresh_salt_and_a_fresh_sender_key():
    receiver = Receiver.generate()

    bodies = [encrypt(b"same", receiver.public_key, receiver.auth_secret) for _ in range(5)]

    assert len({body[:16] for body in bodies}) == 5
    assert len({body[21:86] for body in bodies}) == 5
    assert {receiver.decrypt(body) for body in bodies} == {b"same"}


def test_the_largest_payload_fills_exactly_one_4096_byte_body():
    receiver = Receiver.generate()
    plaintext = b"a" * MAX_WEBPUSH_PLAINTEXT

    body = encrypt(plaintext, receiver.public_key, receiver.auth_secret)

    assert len(body) == 4096
    assert receiver.decrypt(body) == plaintext


def test_a_payload_longer_than_the_record_is_refused():
    receiver = Receiver.generate()

    with pytest.raises(ValueError, match="do not fit"):
        encrypt(b"a" * 4080, receiver.public_key, receiver.auth_secret)


def test_another_subscription_cannot_decrypt_the_message():
    intended, other = Receiver.generate(), Receiver.generate()

    body = encrypt(b"secret", intended.public_key, intended.auth_secret)

    with pytest.raises(DecryptionError):
        other.decrypt(body)


@pytest.mark.parametrize(
    ("p256dh", "auth"),
    [
        ("not base64url!", RFC_AUTH),
        (RFC_UA_PUBLIC[:-4], RFC_AUTH),  # truncated point
        ("B" + "A" * 86, RFC_AUTH),  # 65 bytes, not on the curve
        (RFC_UA_PUBLIC, "AAAA"),  # auth secret too short
    ],
    ids=["not-base64url", "short-key", "off-curve", "short-auth"],
)
def test_unusable_subscription_keys_are_refused(p256dh: str, auth: str):
    with pytest.raises(InvalidSubscriptionError):
        encrypt(b"hello", p256dh, auth)
