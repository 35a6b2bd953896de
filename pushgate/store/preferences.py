"""Users' preferences (`user_preferences`, one row per app and user): read one for the API, read
a dispatch page's users in one query, replace, and reset. A user without a row has the
defaults (`domain.preferences.Preferences()`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.preferences import Preferences, QuietHours
from pushgate.logs import get_logger
from pushgate.store import db
from pushgate.store.tables import UserPreference, utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Saved:
    """A user's stored preferences and when they were last replaced."""

    user_id: str
    preferences: Preferences
    updated_at: datetime


async def get(*, session: AsyncSession, app_id: uuid.UUID, user_id: str) -> Saved | None:
    """The user's stored preferences, or None: the defaults apply."""
    row = await session.get(UserPreference, (app_id, user_id))
    return None if row is None else Saved(row.user_id, _of(row), row.updated_at)


async def get_many(
    *, session: AsyncSession, app_id: uuid.UUID, user_ids: Collection[str]
) -> dict[str, Preferences]:
    """The stored preferences of those of `user_ids` who have any, in one query (a dispatch
    page's users); the others are left out."""
    if not user_ids:
        return {}
    query = select(UserPreference).where(
        UserPreference.app_id == app_id, UserPreference.user_id.in_(list(user_ids))
    )
    return {row.user_id: _of(row) for row in (await session.execute(query)).scalars()}


async def put(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    user_id: str,
    preferences: Preferences,
    now: datetime | None = None,
) -> Saved:
    """Replace the user's preferences (or store their first): one `INSERT ... ON CONFLICT`,
    so two concurrent replacements meet in the database, the last one kept whole."""
    now = now or utcnow()
    quiet = preferences.quiet_hours
    values: dict[str, Any] = {
        "muted": preferences.muted,
        "categories": dict(preferences.categories),
        "platforms": dict(preferences.platforms),
        "quiet_start": None if quiet is None else quiet.start.strftime("%H:%M"),
        "quiet_end": None if quiet is None else quiet.end.strftime("%H:%M"),
        "quiet_timezone": None if quiet is None else quiet.timezone,
        "locale": preferences.locale,
        "timezone": preferences.timezone,
        "updated_at": now,
    }
    insert = db.insert_for(session)
    statement = (
        insert(UserPreference)
        .values(app_id=app_id, user_id=user_id, **values)
        .on_conflict_do_update(index_elements=["app_id", "user_id"], set_=values)
    )
    await session.execute(statement)
    return Saved(user_id, preferences, now)


async def remove(*, session: AsyncSession, app_id: uuid.UUID, user_id: str) -> bool:
    """Forget the user's preferences (back to the defaults); whether there were any."""
    result = await session.execute(
        delete(UserPreference).where(
            UserPreference.app_id == app_id, UserPreference.user_id == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def _of(row: UserPreference) -> Preferences:
    return Preferences(
        muted=row.muted,
        categories=row.categories,
        platforms=row.platforms,
        quiet_hours=_quiet_hours(row),
        locale=row.locale,
        timezone=row.timezone,
    )


def _quiet_hours(row: UserPreference) -> QuietHours | None:
    if row.quiet_start is None or row.quiet_end is None or row.quiet_timezone is None:
        return None
    try:
        return QuietHours.parse(row.quiet_start, row.quiet_end, row.quiet_timezone)
    except ValueError:
        # Checked when stored, so only a zone gone from the time zone database (or a row
        # written by hand): deliver rather than fail the user's every dispatch.
        log.warning("unreadable quiet hours ignored", user_id=row.user_id)
        return None
