"""The composition root: builds the store, key-value store, broker and delivery providers from
settings, checks their health, and closes them. No other module picks implementations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.broker.base import Broker
from pushgate.broker.embedded import EmbeddedBroker
from pushgate.broker.rabbitmq import RabbitMQBroker
from pushgate.domain.circuit import SHARED_KEY, CircuitBoard, CircuitReport, read_shared
from pushgate.domain.retry import RetryPolicy
from pushgate.kv.base import KeyValueStore
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.kv.redis import RedisKeyValueStore
from pushgate.metrics.registry import Metrics
from pushgate.providers import registry
from pushgate.providers.base import DeliveryProvider
from pushgate.sending.credentials import Credentials
from pushgate.settings import Settings
from pushgate.store import db, webhooks

HEALTH_TIMEOUT = 3.0


@dataclass
class Runtime:
    """The live backends of one process."""

    settings: Settings
    engine: AsyncEngine
    sessions: db.SessionMaker
    kv: KeyValueStore
    broker: Broker
    providers: dict[str, DeliveryProvider[Any]]
    credentials: Credentials
    circuits: CircuitBoard
    retry_policy: RetryPolicy
    checks: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    # This process's instruments (one registry per runtime: `pushgate serve` shows the API's
    # and the worker's together, since they share the runtime).
    metrics: Metrics = field(default_factory=Metrics)

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

    async def open_circuits(self) -> list[CircuitReport]:
        """Every circuit that is not closed: this process's breakers, and those the workers
        share through the key-value store (an API process sends nothing itself). A key-value
        store that cannot be read leaves only the local ones; `health` reports it."""
        found = {(r.app_id, r.provider, r.origin): r for r in self.circuits.reports()}
        try:
            raw = await asyncio.wait_for(self.kv.get(SHARED_KEY), HEALTH_TIMEOUT)
        except Exception:  # the kv check of `health` says why
            raw = None
        for report in read_shared(raw, now=time.time()):
            found.setdefault((report.app_id, report.provider, report.origin), report)
        return sorted(found.values(), key=lambda r: (r.app_id, r.provider, r.origin))

    async def close(self) -> None:
        """Close in the reverse order of use: the broker waits for its handlers, which may
        still send through the providers and write to the store."""
        await self.broker.close()
        for provider in self.providers.values():
            await provider.close()
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
        delay_levels=settings.broker.delay_levels,
        ingress_queue=settings.broker.ingress_queue,
    )


async def open_runtime(
    settings: Settings, *, start_broker: bool = True, serves_requests: bool = False
) -> Runtime:
    """Build every backend. `start_broker=False` for commands that only touch the database.

    `serves_requests` for a process that answers HTTP requests: its database waits are
    bounded by `database.timeout`, so a stalled database costs a request a 503, not a wait as
    long as the stall. A worker alone is not bounded: its statements are larger, and a slow
    one is better finished than failed and retried (the sweeper bounds its own)."""
    # First: a broken provider plugin stops the start before anything is opened.
    providers = registry.build(settings)
    engine = db.create_engine(
        settings.database_url,
        pool_size=settings.database.pool_size,
        echo=settings.database.echo,
        timeout=settings.database.timeout if serves_requests else None,
    )
    sessions = db.session_maker(engine)
    webhooks.directory.ttl = settings.webhooks.cache_seconds
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        kv=build_kv(settings),
        broker=build_broker(settings, engine),
        providers=providers,
        credentials=Credentials(sessions, settings, providers),
        circuits=CircuitBoard(
            threshold=settings.circuit_breaker.threshold,
            timeout=settings.circuit_breaker.timeout,
        ),
        retry_policy=RetryPolicy(
            max_attempts=settings.delivery.max_attempts,
            base=settings.delivery.backoff_base_seconds,
            cap=settings.delivery.backoff_max_seconds,
            # The embedded broker waits any delay; RabbitMQ only its delay levels.
            levels=()
            if settings.broker.url == "embedded"
            else tuple(sorted(settings.broker.delay_levels)),
        ),
    )

    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    runtime.checks["database"] = database
    runtime.checks["kv"] = runtime.kv.ping
    runtime.checks["broker"] = runtime.broker.ping
    if start_broker:
        try:
            await runtime.broker.start()
        except BaseException:
            await runtime.close()
            raise
    return runtime


@asynccontextmanager
async def running(settings: Settings, *, start_broker: bool = True) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(settings, start_broker=start_broker)
    try:
        yield runtime
    finally:
        await runtime.close()
