"""FCM's OAuth2 access tokens: one per service account, signed and refreshed by google-auth (a
JWT-bearer grant), cached until shortly before they expire, with at most one refresh in flight.
The FCM provider (`providers/fcm.py`) asks `AccessTokens.get` before every send."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
import requests.adapters
from google.oauth2 import service_account

from pushgate.domain.outcome import Outcome, OutcomeKind

if TYPE_CHECKING:
    from pushgate.providers.fcm_credentials import FCMCredentials

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# A refusal google-auth marks retryable (a 5xx or a rate limit it already retried): try again
# after this, as after FCM's own UNAVAILABLE.
REFRESH_RETRY_SECONDS = 10.0

# google-auth's own refresh threshold is 3 min 45 s; five minutes keeps clear of it and of
# clock skew between us and Google.
TOKEN_RENEW_BEFORE_SECONDS = 300.0
# After a refusal that a retry cannot fix (bad key, deleted account), sends fail fast for a
# while instead of each asking the token endpoint again.
TOKEN_FAILURE_HOLD_SECONDS = 30.0


class TokenError(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class _SSLContextAdapter(requests.adapters.HTTPAdapter):
    """Makes `requests` (google-auth's transport) verify TLS with our context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        # requests names its own CA bundle (certifi, or REQUESTS_CA_BUNDLE) for every
        # verified connection, and urllib3 loads it into the context given: into ours, which
        # FCM's sends share. Our context already says whom to trust.
        conn.ca_certs = None
        conn.ca_cert_dir = None


class _TimedRequest(google.auth.transport.requests.Request):
    """google-auth's transport with our timeout (its default is 120 s per attempt)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session)
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]


class AccessTokens:
    """One service account's access token: cached, renewed by at most one refresh at a time.

    The refresh is google-auth's synchronous `requests` call, so it runs in a thread. It is
    a shared task rather than work done under an `asyncio.Lock`: a sender cancelled while
    waiting must neither orphan a running refresh nor let a second one start beside it.
    """

    def __init__(
        self,
        credentials: FCMCredentials,
        *,
        context: ssl.SSLContext,
        clock: Callable[[], float],
        timeout: float,
        renew_before: float,
    ) -> None:
        self._google = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            credentials.service_account_info(), scopes=[SCOPE]
        )
        self._context = context
        self._clock = clock
        self._timeout = timeout
        self._renew_before = renew_before
        self._token: str | None = None
        self._valid_until = 0.0
        self._refreshing: asyncio.Task[str] | None = None
        self._failure: tuple[Outcome, float] | None = None
        self.refreshes = 0

    async def get(self) -> str:
        """A valid access token, refreshing first if needed.

        Raises:
            TokenError: the token endpoint refused or could not be reached.
        """
        now = self._clock()
        if self._token is not None and now < self._valid_until:
            return self._token
        if self._failure is not None and now < self._failure[1]:
            raise TokenError(self._failure[0])
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
            # Every waiter may have been cancelled; the failure is still consumed.
            self._refreshing.add_done_callback(_consume_exception)
        return await asyncio.shield(self._refreshing)

    def invalidate(self, token: str) -> None:
        """Forget `token` (FCM refused it), unless a newer one already replaced it."""
        if self._token == token:
            self._token = None

    async def _refresh(self) -> str:
        started = self._clock()
        try:
            token, lifetime = await asyncio.to_thread(self._refresh_blocking)
        except google.auth.exceptions.RefreshError as exc:
            outcome = _refresh_outcome(exc)
            if outcome.kind is not OutcomeKind.RETRY_LATER:
                self._failure = (outcome, self._clock() + TOKEN_FAILURE_HOLD_SECONDS)
            raise TokenError(outcome) from exc
        except (google.auth.exceptions.TransportError, requests.RequestException, OSError) as exc:
            raise TokenError(
                Outcome.retry_later(f"cannot reach the OAuth token endpoint: {exc}")
            ) from exc
        finally:
            self._refreshing = None
        self._failure = None
        self._token = token
        # A short-lived token (a test's, or a clock oddity) is still reused for half its life.
        self._valid_until = started + lifetime - min(self._renew_before, lifetime / 2)
        return token

    def _refresh_blocking(self) -> tuple[str, float]:
        self.refreshes += 1
        with requests.Session() as session:
            # Not REQUESTS_CA_BUNDLE, proxies or .netrc from the environment: urllib3 would
            # load such a bundle into the provider's own context and widen whom FCM trusts.
            session.trust_env = False
            session.mount("https://", _SSLContextAdapter(self._context))
            self._google.refresh(_TimedRequest(session, self._timeout))
        token = self._google.token
        if not isinstance(token, str) or not token:
            raise google.auth.exceptions.RefreshError(  # type: ignore[no-untyped-call]
                "the token endpoint sent no access token"
            )
        expiry = self._google.expiry  # naive UTC, per google-auth
        if expiry is None:
            return token, 3600.0
        remaining = (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
        return token, max(remaining, 0.0)


def _consume_exception(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()


def _refresh_outcome(exc: google.auth.exceptions.RefreshError) -> Outcome:
    text = f"the OAuth token endpoint refused the service account: {exc}"
    # google-auth marks 5xx and rate-limit answers retryable (it has retried them already).
    if getattr(exc, "retryable", False):
        return Outcome.retry_later(text, retry_after=REFRESH_RETRY_SECONDS)
    return Outcome.credential_alarm(text)
