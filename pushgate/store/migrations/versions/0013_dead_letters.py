"""dead_letters: letters moved out of the broker's `failed` queue, per app, to list and replay

Revision ID: 0013
Revises: 0012

A new table only; `apps` is not altered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(astext_type=sa.Text(), none_as_null=True), "postgresql"
)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", TIMESTAMP, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", JSON, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("replays", sa.Integer(), nullable=False),
        sa.Column("replayed_at", TIMESTAMP, nullable=True),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_dead_letters_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index(
        "ix_dead_letters_app_id_failed_at", "dead_letters", ["app_id", "failed_at", "id"]
    )
    op.create_index("ix_dead_letters_message_id", "dead_letters", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_message_id", table_name="dead_letters")
    op.drop_index("ix_dead_letters_app_id_failed_at", table_name="dead_letters")
    op.drop_table("dead_letters")
