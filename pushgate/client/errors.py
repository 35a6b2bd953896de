"""The client's exceptions: the API's error body (`{"error": {code, message, details}}`) as Python.

PushgateError                  any answer of 400 and up: status, code, message, details
├── AuthenticationError        401: missing, unknown or revoked key
├── PermissionDeniedError      403: the key's scope does not allow this
├── NotFoundError              404: no such resource in the key's app
├── ConflictError              409: e.g. a template code already taken
├── ValidationError            422: `details` names the field
└── RateLimitedError           429 after the retries: `retry_after` seconds, when given
PushgateConnectionError        no answer at all (after the retries allowed)
"""

from __future__ import annotations

from typing import Any

import httpx


class PushgateError(Exception):
    """An error answer from the API, carrying its stable `code`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after


class AuthenticationError(PushgateError):
    pass


class PermissionDeniedError(PushgateError):
    pass


class NotFoundError(PushgateError):
    pass


class ConflictError(PushgateError):
    pass


class ValidationError(PushgateError):
    pass


class RateLimitedError(PushgateError):
    pass


class PushgateConnectionError(Exception):
    """The server could not be reached, or did not answer in time."""


BY_STATUS: dict[int, type[PushgateError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitedError,
}


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (the API sends delta-seconds), or None."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_response(response: httpx.Response) -> PushgateError:
    """The exception for an error answer; a body that is not the API's (a proxy's page) still
    gives one, with code `http_<status>`."""
    code, message, details = f"http_{response.status_code}", response.reason_phrase, None
    try:
        body = response.json()
        error = body["error"]
        code, message, details = str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        pass
    kind = BY_STATUS.get(response.status_code, PushgateError)
    return kind(response.status_code, code, message, details, retry_after=retry_after(response))
