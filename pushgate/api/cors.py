"""CORS for the routes a web page calls itself (the device routes and the VAPID key route),
with the origins each app allows in its end-user sign-in settings (`cors_origins`).

A preflight carries no header values, so it cannot say which app it is for: it is answered,
without authentication, when any app allows the origin. The real request then gets
`Access-Control-Allow-Origin` only when the app it names (`X-Pushgate-App`) allows the origin,
or, for a request naming none (an API key), when any app does. No credentials mode: tokens
travel in headers, never in cookies, so nothing ambient is exposed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate.api.errors import error_response
from pushgate.runtime import Runtime
from pushgate.store.tables import App

PATHS = re.compile(
    r"^/v1/(devices(/.*)?|users/[^/]+/devices|webpush/vapid-public-key)$"
    # The Web Push gateway's page routes (pushgate/compat/webpush_gateway), when enabled.
    r"|^/(subscribe|vapid_public_key)$"
)
METHODS = "GET, POST, PATCH, DELETE"
HEADERS = "authorization, content-type, x-pushgate-app, x-device-token, x-api-key"
EXPOSED = "ratelimit, ratelimit-policy, retry-after"
MAX_AGE_SECONDS = "600"


@dataclass(slots=True)
class _Origins:
    by_app: dict[str, frozenset[str]] = field(default_factory=dict)
    anywhere: frozenset[str] = frozenset()
    loaded: float = float("-inf")


class AppOrigins:
    """Every app's allowed origins, read at most once per `ttl` seconds."""

    def __init__(self, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._origins = _Origins()

    def forget(self) -> None:
        """Read them again on the next request (this process just changed an app's)."""
        self._origins = _Origins()

    async def allowed(self, runtime: Runtime, origin: str, app: str | None) -> bool:
        now = self._clock()
        if now - self._origins.loaded >= self._ttl:
            self._origins = await _load(runtime, now)
        if app is None:
            return origin in self._origins.anywhere
        return origin in self._origins.by_app.get(app, frozenset())


async def _load(runtime: Runtime, now: float) -> _Origins:
    async with runtime.sessions() as session:
        rows = (await session.execute(select(App.id, App.name, App.auth))).all()
    by_app: dict[str, frozenset[str]] = {}
    for app_id, name, auth in rows:
        origins = frozenset((auth or {}).get("cors_origins") or ())
        if origins:
            by_app[str(app_id)] = by_app[name] = origins
    anywhere = frozenset(o for origins in by_app.values() for o in origins)
    return _Origins(by_app=by_app, anywhere=anywhere, loaded=now)


class PageCORS:
    """ASGI middleware: CORS preflights and headers on the routes pages call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        runtime: Runtime = state.runtime
        origins: AppOrigins = state.cors_origins
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if not await origins.allowed(runtime, origin.lower(), None):
                refused = error_response(
                    403, "origin_not_allowed", f"no app allows the origin {origin!r}"
                )
                await refused(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *_allow(origin),
                        (b"access-control-allow-methods", METHODS.encode()),
                        (b"access-control-allow-headers", HEADERS.encode()),
                        (b"access-control-max-age", MAX_AGE_SECONDS.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        allowed = await origins.allowed(runtime, origin.lower(), headers.get("x-pushgate-app"))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"vary", b"Origin")]
                if allowed:
                    extra += [
                        *_allow(origin),
                        (b"access-control-expose-headers", EXPOSED.encode()),
                    ]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _allow(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
