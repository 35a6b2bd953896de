"""`POST /v1/notifications` answered without FastAPI's per-request machinery, for the requests
that are well formed: the API's hottest route, where the framework cost as much CPU as the
work itself (routing, two exit stacks, dependency solving and parameter validation: ~0.15 ms of
~0.9 ms a request, measured with py-spy under wrk).

It only takes the requests FastAPI would answer without a validation error: a JSON body
(`application/json`) that `NotificationCreate` accepts, and an `Idempotency-Key` header that is
absent or valid (length, printable ASCII). Every other request, and every other route, goes on
to FastAPI untouched (the body already read is handed over again), so malformed requests get
exactly the answers they got before. What runs for the requests it takes is what the FastAPI
route runs: the same authentication and rate limits (`deps.caller_of`, `deps.permitted`; the
RateLimit fields are added by the `RateLimitHeaders` middleware outside), the same `accept_one`,
PushgateErrors rendered by the same `errors.error_response`, and backend outages answered `503`
by the same `errors.outage_response`; anything unexpected propagates to the app's own 500
handler. The OpenAPI document still describes the route, from FastAPI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushgate.api import deps, errors
from pushgate.api.routes.notifications import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    accept_one,
    header_key_ok,
)
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.domain.request import NotificationCreate
from pushgate.errors import PushgateError

PATH = "/v1/notifications"
ROUTE_KEY = "pushgate.route"


class AcceptFastLane:
    """ASGI middleware; install it inside the body size limit, which bounds what it reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != PATH
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        headers = _Headers(scope["headers"])
        if not headers.json:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        replay = _replaying(body, receive)
        if disconnected:
            return  # nobody to answer
        request = _well_formed(body, headers.idempotency_key)
        if request is None:
            await self.app(scope, replay, send)
            return
        scope[ROUTE_KEY] = PATH  # the route template of the request metrics (api/observe.py)
        state = scope["app"].state
        try:
            caller = await deps.caller_of(headers.api_key, state, scope, RouteClass.SEND)
            deps.permitted(caller, Permission.NOTIFICATIONS_SEND)
            response = await accept_one(state, caller, request, headers.idempotency_key)
        except PushgateError as exc:
            response = errors.error_response(
                exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
        except Exception as exc:
            # A backend out of reach answers 503 here as on every FastAPI route; the rest
            # propagates to the app's own 500 handler.
            outage = errors.outage_response(PATH, exc)
            if outage is None:
                raise
            response = outage
        await response(scope, replay, send)


class _Headers:
    """The few request headers the route reads, decoded as Starlette decodes them (latin-1,
    the first of repeated headers)."""

    __slots__ = ("api_key", "idempotency_key", "json")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        found: dict[bytes, bytes] = {}
        for name, value in raw:
            if name in _WANTED and name not in found:
                found[name] = value
        content_type = found.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        # FastAPI also takes `application/<x>+json`; those, rare, go its way.
        self.json = content_type == b"application/json"
        authorization = found.get(b"authorization")
        x_api_key = found.get(b"x-api-key")
        self.api_key = deps.key_of(
            authorization.decode("latin-1") if authorization is not None else None,
            x_api_key.decode("latin-1") if x_api_key is not None else None,
        )
        key = found.get(b"idempotency-key")
        self.idempotency_key = key.decode("latin-1") if key is not None else None


_WANTED = frozenset({b"content-type", b"authorization", b"x-api-key", b"idempotency-key"})


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the body once more, then the client's next messages (a
    disconnect, which a streaming response may wait for)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _well_formed(body: bytes, idempotency_key: str | None) -> NotificationCreate | None:
    """The request, if FastAPI would validate it without an error; None sends it FastAPI's
    way. Parsed to the same Python objects FastAPI gets from json.loads, then validated the
    same way (the model from Python objects): what the fast lane accepts FastAPI accepts, with
    the same values."""
    if idempotency_key is not None and not (
        1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH and header_key_ok(idempotency_key)
    ):
        return None
    try:
        return NotificationCreate.model_validate(_loads(body))
    # ValueError covers the JSON decode errors; RecursionError is JSON nested too deep (which
    # FastAPI answers 400).
    except (ValueError, RecursionError, ValidationError):
        return None


def _loads(body: bytes) -> object:
    """json.loads' result, mostly by orjson (~20 times faster). orjson refuses some of what
    json.loads takes (NaN, a BOM, other encodings, lone surrogates): those raise, and go
    FastAPI's way. It reads an integer beyond 64 bits as a float, where json.loads keeps it
    exact: a body with a run of 19 digits or more is read by json.loads itself."""
    if _LONG_NUMBER.search(body):
        return json.loads(body)
    return orjson.loads(body)


_LONG_NUMBER = re.compile(rb"\d{19}")
