"""deliveries: index for the sweeper's stale-pending scan

Revision ID: 0004
Revises: 0003

The sweeper looks every second for deliveries pending longer than a grace period. Without an
index on (status, updated_at) that walks every pending row, which during a broadcast to a million
devices is most of the table.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_status_updated", ["status", "updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_updated")
