"""delivery_rollups, device_rollups, device_counts, notification_rollups: analytics

Revision ID: 0012
Revises: 0011

Four new tables of counts (store/rollups.py keeps them, docs/analytics.md explains them);
`device_counts` starts from the devices live at migration. `apps` is not altered.
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
    _rollup(
        "device_counts", [sa.Column("platform", sa.String(length=16), nullable=False)], ["active"]
    )
    # The devices live now, so the counter starts right (the day counts start empty).
    op.execute(
        "INSERT INTO device_counts (app_id, platform, shard, active)"
        " SELECT app_id, platform, 0, count(*) FROM devices WHERE invalidated_at IS NULL"
        " GROUP BY app_id, platform"
    )


def downgrade() -> None:
    op.drop_table("device_counts")
    op.drop_table("notification_rollups")
    op.drop_table("device_rollups")
    op.drop_table("delivery_rollups")
