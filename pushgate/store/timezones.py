"""Time zones for local-time delivery: users' own (`user_preferences.timezone`), apps' defaults
(`apps.default_timezone`) and devices' (`devices.timezone`), each read for many at once."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.store.tables import App, Device, UserPreference


async def of_users(
    *, session: AsyncSession, app_id: uuid.UUID, user_ids: Collection[str]
) -> dict[str, str | None]:
    """The time zone each of these users set; users with no preferences are left out."""
    if not user_ids:
        return {}
    query = select(UserPreference.user_id, UserPreference.timezone).where(
        UserPreference.app_id == app_id, UserPreference.user_id.in_(list(user_ids))
    )
    return {row.user_id: row.timezone for row in await session.execute(query)}


async def of_app(*, session: AsyncSession, app_id: uuid.UUID) -> str | None:
    """The app's default time zone (None: UTC)."""
    query = select(App.default_timezone).where(App.id == app_id)
    return (await session.execute(query)).scalar_one_or_none()


async def of_devices(
    *, session: AsyncSession, app_id: uuid.UUID, device_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str | None, str | None]]:
    """Each device's own time zone and user id."""
    if not device_ids:
        return {}
    query = select(Device.id, Device.timezone, Device.user_id).where(
        Device.app_id == app_id, Device.id.in_(list(device_ids))
    )
    return {device_id: (zone, user) for device_id, zone, user in await session.execute(query)}
