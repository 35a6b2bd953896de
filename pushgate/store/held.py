"""A database connection held for one writer that writes often (the API's group commit), so
each write pays neither a pool checkout nor the pool's liveness ping of idle connections.

Transactions are the caller's: `transaction()` begins one and commits it when the block ends
(rolls it back on error). A connection that broke is dropped, and the next use opens another.
What the pool's ping guarded against is kept where it matters: a connection the server has
closed (a restart, an idle timeout) is noticed before use, and one left idle for a while is
pinged first, so a database restarted while the API was quiet costs no failed write. (A restart
in the middle of a burst fails the write in flight, as it would any request's.)

`autocommit` saves the BEGIN and COMMIT round trips (two of three for a one-statement
write) for a caller whose every transaction writes with one statement, atomic by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# A connection unused for this long is pinged before its next transaction. Busy, it never is.
PING_AFTER_IDLE_SECONDS = 1.0


class HeldConnection:
    """One connection of `engine`'s pool, taken at first use and kept until `close()`. One
    transaction at a time (callers are serialised). With `autocommit`, each statement
    commits on its own and the block is only the caller's turn on the connection."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        autocommit: bool = False,
        ping_after: float = PING_AFTER_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._autocommit = autocommit
        self._ping_after = ping_after
        self._clock = clock
        self._connection: AsyncConnection | None = None
        self._last_used = 0.0
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self._lock:
            connection = self._connection
            if connection is None or not await self._usable(connection):
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
            finally:
                self._last_used = self._clock()

    async def close(self) -> None:
        """Hand the connection back to the pool (waits for the transaction in progress)."""
        async with self._lock:
            await self._drop()

    async def _usable(self, connection: AsyncConnection) -> bool:
        """Whether the held connection can take the next transaction."""
        if connection.closed or connection.invalidated:
            return False
        driver = (await connection.get_raw_connection()).driver_connection
        is_closed = getattr(driver, "is_closed", None)  # asyncpg's; aiosqlite has none
        if callable(is_closed) and is_closed():
            return False  # the server closed it, and the driver has seen so
        if self._clock() - self._last_used < self._ping_after:
            return True
        try:
            await connection.execute(text("SELECT 1"))
            await connection.rollback()  # end the transaction the SELECT began
        except Exception:  # any failure: a new connection, as the pool's ping would
            return False
        return True

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            # A broken connection may fail to close; the pool discards it either way.
            with contextlib.suppress(Exception):
                await connection.close()
