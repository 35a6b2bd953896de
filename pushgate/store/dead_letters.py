"""Queries on `dead_letters`: record letters, look up what was recorded, list a page, take
letters for replay, purge. Every query is for one app, except where `app_id` is `EVERY_APP`
(the operator's CLI, which sees the whole installation)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, case, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.dead_letters import LetterFilter
from pushgate.errors import NotFoundError
from pushgate.store.tables import DeadLetterRecord

LETTERS = cast(Table, DeadLetterRecord.__table__)
EVERY_APP: uuid.UUID | None = None
# Ids per IN list: far below SQLite's 32,766 variables per statement.
CHUNK = 500

Cursor = tuple[datetime, uuid.UUID]


async def recorded(*, session: AsyncSession, message_ids: Collection[str]) -> set[str]:
    """Those of `message_ids` already recorded."""
    if not message_ids:
        return set()
    query = select(LETTERS.c.message_id).where(LETTERS.c.message_id.in_(list(message_ids)))
    return set((await session.execute(query)).scalars())


async def add(*, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert letters (column values; `id`, `replays` and `recorded_at` get their defaults)."""
    if rows:
        await session.execute(insert(DeadLetterRecord), list(rows))


def _where(app_id: uuid.UUID | None, chosen: LetterFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if app_id is not EVERY_APP:
        where.append(LETTERS.c.app_id == app_id)
    if chosen.reason is not None:
        where.append(LETTERS.c.reason_code == chosen.reason)
    if chosen.provider is not None:
        where.append(LETTERS.c.provider == chosen.provider)
    if chosen.queue is not None:
        where.append(LETTERS.c.queue == chosen.queue)
    if chosen.since is not None:
        where.append(LETTERS.c.failed_at >= chosen.since)
    if chosen.until is not None:
        where.append(LETTERS.c.failed_at < chosen.until)
    return where


async def page(
    *,
    session: AsyncSession,
    app_id: uuid.UUID | None,
    chosen: LetterFilter,
    replayed: bool = False,
    after: Cursor | None = None,
    limit: int,
) -> list[DeadLetterRecord]:
    """Letters newest first (`replayed`: those put back on their queue, else the others), up
    to `limit`, after the cursor (the last one's `failed_at` and `id`)."""
    where = _where(app_id, chosen)
    where.append(
        LETTERS.c.replayed_at.is_not(None) if replayed else LETTERS.c.replayed_at.is_(None)
    )
    if after is not None:
        failed_at, last_id = after
        where.append(
            or_(
                LETTERS.c.failed_at < failed_at,
                and_(LETTERS.c.failed_at == failed_at, LETTERS.c.id < last_id),
            )
        )
    query = (
        select(DeadLetterRecord)
        .where(*where)
        .order_by(LETTERS.c.failed_at.desc(), LETTERS.c.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def get(
    *, session: AsyncSession, app_id: uuid.UUID | None, letter_id: uuid.UUID
) -> DeadLetterRecord:
    """Raises: NotFoundError `dead_letter_not_found`, also for another app's letter."""
    row = await session.get(DeadLetterRecord, letter_id)
    if row is None or (app_id is not EVERY_APP and row.app_id != app_id):
        raise NotFoundError("no such dead letter", code="dead_letter_not_found")
    return row


async def take(
    *,
    session: AsyncSession,
    app_id: uuid.UUID | None,
    ids: Collection[uuid.UUID] | None = None,
    chosen: LetterFilter | None = None,
    queues: Collection[str],
    now: datetime,
    limit: int,
) -> list[DeadLetterRecord]:
    """Mark up to `limit` letters replayed (one more replay, at `now`) and return them: those
    with `ids` (replayed before or not), or those `chosen` not replayed yet; only letters from
    one of `queues` (a letter whose origin is unknown cannot go back). The caller publishes
    them after the commit, and `unmark`s them if that fails."""
    where = _where(app_id, chosen or LetterFilter())
    where.append(LETTERS.c.queue.in_(list(queues)))
    if ids is not None:
        where.append(LETTERS.c.id.in_(list(ids)))
    else:
        where.append(LETTERS.c.replayed_at.is_(None))
    picked = select(LETTERS.c.id).where(*where).order_by(LETTERS.c.failed_at).limit(limit)
    numbers = list((await session.execute(picked)).scalars())
    if not numbers:
        return []
    await session.execute(
        update(DeadLetterRecord)
        .where(LETTERS.c.id.in_(numbers), *([] if ids is not None else [where[-1]]))
        .values(replays=LETTERS.c.replays + 1, replayed_at=now)
        .execution_options(synchronize_session=False)
    )
    rows = await session.execute(
        select(DeadLetterRecord)
        .where(LETTERS.c.id.in_(numbers), LETTERS.c.replayed_at == now)
        .order_by(LETTERS.c.failed_at)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def unmark(*, session: AsyncSession, ids: Collection[uuid.UUID]) -> None:
    """Undo `take` for letters that could not be published (a letter replayed before keeps
    its last replay time)."""
    replays = LETTERS.c.replays - 1
    await session.execute(
        update(LETTERS)
        .where(LETTERS.c.id.in_(list(ids)))
        .values(
            replays=replays,
            replayed_at=case((replays <= 0, None), else_=LETTERS.c.replayed_at),
        )
    )


async def purge(*, session: AsyncSession, app_id: uuid.UUID | None, chosen: LetterFilter) -> int:
    """Delete the letters `chosen` (replayed or not); how many."""
    result = await session.execute(delete(LETTERS).where(*_where(app_id, chosen)))
    return int(cast(Any, result).rowcount or 0)
