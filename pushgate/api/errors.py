"""Turns every failure into `{"error": {"code", "message", "details"}}`: never HTML nor a trace."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from pushgate import outages
from pushgate.api import methods
from pushgate.errors import PushgateError
from pushgate.logs import get_logger

log = get_logger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "subscription", "keys", "auth") -> "subscription.keys.auth"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _pushgate_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, PushgateError):  # registered for this type only
        raise exc
    return pushgate_error(exc)


def pushgate_error(exc: PushgateError) -> JSONResponse:
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    return validation_error(exc)


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """`422 invalid_input`, naming the first field refused and listing every problem."""
    problems = [
        {
            # A body that is not JSON at all: its loc is a character offset, not a field.
            "field": "body" if e.get("type") == "json_invalid" else _field(e.get("loc", ())),
            "message": str(e.get("msg", "invalid")),
        }
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    return error_response(
        422, "invalid_input", message, {"field": first["field"], "errors": problems}
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    # Our own HTTPException subclasses (the body size limit) carry details like PushgateError.
    details = getattr(exc, "details", None)
    if exc.status_code == 405:
        # Starlette's `Allow` names the methods of the first route on the path only (and
        # static files send none): every method of the path, as RFC 9110 asks.
        found = methods.allowed(request.app.routes, methods.route_path(request.scope))
        headers = {**(headers or {}), "Allow": methods.allow_header(found)}
        return error_response(
            405, code, methods.not_allowed_message(request.method), details, headers
        )
    return error_response(exc.status_code, code, str(exc.detail), details, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the details")


def outage_response(request_path: str, exc: BaseException) -> JSONResponse | None:
    """The `503` answer when `exc` says a backend is out of reach (see `pushgate.outages`), else
    None. Shared by the handlers below and the fast lane, which FastAPI's handlers do not see."""
    unavailable = outages.unavailable(exc)
    if unavailable is None:
        return None
    log.warning("backend unavailable", path=request_path, error=repr(exc))
    return error_response(
        unavailable.status_code,
        unavailable.code,
        unavailable.message,
        unavailable.details,
        unavailable.headers,
    )


async def _backend_error(request: Request, exc: Exception) -> JSONResponse:
    response = outage_response(request.url.path, exc)
    if response is None:  # these types are outages only in some cases: the rest are bugs
        return await _unexpected(request, exc)
    return response


# The exception types a backend outage arrives as (`pushgate.outages` says which instances
# are outages). Handlers by type, not one for Exception: Starlette re-raises what its
# catch-all handler answered, and the server logs a traceback for an outage that was answered.
BACKEND_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresError,
    OSError,
)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PushgateError, _pushgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for backend_error in BACKEND_ERRORS:
        app.add_exception_handler(backend_error, _backend_error)
    app.add_exception_handler(Exception, _unexpected)
