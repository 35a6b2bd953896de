"""FCM HTTP v1 sending: the thin `FCMProvider`. The message and the outcome mapping are
`fcm_message.py`'s, the service account `fcm_credentials.py`'s, the OAuth2 access tokens
`fcm_tokens.py`'s.

The provider holds one OAuth2 access token per service account (google-auth signs the JWT-bearer
grant; one refresh in flight per account; cached until shortly before it expires) and one
keep-alive connection pool shared by every app: `http1.HTTP1Pool`, HTTP/1.1 over asyncio and
httptools, chosen by measurement on this machine (a quarter of aiohttp's CPU per POST, which did
~5,000-7,700 requests/s per process against ~3,000 for the `h2` library on asyncio and ~800 for
httpx over HTTP/2). FCM accepts HTTP/1.1; HTTP/2 would only save connections, which a bounded
keep-alive pool already keeps few.

Reference: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import orjson

from pushgate.domain import subscription
from pushgate.domain.message import Message
from pushgate.domain.outcome import Outcome
from pushgate.errors import InvalidInputError
from pushgate.providers import fcm_tokens, http1
from pushgate.providers.base import Capabilities, DeliveryProvider, StoredCredentials, Target
from pushgate.providers.fcm_credentials import GOOGLE_TOKEN_URIS, FCMCredentials
from pushgate.providers.fcm_message import (
    build_message,
    build_topic_message,
    is_oauth_failure,
    map_response,
)
from pushgate.providers.tls import LazyContext

DEFAULT_BASE_URL = "https://fcm.googleapis.com"

_MAX_RESPONSE_BYTES = 16_384


class FCMProvider(DeliveryProvider[FCMCredentials]):
    """Sends FCM HTTP v1 messages over one keep-alive connection pool shared by all apps.

    Args:
        base_url: FCM's origin; tests point it at a fake.
        ssl_context: verifies TLS, for FCM and the token endpoint alike.
        cafile: a CA bundle to verify with when no `ssl_context` is given; neither means the
            system trust store. There is deliberately no way to turn verification off.
        timeout: seconds for one FCM request end to end (and one token request).
        concurrency: requests in flight at once, and open connections at most.
        token_uris: the OAuth token endpoints a service account may name (Google's by
            default; tests add their fake's). Credentials naming another are a credential
            alarm, and nothing is sent to that URI.
        renew_before: seconds before expiry that an access token is renewed.
        clock: wall-clock seconds, for token lifetimes, `apns-expiration` and Retry-After.
        credentials: how apps' credentials are read (the registry gives the settings').
    """

    name: ClassVar[str] = "fcm"
    capabilities: ClassVar[Capabilities] = Capabilities(dry_run=True, topics=True)

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        concurrency: int = 100,
        token_uris: Collection[str] = GOOGLE_TOKEN_URIS,
        renew_before: float = fcm_tokens.TOKEN_RENEW_BEFORE_SECONDS,
        clock: Callable[[], float] = time.time,
        max_accounts: int = 10_000,
        credentials: StoredCredentials[FCMCredentials] | None = None,
    ) -> None:
        self.credentials = credentials
        if urlsplit(base_url).scheme != "https":
            raise ValueError("the FCM base URL must be https")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._tls = LazyContext(cafile=cafile, alpn=["http/1.1"], context=ssl_context)
        self._timeout = timeout
        # Every send goes to one host: the pool's limit is the concurrency.
        self._http = http1.HTTP1Pool(
            tls=self._tls,
            request_timeout=timeout,
            limit=concurrency,
            limit_per_host=concurrency,
            max_body=_MAX_RESPONSE_BYTES,
        )
        self._token_uris = frozenset(token_uris)
        self._renew_before = renew_before
        self._clock = clock
        self._max_accounts = max_accounts
        self._tokens: dict[FCMCredentials, fcm_tokens.AccessTokens] = {}
        self._closed = False

    async def send(
        self,
        target: Target,
        message: Message,
        credentials: FCMCredentials,
        *,
        validate_only: bool = False,
    ) -> Outcome:
        """Send to one registration token; `validate_only` (or the message's `dry_run`) asks
        FCM for a dry run."""
        if not target.token:
            return Outcome.token_invalid("empty FCM registration token")
        try:
            body = build_message(
                target, message, validate_only=validate_only or message.dry_run, now=self._clock()
            )
        except InvalidInputError as exc:
            return Outcome.rejected(exc.message)
        return await self._post(credentials, body)

    async def send_to_topic(
        self,
        topic_or_condition: str,
        message: Message,
        credentials: FCMCredentials,
        *,
        validate_only: bool = False,
    ) -> Outcome:
        """Send to an FCM topic or condition (see `build_topic_message`)."""
        try:
            body = build_topic_message(
                topic_or_condition,
                message,
                validate_only=validate_only or message.dry_run,
                now=self._clock(),
            )
        except InvalidInputError as exc:
            return Outcome.rejected(exc.message)
        return await self._post(credentials, body)

    def credential_key(self, app_id: str, origin: str, credentials: FCMCredentials) -> str:
        # FCM's quota is per Firebase project, whichever app's service account sends
        # (docs/protocols.md#limits-ttl-priority-collapsing).
        return credentials.project_id

    def address(self, token: str) -> str:
        return subscription.fcm_token(token)

    def token_requests(self, credentials: FCMCredentials) -> int:
        """How many times this provider asked for an access token for `credentials`."""
        tokens = self._tokens.get(credentials)
        return tokens.refreshes if tokens else 0

    async def close(self) -> None:
        self._closed = True
        await self._http.close()

    async def _post(self, credentials: FCMCredentials, body: dict[str, Any]) -> Outcome:
        if self._closed:
            return Outcome.retry_later("the FCM provider is closed")
        url = f"{self._base_url}/v1/projects/{quote(credentials.project_id, safe='')}/messages:send"
        if credentials.token_uri not in self._token_uris:
            return Outcome.credential_alarm(
                f"the service account's token_uri {credentials.token_uri} is not an allowed"
                " OAuth endpoint"
            )
        data = orjson.dumps(body)
        tokens = self._tokens_for(credentials)
        for attempt in range(2):
            try:
                token = await tokens.get()
            except fcm_tokens.TokenError as exc:
                return exc.outcome
            answer = await self._request(url, data, token)
            if isinstance(answer, Outcome):
                return answer
            status, headers, raw = answer
            # A 401/403 from OAuth means refresh once, then credential alarm
            # (docs/protocols.md#fcm-auth).
            if attempt == 0 and is_oauth_failure(status, raw):
                tokens.invalidate(token)
                continue
            return map_response(status, headers, raw, now=self._clock())
        raise AssertionError("unreachable: the second attempt always returns")

    async def _request(
        self, url: str, data: bytes, token: str
    ) -> tuple[int, Mapping[str, str], bytes] | Outcome:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=UTF-8",
            # What firebase-admin sends: the v1 API's current error format.
            "X-GOOG-API-FORMAT-VERSION": "2",
        }
        try:
            response = await self._http.request("POST", url, headers=headers, body=data)
        except TimeoutError:
            return Outcome.retry_later(f"no answer from FCM within {self._timeout} s")
        except http1.ConnectError as exc:
            if isinstance(exc.os_error, ssl.SSLCertVerificationError):
                return Outcome.retry_later(
                    f"TLS certificate not trusted: {exc.os_error.verify_message}"
                )
            return Outcome.retry_later(f"cannot reach FCM: {exc}")
        except http1.HTTPError as exc:
            return Outcome.retry_later(f"cannot reach FCM: {type(exc).__name__}: {exc}")
        return response.status, response.headers, response.body

    def _tokens_for(self, credentials: FCMCredentials) -> fcm_tokens.AccessTokens:
        tokens = self._tokens.get(credentials)
        if tokens is None:
            if len(self._tokens) >= self._max_accounts:
                # Rotated keys leave stale entries behind; drop the oldest.
                del self._tokens[next(iter(self._tokens))]
            tokens = self._tokens[credentials] = fcm_tokens.AccessTokens(
                credentials,
                context=self._tls.get(),
                clock=self._clock,
                timeout=self._timeout,
                renew_before=self._renew_before,
            )
        return tokens
