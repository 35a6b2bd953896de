"""Which exceptions mean a backend (the database, the key-value store) is out of reach or too slow
to answer: an outage to report as `503` with `Retry-After`, not a bug to report as `500`.

The database's failures come in three shapes: SQLAlchemy's wrappers of the driver's errors
(`OperationalError`, `InterfaceError`, a `DBAPIError` that invalidated its connection, the
pool's own `TimeoutError`), asyncpg's errors raised as they are (its connection errors, and the
INSERT that `store.direct` sends itself) and plain `OSError`s: SQLAlchemy passes a refused or
reset connection and asyncpg's `command_timeout` (`TimeoutError`, an `OSError`) through
unwrapped.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import redis.exceptions
from sqlalchemy import exc as sa_exc

from pushgate.errors import UnavailableError

# Seconds a client is told to wait before trying again: outages are usually short (a restart, a
# failover), and a request is cheap to retry.
RETRY_AFTER_SECONDS = 1

DATABASE = "database"
KV = "key-value store"

# asyncpg's errors that say the connection, not the statement, failed: the server is shutting
# down or starting, the connection is gone, or the server cancelled a statement that ran out
# of time (`statement_timeout`).
_ASYNCPG_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.QueryCanceledError,
)


def backend_of(error: BaseException) -> str | None:
    """The backend `error` says is unreachable (`DATABASE` or `KV`), or None when it is not an
    outage (a bug, bad data, a constraint)."""
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return KV
    if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return DATABASE
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error.orig, _ASYNCPG_OUTAGES):
            return DATABASE
        cause = error.orig.__cause__ if error.orig is not None else None
        return DATABASE if isinstance(cause, _ASYNCPG_OUTAGES) else None
    if isinstance(error, (*_ASYNCPG_OUTAGES, OSError)):
        return DATABASE
    return None


def unavailable(error: BaseException) -> UnavailableError | None:
    """The `503` to answer for `error`, or None when `error` is not an outage."""
    backend = backend_of(error)
    if backend is None:
        return None
    return UnavailableError(
        f"the {backend} is unavailable or too slow to answer; try again",
        code="unavailable",
        details={"backend": "database" if backend == DATABASE else "kv"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
