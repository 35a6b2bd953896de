"""Bodies of the templates API. The content's shape and checks are `domain.templates`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pushgate.domain import storable
from pushgate.domain.locales import Locale
from pushgate.domain.templates import Code, Content
from pushgate.store.tables import Template


class TemplateCreate(Content):
    """A new template: its code and its first version's content."""

    code: Code = Field(description="The name notifications give as `template_code`.")


class TemplateUpdate(Content):
    """The next version's content, replacing the current one's whole."""


class TemplatePublic(BaseModel):
    """One version of a template."""

    code: str
    version: int
    default_locale: str
    variants: dict[str, dict[str, Any]]
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Template) -> TemplatePublic:
        return cls(
            code=row.code,
            version=row.version,
            default_locale=row.default_locale,
            variants=row.variants,
            description=row.description,
            created_at=row.created_at,
        )


class TemplatesPublic(BaseModel):
    items: list[TemplatePublic] = Field(description="Each template's current version.")
    next_cursor: str | None


class TemplateVersionsPublic(BaseModel):
    items: list[TemplatePublic] = Field(description="Newest first.")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: storable.JSONObject = Field(default_factory=dict)
    locale: Locale | None = Field(
        default=None, description="The variant to render (with fallback); default: every one."
    )
    version: int | None = Field(default=None, ge=1, description="Default: the current one.")


class RenderedVariant(BaseModel):
    title: str | None = None
    body: str | None = None
    url: str | None = None
    image: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    webpush: dict[str, Any] = Field(default_factory=dict)
    fcm: dict[str, Any] = Field(default_factory=dict)
    apns: dict[str, Any] = Field(default_factory=dict)


class PreviewPublic(BaseModel):
    code: str
    version: int
    default_locale: str
    variants: dict[str, RenderedVariant] = Field(description="locale -> what it renders.")
