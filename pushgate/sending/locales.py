"""The planning step that picks each delivery's template variant (see `sending.planning`): the
device's locale, else its user's (`user_preferences.locale`), else the template's default,
each through the fallback `fr-CA` -> `fr` -> the default (`domain.locales.resolve`).

Only templated notifications have variants to pick (`options["template"]`, written by
`sending.templates`); one that forced a locale has a single one, its message. A delivery's
`locale` stays None for the default variant: it sends the notification's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pushgate.domain import locales
from pushgate.store import templates

if TYPE_CHECKING:  # planning lists this step in its STEPS
    from pushgate.sending.planning import Page, Planned

# `page.facts[USER_LOCALES]`: {user_id: locale} for every user of the page that set one. Read
# here unless an earlier step (the preferences one, which reads the same rows) left it.
USER_LOCALES = "user_locales"


async def choose_variants(page: Page, items: list[Planned]) -> None:
    template: dict[str, Any] | None = page.options.get("template")
    if template is None or not template.get("locales"):
        return  # not templated, forced to one variant, or only the default to choose from
    default: str = template["default_locale"]
    variants = {default, *template["locales"]}
    needs_user = any(i.user_id and not i.device_locale for i in items)
    users = await _user_locales(page, items) if needs_user else {}
    chosen: dict[str | None, str | None] = {}
    for item in items:
        wanted = item.device_locale or (users.get(item.user_id) if item.user_id else None)
        if wanted not in chosen:
            canonical = locales.normalise(wanted) if wanted else None
            variant = locales.resolve(canonical, variants, default)
            chosen[wanted] = None if variant == default else variant
        item.locale = chosen[wanted]


async def _user_locales(page: Page, items: list[Planned]) -> dict[str, str]:
    """The locales of every user of the page (one query, shared through `page.facts`)."""
    known: dict[str, str] | None = page.facts.get(USER_LOCALES)
    if known is None:
        known = await templates.user_locales(
            session=page.session,
            app_id=page.notification.app_id,
            user_ids={i.user_id for i in items if i.user_id},
        )
        page.facts[USER_LOCALES] = known
    return known
