"""The analytics rollups: counts kept as deliveries finish, devices come and go and notifications
are dispatched (store/rollups.py writes them, store/analytics.py reads them), so the analytics
API never scans the raw rows and keeps its answers after they are deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, SmallInteger, String, Table, Uuid

from pushgate.store.tables import Base, UTCDateTime

# --- analytics rollups (store/rollups.py writes them, store/analytics.py reads them) ---------
# Counts kept as deliveries finish, devices come and go and notifications are dispatched, so
# the analytics API never scans the raw rows (and survives their deletion). Each key has a
# `shard` (a small per-process number): concurrent writers add to different rows instead of
# queueing on one. `category` '' stands for none (a key column cannot be NULL).

LATENCY_COLUMNS = tuple(f"lat_{k:02d}" for k in range(41))  # domain.latency.BUCKETS


def _rollup(name: str, *key: Column[Any], counts: tuple[str, ...]) -> Table:
    return Table(
        name,
        Base.metadata,
        Column("app_id", Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
        *key,
        Column("shard", SmallInteger, primary_key=True),
        *(Column(c, BigInteger, nullable=False, server_default="0") for c in counts),
    )


DELIVERY_ROLLUPS = _rollup(
    "delivery_rollups",
    # Each outcome is counted twice: in its hour (`period` 'hour') and in its day ('day'), so
    # a month by the day reads 30 rows per key, not 720.
    Column("period", String(4), primary_key=True),
    Column("start", UTCDateTime, primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("category", String(100), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    # `count` deliveries reached `outcome`; the sent ones are also counted per latency bucket.
    counts=("count", *LATENCY_COLUMNS),
)
DEVICE_ROLLUPS = _rollup(
    "device_rollups",
    Column("day", UTCDateTime, primary_key=True),
    Column("platform", String(16), primary_key=True),
    counts=("new", "invalidated", "expired", "deleted"),
)
# Live devices per platform now: changed by the same writes as `device_rollups` (+1 new or
# revived, -1 deactivated or purged while live); counting the rows instead took 100-250 ms at
# a million devices.
LIVE_DEVICES = _rollup(
    "device_counts",
    Column("platform", String(16), primary_key=True),
    counts=("active",),
)
NOTIFICATION_ROLLUPS = _rollup(
    "notification_rollups",
    Column("day", UTCDateTime, primary_key=True),
    Column("category", String(100), primary_key=True),
    counts=("notifications",),
)
