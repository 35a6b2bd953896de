"""The planning step that picks each delivery's template variant (see `sending.planning`): the
device's locale, else its user's (`user_preferences.locale`), else the template's default,
each through the fallback `fr-CA` -> `fr` -> the default (`domain.locales.resolve`).

Only templated notifications have variants to pick (`options["template"]`, written by
`sending.templates`); one that forced a locale has a single one, its message. A delivery's
`locale` stays None for the default variant: it sends the notification's message. The users'
locales come with their preferences, which the preferences step reads for the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pushgate.domain import locales
from pushgate.domain.preferences import Preferences
from pushgate.sending import preferences
from pushgate.store import preferences as stored_preferences

if TYPE_CHECKING:  # planning lists this step in its STEPS
    from pushgate.sending.planning import Page, Planned


async def choose_variants(page: Page, items: list[Planned]) -> None:
    template: dict[str, Any] | None = page.options.get("template")
    if template is None or not template.get("locales"):
        return  # not templated, forced to one variant, or only the default to choose from
    default: str = template["default_locale"]
    variants = {default, *template["locales"]}
    needs_user = any(i.user_id and not i.device_locale for i in items)
    users = await _users(page, items) if needs_user else {}
    chosen: dict[str | None, str | None] = {}
    for item in items:
        wanted = item.device_locale
        if wanted is None and item.user_id and item.user_id in users:
            wanted = users[item.user_id].locale
        if wanted not in chosen:
            canonical = locales.normalise(wanted) if wanted else None
            variant = locales.resolve(canonical, variants, default)
            chosen[wanted] = None if variant == default else variant
        item.locale = chosen[wanted]


async def _users(page: Page, items: list[Planned]) -> dict[str, Preferences]:
    """The page's users' stored preferences: as the preferences step left them (it runs
    first), else read here in one query and left the same way."""
    found: dict[str, Preferences] | None = page.facts.get(preferences.FACT)
    if found is None:
        found = await stored_preferences.get_many(
            session=page.session,
            app_id=page.notification.app_id,
            user_ids={i.user_id for i in items if i.user_id},
        )
        page.facts[preferences.FACT] = found
    return found
