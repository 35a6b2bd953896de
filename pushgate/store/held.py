"""A database connection held for one writer that writes often (the API's group commit), so
each write pays neither a pool checkout nor the liveness ping the pool runs on checkout.

Transactions are the caller's: `transaction()` begins one and commits it when the block ends
(rolls it back on error). A connection that broke is dropped, and the next use opens another.

`autocommit` saves the BEGIN and COMMIT round trips (two of three for a one-statement
write) for a caller whose every transaction writes with one statement, atomic by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class HeldConnection:
    """One connection of `engine`'s pool, taken at first use and kept until `close()`. One
    transaction at a time (callers are serialised). With `autocommit`, each statement
    commits on its own and the block is only the caller's turn on the connection."""

    def __init__(self, engine: AsyncEngine, *, autocommit: bool = False) -> None:
        self._engine = engine
        self._autocommit = autocommit
        self._connection: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock:
            connection = self._connection
            if connection is None or not await _usable(connection):
                await self._drop()
                connection = await self._engine.connect()
                if self._autocommit:
                    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                self._connection = connection
            try:
                if self._autocommit:
                    yield connection  # each statement commits: no transaction to mark
                else:
                    async with connection.begin():
                        yield connection
            except BaseException:
                # Whatever failed, the next transaction starts on a connection known to be
                # sound: the pool's checkout checks it again.
                await self._drop()
                raise

    async def close(self) -> None:
        """Hand the connection back to the pool (waits for the transaction in progress)."""
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            # A broken connection may fail to close; the pool discards it either way.
            with contextlib.suppress(Exception):
                await connection.close()


async def _usable(connection: AsyncConnection) -> bool:
    """Whether a held connection can take the next transaction. A connection the server
    closed (a restart, an idle timeout) is noticed here, before use, as the pool's ping on
    checkout would: otherwise the next transaction would fail on it."""
    if connection.closed or connection.invalidated:
        return False
    driver = (await connection.get_raw_connection()).driver_connection
    is_closed = getattr(driver, "is_closed", None)  # asyncpg's; aiosqlite has none
    return not (callable(is_closed) and is_closed())
