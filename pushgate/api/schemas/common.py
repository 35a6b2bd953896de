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
