"""A templated notification at accept time: read the template's current version (once per code
per accept batch) and render every variant with the request's variables, so a missing or
wrongly typed variable is a 422 naming it now, never a broken push later.

The default locale's rendering becomes the notification's `message` (everything downstream
reads it as before); the other variants go in `notifications.renders`, and the template's code,
version and variants in `notifications.options["template"]`, which the dispatch step
`sending.locales` reads to pick each device's variant. With `locale` the request forces one
variant: only it is rendered, and it is the message.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import locales, rendering
from pushgate.domain.message import Message
from pushgate.domain.request import NotificationCreate
from pushgate.errors import InvalidInputError, NotFoundError
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.store import templates
from pushgate.store.tables import Template

# Where in a variant each field is, and how long its rendering may be.
_TEXT_FIELDS = (("title", rendering.MAX_TEXT), ("body", rendering.MAX_TEXT))
_URL_FIELDS = (("url", rendering.MAX_URL), ("image", rendering.MAX_URL))
_OVERRIDES = ("webpush", "fcm", "apns")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template rendered for one request.

    Attributes:
        messages: each rendered variant's message; `default` is the notification's message.
        template: what `notifications.options["template"]` records.
    """

    default: str
    messages: dict[str, Message]
    template: dict[str, Any]

    @property
    def message(self) -> Message:
        return self.messages[self.default]

    def renders(self) -> dict[str, Any] | None:
        """The other variants as stored (`notifications.renders`), or None."""
        others = {k: jobs.encode_message(m) for k, m in self.messages.items() if k != self.default}
        return others or None


class Loader:
    """The current versions of one app's templates, each read once for an accept batch (an
    edit after the batch shows in the next one)."""

    def __init__(self, runtime: Runtime, app_id: uuid.UUID, session: AsyncSession | None) -> None:
        self._runtime = runtime
        self._app_id = app_id
        self._session = session
        self._found: dict[str, Template | None] = {}

    async def get(self, code: str) -> Template | None:
        if code not in self._found:
            self._found[code] = await self._read(code)
        return self._found[code]

    async def _read(self, code: str) -> Template | None:
        try:
            if self._session is not None:
                return await templates.current(
                    session=self._session, app_id=self._app_id, code=code
                )
            async with self._runtime.sessions() as session:
                return await templates.current(session=session, app_id=self._app_id, code=code)
        except NotFoundError:
            return None

    async def render(self, request: NotificationCreate) -> Rendered:
        """Raises:
        InvalidInputError: an unknown template (field `template_code`), or a variant that
            cannot be rendered with the variables (field `variables.<name>`).
        """
        code = request.template_code or ""
        template = await self.get(code)
        if template is None:
            raise InvalidInputError(
                f"no template {code!r} in this app", field="template_code", code="unknown_template"
            )
        return render(template, request.message(), request.variables, forced=request.locale)


def render(
    template: Template, base: Message, variables: Mapping[str, Any], *, forced: str | None = None
) -> Rendered:
    """Render `template`'s variants (or the one `forced` picks) over `base`, the request's
    own message (its options: ttl, priority, icon, actions...).

    Raises:
        InvalidInputError: a variant that cannot be rendered, naming the variable.
    """
    variants: dict[str, Any] = template.variants
    default = template.default_locale
    wanted = list(variants) if forced is None else [locales.resolve(forced, variants, default)]
    messages: dict[str, Message] = {}
    for locale in wanted:
        messages[locale] = dataclasses.replace(base, **render_variant(template, locale, variables))
    record: dict[str, Any] = {"code": template.code, "version": template.version}
    if forced is None:
        record["default_locale"] = default
        record["locales"] = sorted(k for k in variants if k != default)
        return Rendered(default=default, messages=messages, template=record)
    record["locale"] = wanted[0]
    return Rendered(default=wanted[0], messages=messages, template=record)


def render_variant(template: Template, locale: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """One variant's fields rendered, as `Message` fields.

    Raises:
        InvalidInputError: naming the variable (`variables.<name>`), or `template_code` when
            the template itself is to blame (the sandbox refused it).
    """
    variant: dict[str, Any] = template.variants[locale]
    fields: dict[str, Any] = {}
    where = ""
    try:
        for where, limit in (*_TEXT_FIELDS, *_URL_FIELDS):
            source = variant.get(where)
            if source is not None:
                fields[where] = rendering.render_text(source, variables, limit=limit)
        data = {}
        for key, source in (variant.get("data") or {}).items():
            where = f"data.{key}"
            data[key] = rendering.render_text(source, variables)
        fields["data"] = data
        for where in _OVERRIDES:
            fields[where] = rendering.render_json(variant.get(where) or {}, variables)
    except rendering.RenderError as exc:
        raise _refusal(exc, template, locale, where) from None
    return fields


def _refusal(
    exc: rendering.RenderError, template: Template, locale: str, where: str
) -> InvalidInputError:
    about = f"template {template.code!r} (version {template.version}, locale {locale}, {where})"
    if exc.kind == "template_unsafe":
        field = "template_code"
    else:
        field = f"variables.{exc.variable}" if exc.variable else "variables"
    error = InvalidInputError(f"{exc.message}: {about}", field=field, code=exc.kind)
    error.details = {
        "field": field,
        "template": template.code,
        "version": template.version,
        "locale": locale,
        "template_field": where,
    }
    return error
