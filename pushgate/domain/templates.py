"""Templates, pure: the shape of a template's content (its per-locale variants), checked when it
is saved, sources compiled, so a bad template is a 422 then, not at send. Locale tags and
their fallback are `domain.locales`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pushgate.domain import rendering, storable
from pushgate.domain.locales import Locale, locale_of
from pushgate.domain.request import DataValue
from pushgate.domain.request import _refuse as refuse

MAX_VARIANTS = 100
MAX_DATA_KEYS = 100
MAX_CODE_LENGTH = 100


def _source(value: str) -> str:
    rendering.check_source(value)
    return value


# Sources are bounded like the fields they render (see domain.request); the rendering is
# bounded again (see rendering.MAX_TEXT).
TextSource = Annotated[
    str, StringConstraints(max_length=4096), storable.TEXT, AfterValidator(_source)
]
URLSource = Annotated[
    str, StringConstraints(max_length=2048), storable.TEXT, AfterValidator(_source)
]


def _check_overrides(value: dict[str, Any]) -> dict[str, Any]:
    for where, text in rendering.strings_of(value):
        try:
            rendering.check_source(text)
        except PydanticCustomError as exc:
            raise PydanticCustomError(
                exc.type, "{where}: {problem}", {"where": where, "problem": exc.message()}
            ) from None
    return value


Overrides = Annotated[storable.JSONObject, AfterValidator(_check_overrides)]


class Variant(BaseModel):
    """One locale's words: every string is a Jinja template rendered with the notification's
    variables (data values and the strings inside the platform overrides too)."""

    model_config = ConfigDict(extra="forbid")

    title: TextSource | None = None
    body: TextSource | None = None
    url: URLSource | None = None
    image: URLSource | None = None
    data: dict[Annotated[str, storable.TEXT], Annotated[DataValue, AfterValidator(_source)]] = (
        Field(default_factory=dict)
    )
    webpush: Overrides = Field(default_factory=dict)
    fcm: Overrides = Field(default_factory=dict)
    apns: Overrides = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _few_keys(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_DATA_KEYS:
            raise PydanticCustomError("data_keys", f"at most {MAX_DATA_KEYS} data keys")
        return value

    @model_validator(mode="after")
    def _something(self) -> Variant:
        if not (self.title or self.body or self.data or self.webpush or self.fcm or self.apns):
            raise ValueError("nothing to send: give a title, body, data or a platform override")
        return self


class Content(BaseModel):
    """What a version of a template holds: its variants and which one is the default."""

    model_config = ConfigDict(extra="forbid")

    default_locale: Locale = Field(
        description="The variant for devices and users whose locale has none; one of `variants`."
    )
    variants: Annotated[dict[str, Variant], Field(min_length=1, max_length=MAX_VARIANTS)] = Field(
        description="locale -> its words (`title`, `body`, `url`, `image`, `data`, `webpush`,"
        " `fcm`, `apns`), each a Jinja template."
    )
    description: Annotated[str, StringConstraints(max_length=1000), storable.TEXT] | None = None

    @field_validator("variants", mode="before")
    @classmethod
    def _canonical_locales(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        canonical: dict[str, Any] = {}
        for key, variant in value.items():
            locale = locale_of(str(key))
            if locale in canonical:
                raise PydanticCustomError(
                    "locale", "{locale} is given twice (locales ignore case)", {"locale": locale}
                )
            canonical[locale] = variant
        return canonical

    @model_validator(mode="after")
    def _default_is_a_variant(self) -> Content:
        if self.default_locale not in self.variants:
            raise refuse(
                "default_locale",
                "default_locale",
                f"default_locale {self.default_locale!r} must be one of the variants"
                f" ({', '.join(sorted(self.variants))})",
            )
        return self

    def stored_variants(self) -> dict[str, dict[str, Any]]:
        """The variants as stored (`templates.variants`): empty fields left out."""
        return {
            locale: variant.model_dump(exclude_defaults=True)
            for locale, variant in self.variants.items()
        }


Code = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{MAX_CODE_LENGTH - 1}}}$")
]
