"""APNs sending (HTTP/2 provider API, token auth): the thin `APNSProvider`. The request and
the outcome mapping are `apns_payload.py`'s, the credentials `apns_credentials.py`'s, the
provider tokens `apns_tokens.py`'s.

The HTTP client is the `h2` library driven directly on asyncio (`pushgate.providers.h2client`),
chosen by measurement on this machine: ~3,000 requests/s per process, against ~800 for httpx over
HTTP/2. APNs accepts only HTTP/2, so aiohttp (HTTP/1.1, faster still) is not an option.

Apple's documentation, cited below as [token]:
- [token] https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from hpack import NeverIndexedHeaderTuple
from hpack.struct import HeaderWeaklyTyped

from pushgate.domain import subscription
from pushgate.domain.message import Message
from pushgate.domain.outcome import Outcome
from pushgate.errors import PayloadTooLargeError, PushgateError
from pushgate.logs import get_logger
from pushgate.providers import h2client, h2connection
from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.apns_payload import (
    FollowUp,
    InvalidDeviceTokenError,
    PushType,
    Verdict,
    build_request,
    classify,
)
from pushgate.providers.apns_tokens import TOKEN_MIN_INTERVAL_SECONDS, ProviderTokenCache
from pushgate.providers.base import Capabilities, DeliveryProvider, StoredCredentials, Target
from pushgate.providers.tls import LazyContext

log = get_logger(__name__)

PRODUCTION_URL = "https://api.push.apple.com:443"
SANDBOX_URL = "https://api.sandbox.push.apple.com:443"

# Values new on every request. Sent as never-indexed literals so they do not churn the HPACK
# dynamic table (4 KiB), which then keeps the ~200-byte provider token and the topic indexed:
# re-encoding the token each time cost more than the rest of a send.
_UNIQUE_HEADERS = frozenset({"apns-id", "apns-expiration"})


class APNSProvider(DeliveryProvider[APNSCredentials]):
    """Sends APNs notifications over HTTP/2, one connection pool per (team, environment).

    Connections are opened lazily, kept, and multiplexed up to the server's
    MAX_CONCURRENT_STREAMS (one stream until a token was accepted on the connection, as Apple
    requires); idle ones are PING-checked before reuse; a GOAWAY re-sends the streams the
    server did not process on a new connection.

    Args:
        production_url, sandbox_url: `https://host[:port]` of each environment (tests point
            both at a fake).
        ca_file: a CA bundle to verify the servers with; the system trust store when None.
            There is deliberately no way to turn verification off.
        timeout: seconds for one request end to end (connecting included).
        max_connections: connections per (team, environment) pool.
        max_streams: concurrent streams per connection (APNs allows up to 1000; the server's
            MAX_CONCURRENT_STREAMS wins when lower).
        idle_ping_after: a connection idle this long is PING-checked before its next use.
        tokens: the provider-token cache; one per provider by default.
        clock: wall-clock seconds, for `apns-expiration` and the token cache.
        credentials: how apps' credentials are read (the registry gives the settings').
    """

    name: ClassVar[str] = "apns"
    capabilities: ClassVar[Capabilities] = Capabilities(registration_time=True)

    def __init__(
        self,
        *,
        production_url: str = PRODUCTION_URL,
        sandbox_url: str = SANDBOX_URL,
        ca_file: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 4,
        # Measured against the fake in another process (2 loaded CPUs): 4 x 100 streams did
        # ~680 sends/s, 1 x 1000 ~250, because h2 walks every open stream per new stream.
        max_streams: int = 100,
        idle_ping_after: float = 60.0,
        tokens: ProviderTokenCache | None = None,
        clock: Callable[[], float] = time.time,
        credentials: StoredCredentials[APNSCredentials] | None = None,
    ) -> None:
        self.credentials = credentials
        self._origins: dict[str, tuple[str, int]] = {
            "production": _host_port(production_url),
            "sandbox": _host_port(sandbox_url),
        }
        self._tls = LazyContext(cafile=ca_file, alpn=["h2"])
        self._timeout = timeout
        self._max_connections = max_connections
        self._max_streams = max_streams
        self._idle_ping_after = idle_ping_after
        self._tokens = tokens or ProviderTokenCache(clock=clock)
        self._clock = clock
        self._pools: dict[tuple[str, str], h2client.H2Pool] = {}
        self._closed = False

    async def send(
        self,
        target: Target,
        message: Message,
        credentials: APNSCredentials,
        *,
        push_type: PushType | str | None = None,
        device_registered_at: datetime | float | None = None,
    ) -> Outcome:
        if self._closed:
            return Outcome.retry_later("the APNs provider is closed")
        if device_registered_at is None:
            device_registered_at = target.registered_at
        try:
            path, headers, body = build_request(
                target, message, credentials, push_type=push_type, now=self._clock()
            )
        except PayloadTooLargeError as exc:
            return Outcome.rejected(exc.message)
        except InvalidDeviceTokenError as exc:
            return Outcome.token_invalid(str(exc))
        pool = self._pool(credentials)
        token = self._tokens.token(credentials)
        verdict = await self._exchange(
            pool, path, headers, body, token, device_registered_at, credentials
        )
        if verdict.follow_up is FollowUp.REFRESH_TOKEN_AND_RETRY:
            fresh = self._tokens.refresh(credentials, token)
            if fresh is None:
                return Outcome.retry_later(
                    f"{verdict.outcome.error}; not refreshed: the last token is under"
                    f" {TOKEN_MIN_INTERVAL_SECONDS // 60} minutes old",
                    status_code=verdict.outcome.status_code,
                )
            verdict = await self._exchange(
                pool, path, headers, body, fresh, device_registered_at, credentials
            )
        if verdict.reason == "TooManyProviderTokenUpdates":
            log.error(
                "APNs says we refresh provider tokens too often: a bug in pushgate",
                team_id=credentials.team_id,
                key_id=credentials.key_id,
            )
        return verdict.outcome

    def credential_key(self, app_id: str, origin: str, credentials: APNSCredentials) -> str:
        # One developer team's token signs every app's sends of that team.
        return credentials.team_id

    def address(self, token: str) -> str:
        return subscription.apns_token(token)

    def check(self, target: Target, message: Message, credentials: APNSCredentials) -> str | None:
        try:
            build_request(target, message, credentials)
        except InvalidDeviceTokenError as exc:
            return str(exc)
        except PushgateError as exc:
            return exc.message
        return None

    async def _exchange(
        self,
        pool: h2client.H2Pool,
        path: str,
        headers: dict[str, str],
        body: bytes,
        token: str,
        device_registered_at: datetime | float | None,
        credentials: APNSCredentials,
    ) -> Verdict:
        request_headers: list[HeaderWeaklyTyped] = [
            (":method", "POST"),
            (":scheme", "https"),
            NeverIndexedHeaderTuple(":path", path),
            (":authority", pool.authority),
            ("authorization", f"bearer {token}"),
        ]
        for name, value in headers.items():
            request_headers.append(
                NeverIndexedHeaderTuple(name, value) if name in _UNIQUE_HEADERS else (name, value)
            )
        try:
            async with asyncio.timeout(self._timeout):
                response = await pool.request(request_headers, body)
        except TimeoutError:
            return Verdict(
                Outcome.retry_later(f"no answer from {pool.authority} within {self._timeout} s")
            )
        except ssl.SSLCertVerificationError as exc:
            return Verdict(
                Outcome.retry_later(f"TLS certificate not trusted: {exc.verify_message}")
            )
        except (h2connection.H2Error, OSError) as exc:
            return Verdict(Outcome.retry_later(f"{type(exc).__name__}: {exc}"))
        verdict = classify(
            response.status,
            response.headers,
            response.body,
            device_registered_at=device_registered_at,
            environment=credentials.environment,
        )
        if verdict.follow_up is FollowUp.NEW_CONNECTION:
            response.connection.retire()
        return verdict

    def _pool(self, credentials: APNSCredentials) -> h2client.H2Pool:
        # [token]: a connection carries the tokens of one team; a pool per (team, environment).
        key = (credentials.team_id, credentials.environment)
        pool = self._pools.get(key)
        if pool is None:
            host, port = self._origins[credentials.environment]
            pool = self._pools[key] = h2client.H2Pool(
                host,
                port,
                self._tls.get(),
                max_connections=self._max_connections,
                max_streams=self._max_streams,
                idle_ping_after=self._idle_ping_after,
                ping_timeout=min(self._timeout / 2, 1.0),
                # [token]: one stream until a request with a valid token succeeded.
                accepted=lambda status: status != 403,
            )
        return pool

    async def close(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))


def _host_port(url: str) -> tuple[str, int]:
    rest = url.removeprefix("https://").rstrip("/")
    if "://" in rest:
        raise ValueError(f"APNs URLs must be https: {url}")
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "443")
    return host, int(port or 443)
