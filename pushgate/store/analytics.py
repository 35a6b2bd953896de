"""Reading the analytics rollups (store/rollups.py writes them): sums per time bucket,
provider, category and outcome, new and gone devices per day, notifications per day and
category, and the live devices per platform. Each query reads one app's rollup rows in a
time range through the primary key; none reads deliveries (docs/analytics.md has the plans)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.analytics import Interval, Stats
from pushgate.store import rollups
from pushgate.store.tables import (
    DELIVERY_ROLLUPS,
    DEVICE_ROLLUPS,
    LATENCY_COLUMNS,
    LIVE_DEVICES,
    NOTIFICATION_ROLLUPS,
)

DeliveryGroup = str  # "time" | "provider" | "category"
# Built once: 42 function objects per query cost more than the query's own planning.
_SUMS = [
    func.sum(DELIVERY_ROLLUPS.c["count"]),
    *(func.sum(DELIVERY_ROLLUPS.c[c]) for c in LATENCY_COLUMNS),
]


def _category_out(value: str) -> str | None:
    return None if value == rollups.NO_CATEGORY else value


async def delivery_stats(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    since: datetime,
    until: datetime,
    group: DeliveryGroup,
    interval: Interval = Interval.DAY,
    provider: str | None = None,
    category: str | None = None,
) -> dict[Any, Stats]:
    """The app's deliveries that reached a final status in [since, until), by `group`: the
    bucket start (`time`, by `interval`), the `provider`, or the `category` (None: none)."""
    t: Table = DELIVERY_ROLLUPS
    key = t.c.start if group == "time" else t.c[group]
    query = (
        select(key, t.c.outcome, *_SUMS)
        .where(
            t.c.app_id == app_id,
            # Whole days read the day rows (a 30th of the hour rows).
            t.c.period == literal_column(f"'{interval.value}'"),
            t.c.start >= since,
            t.c.start < until,
        )
        .group_by(key, t.c.outcome)
    )
    if provider is not None:
        query = query.where(t.c.provider == provider)
    if category is not None:
        query = query.where(t.c.category == rollups.category_key(category))
    found: dict[Any, Stats] = {}
    for row in await session.execute(query):
        name = row[0]
        if group == "category":
            name = _category_out(name)
        found.setdefault(name, Stats()).add(row[1], row[2], row[3:])
    return found


async def device_days(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    since: datetime,
    until: datetime,
    platform: str | None = None,
) -> dict[tuple[datetime, str], dict[str, int]]:
    """(day, platform) -> new, invalidated, expired and deleted devices, for days in
    [since, until)."""
    t: Table = DEVICE_ROLLUPS
    query = (
        select(t.c.day, t.c.platform, *(func.sum(t.c[c]) for c in rollups.DEVICE_COUNTS))
        .where(t.c.app_id == app_id, t.c.day >= since, t.c.day < until)
        .group_by(t.c.day, t.c.platform)
    )
    if platform is not None:
        query = query.where(t.c.platform == platform)
    return {
        (row[0], row[1]): dict(zip(rollups.DEVICE_COUNTS, map(int, row[2:]), strict=True))
        for row in await session.execute(query)
    }


async def active_devices(
    *, session: AsyncSession, app_id: uuid.UUID, platform: str | None = None
) -> dict[str, int]:
    """Live devices (neither deleted nor invalidated) per platform, now: the counters in
    `device_counts` (a row per platform and shard)."""
    t: Table = LIVE_DEVICES
    query = (
        select(t.c.platform, func.sum(t.c.active))
        .where(t.c.app_id == app_id)
        .group_by(t.c.platform)
    )
    if platform is not None:
        query = query.where(t.c.platform == platform)
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def notification_counts(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    since: datetime,
    until: datetime,
    by: Sequence[str],
) -> dict[Any, int]:
    """Notifications accepted on days in [since, until), by `day` and/or `category`."""
    t: Table = NOTIFICATION_ROLLUPS
    keys = [t.c[name] for name in by]
    query = (
        select(*keys, func.sum(t.c.notifications))
        .where(t.c.app_id == app_id, t.c.day >= since, t.c.day < until)
        .group_by(*keys)
    )
    found: dict[Any, int] = {}
    for row in await session.execute(query):
        values = [_category_out(v) if n == "category" else v for n, v in zip(by, row, strict=False)]
        found[values[0] if len(values) == 1 else tuple(values)] = int(row[-1])
    return found
