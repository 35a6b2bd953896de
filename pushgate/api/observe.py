"""Request ids and request metrics, as one pure ASGI middleware (the outermost): every answer,
the fast lane's and the error handlers' included, carries `X-Request-ID`, and every log line
of the request carries `request_id`.

An incoming `X-Request-ID` is kept when it is printable ASCII of at most 128 characters (a
proxy's or a client's id, so one id follows a request across services); otherwise one is made.
The per-request work is a header scan, a context variable and two metric increments: the API
answers thousands of requests a second, so no BaseHTTPMiddleware (a task and streams per
request).
"""

from __future__ import annotations

import itertools
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate import logs
from pushgate.metrics.registry import Metrics

HEADER = b"x-request-id"
MAX_LENGTH = 128
# Routes without a template (no route matched): one label for them all, never the raw path.
UNMATCHED = "unmatched"


def valid_request_id(raw: bytes) -> bool:
    # Printable ASCII, no spaces: safe in a header, a log line and a search box.
    return 0 < len(raw) <= MAX_LENGTH and all(0x21 <= c <= 0x7E for c in raw)


# Made ids: this process's random prefix and a counter (unique across processes and
# restarts, ~5 times cheaper than 12 random bytes per request). Not a secret: nothing is
# authorised by a request id.
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class RequestObserver:
    """ASGI middleware: request id in, request id out, and the request counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == HEADER:
                if valid_request_id(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        echoed = (HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
            metrics = _metrics_of(scope)
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or scope.get("pushgate.route", UNMATCHED)
                metrics.http_request(
                    scope["method"], template, status, time.perf_counter() - started
                )


def _metrics_of(scope: Scope) -> Metrics | None:
    runtime = getattr(scope["app"].state, "runtime", None)
    return runtime.metrics if runtime is not None else None
