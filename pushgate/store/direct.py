"""Rows inserted straight through asyncpg, for the API's hottest write (the group commit's
INSERT of accepted notifications) on PostgreSQL.

SQLAlchemy's statement execution (compiled-statement lookup, bind processing, result set-up)
costs ~0.2 ms of CPU per INSERT here, as much as asyncpg's own work for a burst of rows;
asyncpg's `executemany` with its own prepared statement does the same write without it, and
is atomic (one implicit transaction) on a connection in autocommit.

Values are bound by the columns' own SQLAlchemy bind processors, and the database's refusals
are raised as the SQLAlchemy errors a Core INSERT raises (IntegrityError, DataError), so
callers see one family of errors whichever way a row went.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine


async def insert_many(
    connection: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT `rows` (dicts by column name, every one with the same keys) into `table`.

    `connection` must be a PostgreSQL (asyncpg) connection in autocommit: the rows are
    committed, all or none, when this returns.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    sql, binders = _statement(table, columns, connection.dialect)
    records = [
        tuple(bind(row[name]) for name, bind in zip(columns, binders, strict=True)) for row in rows
    ]
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        await driver.executemany(sql, records)
    except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc) from exc
    except asyncpg.exceptions.DataError as exc:
        raise DataError(sql, None, exc) from exc


@functools.lru_cache(maxsize=32)
def _statement(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[Callable[[Any], Any], ...]]:
    """The INSERT as the dialect compiles it (asyncpg's `$n` placeholders), and one binder per
    column, in the statement's parameter order (which is `columns`' order)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or ())
    if order != columns:
        raise ValueError(f"unexpected parameter order {order} for {columns}")
    return str(compiled), tuple(_binder(table.c[name].type, dialect) for name in columns)


def _binder(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    # The column type's own bind processing on this dialect (JSON serialised, TypeDecorators
    # applied...), so a value is stored exactly as a Core INSERT would store it.
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _same


def _same(value: Any) -> Any:
    return value
