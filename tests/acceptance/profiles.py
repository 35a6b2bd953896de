"""The services profile for tests that start pushgate as subprocesses: the settings of a
PostgreSQL database, RabbitMQ prefix and Redis prefix of their own, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import redis.asyncio as redis_client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import (
    POSTGRES_URL,
    RABBITMQ_URL,
    REDIS_URL,
    TEST_DELAY_LEVELS,
    TEST_SECRETS_KEY,
    delete_rabbitmq_topology,
    need_service,
)

DATABASE_URL = "PUSHGATE_DATABASE__URL"


@asynccontextmanager
async def services_profile(*, template: str | None = None) -> AsyncIterator[dict[str, str]]:
    """The `PUSHGATE_...` settings of the profile (the database, not migrated yet, at
    `DATABASE_URL`, or a copy of the database `template`); skips when a service is not
    reachable (fails when they are required)."""
    need_service("PostgreSQL", POSTGRES_URL, 5432)
    need_service("RabbitMQ", RABBITMQ_URL, 5672)
    need_service("Redis", REDIS_URL, 6379)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    name = f"pushgate_d_{uuid.uuid4().hex[:12]}"
    admin_url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        copy = f' TEMPLATE "{template}"' if template else ""
        await connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield {
            DATABASE_URL: f"{admin_url.rpartition('/')[0]}/{name}",
            "PUSHGATE_BROKER__URL": RABBITMQ_URL,
            "PUSHGATE_BROKER__PREFIX": prefix,
            "PUSHGATE_BROKER__DELAY_LEVELS": orjson.dumps(TEST_DELAY_LEVELS).decode(),
            "PUSHGATE_REDIS__URL": REDIS_URL,
            "PUSHGATE_REDIS__PREFIX": prefix,
            "PUSHGATE_SECRETS__KEY": TEST_SECRETS_KEY,
        }
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        await delete_rabbitmq_topology(RABBITMQ_URL, prefix)
        keys = redis_client.from_url(REDIS_URL)
        async with keys:
            async for key in keys.scan_iter(match=f"{prefix}*"):
                await keys.delete(key)
