"""API keys: their format, the stored hash, matching, and what each scope may do."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pushgate.domain import apikeys
from pushgate.domain.apikeys import Permission, Scope, allows


def test_new_key_is_marked_and_long_enough_to_be_unguessable() -> None:
    key = apikeys.generate()

    assert key.secret.startswith("pgk_")
    # 32 random bytes in base64url: 43 characters after the mark.
    assert len(key.secret) == len("pgk_") + 43
    assert set(key.secret.removeprefix("pgk_")) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_new_keys_differ() -> None:
    keys = {apikeys.generate().secret for _ in range(50)}

    assert len(keys) == 50


def test_prefix_is_the_start_of_the_secret_after_the_mark() -> None:
    key = apikeys.generate()

    assert len(key.prefix) == apikeys.PREFIX_LENGTH
    assert key.secret.startswith("pgk_" + key.prefix)
    assert apikeys.prefix_of(key.secret) == key.prefix


@pytest.mark.parametrize(
    "presented",
    ["", "pgk_", "pgk_short", "sk_live_0123456789abcdefghijklmnop", "Bearer pgk_abc"],
)
def test_text_that_cannot_be_a_key_has_no_prefix(presented: str) -> None:
    assert apikeys.prefix_of(presented) is None


def test_only_a_hash_of_the_secret_is_kept() -> None:
    key = apikeys.generate()

    assert key.secret not in key.hash
    assert key.hash == hashlib.sha256(key.secret.encode()).hexdigest()


def test_the_right_secret_matches_its_hash() -> None:
    key = apikeys.generate()

    assert apikeys.matches(key.secret, key.hash)


def test_a_secret_with_the_same_prefix_but_other_body_does_not_match() -> None:
    # Given a key and a forgery that shares its lookup prefix
    key = apikeys.generate()
    forged = key.secret[:-1] + ("A" if key.secret[-1] != "A" else "B")

    # Then
    assert apikeys.prefix_of(forged) == key.prefix
    assert not apikeys.matches(forged, key.hash)


def test_matching_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a spy on the constant-time comparison
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)
    key = apikeys.generate()

    # When
    apikeys.matches(key.secret, key.hash)

    # Then the hashes went through it
    assert calls == [(key.hash, key.hash)]


def test_admin_may_do_everything() -> None:
    assert all(allows(Scope.ADMIN, permission) for permission in Permission)


def test_send_may_send_and_manage_devices_but_not_administer() -> None:
    assert allows(Scope.SEND, Permission.NOTIFICATIONS_SEND)
    assert allows(Scope.SEND, Permission.NOTIFICATIONS_READ)
    assert allows(Scope.SEND, Permission.DEVICES_WRITE)
    assert allows(Scope.SEND, Permission.DEVICES_READ)
    assert not allows(Scope.SEND, Permission.ADMIN)


def test_subscribe_may_only_register_devices() -> None:
    # A browser page holds this key, so anyone can read it.
    granted = {p for p in Permission if allows(Scope.SUBSCRIBE, p)}

    assert granted == {Permission.DEVICES_WRITE}


def test_a_key_prefix_never_starts_with_a_dash(monkeypatch):
    # One body in 64 starts with "-"; `pushgate keys revoke -abc` would read it as an option.
    bodies = iter(["-dcnYXCcQo3X" + "A" * 31, "bcnYXCcQo3X" + "A" * 32])
    monkeypatch.setattr("secrets.token_urlsafe", lambda _n: next(bodies))

    key = apikeys.generate()

    assert key.prefix.startswith("bcn")
