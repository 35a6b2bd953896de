"""When each delivery goes: local-time delivery (`send_at_local`, a wall-clock time in each
device's time zone) and throttled sends (`throttle_per_minute`).

`plan` is a dispatch planning step (see `sending.planning`). A local-time delivery waits
(`not_until`) for its wall-clock time in its zone: the device's, else its user's, else the
app's default, else UTC; where that time had already passed when the notification was
accepted, it goes at once or is skipped (`past_local_time`). A throttled notification's
delivery number `n` (counted across pages) waits until `n * 60 / per_minute` seconds after
dispatch began, so deliveries leave evenly, `per_minute` a minute. With both, each delivery
waits for the later of its two times.

`local_starts` gives the deliverer each local-time delivery's own start, from which its TTL
counts: the notification's lifetime covers every zone (see `NotificationCreate.expires_at`),
and a delivery in UTC-12 goes 26 hours after one in UTC+14.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import localtime
from pushgate.store import timezones
from pushgate.store.tables import Notification

if TYPE_CHECKING:  # planning runs this step: a runtime import would be circular
    from pushgate.sending import planning

SKIPPED_PAST = "local_time_passed"
# In `notifications.options`: when a throttled dispatch began (ISO 8601), stored with its first
# page so that later pages, and a dispatch resumed by another worker, keep the same slots.
THROTTLE_START = "throttle_start"
# In `Page.facts`: {user_id: time zone or None} of the page's users, when this step read them.
USER_ZONES = "timing.user_zones"
# In `Page.facts`, left by the preferences step: {user_id: preferences row (or mapping)}.
PREFERENCES = "preferences"


async def plan(page: planning.Page, items: list[planning.Planned]) -> None:
    options = page.options
    wall = options.get("send_at_local")
    if wall is not None:
        await _local_time(page, items, datetime.fromisoformat(wall), options)
    per_minute = options.get("throttle_per_minute")
    if per_minute:
        start = await _throttle_start(page)
        for position, item in enumerate(items, start=page.offset):
            if position:
                item.not_until(start + timedelta(seconds=position * 60 / per_minute))


async def _local_time(
    page: planning.Page, items: list[planning.Planned], wall: datetime, options: dict[str, Any]
) -> None:
    users = _known_users(page.facts)
    where = await zones(
        page.session,
        page.notification.app_id,
        [(item.device_timezone, item.user_id) for item in items],
        users=users,
    )
    if users is None:
        page.facts[USER_ZONES] = where.users
    skip = options.get("past_local_time") == "skip"
    accepted = page.notification.created_at
    instants: dict[tzinfo, datetime] = {}  # a page's devices share a few zones
    for item in items:
        zone = where.of(item.device_timezone, item.user_id)
        when = instants.get(zone)
        if when is None:
            when = instants[zone] = localtime.instant(wall, zone)
        if when >= accepted:
            item.not_until(when)  # settle sends it now if the time has come meanwhile
            item.ttl_from = when
        elif skip:
            item.skip(SKIPPED_PAST)
        # else: its time had passed when the notification was accepted: it goes at once


def _known_users(facts: Mapping[str, Any]) -> dict[str, str | None] | None:
    """The users' time zones as an earlier step found them (the preferences step leaves each
    user's preferences), or None when no step did."""
    preferences = facts.get(PREFERENCES)
    if preferences is None:
        return None
    return {
        user_id: (row.get("timezone") if isinstance(row, Mapping) else row.timezone)
        for user_id, row in preferences.items()
    }


class Zones:
    """The time zone of each (device's zone, user id): the device's own if it names one,
    else its user's, else the app's default, else UTC."""

    def __init__(self, users: dict[str, str | None], app: str | None) -> None:
        self.users = users
        self.app = localtime.zone(app) or UTC

    def of(self, device_zone: str | None, user_id: str | None) -> tzinfo:
        own = localtime.zone(device_zone)
        if own is not None:
            return own
        if user_id is not None:
            of_user = localtime.zone(self.users.get(user_id))
            if of_user is not None:
                return of_user
        return self.app


async def zones(
    session: AsyncSession,
    app_id: uuid.UUID,
    devices: Sequence[tuple[str | None, str | None]],
    *,
    users: dict[str, str | None] | None = None,
) -> Zones:
    """The zones of an app's devices, given as (device's zone, user id): reads only what the
    devices' own zones leave open, each in one query (the users' zones unless `users` gives
    them, then the app's default)."""
    open_users = {u for z, u in devices if localtime.zone(z) is None and u is not None}
    if users is None:
        users = await timezones.of_users(session=session, app_id=app_id, user_ids=open_users)
    app = None
    if any(
        localtime.zone(z) is None and (u is None or localtime.zone(users.get(u)) is None)
        for z, u in devices
    ):
        app = await timezones.of_app(session=session, app_id=app_id)
    return Zones(users, app)


async def _throttle_start(page: planning.Page) -> datetime:
    """When the throttled dispatch began: stored with its first page (in that page's
    transaction), read back by every later page and by a resumed dispatch."""
    options = page.notification.options
    if options is None:  # not throttled (a throttle is an option): nothing to keep
        return page.now
    stored = options.get(THROTTLE_START)
    if stored is not None:
        return datetime.fromisoformat(stored)
    start = page.now
    # Also into the dispatcher's own copy: its later pages reuse it without reading it back.
    options[THROTTLE_START] = start.isoformat()
    await page.session.execute(
        update(Notification)
        .where(
            Notification.id == page.notification.id,
            Notification.app_id == page.notification.app_id,
        )
        .values(options=dict(options))
    )
    return start


def expected_end(options: Mapping[str, Any] | None, total: int) -> datetime | None:
    """When a throttled notification's last delivery leaves: its start plus `total` deliveries
    at its rate (while it dispatches, of the audience found so far). None before it starts."""
    if not options or not options.get("throttle_per_minute"):
        return None
    start = options.get(THROTTLE_START)
    if start is None:
        return None
    return datetime.fromisoformat(start) + timedelta(minutes=total / options["throttle_per_minute"])


async def local_starts(
    session: AsyncSession, wall: datetime, app_id: uuid.UUID, device_ids: Collection[uuid.UUID]
) -> tuple[dict[uuid.UUID, datetime], datetime]:
    """The instant `wall` happens for each of an app's devices (as dispatch placed it), and
    for an address with no device (a raw token: the app's zone)."""
    found = await timezones.of_devices(session=session, app_id=app_id, device_ids=device_ids)
    where = await zones(session, app_id, [*found.values(), (None, None)])
    starts = {
        device_id: localtime.instant(wall, where.of(zone, user))
        for device_id, (zone, user) in found.items()
    }
    return starts, localtime.instant(wall, where.app)
