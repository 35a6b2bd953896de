"""Shapes shared by every resource: the error body and cursor pages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid_subscription`.")
    message: str = Field(description="What went wrong, for people.")
    details: Any = Field(default=None, description="For validation: the offending field(s).")


class ErrorBody(BaseModel):
    """Every failure answers with this body, whatever the status."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "Missing, unknown or revoked API key",
        403: "The key's scope does not allow this",
        404: "No such resource in the caller's app",
        413: "Request body too large",
        422: "Invalid input; `details` names the field",
        429: "Over the API key's or the app's rate limit; retry after `Retry-After`",
        503: "The database or the cache is unavailable or too slow; retry after `Retry-After`",
    }.items()
}
