"""Retention: deleting, in small batches, the rows pushgate is done with (deliveries and
notifications with a final status, idempotency keys of finished notifications, dead letters,
deactivated devices) once they are older than `retention.*` says. The lifecycle job
(sending/lifecycle.py) calls one function per batch, each in its own short transaction.

Every batch picks at most `limit` rows by primary key (a keyset walk: `id > after ORDER BY id
LIMIT n`, or a partial index in order) and then deletes or changes exactly those, re-checking
in the DELETE or UPDATE what made them eligible, so a row that changed in between is left
alone and no statement holds many locks or runs long. The analytics rollups are separate
tables and are never touched: `/v1/analytics/*` answers the same after the raw rows are gone.

Why batched deletes and not time partitions on PostgreSQL (dropping a day's partition of
`deliveries` is cheaper than deleting its rows): a row's age here is the time it became
final, not the time it was made (a delivery retried for hours, a notification scheduled for
next month), so no partition is ever wholly past its retention; `notifications` has a unique
idempotency key per app and is referenced by `deliveries`, which a partitioned table can only
keep with the partition key in both; the sweeper and the claims rely on partial indexes and
single-row primary-key lookups across all rows; and SQLite, a supported profile, has no
partitions, so the two would need two ways to do retention. The cost of batches is their
rate and vacuum's work: measured with 1,000-row batches on PostgreSQL 15 (2 shared cores),
about 42,000 deliveries deleted a second, the slowest batch 180 ms (README, "Data retention and
device expiry"), and deleted rows are dead tuples until autovacuum reclaims them. A deployment
sustaining more deliveries a second than half that rate needs partitions; none here does yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import ids
from pushgate.domain.notification import FINAL_DELIVERY, FINAL_NOTIFICATION
from pushgate.store import db
from pushgate.store.tables import DeadLetterRecord, Delivery, Device, Notification

# Per lifecycle transaction on PostgreSQL: a batch that waits for a lock or runs long is given
# up (and tried again on the next run) rather than holding up the delivery path behind it.
LOCK_TIMEOUT_MS = 1000
STATEMENT_TIMEOUT_MS = 10_000
APPLICATION_NAME = "pushgate-lifecycle"
_FINAL_DELIVERIES = sorted(s.value for s in FINAL_DELIVERY)
_FINAL_NOTIFICATIONS = sorted(s.value for s in FINAL_NOTIFICATION)


async def bound(session: AsyncSession) -> None:
    """Bound this transaction's statements and name it `pushgate-lifecycle` (`db.bound`)."""
    await db.bound(
        session,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        name=APPLICATION_NAME,
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch did: `done` rows deleted (or changed), and where the walk goes on:
    `after` the last key looked at, None when the walk reached its end."""

    done: int
    after: Any


@dataclass(frozen=True, slots=True)
class Row:
    """What a walk reads of a row to decide whether it may go."""

    id: Any
    status: str
    # When it became final (a delivery's last change, a notification's completion).
    finished_at: datetime | None
    created_at: datetime


def pick(rows: Sequence[Row], *, final: Sequence[str], before: datetime) -> tuple[list[Any], bool]:
    """The ids of `rows` (in key order) that may be deleted: final, and final since before
    `before`. And whether the walk is over: a row made at or after `before` means every later
    key is too young as well (keys follow creation order), as does a page shorter than asked
    (the caller checks that)."""
    chosen = [
        r.id
        for r in rows
        if r.status in final and r.finished_at is not None and r.finished_at < before
    ]
    return chosen, any(r.created_at >= before for r in rows)


async def _walk(
    session: AsyncSession,
    query: Any,
    key: Any,
    *,
    final: Sequence[str],
    before: datetime,
    after: Any,
    limit: int,
) -> tuple[list[Any], Any]:
    """One step of a keyset walk: the next `limit` rows of `query` (selecting a `Row`'s
    columns) by `key` after `after`; the ids `pick` chooses, and where the walk goes on (None:
    at its end)."""
    if after is not None:
        query = query.where(key > after)
    rows = [Row(*r) for r in await session.execute(query.order_by(key).limit(limit))]
    chosen, young = pick(rows, final=final, before=before)
    return chosen, None if young or len(rows) < limit else rows[-1].id


async def _apply(session: AsyncSession, statement: Any, key: Any, chosen: Sequence[Any]) -> int:
    """Run a DELETE or UPDATE (carrying its re-checks) on the `chosen` keys; rows it hit."""
    if not chosen:
        return 0
    result: Any = await session.execute(
        statement.where(db.one_of(session, key, list(chosen))).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount or 0)


async def _oldest(
    session: AsyncSession, key: Any, order: Any, *where: Any, limit: int
) -> list[Any]:
    """The keys of up to `limit` rows matching `where`, by `order` (a column an index keeps in
    that order)."""
    query = select(key).where(*where).order_by(order).limit(limit)
    return list((await session.execute(query)).scalars())


async def delete_deliveries(
    *, session: AsyncSession, before: datetime, after: int | None, limit: int
) -> Batch:
    """Delete the deliveries, of the next `limit` by id after `after`, that are final since
    before `before`. Pending, retrying, deferred and sending ones stay, however old."""
    d = Delivery
    query = select(d.id, d.status, d.updated_at, d.created_at)
    final = _FINAL_DELIVERIES
    chosen, next_after = await _walk(
        session, query, d.id, final=final, before=before, after=after, limit=limit
    )
    statement = delete(d).where(d.status.in_(final), d.updated_at < before)
    return Batch(await _apply(session, statement, d.id, chosen), next_after)


async def old_notifications(
    *, session: AsyncSession, before: datetime, after: uuid.UUID | None, limit: int
) -> tuple[list[uuid.UUID], uuid.UUID | None]:
    """Of the next `limit` notifications by id after `after`, made before `before`, the ids of
    those final since before `before`; and where the walk goes on (None: at its end). Their
    deliveries go first (`delete_deliveries_of`), then they do (`delete_notifications`)."""
    n = Notification
    query = select(n.id, n.status, n.completed_at, n.created_at).where(n.id < ids.floor(before))
    return await _walk(
        session, query, n.id, final=_FINAL_NOTIFICATIONS, before=before, after=after, limit=limit
    )


async def delete_deliveries_of(
    *, session: AsyncSession, notification_ids: Sequence[uuid.UUID], limit: int
) -> int:
    """Delete up to `limit` final deliveries of these notifications; how many went."""
    if not notification_ids:
        return 0
    d, final = Delivery, _FINAL_DELIVERIES
    ours = db.one_of(session, d.notification_id, list(notification_ids))
    chosen = await _oldest(session, d.id, d.id, ours, d.status.in_(final), limit=limit)
    return await _apply(session, delete(d).where(d.status.in_(final)), d.id, chosen)


async def delete_notifications(
    *, session: AsyncSession, notification_ids: Sequence[uuid.UUID], before: datetime
) -> int:
    """Delete these notifications if they are still final since before `before` and have no
    delivery left (one still open keeps its notification until it is final too)."""
    n = Notification
    statement = delete(n).where(
        n.status.in_(_FINAL_NOTIFICATIONS),
        n.completed_at < before,
        ~exists().where(Delivery.notification_id == n.id),
    )
    return await _apply(session, statement, n.id, notification_ids)


async def clear_idempotency(
    *, session: AsyncSession, before: datetime, after: uuid.UUID | None, limit: int
) -> Batch:
    """Forget the idempotency keys of notifications final since before `before`, of the next
    `limit` that still have one (by id, after `after`): the same key then makes a new
    notification. The notifications themselves stay."""
    n, final = Notification, _FINAL_NOTIFICATIONS
    query = select(n.id, n.status, n.completed_at, n.created_at).where(
        n.idempotency_key.is_not(None), n.id < ids.floor(before)
    )
    chosen, next_after = await _walk(
        session, query, n.id, final=final, before=before, after=after, limit=limit
    )
    statement = (
        update(n)
        .where(n.status.in_(final), n.completed_at < before)
        .values(idempotency_key=None, request_hash=None)
    )
    return Batch(await _apply(session, statement, n.id, chosen), next_after)


async def delete_dead_letters(*, session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` dead letters recorded before `before`, oldest first."""
    letter = DeadLetterRecord
    old = letter.recorded_at < before
    chosen = await _oldest(session, letter.id, letter.recorded_at, old, limit=limit)
    return await _apply(session, delete(letter), letter.id, chosen)


async def purge_devices(*, session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete for good up to `limit` devices deactivated before `before` (deleted by their
    app, or deactivated by a provider or by expiry), oldest first; their topics go with them
    (ON DELETE CASCADE). A device registered again meanwhile is live and stays. The live-device
    counts do not change: these were not live."""
    gone = Device.invalidated_at < before
    chosen = await _oldest(
        session,
        Device.id,
        Device.invalidated_at,
        Device.invalidated_at.is_not(None),
        gone,
        limit=limit,
    )
    return await _apply(session, delete(Device).where(gone), Device.id, chosen)
