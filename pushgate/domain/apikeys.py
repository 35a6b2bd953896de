"""API keys: how they are made, hashed and checked, and what each scope may do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_MARK = "pgk_"
PREFIX_LENGTH = 12


class Scope(StrEnum):
    """What a key may do. `subscribe` is what a browser page holds, so it may do least."""

    ADMIN = "admin"
    SEND = "send"
    SUBSCRIBE = "subscribe"


class Permission(StrEnum):
    DEVICES_WRITE = "devices:write"
    DEVICES_READ = "devices:read"
    NOTIFICATIONS_SEND = "notifications:send"
    NOTIFICATIONS_READ = "notifications:read"
    ADMIN = "admin"


GRANTS: dict[Scope, frozenset[Permission]] = {
    Scope.ADMIN: frozenset(Permission),
    Scope.SEND: frozenset(
        {
            Permission.DEVICES_WRITE,
            Permission.DEVICES_READ,
            Permission.NOTIFICATIONS_SEND,
            Permission.NOTIFICATIONS_READ,
        }
    ),
    Scope.SUBSCRIBE: frozenset({Permission.DEVICES_WRITE}),
}


def allows(scope: Scope, permission: Permission) -> bool:
    return permission in GRANTS[scope]


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: `secret` is shown to the user once; only `prefix` and `hash` are kept."""

    secret: str
    prefix: str
    hash: str


def generate() -> NewKey:
    body = secrets.token_urlsafe(32)
    while body.startswith("-"):
        # The prefix is typed on command lines (`pushgate keys revoke <prefix>`), where a
        # leading dash reads as an option.
        body = secrets.token_urlsafe(32)
    secret = KEY_MARK + body
    return NewKey(secret=secret, prefix=prefix_of(secret) or "", hash=hash_key(secret))


def prefix_of(secret: str) -> str | None:
    """The lookup prefix of a presented key, or None when it cannot be one of ours."""
    if not secret.startswith(KEY_MARK) or len(secret) < len(KEY_MARK) + PREFIX_LENGTH + 8:
        return None
    return secret[len(KEY_MARK) : len(KEY_MARK) + PREFIX_LENGTH]


def hash_key(secret: str) -> str:
    # The keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(secret), stored_hash)
