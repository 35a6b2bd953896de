"""Queries on deliveries: batch insert, claim for sending, record outcomes, list, sweep."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import DeliveryStatus
from pushgate.errors import NotFoundError
from pushgate.store.tables import Delivery, Notification

CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


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
    """Apply per-delivery changes (each a dict with `id` and the new column values) with
    executemany, grouped by the set of columns changed."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    for rows in groups.values():
        await session.execute(update(Delivery), rows)


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


async def stale(*, session: AsyncSession, now: datetime, limit: int = 5000) -> list[int]:
    """Deliveries that should be in flight but may have no job: pending or retrying and overdue
    by more than a grace period (the job was lost), or held by a worker whose lease ran out."""
    grace = now - timedelta(seconds=60)
    query = (
        select(Delivery.id)
        .where(
            or_(
                and_(Delivery.status == DeliveryStatus.PENDING, Delivery.updated_at < grace),
                and_(Delivery.status == DeliveryStatus.RETRYING, Delivery.next_attempt_at < grace),
                and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
            )
        )
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def touch(*, session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    if ids:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.PENDING)
            .values(updated_at=now)
        )
