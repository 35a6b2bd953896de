"""The database engine and sessions: one async engine per process, tuned per dialect."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.pool import ConnectionPoolEntry

SessionMaker = async_sessionmaker[AsyncSession]


def create_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, timeout: float | None = None
) -> AsyncEngine:
    """An async engine for a sqlite+aiosqlite or postgresql+asyncpg URL.

    SQLite gets WAL (readers never block the writer), a busy timeout (several processes share
    the file: the embedded broker's consumers) and enforced foreign keys.

    PostgreSQL gets `timeout` (seconds; None waits as long as the database does) as the bound
    of every wait on the server: opening a connection, checking one out of the pool, and each
    statement (asyncpg's `command_timeout`, measured by the client, so it holds when the
    server or the network stalls, not only when a statement runs long). A statement past it
    raises `TimeoutError`; asyncpg cancels it on the server.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
            _create_private_file(Path(parsed.database))
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=0
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    bounded: dict[str, Any] = {}
    if timeout is not None:
        bounded = {
            "connect_args": {"timeout": timeout, "command_timeout": timeout},
            "pool_timeout": timeout,
        }
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, **bounded
    )
    _ping_idle_connections(engine)
    return engine


def _create_private_file(path: Path) -> None:
    """Make the SQLite file, empty (an empty file is an empty database), readable by its
    owner only: it holds the apps' data beside the 0600 secrets key. SQLite gives its -wal
    and -shm files the database file's mode. An existing file keeps the mode it has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


# A pooled connection idle longer than this is checked with a ping before use (the server may
# have restarted, or a firewall dropped the idle connection). One used within this time is
# handed out as is: SQLAlchemy's pool_pre_ping would ping on every checkout, a round trip per
# transaction that cost the delivery pipeline ~4% of its CPU. If the server goes away under a
# busy connection anyway, that one statement fails, SQLAlchemy sees the disconnect and
# replaces the pool's connections, and the work is retried (jobs are redelivered).
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # On connect too: a connection just opened needs no ping.
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("checked_in_at", 0.0)
        if idle < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool then discards this connection and checks out (or opens) another.
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_maker(engine: AsyncEngine) -> SessionMaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT construct: both spell the upsert `INSERT ... ON CONFLICT`, through
    different classes."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def one_of(
    session: AsyncSession,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    values: Sequence[Any],
) -> ColumnElement[bool]:
    """`column IN values`. On PostgreSQL as `column = ANY(:array)`: one parameter whatever the
    count, so one prepared statement instead of one per list length, whose generic plans were
    measured walking a whole index (bench/README.md, "What changed")."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


_BOUND = text(
    "SELECT set_config('lock_timeout', :lock_timeout, true),"
    " set_config('statement_timeout', :statement_timeout, true),"
    " set_config('application_name', :application_name, true)"
)


async def bound(
    session: AsyncSession, *, lock_timeout_ms: int, statement_timeout_ms: int, name: str
) -> None:
    """Bound this transaction's lock waits and statements, and name it in
    `pg_stat_activity` (PostgreSQL; SQLite waits its busy timeout). For the background jobs
    (sweeper, lifecycle): a batch that waits or runs long is given up and tried again later
    rather than holding up the delivery path behind it."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _BOUND,
            {
                "lock_timeout": str(lock_timeout_ms),
                "statement_timeout": str(statement_timeout_ms),
                "application_name": name,
            },
        )
