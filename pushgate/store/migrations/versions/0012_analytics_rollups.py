"""delivery_rollups, device_rollups, notification_rollups and ix_devices_active: analytics

Revision ID: 0012
Revises: 0011

Three new tables of counts (store/rollups.py keeps them, docs/analytics.md explains them) and a
partial index on the live devices for counting them per platform. `apps` is not altered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
LATENCY_COLUMNS = [f"lat_{k:02d}" for k in range(41)]


def _rollup(name: str, key: list[sa.Column[object]], counts: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("app_id", sa.Uuid(), nullable=False),
        *key,
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), server_default="0", nullable=False) for c in counts),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=f"fk_{name}_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", *(c.name for c in key), "shard", name=f"pk_{name}"),
    )


def upgrade() -> None:
    _rollup(
        "delivery_rollups",
        [
            sa.Column("period", sa.String(length=4), nullable=False),
            sa.Column("start", TIMESTAMP, nullable=False),
            sa.Column("provider", sa.String(length=16), nullable=False),
            sa.Column("category", sa.String(length=100), nullable=False),
            sa.Column("outcome", sa.String(length=16), nullable=False),
        ],
        ["count", *LATENCY_COLUMNS],
    )
    _rollup(
        "device_rollups",
        [
            sa.Column("day", TIMESTAMP, nullable=False),
            sa.Column("platform", sa.String(length=16), nullable=False),
        ],
        ["new", "invalidated", "expired", "deleted"],
    )
    _rollup(
        "notification_rollups",
        [
            sa.Column("day", TIMESTAMP, nullable=False),
            sa.Column("category", sa.String(length=100), nullable=False),
        ],
        ["notifications"],
    )
    live = sa.text("invalidated_at IS NULL")
    op.create_index(
        "ix_devices_active",
        "devices",
        ["app_id", "platform"],
        postgresql_where=live,
        sqlite_where=live,
    )


def downgrade() -> None:
    op.drop_index("ix_devices_active", table_name="devices")
    op.drop_table("notification_rollups")
    op.drop_table("device_rollups")
    op.drop_table("delivery_rollups")
