"""The composition root: builds the store, key-value store (and later broker and providers) from
settings, checks their health, and closes them. No other module picks implementations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.broker.base import Broker
from pushgate.broker.embedded import EmbeddedBroker
from pushgate.broker.rabbitmq import RabbitMQBroker
from pushgate.kv.base import KeyValueStore
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.kv.redis import RedisKeyValueStore
from pushgate.settings import Settings
from pushgate.store import db

HEALTH_TIMEOUT = 3.0


@dataclass
class Runtime:
    """The live backends of one process."""

    settings: Settings
    engine: AsyncEngine
    sessions: db.SessionMaker
    kv: KeyValueStore
    checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)

    async def health(self) -> dict[str, str]:
        """Each backend's state: 'ok' or the reason it is not reachable."""

        async def probe(check: Callable[[], Awaitable[None]]) -> str:
            try:
                await asyncio.wait_for(check(), HEALTH_TIMEOUT)
            except TimeoutError:
                return f"timed out after {HEALTH_TIMEOUT:g}s"
            except Exception as exc:  # any failure means not ready; say which
                return f"{type(exc).__name__}: {exc}"[:300]
            return "ok"

        names = list(self.checks)
        results = await asyncio.gather(*(probe(self.checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def close(self) -> None:
        await self.kv.close()
        await self.engine.dispose()


def build_kv(settings: Settings) -> KeyValueStore:
    if settings.redis.url:
        return RedisKeyValueStore(settings.redis.url, prefix=settings.redis.prefix)
    return MemoryKeyValueStore()


def build_broker(settings: Settings, engine: AsyncEngine) -> Broker:
    """The job transport named by `broker.url`; call `start()` before use and `close()` after."""
    if settings.broker.url == "embedded":
        return EmbeddedBroker(engine)
    return RabbitMQBroker(
        settings.broker.url,
        prefix=settings.broker.prefix,
        quorum_queues=settings.broker.quorum_queues,
    )


async def open_runtime(settings: Settings) -> Runtime:
    engine = db.create_engine(
        settings.database_url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )
    runtime = Runtime(
        settings=settings, engine=engine, sessions=db.session_maker(engine), kv=build_kv(settings)
    )

    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    runtime.checks["database"] = database
    runtime.checks["kv"] = runtime.kv.ping
    return runtime


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(settings)
    try:
        yield runtime
    finally:
        await runtime.close()
