"""Who may read the metrics page, the page `pushgate worker` serves on its own port, and the
loop that refreshes the queue gauges.

The API's `/metrics` (api/routes/metrics.py) and the worker's port apply the same rule
(`refusal`): no API key, but an optional bearer token (`metrics.token`) and an optional list
of client networks (`metrics.allow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
from collections.abc import Callable, Collection

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pushgate.broker import base as broker_base
from pushgate.broker.base import Broker
from pushgate.errors import AuthenticationError, NotFoundError, PermissionDeniedError, PushgateError
from pushgate.logs import get_logger
from pushgate.metrics.registry import Metrics
from pushgate.settings import MetricsSettings

log = get_logger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def refusal(
    settings: MetricsSettings, client: str | None, authorization: str | None
) -> PushgateError | None:
    """Why this scrape is refused, or None when it may read the page."""
    if not settings.enabled:
        return NotFoundError("metrics are turned off (metrics.enabled)")
    if settings.allow and not _allowed(settings.allow, client):
        return PermissionDeniedError(
            "this client may not read the metrics (metrics.allow)", code="metrics_forbidden"
        )
    if settings.token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        expected = settings.token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return AuthenticationError(
                "the metrics page needs `Authorization: Bearer <metrics.token>`",
                code="metrics_unauthenticated",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return None


def _allowed(networks: Collection[str], client: str | None) -> bool:
    if client is None:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


async def serve_worker_page(settings: MetricsSettings, metrics: Metrics) -> web.AppRunner | None:
    """Serve `/metrics` on `metrics.worker_host:worker_port`; None when turned off or the port
    cannot be taken (logged: a worker without its page still delivers)."""
    if not settings.enabled or settings.worker_port == 0:
        return None

    async def page(request: web.Request) -> web.Response:
        refused = refusal(settings, request.remote, request.headers.get("Authorization"))
        if refused is not None:
            return web.json_response(
                {"error": {"code": refused.code, "message": refused.message, "details": None}},
                status=refused.status_code,
                headers=refused.headers,
            )
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.worker_host, settings.worker_port)
    try:
        await site.start()
    except OSError as exc:
        log.error(
            "cannot serve the worker's metrics page",
            host=settings.worker_host,
            port=settings.worker_port,
            error=str(exc),
        )
        await runner.cleanup()
        return None
    log.info("metrics page", url=f"http://{settings.worker_host}:{settings.worker_port}/metrics")
    return runner


async def refresh_queues(
    broker: Broker,
    metrics: Metrics,
    consumers: Callable[[], Collection[str]],
    *,
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Every `interval`, read each queue's depth from the broker and count this process's
    consumers (`consumers()`: the queue of each). Off the scrape's path: a scrape never waits
    for the broker."""
    while not stop.is_set():
        mine = list(consumers())
        for queue in broker_base.QUEUES:
            metrics.queue_consumers.labels(queue).set(mine.count(queue))
            try:
                depth = await broker.depth(queue)
            except Exception as exc:  # the broker's health check says more
                log.debug("cannot read a queue's depth", queue=queue, error=repr(exc))
                continue
            metrics.queue_depth.labels(queue).set(depth)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
