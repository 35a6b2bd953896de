"""apps.auth and apps.auth_secret: an app's end-user sign-in (JWTs on the device routes)

Revision ID: 0011
Revises: 0010

`auth` holds what is public (issuer, audience, public keys, JWKS URL, CORS origins);
`auth_secret` the HS256 secret, sealed with the secrets key like credentials. Both nullable: no
value means the app accepts API keys only. Columns are added and dropped in place: a batch
rebuild of `apps` would delete, with foreign keys on, every row that refers to an app (see 0009).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "apps",
        sa.Column(
            "auth",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
    )
    op.add_column("apps", sa.Column("auth_secret", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE apps DROP COLUMN auth_secret")
    op.execute("ALTER TABLE apps DROP COLUMN auth")
