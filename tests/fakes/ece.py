"""The browser's side of Web Push encryption (RFC 8291 receiver, RFC 8188 aes128gcm decoding).

Written from the RFCs alone, sharing no code with pushgate's sender, so a mistake on one side
shows up as a failed decryption instead of cancelling out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class DecryptionError(ValueError):
    """The body is not a well-formed aes128gcm message for this subscription."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869; every output here is at most one SHA-256 block long.
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


@dataclass(frozen=True)
class Receiver:
    """A user agent's subscription keys: the ECDH private key and the auth secret."""

    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def generate(cls) -> Receiver:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @classmethod
    def from_private(cls, private_key: str, auth_secret: str) -> Receiver:
        scalar = int.from_bytes(unb64u(private_key), "big")
        return cls(ec.derive_private_key(scalar, ec.SECP256R1()), unb64u(auth_secret))

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def decrypt(self, body: bytes) -> bytes:
        """The plaintext of a one-record aes128gcm body (RFC 8188 section 2, RFC 8291 section 4)."""
        if len(body) < 21:
            raise DecryptionError("shorter than an aes128gcm header")
        salt = body[:16]
        record_size = int.from_bytes(body[16:20], "big")
        id_length = body[20]
        if id_length != 65:
            raise DecryptionError(f"keyid must be a 65-byte P-256 point, not {id_length} bytes")
        sender_public = body[21:86]
        record = body[86:]
        if record_size < 18 or len(record) > record_size:
            raise DecryptionError(f"record of {len(record)} bytes with rs={record_size}")
        if len(record) < 17:
            raise DecryptionError("record shorter than a tag and a delimiter")
        try:
            sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
        except ValueError:
            raise DecryptionError("sender key is not a P-256 point") from None
        shared = self.private_key.exchange(ec.ECDH(), sender)
        key_info = b"WebPush: info\x00" + self.public_key + sender_public
        ikm = _hkdf(self.auth_secret, shared, key_info, 32)
        cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        try:
            padded = AESGCM(cek).decrypt(nonce, record, None)
        except Exception as exc:  # cryptography raises InvalidTag
            raise DecryptionError("authentication tag does not match") from exc
        # RFC 8188 section 2: strip zero padding back to the delimiter; 0x02 marks the last record.
        stripped = padded.rstrip(b"\x00")
        if not stripped or stripped[-1] != 2:
            raise DecryptionError("the only record must end with delimiter 0x02")
        return stripped[:-1]
