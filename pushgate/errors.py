"""Exceptions pushgate raises on purpose, each with a stable code the API turns into JSON.

PushgateError                  base: code, message, details, HTTP status
├── ConfigError                a bad setting; start-up stops with one line
├── AuthenticationError        401 missing, unknown or revoked API key
├── PermissionDeniedError      403 the key's scope does not allow this
├── NotFoundError              404 no such resource in the caller's app
├── ConflictError              409 the resource exists, or is busy (Retry-After)
├── PayloadTooLargeError       413 request body or payload over its limit
├── InvalidInputError          422 a field is wrong; `details` names it
│   ├── UnsafeEndpointError    422 a Web Push endpoint we refuse to call (SSRF guard)
│   └── FilterRequiredError    400 a bulk replay or purge with no filter and no `all`
├── RateLimitedError           429 too many requests (Retry-After)
└── UnavailableError           503 a backend is unreachable
"""

from __future__ import annotations

from typing import Any


class PushgateError(Exception):
    """Base of every deliberate error. `code` is stable; `message` is for people."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class ConfigError(PushgateError):
    code = "invalid_setting"


class AuthenticationError(PushgateError):
    status_code = 401
    code = "unauthenticated"


class PermissionDeniedError(PushgateError):
    status_code = 403
    code = "forbidden"


class NotFoundError(PushgateError):
    status_code = 404
    code = "not_found"


class ConflictError(PushgateError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(PushgateError):
    status_code = 413
    code = "payload_too_large"


class InvalidInputError(PushgateError):
    status_code = 422
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code, details={"field": field} if field else None)
        self.field = field


class UnsafeEndpointError(InvalidInputError):
    code = "unsafe_endpoint"


class FilterRequiredError(InvalidInputError):
    """Nobody replays or purges every dead letter by accident: that takes `all` said aloud."""

    status_code = 400
    code = "filter_required"


class RateLimitedError(PushgateError):
    status_code = 429
    code = "rate_limited"


class UnavailableError(PushgateError):
    status_code = 503
    code = "unavailable"
