"""Which backend errors are outages (answered 503 with Retry-After) and which are bugs or bad data
(left to the 500 handler or to their own answers)."""

from __future__ import annotations

import sqlite3

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc

from pushgate import outages


def wrapped(orig: BaseException, cls: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> BaseException:
    return cls("SELECT 1", None, orig)


@pytest.mark.parametrize(
    ("error", "backend"),
    [
        (redis.exceptions.ConnectionError("Connection refused"), outages.KV),
        (redis.exceptions.TimeoutError("Timeout reading"), outages.KV),
        (wrapped(sqlite3.OperationalError("database is locked"), sa_exc.OperationalError), "db"),
        (wrapped(Exception("closed"), sa_exc.InterfaceError), "db"),
        (sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"), "db"),
        (ConnectionRefusedError(111, "Connection refused"), "db"),
        (TimeoutError(), "db"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"), "db"),
        (asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "db"),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), "db"),
        (asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout"), "db"),
    ],
)
def test_outages_name_their_backend(error: BaseException, backend: str) -> None:
    expected = outages.DATABASE if backend == "db" else backend

    assert outages.backend_of(error) == expected
    unavailable = outages.unavailable(error)
    assert unavailable is not None
    assert unavailable.status_code == 503
    assert unavailable.code == "unavailable"
    assert int(unavailable.headers["Retry-After"]) >= 1


def test_a_dbapi_error_caused_by_a_lost_connection_is_an_outage() -> None:
    orig = Exception("connection was closed in the middle of operation")
    orig.__cause__ = asyncpg.exceptions.ConnectionDoesNotExistError("closed")

    assert outages.backend_of(wrapped(orig)) == outages.DATABASE


def test_an_invalidated_connection_is_an_outage() -> None:
    error = sa_exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True)

    assert outages.backend_of(error) == outages.DATABASE


@pytest.mark.parametrize(
    "error",
    [
        wrapped(sqlite3.IntegrityError("UNIQUE constraint failed"), sa_exc.IntegrityError),
        wrapped(Exception("invalid input syntax"), sa_exc.DataError),
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
        redis.exceptions.ResponseError("WRONGTYPE"),
        ValueError("a bug"),
        KeyError("a bug"),
    ],
)
def test_bugs_and_refused_data_are_not_outages(error: BaseException) -> None:
    assert outages.backend_of(error) is None
    assert outages.unavailable(error) is None
