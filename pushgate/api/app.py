"""The application factory: routes, error handling, limits and the runtime's lifespan."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pushgate import __version__, sentry_reports
from pushgate.api import (
    cors,
    dashboard,
    docs,
    errors,
    methods,
    observe,
    pageheaders,
    ratelimit,
    responses,
    signin,
)
from pushgate.api.fastlane import AcceptFastLane
from pushgate.api.limits import BodySizeLimit
from pushgate.api.routes import (
    analytics,
    credentials,
    dead_letters,
    devices,
    health,
    metrics,
    notifications,
    preferences,
    queues,
    templates,
    webhooks,
    webpush,
)
from pushgate.api.routes import signin as signin_routes
from pushgate.compat import install as compat
from pushgate.runtime import Runtime, open_runtime
from pushgate.sending import accept
from pushgate.settings import Settings
from pushgate.store.key_cache import KeyCache
from pushgate.worker import Worker

WEB = Path(__file__).resolve().parent.parent / "web"

DESCRIPTION = """
Self-hosted push notifications through FCM HTTP v1, APNs and Web Push.

Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`. Every failure answers
`{"error": {"code", "message", "details"}}` with a stable `code`. Each operation lists the
statuses it answers; any path also answers `405` (with `Allow`) to a method it does not have,
and any request whose body is over the size limit `413`.
"""


def _freeze_startup_objects() -> None:
    """Leave everything alive after start-up out of the garbage collector's full passes. Each
    full pass otherwise walks every module, route and table definition: ~90 ms of one core
    under wrk (a pause every request in flight waits out); frozen, a few ms. Done only when the
    app owns the process (it opened the runtime itself), not in tests that build many apps."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, *, runtime: Runtime | None = None, with_worker: bool = False
) -> FastAPI:
    """Build the API. With `runtime` given the caller owns it; otherwise the lifespan opens one.
    `with_worker` runs the worker in the same process (`pushgate serve`): it starts after the
    runtime and stops, finishing its work in flight, before the runtime closes."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            current = runtime
            if current is None:
                current = await open_runtime(settings, serves_requests=True)
                stack.push_async_callback(current.close)
            app.state.runtime = current
            app.state.limiter = ratelimit.Limiter(
                current.settings, current.kv, metrics=current.metrics
            )
            # Accepts of concurrent requests stored together; closed (answering every request
            # still waiting) before the worker and the runtime.
            accepts = accept.group(current)
            app.state.accepts = accepts
            if with_worker:
                background = Worker(current)
                await background.start()
                stack.push_async_callback(background.stop)
            stack.push_async_callback(accepts.close)
            if runtime is None:
                sentry_reports.watch_tasks()
                _freeze_startup_objects()
            yield

    app = FastAPI(
        title="pushgate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by pushgate.api.docs from an installed package: FastAPI's own load a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.key_cache = KeyCache(ttl=settings.server.key_cache_seconds)
    app.state.jwks = signin.JWKSCache(settings.jwks)
    app.state.cors_origins = cors.AppOrigins(ttl=settings.server.key_cache_seconds)
    errors.install(app)
    # Innermost: a method a literal path lacks is a 405 before the router takes the path for
    # a template's parameter (`/v1/notifications/bulk` is not a notification id).
    app.add_middleware(methods.LiteralPaths)
    # Added early, so it runs inside the body size limit (the last added is the outermost).
    app.add_middleware(AcceptFastLane)
    app.add_middleware(BodySizeLimit, max_bytes=settings.server.max_body_bytes)
    # Outermost: it sees the answers of the fast lane and of FastAPI alike.
    app.add_middleware(ratelimit.RateLimitHeaders)
    # Outside the rate limit headers, so a page can read its 401s and 429s too.
    app.add_middleware(cors.PageCORS)
    # Only on /dashboard and /web: the pages' Content-Security-Policy and frame denial.
    app.add_middleware(pageheaders.PageSecurityHeaders)
    # Outermost of all: every answer carries X-Request-ID, every log line of it request_id.
    app.add_middleware(observe.RequestObserver)
    # The enabled legacy shapes' routes (pushgate/compat), before pushgate's own.
    compat.install(app, settings)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(webpush.router)
    app.include_router(devices.router)
    app.include_router(notifications.router)
    app.include_router(credentials.router)
    app.include_router(signin_routes.router)
    app.include_router(preferences.router)
    app.include_router(templates.router)
    app.include_router(webhooks.router)
    app.include_router(dead_letters.router)
    app.include_router(queues.router)
    app.include_router(analytics.router)
    # Each operation's error statuses, those its shape and dependencies imply included.
    responses.install(app)
    # Static pages for people: the Web Push test page and its service worker.
    app.mount("/web", StaticFiles(directory=WEB, html=True), name="web")
    docs.install(app)
    # The operators' dashboard: an HTML shell and its own scripts, reading /v1 with a key.
    dashboard.install(app)
    return app
