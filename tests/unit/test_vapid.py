"""VAPID keys and subjects: generation, the encodings browsers and tools use, and validation."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from pushgate.domain import vapid
from pushgate.errors import InvalidInputError


def raw_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unpadded_b64url_decode(text: str) -> bytes:
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- generation ------------------------------------------------------------------------------


def test_generated_public_key_is_an_unpadded_base64url_uncompressed_point() -> None:
    pair = vapid.generate_key_pair()

    point = unpadded_b64url_decode(pair.public_key)
    assert len(point) == 65
    assert point[0] == 0x04
    # It is a point on P-256 (what browsers accept as applicationServerKey).
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def test_generated_private_key_is_an_unpadded_base64url_32_byte_scalar() -> None:
    pair = vapid.generate_key_pair()

    assert len(unpadded_b64url_decode(pair.private_key)) == 32


def test_generated_pair_signs_what_its_public_key_verifies() -> None:
    # Given
    pair = vapid.generate_key_pair()
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), unpadded_b64url_decode(pair.public_key)
    )

    # When
    signature = pair.signing_key().sign(b"claims", ec.ECDSA(hashes.SHA256()))

    # Then (raises when the two keys do not belong together)
    public.verify(signature, b"claims", ec.ECDSA(hashes.SHA256()))


def test_generated_pairs_differ() -> None:
    assert vapid.generate_key_pair() != vapid.generate_key_pair()


def test_stored_private_key_imports_back_to_the_same_pair() -> None:
    pair = vapid.generate_key_pair()

    assert vapid.import_key_pair(pair.private_key) == pair


# --- import ----------------------------------------------------------------------------------


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def expected_public(key: ec.EllipticCurvePrivateKey) -> str:
    return raw_b64url(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def test_import_from_raw_base64url_derives_the_public_key(key: ec.EllipticCurvePrivateKey) -> None:
    raw = key.private_numbers().private_value.to_bytes(32, "big")

    pair = vapid.import_key_pair(raw_b64url(raw))

    assert pair.public_key == expected_public(key)
    assert pair.private_key == raw_b64url(raw)


def test_import_accepts_padding_and_surrounding_whitespace(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    padded = base64.urlsafe_b64encode(raw).decode()

    pair = vapid.import_key_pair(f"  {padded}\n")

    assert pair.public_key == expected_public(key)


@pytest.mark.parametrize("private_format", [PrivateFormat.PKCS8, PrivateFormat.TraditionalOpenSSL])
def test_import_from_pem(key: ec.EllipticCurvePrivateKey, private_format: PrivateFormat) -> None:
    pem = key.private_bytes(Encoding.PEM, private_format, NoEncryption()).decode()

    pair = vapid.import_key_pair(pem)

    assert pair.public_key == expected_public(key)


def pem_of(private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not base64!", id="not-base64url"),
        pytest.param(raw_b64url(b"\x01" * 31), id="31-bytes"),
        pytest.param(raw_b64url(b"\x01" * 33), id="33-bytes"),
        pytest.param(raw_b64url(b"\x00" * 32), id="zero-scalar"),
        pytest.param(raw_b64url(b"\xff" * 32), id="scalar-over-the-order"),
        pytest.param(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", id="bad-pem"
        ),
        pytest.param(pem_of(ec.generate_private_key(ec.SECP384R1())), id="p384-pem"),
        pytest.param(
            pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048)), id="rsa-pem"
        ),
        pytest.param(
            ec.generate_private_key(ec.SECP256R1())
            .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw"))
            .decode(),
            id="encrypted-pem",
        ),
    ],
)
def test_unusable_private_key_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        vapid.import_key_pair(text)

    assert caught.value.field == "private_key"
    assert caught.value.details == {"field": "private_key"}


# --- subject ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "mailto:ops@acme.io",
        "mailto:push-admin@mail.acme.co.uk",
        "https://acme.io",
        "https://push.acme.io/contact",
    ],
)
def test_usable_subjects_are_accepted(subject: str) -> None:
    assert vapid.validate_subject(f" {subject} ") == subject


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param("ops@acme.io", id="bare-email"),
        pytest.param("mailto:", id="mailto-without-address"),
        pytest.param("mailto:acme.io", id="mailto-without-at"),
        pytest.param("mailto:@acme.io", id="mailto-without-local-part"),
        pytest.param("mailto:ops@localhost", id="mailto-localhost"),
        pytest.param("mailto:ops@printer.local", id="mailto-dot-local"),
        pytest.param("https://localhost", id="https-localhost"),
        pytest.param("https://localhost:8443/x", id="https-localhost-port"),
        pytest.param("https://push.local", id="https-dot-local"),
        pytest.param("https://intranet", id="https-single-label"),
        pytest.param("https://192.168.1.10", id="https-ipv4"),
        pytest.param("https://[2001:db8::1]/", id="https-ipv6"),
        pytest.param("https://[::ffff:10.0.0.1]/", id="https-ipv4-mapped-ipv6"),
        pytest.param("mailto:ops@10.0.0.1", id="mailto-ipv4"),
        pytest.param("https://", id="https-no-host"),
        pytest.param("http://acme.io", id="plain-http"),
        pytest.param("acme.io", id="no-scheme"),
    ],
)
def test_unusable_subjects_are_refused_naming_the_field(subject: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        vapid.validate_subject(subject)

    assert caught.value.field == "vapid_subject"
