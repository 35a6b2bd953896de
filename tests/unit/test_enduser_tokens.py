"""End-user tokens checked against an app's sign-in settings: pure, no server."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushgate.domain import enduser
from pushgate.errors import AuthenticationError, InvalidInputError

NOW = 1_800_000_000
SECRET = "s3cret-shared-with-the-app-backend-0123456789"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": NOW + 60} | extra


def test_an_es256_token_from_an_inline_key_names_its_user() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    config = enduser.config_of(
        hs256_secret=None, issuer="https://shop.example", audience=None,
        public_keys=[pem], jwks_url=None, cors_origins=[],
    )  # fmt: skip
    token = jwt.encode(claims(iss="https://shop.example"), key, algorithm="ES256")
    keys = enduser.Keys(pems=config.public_keys)
    assert enduser.subject(token, config, keys, now=NOW) == "alice"
    # A wrong issuer is refused
    other = jwt.encode(claims(iss="https://evil.example"), key, algorithm="ES256")
    with pytest.raises(AuthenticationError):
        enduser.subject(other, config, keys, now=NOW)


def test_an_hs256_token_is_refused_by_an_app_with_public_keys_only() -> None:
    # The algorithm confusion attack: HMAC "signed" with the public key as the secret.
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    config = enduser.AuthConfig(public_keys=(pem,))
    forged = jwt.api_jws.encode(b'{"sub":"alice","exp":1800000060}', b"x" * 32, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="HS256"):
        enduser.subject(forged, config, enduser.Keys(pems=(pem,)), now=NOW)


def test_an_unsigned_token_is_refused() -> None:
    config = enduser.AuthConfig(hs256=True)
    unsigned = jwt.encode(claims(), "", algorithm="none")
    with pytest.raises(AuthenticationError):
        enduser.subject(unsigned, config, enduser.Keys(secret=SECRET), now=NOW)


@pytest.mark.parametrize(
    ("extra", "valid"),
    [({"exp": NOW - 31}, False), ({"exp": NOW - 10}, True), ({"nbf": NOW + 600}, False)],
)
def test_time_claims_are_checked_against_the_given_clock(
    extra: dict[str, Any], valid: bool
) -> None:
    config = enduser.AuthConfig(hs256=True)
    token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
    keys = enduser.Keys(secret=SECRET)
    if valid:
        assert enduser.subject(token, config, keys, now=NOW) == "alice"
    else:
        with pytest.raises(AuthenticationError):
            enduser.subject(token, config, keys, now=NOW)


@pytest.mark.parametrize(
    "origin", ["*", "https://shop.example/path", "ftp://shop.example", "https://*.example"]
)
def test_an_origin_must_be_exact(origin: str) -> None:
    with pytest.raises(InvalidInputError):
        enduser.checked_origin(origin)


def test_a_short_secret_or_no_key_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        enduser.config_of(
            hs256_secret="short", issuer=None, audience=None,
            public_keys=[], jwks_url=None, cors_origins=[],
        )  # fmt: skip
    with pytest.raises(InvalidInputError):
        enduser.config_of(
            hs256_secret=None, issuer=None, audience=None,
            public_keys=[], jwks_url=None, cors_origins=[],
        )  # fmt: skip
