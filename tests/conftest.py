"""Shared fixtures: real backends per test (fresh SQLite file, a PostgreSQL database per session
emptied per test, a Redis key prefix per test), the API over ASGITransport, and factories.

A real service that is unreachable skips its tests with the reason, and fails the run when
PUSHGATE_TEST_SERVICES=require (CI sets it).

Safe under pytest-xdist (`make test` runs `-n 2`): every worker is its own session, so it makes
its own PostgreSQL database and SQLite template, and Redis keys and RabbitMQ names carry a
prefix unique to each test.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pushgate.api.app import create_app
from pushgate.broker.rabbitmq_topology import Topology
from pushgate.compat import env as compat_env
from pushgate.domain.apikeys import Scope
from pushgate.runtime import Runtime, open_runtime
from pushgate.settings import LEGACY_ENV, Settings, load_settings
from pushgate.store import api_keys, apps, db, migrate
from pushgate.store.credentials import SecretBox
from pushgate.store.tables import Base

POSTGRES_URL = os.environ.get(
    "PUSHGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PUSHGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("PUSHGATE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVICES_REQUIRED = os.environ.get("PUSHGATE_TEST_SERVICES", "").lower() == "require"

# Settings must come from the test, never from the developer's shell.
_SETTING_NAMES = ("PUSHGATE_", "DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "SERVICE_PORT")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_SETTING_NAMES) and not name.startswith("PUSHGATE_TEST_"):
            monkeypatch.delenv(name)
    # The plain names of the deployments pushgate replaces (settings.LEGACY_ENV, compat/env.py).
    for name in (*LEGACY_ENV, *compat_env.NAMES):
        monkeypatch.delenv(name, raising=False)


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def need_service(name: str, url: str, default_port: int) -> None:
    if reachable(url, default_port):
        return
    reason = f"{name} is not reachable at {url}"
    if SERVICES_REQUIRED:
        pytest.fail(f"{reason} and PUSHGATE_TEST_SERVICES=require")
    pytest.skip(reason)


def run_in_thread(factory: Callable[[], Awaitable[None]]) -> None:
    """Run a coroutine to completion on its own loop: session fixtures may be first requested
    from inside a test's running loop, where asyncio.run is not allowed."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, factory()).result()  # type: ignore[arg-type]


# --- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this test session, migrated once; its async URL."""
    yield from migrated_postgres_database("pushgate_t")


def migrated_postgres_database(prefix: str) -> Iterator[str]:
    """Create a database named `prefix` and a unique suffix, migrate it, yield its async URL,
    and drop it: the body of a session fixture."""
    need_service("PostgreSQL", POSTGRES_URL, 5432)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
    base, _, _ = admin_url.rpartition("/")
    url = f"{base}/{name}"

    async def create() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        target = db.create_engine(url)
        await migrate.upgrade(target)
        await target.dispose()

    async def drop() -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    run_in_thread(create)
    yield url
    run_in_thread(drop)


async def truncate_all(url: str) -> None:
    """Empty every table of the schema, children first, in one transaction.

    DELETE, not TRUNCATE: the outcome is the same (no rows; neither resets the id sequences),
    but TRUNCATE makes new files for every table, ~100 ms a test where DELETE on the few rows
    a test leaves takes ~1 ms.

    One script on a plain asyncpg connection, in one round trip: an SQLAlchemy engine would
    first ask the server its version and settings, then send each DELETE on its own (~65 ms a
    test on PostgreSQL against ~25 ms, on a loaded machine).
    """
    connection = await asyncpg.connect(_libpq_url(url))
    try:
        await connection.execute(_EMPTY_EVERY_TABLE)
    finally:
        await connection.close()


