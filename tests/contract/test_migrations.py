"""Migrations: an empty database reaches the head, the result matches the models, upgrading
again changes nothing, and 0007 encrypts the apps' VAPID keys (only with a key, only once). On
SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pushgate.domain import vapid
from pushgate.errors import ConfigError
from pushgate.settings import load_settings
from pushgate.store import db, migrate
from pushgate.store.credentials import SecretBox
from pushgate.store.tables import Base
from tests.conftest import POSTGRES_URL, TEST_BOX, need_service


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


# --- 0007: the apps' VAPID private keys, encrypted ---------------------------------------------


async def at_0006_with_an_app(engine: AsyncEngine, private_key: str) -> Any:
    """The database at revision 0006 holding one app (with that stored private key) and an API
    key that refers to it; the app's id."""
    await migrate.upgrade(engine, "0006")
    app_id: Any = uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4()
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key)"
                " VALUES (:id, :name, CURRENT_TIMESTAMP, 'pub', :key)"
            ),
            {"id": app_id, "name": f"app-{private_key[:8]}", "key": private_key},
        )
        await connection.execute(
            text(
                "INSERT INTO api_keys (id, app_id, scope, prefix, key_hash, created_at)"
                " VALUES (:id, :app_id, 'send', :prefix, 'h', CURRENT_TIMESTAMP)"
            ),
            {
                "id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                "app_id": app_id,
                "prefix": private_key[:12],
            },
        )
    return app_id


async def stored_vapid_keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT vapid_private_key FROM apps ORDER BY name"))
        return [row[0] for row in rows]


async def test_upgrade_encrypts_plain_vapid_keys_once(empty_engine: AsyncEngine) -> None:
    # Given a database of the previous version: one app with its key in the clear, and (where
    # the old column can hold one: SQLite) one whose key is sealed already
    plain, other = vapid.generate_key_pair().private_key, vapid.generate_key_pair().private_key
    await at_0006_with_an_app(empty_engine, plain)
    expected = [plain]
    if empty_engine.dialect.name == "sqlite":
        async with empty_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key)"
                    " VALUES (:id, 'zzz', CURRENT_TIMESTAMP, 'pub', :key)"
                ),
                {"id": uuid.uuid4().hex, "key": TEST_BOX.seal(other)},
            )
        expected.append(other)
    made: list[SecretBox] = []

    def secrets() -> SecretBox:
        made.append(TEST_BOX)
        return TEST_BOX

    # When
    await migrate.upgrade(empty_engine, secrets=secrets)

    # Then both are sealed, each once, and open to the keys they were; nothing else is lost
    stored = await stored_vapid_keys(empty_engine)
    assert plain not in stored[0]
    assert [TEST_BOX.open(key) for key in stored] == expected
    assert len(made) == 1
    assert await migrate.current_revision(empty_engine) == migrate.head_revision()
    async with empty_engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM api_keys"))).scalar_one() == 1
        assert await connection.run_sync(differences) == []


def no_key() -> SecretBox:
    """What a process on PostgreSQL without PUSHGATE_SECRETS__KEY makes."""
    return SecretBox.from_settings(load_settings(database={"url": "postgresql://db/push"}))


@pytest.mark.parametrize("secrets", [None, no_key], ids=["none-given", "none-configured"])
async def test_upgrade_without_a_key_stops_and_changes_nothing(
    empty_engine: AsyncEngine, secrets: Callable[[], SecretBox] | None
) -> None:
    # Given a database of the previous version with a key in the clear
    plain = vapid.generate_key_pair().private_key
    await at_0006_with_an_app(empty_engine, plain)

    # When
    with pytest.raises(ConfigError) as caught:
        await migrate.upgrade(empty_engine, secrets=secrets)

    # Then the reason names the setting, and the database is as it was
    assert caught.value.code == "secrets_key_missing"
    assert "PUSHGATE_SECRETS__KEY" in caught.value.message
    assert "VAPID" in caught.value.message
    assert await migrate.current_revision(empty_engine) == "0006"
    assert await stored_vapid_keys(empty_engine) == [plain]
    async with empty_engine.connect() as connection:
        columns = await connection.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns("apps")]
        )
    assert "vapid_private_key_new" not in columns
    # and with the key the same upgrade goes through
    await migrate.upgrade(empty_engine, secrets=lambda: TEST_BOX)
    assert [TEST_BOX.open(key) for key in await stored_vapid_keys(empty_engine)] == [plain]


async def test_downgrade_puts_the_keys_back_in_the_clear(empty_engine: AsyncEngine) -> None:
    # Given an upgraded database
    plain = vapid.generate_key_pair().private_key
    await at_0006_with_an_app(empty_engine, plain)
    await migrate.upgrade(empty_engine, secrets=lambda: TEST_BOX)

    # When
    def down(connection: Connection) -> None:
        command.downgrade(migrate.alembic_config(connection, lambda: TEST_BOX), "0006")

    async with empty_engine.begin() as connection:
        await connection.run_sync(down)

    # Then
    assert await migrate.current_revision(empty_engine) == "0006"
    assert await stored_vapid_keys(empty_engine) == [plain]


async def test_sqlite_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # Given the usual umask, which would leave a new file readable by everyone
    previous = os.umask(0o022)
    try:
        # When a new embedded database is made and written to
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'pushgate.db'}")
        await migrate.upgrade(engine)
        wal = tmp_path / "data" / "pushgate.db-wal"
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in (tmp_path / "data" / "pushgate.db", wal)
        }
        await engine.dispose()
    finally:
        os.umask(previous)

    # Then it and its write-ahead log are 0600
    assert modes == {"pushgate.db": 0o600, "pushgate.db-wal": 0o600}
