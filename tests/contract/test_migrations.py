"""Migrations: an empty database reaches the head, the result matches the models, and upgrading
again changes nothing. On SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pushgate.store import db, migrate
from pushgate.store.tables import Base
from tests.conftest import POSTGRES_URL, need_service


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database with no tables at all."""
    if request.param == "sqlite":
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        yield engine
        await engine.dispose()
        return

    need_service("PostgreSQL", POSTGRES_URL, 5432)
    admin_url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    name = f"pushgate_m_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = db.create_engine(f"{admin_url.rpartition('/')[0]}/{name}")
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": Base.metadata}
    )
    return list(compare_metadata(context, Base.metadata))


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_empty_database_migrates_to_the_head(empty_engine: AsyncEngine) -> None:
    # Given
    assert await migrate.current_revision(empty_engine) is None

    # When
    await migrate.upgrade(empty_engine)

    # Then
    head = migrate.head_revision()
    assert head is not None
    assert await migrate.current_revision(empty_engine) == head


async def test_migrated_schema_matches_the_models(empty_engine: AsyncEngine) -> None:
    # Given
    await migrate.upgrade(empty_engine)

    # When
    async with empty_engine.connect() as connection:
        found = await connection.run_sync(differences)
        tables = await connection.run_sync(table_names)

    # Then every model has its table, and nothing differs from the models
    assert tables == set(Base.metadata.tables)
    assert found == []


async def test_upgrading_twice_changes_nothing(empty_engine: AsyncEngine) -> None:
    # Given a migrated database holding a row
    await migrate.upgrade(empty_engine)
    async with empty_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key)"
                " VALUES (:id, 'acme', CURRENT_TIMESTAMP, 'pub', 'priv')"
            ),
            {"id": uuid.uuid4().hex if empty_engine.dialect.name == "sqlite" else uuid.uuid4()},
        )

    # When
    await migrate.upgrade(empty_engine)

    # Then
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(differences) == []
        count = (await connection.execute(text("SELECT count(*) FROM apps"))).scalar_one()
    assert count == 1
