"""apps.vapid_private_key: encrypted at rest with the secrets key, like app_credentials.secret

Revision ID: 0007
Revises: 0006

The column becomes TEXT (a Fernet token of a 43-character key is 140 characters), and every
plain key in it is sealed with the box `pushgate.store.migrate.upgrade` is given. The box is
made only when there is a plain key to seal, so an empty database needs no key; without one,
the upgrade stops with the reason (ConfigError) and changes nothing: never a silently plain
key. A key already sealed is left as it is, so running this step twice seals nothing twice.

SQLite cannot change a column's type in place, and the usual batch rebuild drops the table,
which with foreign keys on deletes every row that refers to an app. So on SQLite a new TEXT
column takes the values and the old one is dropped (ALTER TABLE DROP COLUMN rewrites the rows
without dropping the table).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from pushgate.errors import ConfigError
from pushgate.store.credentials import SecretBox
from pushgate.store.migrate import SECRETS

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Every Fernet token starts with its version byte 0x80 and a 64-bit timestamp whose high bytes
# are zero until the year 36812: "gAAAAA" in base64url. A plain key is 43 characters.
_SEALED_PREFIX = "gAAAAA"
_PLAIN_KEY_MAX = 100


def _sealed(value: str) -> bool:
    return value.startswith(_SEALED_PREFIX) and len(value) > _PLAIN_KEY_MAX


def _box(why: str) -> SecretBox:
    secrets: Callable[[], SecretBox] | None = context.config.attributes.get(SECRETS)
    if secrets is None:
        raise ConfigError(
            f"this upgrade must {why} the apps' VAPID private keys with the secrets key: run"
            " `pushgate migrate` with PUSHGATE_SECRETS__KEY set",
            code="secrets_key_missing",
        )
    try:
        return secrets()
    except ConfigError as exc:
        raise ConfigError(
            f"this upgrade must {why} the apps' VAPID private keys: {exc.message}", code=exc.code
        ) from None


def _rewritten(change: Callable[[SecretBox, str], str], why: str) -> list[dict[str, Any]]:
    """The rows to update, `change` applied to each key that needs it (`why`: "encrypt" picks
    the plain keys, "decrypt" the sealed ones). Read before any change to the schema, so that
    a missing key stops the upgrade before it has done anything."""
    rows = op.get_bind().execute(sa.text("SELECT id, vapid_private_key FROM apps")).all()
    wanted = [row for row in rows if _sealed(row.vapid_private_key) == (why == "decrypt")]
    if not wanted:
        return []
    box = _box(why)
    return [{"id": row.id, "key": change(box, row.vapid_private_key)} for row in wanted]


def _store(updates: list[dict[str, Any]]) -> None:
    if updates:
        op.get_bind().execute(
            sa.text("UPDATE apps SET vapid_private_key = :key WHERE id = :id"), updates
        )


def _retype(new_type: sa.types.TypeEngine[str], old_type: sa.types.TypeEngine[str]) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "apps",
            "vapid_private_key",
            existing_type=old_type,
            type_=new_type,
            existing_nullable=False,
        )
        return
    ddl = new_type.compile(dialect=op.get_bind().dialect)
    # The sqlite3 module opens a transaction only before a data change and runs schema changes
    # outside one, each committed at once: this no-op opens it, so that the steps below (and
    # the version stamp) commit or roll back together.
    op.execute("UPDATE alembic_version SET version_num = version_num")
    # NOT NULL needs a default on an added column; every row gets its value just after.
    op.execute(f"ALTER TABLE apps ADD COLUMN vapid_private_key_new {ddl} NOT NULL DEFAULT ''")
    op.execute("UPDATE apps SET vapid_private_key_new = vapid_private_key")
    op.execute("ALTER TABLE apps DROP COLUMN vapid_private_key")
    op.execute("ALTER TABLE apps RENAME COLUMN vapid_private_key_new TO vapid_private_key")


def upgrade() -> None:
    updates = _rewritten(lambda box, key: box.seal(key), "encrypt")
    _retype(sa.Text(), sa.String(length=100))
    _store(updates)


def downgrade() -> None:
    updates = _rewritten(lambda box, key: box.open(key), "decrypt")
    _store(updates)
    _retype(sa.String(length=100), sa.Text())
