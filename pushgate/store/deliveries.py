"""Queries on deliveries: batch insert, claim for sending, record outcomes, list, sweep."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, TextClause, and_, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import DeliveryStatus
from pushgate.errors import NotFoundError
from pushgate.store.tables import Delivery, Notification

CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# A delivery pending (or overdue for retry) this long has lost its job: the sweeper publishes
# it again. Longer than a busy queue's usual wait, so a backlog does not double its jobs.
STALE_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class NewDelivery:
    device_id: uuid.UUID | None
    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None


async def insert_many(
    *,
    session: AsyncSession,
    notification_id: uuid.UUID,
    app_id: uuid.UUID,
    items: Sequence[NewDelivery],
    now: datetime,
) -> list[int]:
    """Insert a page of deliveries in one statement; their ids, in order."""
    if not items:
        return []
    rows = [
        {
            "notification_id": notification_id,
            "app_id": app_id,
            "device_id": item.device_id,
            "platform": item.platform,
            "token": item.token,
            "p256dh": item.p256dh,
            "auth": item.auth,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for item in items
    ]
    result = await session.execute(
        insert(Delivery).returning(Delivery.id, sort_by_parameter_order=True), rows
    )
    return [row[0] for row in result]


async def claim(
    *, session: AsyncSession, ids: Sequence[int], now: datetime, lease: float
) -> list[Delivery]:
    """Take the deliveries that are still to send (pending, retrying and due, or held by a
    worker whose lease ran out), mark them `sending` for `lease` seconds and count the attempt.

    Deliveries already sent, final, or held by a live worker are left out, so a redelivered job
    never sends twice. One UPDATE ... RETURNING: atomic on PostgreSQL and SQLite alike.
    """
    if not ids:
        return []
    due = now + timedelta(seconds=1)  # a delayed job may arrive a moment early
    statement = (
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            or_(
                and_(
                    Delivery.status.in_(CLAIMABLE),
                    or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= due),
                ),
                and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
            ),
        )
        .values(
            status=DeliveryStatus.SENDING,
            lease_until=now + timedelta(seconds=lease),
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(Delivery)
    )
    return list((await session.execute(statement)).scalars())


async def record(*, session: AsyncSession, changes: Sequence[dict[str, Any]]) -> None:
    """Apply per-delivery changes (each a dict with `id` and the new column values), grouped by
    the set of columns changed: on PostgreSQL one `UPDATE ... FROM unnest(...)` per group (one
    statement for a whole batch instead of one per delivery), elsewhere executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    for columns, rows in groups.items():
        if postgres and set(columns) <= _PG_ARRAY_TYPES.keys():
            await session.execute(_unnest_update(columns), _as_arrays(columns, rows))
        else:
            await session.execute(update(Delivery), rows)


# The columns deliver writes, with the PostgreSQL array type each is sent as.
_PG_ARRAY_TYPES = {
    "id": "bigint[]",
    "status": "varchar[]",
    "attempts": "integer[]",
    "next_attempt_at": "timestamptz[]",
    "lease_until": "timestamptz[]",
    "provider_message_id": "varchar[]",
    "response_code": "integer[]",
    "error": "varchar[]",
    "updated_at": "timestamptz[]",
    "sent_at": "timestamptz[]",
}


def _unnest_update(columns: tuple[str, ...]) -> TextClause:
    names = [c for c in columns if c != "id"]
    assignments = ", ".join(f"{c} = v.{c}" for c in names)
    arrays = ", ".join(f"CAST(:{c} AS {_PG_ARRAY_TYPES[c]})" for c in columns)
    listed = ", ".join(columns)
    return text(
        f"UPDATE deliveries SET {assignments} "  # noqa: S608 (names come from _PG_ARRAY_TYPES)
        f"FROM unnest({arrays}) AS v({listed}) WHERE deliveries.id = v.id"
    )


def _as_arrays(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {column: [row[column] for row in rows] for column in columns}


async def page_for_notification(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    notification_id: uuid.UUID,
    status: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Delivery]:
    owner = await session.get(Notification, notification_id)
    if owner is None or owner.app_id != app_id:
        raise NotFoundError("no such notification", code="notification_not_found")
    query = select(Delivery).where(Delivery.notification_id == notification_id)
    if status:
        query = query.where(Delivery.status == status)
    if after is not None:
        query = query.where(Delivery.id > after)
    query = query.order_by(Delivery.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def reclaim_stale(
    *, session: AsyncSession, now: datetime, grace: float = STALE_GRACE_SECONDS, limit: int = 5000
) -> list[int]:
    """Take back deliveries that should be in flight but may have no job, and return their ids
    for the caller to publish again (after committing):

    - pending for more than `grace` seconds (the dispatcher died between commit and publish,
      or the job was lost): `updated_at` is moved to `now`;
    - retrying and overdue by more than `grace` (the delayed job was lost, or came early and
      was dropped): `next_attempt_at` is moved to `now`;
    - sending with an expired lease (the worker holding the claim died): back to `retrying`,
      due now, the attempt it made still counted.

    Each kind is a conditional UPDATE ... RETURNING, so two sweepers never both take the same
    row (the second one's WHERE no longer matches), and a row a worker claims meanwhile is left
    alone. One query per kind rather than one OR: each walks its own index range
    (`status, updated_at`, `status, next_attempt_at`), so a sweep costs what is stale, not the
    size of the table.
    """
    overdue = now - timedelta(seconds=grace)
    kinds: list[tuple[ColumnElement[bool], dict[str, Any]]] = [
        (
            and_(Delivery.status == DeliveryStatus.PENDING, Delivery.updated_at < overdue),
            {"updated_at": now},
        ),
        (
            and_(Delivery.status == DeliveryStatus.RETRYING, Delivery.next_attempt_at < overdue),
            {"next_attempt_at": now, "updated_at": now},
        ),
        (
            and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
            {
                "status": DeliveryStatus.RETRYING.value,
                "next_attempt_at": now,
                "lease_until": None,
                "updated_at": now,
            },
        ),
    ]
    postgres = session.get_bind().dialect.name == "postgresql"
    taken: list[int] = []
    for condition, values in kinds:
        room = limit - len(taken)
        if room <= 0:
            break
        chosen = select(Delivery.id).where(condition).limit(room)
        if postgres:
            # A row a worker is claiming right now is skipped, not waited for.
            chosen = chosen.with_for_update(skip_locked=True)
        statement = (
            update(Delivery)
            # The condition again: re-checked on the row itself once its lock is held.
            .where(Delivery.id.in_(chosen), condition)
            .values(**values)
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
        taken.extend((await session.execute(statement)).scalars())
    return taken
