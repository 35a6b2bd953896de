"""templates, user preferences, and what dispatch needs to plan each delivery

Revision ID: 0008
Revises: 0007

- `templates`: versioned per-locale templates per app.
- `user_preferences`: mute, opt-outs, quiet hours, locale and time zone per user of an app.
- `apps.default_timezone`: for users and devices that give no time zone.
- `notifications.options` (what decides whether, when and in which words each delivery goes)
  and `notifications.renders` (a template's text per locale variant): NULL for a plain
  notification.
- `deliveries.locale`: the variant a delivery sends; and a partial index for the new
  `deferred` status, which the sweeper releases by `next_attempt_at`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DEFERRED = sa.text("status = 'deferred'")


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("default_locale", sa.String(length=35), nullable=False),
        sa.Column("variants", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_templates_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("app_id", "code", "version", name="uq_templates_app_code_version"),
    )
    op.create_table(
        "user_preferences",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("platforms", JSON, nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("quiet_timezone", sa.String(length=64), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_user_preferences_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", "user_id", name=op.f("pk_user_preferences")),
    )
    # In place, never a batch rebuild: rebuilding `apps` on SQLite would delete, with foreign
    # keys on, every row that refers to an app (see 0007).
    op.add_column("apps", sa.Column("default_timezone", sa.String(length=64), nullable=True))
    op.add_column("notifications", sa.Column("options", JSON, nullable=True))
    op.add_column("notifications", sa.Column("renders", JSON, nullable=True))
    op.add_column("deliveries", sa.Column("locale", sa.String(length=35), nullable=True))
    op.create_index(
        "ix_deliveries_deferred",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=DEFERRED,
        sqlite_where=DEFERRED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_deferred", table_name="deliveries")
    op.drop_column("deliveries", "locale")
    op.drop_column("notifications", "renders")
    op.drop_column("notifications", "options")
    op.drop_column("apps", "default_timezone")
    op.drop_table("user_preferences")
    op.drop_table("templates")
