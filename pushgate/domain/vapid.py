"""VAPID (RFC 8292) application server keys and subjects: generation, encoding, validation."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushgate.errors import InvalidInputError

# Apple answers 403 BadJwtToken when the subject's domain is not a real public one.
_UNUSABLE_HOSTS = ("localhost", "localhost.localdomain")
_UNUSABLE_SUFFIXES = (".local", ".localhost", ".internal", ".test", ".invalid", ".example")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.replace(".", "").isdigit()
    return True


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on anything else."""
    if not text or not _B64URL.issuperset(text.rstrip("=")):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class VapidKeyPair:
    """A P-256 key pair as stored: base64url of the 32-byte private scalar and the 65-byte point."""

    private_key: str
    public_key: str

    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        return ec.derive_private_key(
            int.from_bytes(b64url_decode(self.private_key), "big"), ec.SECP256R1()
        )


@dataclass(frozen=True, slots=True)
class VapidCredentials:
    """An app's Web Push identity: its VAPID key pair and its contact (`sub`)."""

    key_pair: VapidKeyPair
    subject: str


def generate_key_pair() -> VapidKeyPair:
    return _pair_of(ec.generate_private_key(ec.SECP256R1()))


def import_key_pair(private_key: str) -> VapidKeyPair:
    """Accept a private key as base64url of the raw 32-byte scalar (what web-push tools print)
    or as a PEM document, and derive the public key from it.

    Raises:
        InvalidInputError: the text is neither.
    """
    text = private_key.strip()
    if text.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"not a usable PEM private key: {exc}", field="private_key"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise InvalidInputError("VAPID keys are P-256 (prime256v1) keys", field="private_key")
        return _pair_of(key)
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise InvalidInputError("private key is not base64url", field="private_key") from None
    if len(raw) != 32:
        raise InvalidInputError("private key must be 32 bytes", field="private_key")
    try:
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError:
        raise InvalidInputError("private key is out of range", field="private_key") from None
    return _pair_of(key)


def _pair_of(key: ec.EllipticCurvePrivateKey) -> VapidKeyPair:
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return VapidKeyPair(private_key=b64url_encode(scalar), public_key=b64url_encode(point))


def validate_subject(subject: str) -> str:
    """A VAPID `sub`: a `mailto:` address or an `https:` URL on a real public domain.

    Raises:
        InvalidInputError: naming what is wrong, since push services reject such JWTs.
    """
    value = subject.strip()
    if value.startswith("mailto:"):
        address = value.removeprefix("mailto:")
        local, at, host = address.rpartition("@")
        if not at or not local or not host:
            raise InvalidInputError("mailto: subject needs an address", field="vapid_subject")
    elif value.startswith("https://"):
        host = urlsplit(value).hostname or ""
    else:
        raise InvalidInputError(
            "VAPID subject must start with mailto: or https://", field="vapid_subject"
        )
    host = host.lower().rstrip(".")
    if (
        "." not in host
        or host in _UNUSABLE_HOSTS
        or host.endswith(_UNUSABLE_SUFFIXES)
        or _is_ip_address(host)
    ):
        raise InvalidInputError(
            f"VAPID subject needs a real public domain, not {host or 'nothing'!r}"
            " (Apple rejects the JWT otherwise)",
            field="vapid_subject",
        )
    return value
