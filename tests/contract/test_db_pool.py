"""The engine's pool on PostgreSQL: a connection that died while idle in the pool is replaced
before use (pushgate pings connections idle longer than PING_AFTER_IDLE_SECONDS instead of
pinging on every checkout)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from pushgate.store import db
from tests.conftest import POSTGRES_URL, need_service

pytestmark = pytest.mark.postgres

URL = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)


async def backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_killed_while_idle_is_replaced_without_an_error(monkeypatch):
    need_service("PostgreSQL", POSTGRES_URL, 5432)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = db.create_engine(URL, pool_size=1)
    admin = db.create_engine(URL, pool_size=1)
    try:
        # Given the pool's only connection, whose server session is then terminated
        first = await backend_pid(engine)
        async with admin.connect() as connection:
            await connection.execute(text(f"SELECT pg_terminate_backend({first})"))
        await asyncio.sleep(0.4)

        # When the pool hands out a connection again
        second = await backend_pid(engine)

        # Then it is a new, working one
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_recently_used_connection_is_not_pinged(monkeypatch):
    need_service("PostgreSQL", POSTGRES_URL, 5432)
    pings: list[object] = []
    engine = db.create_engine(URL, pool_size=1)
    original = engine.dialect.do_ping

    def counted(connection: Any) -> bool:
        pings.append(connection)
        return original(connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        for _ in range(5):
            await backend_pid(engine)
        assert pings == []
    finally:
        await engine.dispose()