def _libpq_url(url: str) -> str:
    """The plain postgresql:// form of an SQLAlchemy postgresql+asyncpg:// URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# Children before parents (foreign keys), each statement as SQLAlchemy writes it for
# PostgreSQL; BEGIN and COMMIT make the script one transaction.
_EMPTY_EVERY_TABLE = "; ".join(
    [
        "BEGIN",
        *(
            str(table.delete().compile(dialect=PGDialect()))  # type: ignore[no-untyped-call]
            for table in reversed(Base.metadata.sorted_tables)
        ),
        "COMMIT",
    ]
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return await migrated_sqlite(tmp_path)
    url: str = request.getfixturevalue("postgres_database")
    await truncate_all(url)
    return url


async def migrated_sqlite(directory: Path) -> str:
    """The URL of a new SQLite file `pushgate.db` in `directory`, migrated to the head: a byte
    copy of a file this process migrated once (the copy is what migrating again would make, at
    a hundredth of the cost)."""
    target = directory / "pushgate.db"
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(await _SQLiteTemplate.get(), target)
    return f"sqlite+aiosqlite:///{target}"


class _SQLiteTemplate:
    """This process's migrated SQLite file, made on first use in a private temporary folder
    (removed when the process exits)."""

    path: Path | None = None

    @classmethod
    async def get(cls) -> Path:
        if cls.path is not None:
            return cls.path
        folder = Path(tempfile.mkdtemp(prefix="pushgate-sqlite-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.db"
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            # Fold the write-ahead log into the file, so that the file alone is the database.
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        await engine.dispose()
        wal = path.with_name(f"{path.name}-wal")
        if wal.exists() and wal.stat().st_size:
            raise AssertionError(f"the SQLite template kept {wal.stat().st_size} bytes of log")
        cls.path = path
        return path


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> db.SessionMaker:
    return db.session_maker(engine)


# --- other services --------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture
def rabbitmq_url() -> str:
    need_service("RabbitMQ", RABBITMQ_URL, 5672)
    return RABBITMQ_URL


@pytest.fixture
def unique_prefix() -> str:
    """A namespace for keys and queue names, so concurrent test runs never share state."""
    return f"t{uuid.uuid4().hex[:10]}."


# --- settings, runtime and API ---------------------------------------------------------------


SERVICES = pytest.param(
    "services", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.rabbitmq]
)


@pytest.fixture(params=["embedded", SERVICES])
def profile(request: pytest.FixtureRequest) -> str:
    """The backend profile: embedded (SQLite, embedded broker, memory kv) or services
    (PostgreSQL, RabbitMQ, Redis)."""
    return str(request.param)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        return load_settings(**overrides)

    return make


@pytest.fixture
async def settings(
    request: pytest.FixtureRequest,
    profile: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    unique_prefix: str,
) -> AsyncIterator[Settings]:
    if profile == "embedded":
        yield make_settings(database={"url": await migrated_sqlite(tmp_path)})
        return
    url = request.getfixturevalue("postgres_database")
    await truncate_all(url)
    redis = request.getfixturevalue("redis_url")
    rabbitmq = request.getfixturevalue("rabbitmq_url")
    yield make_settings(
        database={"url": url},
        secrets={"key": TEST_SECRETS_KEY},
        redis={"url": redis, "prefix": unique_prefix},
        broker={"url": rabbitmq, "prefix": unique_prefix, "delay_levels": TEST_DELAY_LEVELS},
    )
    await delete_rabbitmq_topology(rabbitmq, unique_prefix)


# A fixed Fernet key for profiles whose database is not embedded (they refuse to make one).
TEST_SECRETS_KEY = "kGxr6-pzcPXVnlOyS4a5uH0d4y0bKQ3oz5F6E7h1Aao="


# The box of that key, for tests that use the store without a runtime.
TEST_BOX = SecretBox([TEST_SECRETS_KEY])


# Short retry delays, so retries on RabbitMQ take seconds in tests, not minutes.
TEST_DELAY_LEVELS = [0.2, 0.5, 1.0, 2.0, 5.0]


async def delete_rabbitmq_topology(
    url: str, prefix: str, levels: Sequence[float] = TEST_DELAY_LEVELS
) -> None:
    """Remove every queue and the exchange a test's broker declared under its prefix."""
    # Classic and quorum topologies name their queues alike today: delete each name once.
    names = {
        spec.name
        for quorum in (False, True)
        for spec in Topology(prefix, tuple(levels), quorum).queues()
    }
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for name in sorted(names):
            await channel.queue_delete(name)
        await channel.exchange_delete(Topology(prefix).exchange)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await open_runtime(settings)
    yield rt
    await rt.close()


@asynccontextmanager
async def serving(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app of `settings` and `runtime`, inside its lifespan."""
    app = create_app(settings, runtime=runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
        ) as http,
    ):
        yield http


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, inside its lifespan, on the test's event loop."""
    async with serving(settings, runtime) as http:
        yield http


@dataclass
class TenantKeys:
    """An app and one key of each scope, as headers ready to send."""

    app_id: uuid.UUID
    app_name: str
    admin: dict[str, str]
    send: dict[str, str]
    subscribe: dict[str, str]


async def make_tenant(runtime: Runtime, name: str = "acme") -> TenantKeys:
    """An app named `name` and one key of each scope."""
    async with runtime.sessions() as session:
        app = await apps.create(session=session, box=runtime.credentials.box(), name=name)
        keys = {
            scope: await api_keys.create(session=session, app_id=app.id, scope=scope)
            for scope in Scope
        }
        await session.commit()
    return TenantKeys(
        app_id=app.id,
        app_name=name,
        **{s.value: {"Authorization": f"Bearer {k.secret}"} for s, k in keys.items()},
    )


@pytest.fixture
def tenant_factory(runtime: Runtime) -> Callable[[str], Awaitable[TenantKeys]]:
    async def make(name: str = "acme") -> TenantKeys:
        return await make_tenant(runtime, name)

    return make


@pytest.fixture
async def tenant(tenant_factory: Callable[[str], Awaitable[TenantKeys]]) -> TenantKeys:
    return await tenant_factory("acme")
