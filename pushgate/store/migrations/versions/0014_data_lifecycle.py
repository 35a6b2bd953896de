"""data lifecycle: devices.expiring_at and the partial indexes of the lifecycle job

Revision ID: 0014
Revises: 0013

`expiring_at` (nullable) marks a device announced as `device.expiring`. The indexes let each
of the lifecycle job's scans (store/retention.py, store/device_expiry.py) walk only the rows
it may act on. The column is added in place: a batch rebuild of `devices` on SQLite would,
with foreign keys on, delete every device's topics (see 0011).

`last_seen_at` now also moves when a device is delivered to (store/device_expiry.py `seen`).
Before this revision only a registration moved it, so a device that has been receiving for
a year without registering again would look unseen that long, and the first lifecycle run
would announce it as expiring. Its last successful delivery is in `deliveries` (nothing was
deleted before this revision), so the upgrade takes it from there: one pass over the sent
deliveries, grouped by device (a one-time cost, as long as a scan of `deliveries`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (name, table, column, condition or None): as store/lifecycle_indexes.py declares them.
INDEXES = (
    (
        "ix_devices_unseen",
        "devices",
        "last_seen_at",
        "invalidated_at IS NULL AND expiring_at IS NULL",
    ),
    (
        "ix_devices_expiring",
        "devices",
        "expiring_at",
        "invalidated_at IS NULL AND expiring_at IS NOT NULL",
    ),
    (
        "ix_devices_subscription_expiry",
        "devices",
        "expires_at",
        "invalidated_at IS NULL AND expires_at IS NOT NULL",
    ),
    ("ix_devices_invalidated", "devices", "invalidated_at", "invalidated_at IS NOT NULL"),
    ("ix_notifications_idempotency", "notifications", "id", "idempotency_key IS NOT NULL"),
    ("ix_dead_letters_recorded_at", "dead_letters", "recorded_at", None),
)


def upgrade() -> None:
    op.add_column("devices", sa.Column("expiring_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE devices SET last_seen_at = seen.sent_at"
        " FROM (SELECT device_id, max(sent_at) AS sent_at FROM deliveries"
        "  WHERE status = 'sent' AND device_id IS NOT NULL AND sent_at IS NOT NULL"
        "  GROUP BY device_id) AS seen"
        " WHERE devices.id = seen.device_id AND seen.sent_at > devices.last_seen_at"
    )
    for name, table, column, where in INDEXES:
        condition = None if where is None else sa.text(where)
        op.create_index(name, table, [column], postgresql_where=condition, sqlite_where=condition)


def downgrade() -> None:
    for name, table, _column, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.execute("ALTER TABLE devices DROP COLUMN expiring_at")
