"""Runs the Alembic migrations programmatically (no alembic.ini needed), on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.store.credentials import SecretBox

MIGRATIONS = Path(__file__).with_name("migrations")


# The Alembic config attribute where a migration that encrypts stored secrets finds the
# function that makes the secrets box (0007).
SECRETS = "secrets"


def alembic_config(
    connection: Connection | None = None, secrets: Callable[[], SecretBox] | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes[SECRETS] = secrets
    return config


async def upgrade(
    engine: AsyncEngine,
    revision: str = "head",
    *,
    secrets: Callable[[], SecretBox] | None = None,
) -> None:
    """Bring the schema to `revision`. Safe to run concurrently on PostgreSQL (advisory lock).

    Args:
        secrets: makes the secrets box, called only by a migration that has plain secrets to
            encrypt (0007, the apps' VAPID private keys): a database without any needs no key.

    Raises:
        ConfigError: a migration must encrypt stored secrets and no usable key is given.
    """

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Two processes starting together must not both create the same tables.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(72707245)")
        command.upgrade(alembic_config(connection, secrets), revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
