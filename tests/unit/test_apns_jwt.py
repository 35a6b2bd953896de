"""ProviderTokenCache: ES256 tokens per (team, key), reused ~50 minutes, never minted more often
than every 20 minutes, even when APNs calls one expired."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.apns_tokens import ProviderTokenCache

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


def _credentials(key_id: str = "ABC123DEFG", team_id: str = "TEAM123456") -> APNSCredentials:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return APNSCredentials(pem, key_id, team_id, "com.example.shop")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock) -> ProviderTokenCache:
    return ProviderTokenCache(clock=clock)


def test_the_token_is_an_es256_jwt_with_kid_iss_and_iat(cache):
    credentials = _credentials()

    token = cache.token(credentials)

    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "ABC123DEFG"}
    claims = jwt.decode(
        token,
        credentials.signing_key.public_key(),
        algorithms=["ES256"],
        options={"verify_iat": False},
    )
    assert claims == {"iss": "TEAM123456", "iat": int(T0)}


def test_one_token_is_reused_for_49_minutes_then_renewed_at_50(cache, clock):
    credentials = _credentials()
    first = cache.token(credentials)

    clock.advance(49.9)
    assert cache.token(credentials) == first

    clock.advance(0.1)
    renewed = cache.token(credentials)
    assert renewed != first
    assert jwt.decode(renewed, options={"verify_signature": False})["iat"] == int(T0 + 50 * 60)
    assert cache.token(credentials) == renewed


def test_tokens_are_kept_per_team_and_key(cache):
    a = _credentials("KEYAAAAAAA", "TEAMAAAAAA")
    b = _credentials("KEYBBBBBBB", "TEAMAAAAAA")
    c = _credentials("KEYAAAAAAA", "TEAMCCCCCC")

    tokens = {cache.token(a), cache.token(b), cache.token(c)}

    assert len(tokens) == 3
    assert cache.token(a) in tokens


def test_an_expired_token_is_not_replaced_within_20_minutes_of_minting(cache, clock):
    credentials = _credentials()
    token = cache.token(credentials)

    clock.advance(19.9)

    assert cache.refresh(credentials, token) is None
    assert cache.token(credentials) == token


def test_an_expired_token_is_replaced_once_the_floor_has_passed(cache, clock):
    credentials = _credentials()
    token = cache.token(credentials)
    clock.advance(20)

    fresh = cache.refresh(credentials, token)

    assert fresh is not None
    assert fresh != token
    assert cache.token(credentials) == fresh
    # The floor starts again from the new token.
    clock.advance(5)
    assert cache.refresh(credentials, fresh) is None


def test_refreshing_an_already_replaced_token_returns_the_replacement(cache, clock):
    credentials = _credentials()
    old = cache.token(credentials)
    clock.advance(25)
    new = cache.refresh(credentials, old)

    # A second concurrent send that also held `old` gets `new`, no third token.
    assert cache.refresh(credentials, old) == new


def test_the_floor_cannot_be_longer_than_the_reuse_period():
    with pytest.raises(ValueError, match="min_interval"):
        ProviderTokenCache(reuse=10 * 60, min_interval=20 * 60)
    with pytest.raises(ValueError, match="min_interval"):
        ProviderTokenCache(reuse=3600)
