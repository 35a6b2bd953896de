"""Request limits: a token bucket per API key and one per app, per route class (send, subscribe,
read), taken together in one key-value store call per request, so every API process behind a
balancer shares them when the store is Redis (process memory on the embedded profile). When
the store is out of reach requests go through unlimited, as they go through without its
idempotency locks.

A busy bucket is not read on every request: each process takes a few requests' worth of tokens
at once (a tenth of a second's worth, at most 1% of the bucket) and spends them over the next
tenth of a second; limits under ten requests a second are counted request by request.

Every answer to an authenticated request carries the RateLimit header fields of the bucket
closest to running out (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset`); a refused request is a `429` with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate import outages
from pushgate.domain import rates
from pushgate.domain.rates import OwnLimits, Quota, Rate, RouteClass
from pushgate.errors import RateLimitedError
from pushgate.kv.base import Bucket, KeyValueStore
from pushgate.logs import get_logger
from pushgate.metrics.registry import Metrics
from pushgate.settings import Settings

log = get_logger(__name__)

# Where a request's quota waits for its response (an ASGI scope key of our own).
SCOPE_KEY = "pushgate.quota"

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def route_class(method: str, path: str) -> RouteClass:
    """Which limits a request counts against: writes to notifications are sends, writes to
    devices are subscriptions, the rest (reads and the admin routes) reads."""
    if method in _WRITES:
        if path.startswith("/v1/notifications"):
            return RouteClass.SEND
        if path.startswith("/v1/devices"):
            return RouteClass.SUBSCRIBE
    return RouteClass.READ


# A process takes up to this many seconds' worth of a busy bucket's tokens in one call and
# spends them itself for at most as long: a busy key costs its API process about ten calls a
# second instead of one per request (a round trip costs ~0.1 ms of CPU, a third of a whole
# request). Tokens taken but not spent are lost to the others for that long at most.
LEASE_SECONDS = 0.1
# ... and never more than this share of a bucket, so the processes sharing it split it finely.
LEASE_SHARE = 100
MAX_LEASES = 10_000


@dataclass(slots=True)
class _Lease:
    """Tokens this process took ahead for one key and route class, until `until`."""

    left: int
    until: float
    # The bucket closest to empty (both lose a token per request: it stays the closest), its
    # rate and its level in the store just after the lease was taken.
    rate: Rate
    level: float

    def quota(self) -> Quota:
        # What this client has: what the store holds plus what this process holds for it.
        return rates.quota(self.rate, self.level + self.left)


def lease_size(rate: Rate) -> int:
    """How many tokens of a bucket of `rate` a process takes at once: one for slow limits."""
    return max(1, min(math.floor(rate.per_second * LEASE_SECONDS), rate.count // LEASE_SHARE))


class Limiter:
    """The defaults from the settings, the buckets in the key-value store, and this process's
    leases of them.

    Args:
        clock: wall-clock seconds; every API process sharing the buckets must agree on it.
        metrics: where refusals are counted (`pushgate_rate_limit_refusals_total`).
    """

    def __init__(
        self,
        settings: Settings,
        kv: KeyValueStore,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        limits = settings.rate_limits
        self.enabled = limits.enabled
        legacy = settings.server.rate_limit_per_minute
        self._key = {
            route: Rate(legacy, 60.0) if legacy else limits.for_key(route) for route in RouteClass
        }
        self._app = {route: limits.for_app(route) for route in RouteClass}
        self._kv = kv
        self._clock = clock
        self._leases: dict[tuple[uuid.UUID, RouteClass], _Lease] = {}
        self._fetching: dict[tuple[uuid.UUID, RouteClass], asyncio.Future[None]] = {}

    async def check(
        self,
        *,
        key_id: uuid.UUID,
        app_id: uuid.UUID,
        own: OwnLimits | None,
        route: RouteClass,
    ) -> Quota | None:
        """Count one request of this key and app: from this process's lease, or from the
        key-value store (at most one call, for both buckets).

        Returns:
            The quota to show the client, or None when nothing limits the request.

        Raises:
            RateLimitedError: 429 with `Retry-After` and the RateLimit fields, when the key's
                or the app's bucket is empty (neither is charged then).
        """
        if not self.enabled:
            return None
        while True:
            now = self._clock()
            lease = self._leases.get((key_id, route))
            if lease is not None and lease.left > 0 and now < lease.until:
                lease.left -= 1
                return lease.quota()
            fetching = self._fetching.get((key_id, route))
            if fetching is None:
                break
            # One take at a time per key and class: the requests that come meanwhile share
            # its lease (each taking its own would take the bucket's tokens many times over).
            await asyncio.shield(fetching)
        done = asyncio.get_running_loop().create_future()
        self._fetching[key_id, route] = done
        try:
            return await self._take(key_id, app_id, own, route, now)
        finally:
            del self._fetching[key_id, route]
            done.set_result(None)

    async def _take(
        self,
        key_id: uuid.UUID,
        app_id: uuid.UUID,
        own: OwnLimits | None,
        route: RouteClass,
        now: float,
    ) -> Quota | None:
        key_rate = (own.key if own is not None else None) or self._key[route]
        app_rate = (own.app.get(route) if own is not None else None) or self._app[route]
        found: list[tuple[str, Rate]] = []
        if not key_rate.unlimited:
            found.append(("key", key_rate))
        if not app_rate.unlimited:
            found.append(("app", app_rate))
        if not found:
            return None
        buckets = [
            Bucket(
                key=f"rl:{who}:{key_id if who == 'key' else app_id}:{route.value}",
                capacity=rate.count,
                rate=rate.per_second,
            )
            for who, rate in found
        ]
        want = min(lease_size(rate) for _, rate in found)
        try:
            taken = await self._kv.take(buckets, now=now, want=want)
        except Exception as exc:
            # Limits protect the service; they are not worth refusing every request while
            # the key-value store is out of reach (the database still answers).
            if outages.backend_of(exc) is None:
                raise
            log.warning("rate limits unavailable; request let through", error=repr(exc))
            return None
        quotas = [rates.quota(r, t) for (_, r), t in zip(found, taken.tokens, strict=True)]
        if taken.allowed:
            left = taken.granted - 1
            closest = quotas.index(rates.tightest(quotas))
            lease = _Lease(left, now + LEASE_SECONDS, found[closest][1], taken.tokens[closest])
            if left:
                self._keep(key_id, route, lease, now)
            return lease.quota()
        # The empty bucket that refills last says when to come back.
        quota, (who, rate) = max(zip(quotas, found, strict=True), key=lambda q: q[0].retry_after)
        holder = "API key" if who == "key" else "app"
        if self._metrics is not None:
            self._metrics.rate_limited(route.value)
        raise RateLimitedError(
            f"this {holder} may make {rate.count} {route.value} requests per"
            f" {str(rate).partition('/')[2]}; try again in {quota.retry_after} s",
            headers={
                "Retry-After": str(quota.retry_after),
                **{name.decode(): value.decode() for name, value in quota.headers()},
            },
            details={
                "limited": who,
                "route_class": route.value,
                "limit": str(rate),
                "retry_after_seconds": quota.retry_after,
            },
        )

    def _keep(self, key_id: uuid.UUID, route: RouteClass, lease: _Lease, now: float) -> None:
        if len(self._leases) >= MAX_LEASES:
            self._leases = {k: v for k, v in self._leases.items() if v.until > now}
        self._leases[key_id, route] = lease


class RateLimitHeaders:
    """ASGI middleware: adds the RateLimit fields of the request's quota (left in the scope by
    the authentication, in FastAPI's dependencies or the fast lane) to its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota: Quota | None = scope.get(SCOPE_KEY)
                if quota is not None:
                    message["headers"] = [*message.get("headers", ()), *quota.headers()]
            await send(message)

        await self.app(scope, receive, send_with_quota)
