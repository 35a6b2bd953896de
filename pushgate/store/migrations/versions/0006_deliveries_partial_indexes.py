"""deliveries: partial indexes per in-flight status instead of (status, ...) indexes

Revision ID: 0006
Revises: 0005

Every delivery is written three times (inserted pending, claimed sending, recorded final), and
each write of a row puts a new entry in every index whose columns it covers. The sweeper only
ever looks for pending, retrying and sending rows, so its indexes now cover only those: a row
that reaches `sent` (nearly all of them) leaves no entry behind in them, and the two indexes on
`status` that every write touched become three smaller ones that each write touches at most
once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PARTIAL = {
    "ix_deliveries_pending": ("updated_at", "pending"),
    "ix_deliveries_retrying": ("next_attempt_at", "retrying"),
    "ix_deliveries_sending": ("lease_until", "sending"),
}


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_next")
        batch_op.drop_index("ix_deliveries_status_updated")
    for name, (column, status) in PARTIAL.items():
        where = sa.text(f"status = '{status}'")
        op.create_index(name, "deliveries", [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name in PARTIAL:
        op.drop_index(name, table_name="deliveries")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_status_next", ["status", "next_attempt_at"])
        batch_op.create_index("ix_deliveries_status_updated", ["status", "updated_at"])
