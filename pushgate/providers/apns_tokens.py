"""APNs provider authentication tokens: the ES256 JWT signed with an app's key
(`provider_token`) and the cache that reuses one per (team, key) and never refreshes faster
than Apple allows (`ProviderTokenCache`).

Apple's documentation, cited below as [token]:
- [token] https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from pushgate.providers.apns_credentials import APNSCredentials

# [token]: the token is refused after one hour; Apple asks for a refresh "no more than once
# every 20 minutes" and answers TooManyProviderTokenUpdates to anyone who refreshes faster.
TOKEN_REUSE_SECONDS = 50 * 60
TOKEN_MIN_INTERVAL_SECONDS = 20 * 60


def provider_token(credentials: APNSCredentials, issued_at: int) -> str:
    """A provider authentication token: ES256 JWT, header `{alg, kid}`, claims `{iss, iat}`."""
    return jwt.encode(
        {"iss": credentials.team_id, "iat": issued_at},
        credentials.signing_key,
        algorithm="ES256",
        # [token] lists only alg and kid; PyJWT would add typ, which Apple ignores but we omit.
        headers={"kid": credentials.key_id, "typ": None},
    )


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    issued_at: float


class ProviderTokenCache:
    """One provider token per (team id, key id), reused for ~50 minutes.

    Tokens are never minted more often than every `min_interval` seconds for the same
    (team, key), not even after Apple answers ExpiredProviderToken: refreshing faster earns
    TooManyProviderTokenUpdates ([token]), which stops every app of that team.

    Args:
        clock: wall-clock seconds (the JWT `iat` is wall-clock time).
        reuse: seconds a token is used before a fresh one is minted (Apple refuses it after 3600).
        min_interval: the floor between two tokens for the same (team, key).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        reuse: float = TOKEN_REUSE_SECONDS,
        min_interval: float = TOKEN_MIN_INTERVAL_SECONDS,
    ) -> None:
        if not 0 < min_interval <= reuse < 3600:
            raise ValueError("need 0 < min_interval <= reuse < 3600 s")
        self._clock = clock
        self._reuse = reuse
        self._min_interval = min_interval
        self._tokens: dict[tuple[str, str], _Token] = {}

    def token(self, credentials: APNSCredentials) -> str:
        """The current token, minting one when none exists or it is `reuse` seconds old."""
        key = (credentials.team_id, credentials.key_id)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and now - cached.issued_at < self._reuse:
            return cached.value
        return self._mint(key, credentials, now)

    def refresh(self, credentials: APNSCredentials, rejected: str) -> str | None:
        """A replacement for `rejected` (refused as expired), or None when the floor forbids one.

        If another send already replaced `rejected`, that newer token is returned.
        """
        key = (credentials.team_id, credentials.key_id)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached.value != rejected:
            return cached.value
        if cached is not None and now - cached.issued_at < self._min_interval:
            return None
        return self._mint(key, credentials, now)

    def _mint(self, key: tuple[str, str], credentials: APNSCredentials, now: float) -> str:
        token = _Token(provider_token(credentials, int(now)), now)
        self._tokens[key] = token
        return token.value
