"""The apps' VAPID private keys through the real CLI: a key set with `pushgate vapid import` is
stored encrypted in a database file only its owner can read, and the keys an older version
stored in the clear are encrypted by the upgrade (`pushgate migrate`, or the embedded profile's
own upgrade on start), which on PostgreSQL refuses to run without the secrets key."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pushgate.domain import vapid
from pushgate.store import db, migrate
from pushgate.store.credentials import KEY_FILE, SecretBox
from tests.acceptance.test_serve_cli import PUSHGATE, cli_env, run_cli
from tests.conftest import POSTGRES_URL, TEST_SECRETS_KEY, need_service


def stored_pair(database: Path) -> tuple[str, str]:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT vapid_private_key, vapid_public_key FROM apps").fetchone()
    return str(row[0]), str(row[1])


async def older_database(url: str, private_key: str) -> None:
    """A database as the previous version left it: schema 0006, one app, its key in the clear."""
    engine = db.create_engine(url)
    try:
        await migrate.upgrade(engine, "0006")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key)"
                    " VALUES (:id, 'shop', CURRENT_TIMESTAMP, 'pub', :key)"
                ),
                {
                    "id": uuid.uuid4().hex if url.startswith("sqlite") else uuid.uuid4(),
                    "key": private_key,
                },
            )
    finally:
        await engine.dispose()


def test_a_key_imported_with_the_cli_is_stored_encrypted(tmp_path: Path) -> None:
    # Given an app
    data = tmp_path / "data"
    assert run_cli(data, "apps", "create", "shop").returncode == 0
    pair = vapid.generate_key_pair()

    # When its operator imports a key pair
    imported = run_cli(data, "vapid", "import", "--app", "shop", "--private-key", pair.private_key)

    # Then the database holds it sealed with the node's key, in a file only its owner reads
    assert imported.returncode == 0, imported.stderr
    sealed, public = stored_pair(data / "pushgate.db")
    assert public == pair.public_key
    assert pair.private_key not in sealed
    box = SecretBox([(data / KEY_FILE).read_text().strip()])
    assert box.open(sealed) == pair.private_key
    assert stat.S_IMODE((data / "pushgate.db").stat().st_mode) == 0o600


def test_the_embedded_upgrade_encrypts_keys_stored_in_the_clear(tmp_path: Path) -> None:
    # Given the database of an older version
    data = tmp_path / "data"
    plain = vapid.generate_key_pair().private_key
    asyncio.run(older_database(f"sqlite+aiosqlite:///{data / 'pushgate.db'}", plain))

    # When a command of this version opens it (the embedded profile upgrades its own database)
    listed = run_cli(data, "apps", "list", "--json")

    # Then the key is sealed with the key file made beside it
    assert listed.returncode == 0, listed.stderr
    sealed, _ = stored_pair(data / "pushgate.db")
    assert plain not in sealed
    assert SecretBox([(data / KEY_FILE).read_text().strip()]).open(sealed) == plain


@pytest.mark.postgres
def test_migrate_on_postgresql_needs_the_secrets_key(tmp_path: Path) -> None:
    # Given an older version's PostgreSQL database
    need_service("PostgreSQL", POSTGRES_URL, 5432)
    admin_url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    name = f"pushgate_v_{uuid.uuid4().hex[:12]}"
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    plain = vapid.generate_key_pair().private_key
    asyncio.run(_database(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(older_database(url, plain))
        env = cli_env(tmp_path / "data") | {"PUSHGATE_DATABASE__URL": url}

        # When it is migrated without the key, then with it
        refused = migrate_cli(env)
        done = migrate_cli(env | {"PUSHGATE_SECRETS__KEY": TEST_SECRETS_KEY})

        # Then the first stops with the reason and leaves the key as it was; the second seals it
        assert refused.returncode == 2
        assert "PUSHGATE_SECRETS__KEY" in refused.stderr
        assert "VAPID" in refused.stderr
        assert done.returncode == 0, done.stderr
        sealed = asyncio.run(_scalar(url, "SELECT vapid_private_key FROM apps"))
        assert SecretBox([TEST_SECRETS_KEY]).open(sealed) == plain
    finally:
        asyncio.run(_database(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PUSHGATE, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def _database(admin_url: str, statement: str) -> None:
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


async def _scalar(url: str, query: str) -> Any:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(query))).scalar_one()
    finally:
        await engine.dispose()
