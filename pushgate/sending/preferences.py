"""Dispatch's planning steps for users' preferences (see `sending.planning`): the first step
skips the deliveries a user does not want (mute, category or platform opt-out); the last
defers those that would land inside the user's quiet hours to the window's end.

The page's users' preferences are read once, in one query, by the first step and left in
`page.facts[FACT]` (`{user_id: Preferences}`, only the users who stored any) for the steps
after it: the quiet-hours step, and the template step's user locale. A page whose devices
belong to no user costs no query; a user without stored preferences has the defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pushgate.domain.preferences import Preferences
from pushgate.logs import get_logger
from pushgate.store import preferences as stored

if TYPE_CHECKING:  # planning lists these steps: importing it here would be a cycle
    from pushgate.sending import planning

log = get_logger(__name__)

FACT = "preferences"


def of_page(page: planning.Page) -> dict[str, Preferences]:
    """The page's users' stored preferences, as the first step read them."""
    found: dict[str, Preferences] = page.facts.get(FACT, {})
    return found


async def skip_unwanted(page: planning.Page, items: list[planning.Planned]) -> None:
    """Read the page's users' preferences, and skip each delivery its user does not want (the
    reason codes are `domain.preferences`'s)."""
    users = {item.user_id for item in items if item.user_id}
    found = (
        await stored.get_many(session=page.session, app_id=page.notification.app_id, user_ids=users)
        if users
        else {}
    )
    page.facts[FACT] = found
    if not found:
        return
    category = page.notification.category
    transactional = bool(page.options.get("transactional"))
    # Decided once per user and platform, not once per device.
    decided: dict[tuple[str, str], str | None] = {}
    for item in items:
        prefs = found.get(item.user_id) if item.user_id else None
        if prefs is None:
            continue
        key = (item.user_id or "", item.platform)
        if key not in decided:
            decided[key] = prefs.skip_reason(
                platform=item.platform, category=category, transactional=transactional
            )
        reason = decided[key]
        if reason is not None:
            item.skip(reason)


async def defer_quiet_hours(page: planning.Page, items: list[planning.Planned]) -> None:
    """Defer each delivery whose time to go (now, or when an earlier step said) falls inside
    its user's quiet hours to the window's end, unless the notification ignores quiet hours.
    A window that ends after the notification's lifetime expires the delivery instead (see
    `planning.settle`)."""
    found = of_page(page)
    if not found or page.options.get("ignore_quiet_hours"):
        return
    ends: dict[tuple[str, datetime], datetime | None] = {}
    for item in items:
        prefs = found.get(item.user_id) if item.user_id else None
        if item.skipped is not None or prefs is None or prefs.quiet_hours is None:
            continue
        at = item.not_before or page.now
        key = (item.user_id or "", at)
        if key not in ends:
            try:
                ends[key] = prefs.quiet_hours.ends(at)
            except ValueError:  # a zone gone from the time zone database since it was stored
                log.warning("quiet hours unreadable; ignored", user_id=item.user_id)
                ends[key] = None
        end = ends[key]
        if end is not None:
            item.not_until(end)
