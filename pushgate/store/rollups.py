"""Writing the analytics rollups: counts added with one `INSERT ... ON CONFLICT DO UPDATE` per
batch, in the transaction of the change they count (a delivery's outcome, a device registered,
invalidated or deleted, a notification dispatched), so they are never off by a rolled-back
batch and survive the deletion of the raw rows.

Callers add rollups last in their transaction: the rollup rows are the only rows writers of
unrelated batches share, so holding their locks only until the commit keeps waits short and
the lock order (own rows first, rollups after) free of cycles. `shard()` spreads the processes of
a deployment over different rows of the same key.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, SmallInteger, String, Table, TextClause, Uuid, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import latency
from pushgate.store.rollup_tables import (
    DELIVERY_ROLLUPS,
    DEVICE_ROLLUPS,
    LATENCY_COLUMNS,
    LIVE_DEVICES,
    NOTIFICATION_ROLLUPS,
)
from pushgate.store.tables import UTCDateTime

SHARDS = 8


def shard() -> int:
    """This process's shard: processes of a deployment mostly differ in it. Asked each time,
    not at import, so a forked process gets its own."""
    return os.getpid() % SHARDS


NO_CATEGORY = ""  # a key column cannot be NULL; categories are never empty (domain.preferences)

DEVICE_COUNTS = ("new", "invalidated", "expired", "deleted")
DeliveryKey = tuple[uuid.UUID, datetime, str, str, str]  # app, hour, provider, category, outcome


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def category_key(category: str | None) -> str:
    return NO_CATEGORY if category is None else category


@dataclass
class DeliveryTally:
    """The final outcomes of one batch of deliveries, counted per rollup key."""

    counts: dict[DeliveryKey, list[int]] = field(default_factory=dict)
    # The hour of the last `at` seen: a batch's outcomes share one time.
    _at: datetime | None = None
    _hour: datetime | None = None

    def add(
        self,
        *,
        app_id: uuid.UUID,
        at: datetime,
        provider: str,
        category: str | None,
        outcome: str,
        latency_ms: float | None = None,
    ) -> None:
        """Count one delivery that reached `outcome` at `at`; `latency_ms` (a sent one's,
        from its notification's start to the provider's answer) also counts in its bucket."""
        if at is not self._at:
            self._at, self._hour = at, hour_of(at)
        key = (app_id, self._hour, provider, NO_CATEGORY if category is None else category, outcome)
        row = self.counts.get(key)  # type: ignore[arg-type]
        if row is None:
            row = self.counts[key] = [0] * (1 + latency.BUCKETS)  # type: ignore[index]
        row[0] += 1
        if latency_ms is not None:
            row[1 + latency.bucket_of(latency_ms)] += 1

    def __bool__(self) -> bool:
        return bool(self.counts)


async def add_deliveries(*, session: AsyncSession, tally: DeliveryTally) -> None:
    """Add a batch's outcomes to `delivery_rollups`, in their hour and in their day: one
    statement for the batch."""
    periods: dict[tuple[str, str, datetime, str, str, str], list[int]] = {}
    for (app_id, hour, provider, category, outcome), counts in tally.counts.items():
        for period, start in (("hour", hour), ("day", day_of(hour))):
            # Sorted by this key: one order for every writer, so two batches never wait on
            # each other's rows in a cycle.
            key = (str(app_id), period, start, provider, category, outcome)
            summed = periods.get(key)
            if summed is None:
                periods[key] = list(counts)
            else:
                for k, n in enumerate(counts):
                    summed[k] += n
    rows = [
        {
            "app_id": uuid.UUID(app_id),
            "period": period,
            "start": start,
            "provider": provider,
            "category": category,
            "outcome": outcome,
            "shard": shard(),
            "count": counts[0],
            **dict(zip(LATENCY_COLUMNS, counts[1:], strict=True)),
        }
        for (app_id, period, start, provider, category, outcome), counts in sorted(periods.items())
    ]
    await _upsert(session, DELIVERY_ROLLUPS, rows, ("count", *LATENCY_COLUMNS))


DeviceKey = tuple[uuid.UUID, str]  # app, platform


async def add_devices(
    *, session: AsyncSession, at: datetime, counts: Mapping[DeviceKey, Mapping[str, int]]
) -> None:
    """Add to `device_rollups` on `at`'s day: per (app, platform), counts named in
    `DEVICE_COUNTS` (and `revived`: a deactivated device registered again, live again but not
    new), and the change they make to the live devices to `device_counts`. Two statements."""
    day = day_of(at)
    keys = sorted(counts, key=lambda k: (str(k[0]), k[1]))
    days = [
        {
            "app_id": app_id,
            "day": day,
            "platform": platform,
            "shard": shard(),
            **{name: int(counts[app_id, platform].get(name, 0)) for name in DEVICE_COUNTS},
        }
        for app_id, platform in keys
    ]
    days = [row for row in days if any(row[name] for name in DEVICE_COUNTS)]
    await _upsert(session, DEVICE_ROLLUPS, days, DEVICE_COUNTS)
    live = [
        {"app_id": app_id, "platform": platform, "shard": shard(), "active": change}
        for app_id, platform in keys
        if (change := _live(counts[app_id, platform]))
    ]
    await _upsert(session, LIVE_DEVICES, live, ("active",))


def _live(counts: Mapping[str, int]) -> int:
    gone = sum(counts.get(name, 0) for name in ("invalidated", "expired", "deleted"))
    return counts.get("new", 0) + counts.get("revived", 0) - gone


async def add_device(
    *, session: AsyncSession, app_id: uuid.UUID, platform: str, at: datetime, what: str
) -> None:
    """Count one device event (`what` of `DEVICE_COUNTS`, or `revived`)."""
    await add_devices(session=session, at=at, counts={(app_id, platform): {what: 1}})


def invalidation_kind(reason: str | None) -> str:
    """Which device count a deactivation adds to: `expired` when its reason says so, or when
    device expiry deactivated it as unseen too long (`stale`: store/device_expiry.py), else
    `invalidated`."""
    if reason and ("expired" in reason.lower() or reason == "stale"):
        return "expired"
    return "invalidated"


async def add_notification(
    *, session: AsyncSession, app_id: uuid.UUID, category: str | None, accepted_at: datetime
) -> None:
    """Count one notification on the day it was accepted."""
    row = {
        "app_id": app_id,
        "day": day_of(accepted_at),
        "category": category_key(category),
        "shard": shard(),
        "notifications": 1,
    }
    await _upsert(session, NOTIFICATION_ROLLUPS, [row], ("notifications",))


async def _upsert(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], added: Sequence[str]
) -> None:
    """INSERT the rows, or add their counts to the rows already there: one statement, built
    once per table. On PostgreSQL the rows go as one array per column (`unnest`), so the
    statement is prepared once whatever the row count; elsewhere as an executemany of a cached
    statement. (A multi-row VALUES was compiled anew for every batch: 25-35 ms for 12 rows.)"""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        columns = [c.name for c in table.columns]
        arrays = {name: [row[name] for row in rows] for name in columns}
        await session.execute(_unnest_upsert(table, tuple(added)), arrays)
    else:
        await session.execute(_sqlite_upsert(table, tuple(added)), list(rows))


def _pg_array_type(column: Any) -> str:
    kinds: tuple[tuple[type, str], ...] = (
        (UTCDateTime, "timestamptz[]"),
        (Uuid, "uuid[]"),
        (SmallInteger, "smallint[]"),
        (BigInteger, "bigint[]"),
        (String, "varchar[]"),
    )
    for kind, array in kinds:
        if isinstance(column.type, kind):
            return array
    raise TypeError(f"no array type for {column}")


@functools.lru_cache(maxsize=8)
def _unnest_upsert(table: Table, added: tuple[str, ...]) -> TextClause:
    columns = [c.name for c in table.columns]
    keys = [c.name for c in table.primary_key.columns]
    arrays = ", ".join(f"CAST(:{c.name} AS {_pg_array_type(c)})" for c in table.columns)
    sums = ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in added)
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 (names from the table)
        f"SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}"
    )


@functools.lru_cache(maxsize=8)
def _sqlite_upsert(table: Table, added: tuple[str, ...]) -> Any:
    statement = sqlite.insert(table)
    return statement.on_conflict_do_update(
        index_elements=[c.name for c in table.primary_key.columns],
        set_={name: table.c[name] + statement.excluded[name] for name in added},
    )


def device_counts() -> defaultdict[DeviceKey, defaultdict[str, int]]:
    """An empty tally for `add_devices`."""
    return defaultdict(lambda: defaultdict(int))
