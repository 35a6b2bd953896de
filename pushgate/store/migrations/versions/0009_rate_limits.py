"""api_keys.rate_limit and apps.rate_limits: a key's own request limit, an app's own limits

Revision ID: 0009
Revises: 0008

Both nullable: no value means the settings' defaults (`rate_limits.*`). Columns are added and
dropped in place (SQLite has ADD and DROP COLUMN since 3.35): a batch rebuild of `apps` would
delete, with foreign keys on, every row that refers to an app (see 0007).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_limit", sa.String(length=32), nullable=True))
    op.add_column(
        "apps",
        sa.Column(
            "rate_limits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.execute("ALTER TABLE apps DROP COLUMN rate_limits")
    op.execute("ALTER TABLE api_keys DROP COLUMN rate_limit")
