"""Turns every failure into `{"error": {"code", "message", "details"}}`: never HTML nor a trace."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
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


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    code = HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    # Our own HTTPException subclasses (the body size limit) carry details like PushgateError.
    details = getattr(exc, "details", None)
    return error_response(exc.status_code, code, str(exc.detail), details, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(PushgateError, _pushgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
