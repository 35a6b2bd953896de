"""Queries on notifications: create (with idempotency), read, history, cancel, and delivery
counts. Their progress through dispatch and delivery is in `notification_progress`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pushgate.domain.ids import new_id
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.errors import ConflictError, InvalidInputError, NotFoundError
from pushgate.store import db, rollups
from pushgate.store.direct import insert_many
from pushgate.store.tables import Delivery, Notification, utcnow

# The table itself, for Core statements (no ORM unit of work) on the accept path.
NOTIFICATIONS = Notification.metadata.tables[Notification.__tablename__]


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A validated request, ready to store. `accepted_at` becomes `created_at` and decides
    whether `send_at` makes it `scheduled`."""

    app_id: uuid.UUID
    target: dict[str, Any]
    message: dict[str, Any]
    category: str | None
    metadata: dict[str, Any]
    send_at: datetime | None
    expires_at: datetime
    idempotency_key: str | None
    request_hash: str | None
    accepted_at: datetime
    # `NotificationCreate.options()`, and a template's text per other locale (see the columns).
    options: dict[str, Any] | None = None
    renders: dict[str, Any] | None = None


class Created:
    """A notification create_many stored, or found stored already (`replayed`).

    Its columns are read without building the ORM object (the API's hot path answers from
    them); `row` builds that object, attached to no session, the first time it is asked for.
    """

    __slots__ = ("_columns", "_row", "replayed")

    def __init__(
        self,
        *,
        replayed: bool,
        columns: dict[str, Any] | None = None,
        row: Notification | None = None,
    ) -> None:
        if (columns is None) == (row is None):
            raise ValueError("give the columns or the row")
        self._columns = columns or {}
        self._row = row
        self.replayed = replayed

    def _get(self, name: str) -> Any:
        if self._row is not None:
            return getattr(self._row, name)
        return self._columns[name]

    @property
    def id(self) -> uuid.UUID:
        value: uuid.UUID = self._get("id")
        return value

    @property
    def status(self) -> str:
        value: str = self._get("status")
        return value

    @property
    def send_at(self) -> datetime | None:
        value: datetime | None = self._get("send_at")
        return value

    @property
    def created_at(self) -> datetime:
        value: datetime = self._get("created_at")
        return value

    @property
    def idempotency_key(self) -> str | None:
        value: str | None = self._get("idempotency_key")
        return value

    @property
    def request_hash(self) -> str | None:
        value: str | None = self._get("request_hash")
        return value

    @property
    def row(self) -> Notification:
        if self._row is None:
            self._row = _transient(self._columns)
        return self._row


async def create_many(
    *,
    session: AsyncSession | AsyncConnection,
    items: Sequence[NewNotification],
    direct: bool = False,
) -> list[Created | InvalidInputError]:
    """Insert notifications, of any apps, with one INSERT. An item whose idempotency key
    exists in its app is not inserted: it yields the stored row (`replayed`) when the request
    hash matches, or an InvalidInputError (`idempotency_key_reused`) when it does not.

    Works on a session or a bare connection: the statements are Core ones (no unit of work
    per row), and the rows returned are not attached to any session. The caller commits.
    It writes with ONE statement (an executemany): the API's group commit relies on that to
    run it without a transaction on PostgreSQL (see `sending.accept.group`).

    Args:
        direct: `session` is a PostgreSQL connection in autocommit, and the INSERT goes
            straight to asyncpg (see `store.direct`).
    """
    existing = await _by_keys(session, items)
    results: list[Created | InvalidInputError] = []
    values: list[dict[str, Any]] = []
    seen: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for item in items:
        key = item.idempotency_key
        prior = None
        if key:
            prior = existing.get((item.app_id, key)) or seen.get((item.app_id, key))
        if prior is not None:
            if prior["request_hash"] == item.request_hash:
                results.append(Created(columns=prior, replayed=True))
            else:
                results.append(key_reused(key or ""))
            continue
        now = item.accepted_at
        scheduled = item.send_at is not None and item.send_at > now
        row = {
            "id": new_id(),
            "app_id": item.app_id,
            "status": NotificationStatus.SCHEDULED if scheduled else NotificationStatus.ACCEPTED,
            "target": item.target,
            "message": item.message,
            "category": item.category,
            "metadata": item.metadata,
            "options": item.options,
            "renders": item.renders,
            "send_at": item.send_at,
            "expires_at": item.expires_at,
            "idempotency_key": key,
            "request_hash": item.request_hash,
            "total": 0,
            "finished": 0,
            "created_at": now,
            "updated_at": now,
        }
        values.append(row)
        if key:
            seen[(item.app_id, key)] = row
        results.append(Created(columns=row, replayed=False))
    if not values:
        return results
    if direct:
        if not isinstance(session, AsyncConnection):
            raise TypeError("a direct INSERT needs a connection, not a session")
        await insert_many(session, NOTIFICATIONS, values)
    else:
        await session.execute(insert(NOTIFICATIONS), values)
    return results


def _transient(values: dict[str, Any]) -> Notification:
    # The ORM object of stored columns, never added to a session.
    return Notification(**{("meta" if k == "metadata" else k): v for k, v in values.items()})


async def _by_keys(
    session: AsyncSession | AsyncConnection, items: Sequence[NewNotification]
) -> dict[tuple[uuid.UUID, str], dict[str, Any]]:
    """The columns of the stored notifications holding the items' idempotency keys, by
    (app, key)."""
    keys: dict[uuid.UUID, set[str]] = {}
    for item in items:
        if item.idempotency_key:
            keys.setdefault(item.app_id, set()).add(item.idempotency_key)
    if not keys:
        return {}
    columns = NOTIFICATIONS.c
    query = select(NOTIFICATIONS).where(
        or_(
            *(
                and_(columns.app_id == app_id, columns.idempotency_key.in_(sorted(ks)))
                for app_id, ks in keys.items()
            )
        )
    )
    rows = [dict(row._mapping) for row in await session.execute(query)]
    return {(row["app_id"], row["idempotency_key"] or ""): row for row in rows}


def key_reused(key: str) -> InvalidInputError:
    return InvalidInputError(
        f"idempotency key {key!r} was used with a different request body",
        field="idempotency_key",
        code="idempotency_key_reused",
    )


async def get(
    *, session: AsyncSession, app_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    row = await session.get(Notification, notification_id)
    if row is None or row.app_id != app_id:
        raise NotFoundError("no such notification", code="notification_not_found")
    return row


async def get_by_idempotency_key(
    *, session: AsyncSession, app_id: uuid.UUID, key: str
) -> Notification:
    query = select(Notification).where(
        Notification.app_id == app_id, Notification.idempotency_key == key
    )
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFoundError(
            "no notification with that idempotency key", code="notification_not_found"
        )
    return row


async def history(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    status: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: uuid.UUID | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[Notification]:
    """Newest first, keyset-paginated on the id (ids are time-ordered); `offset` skips rows
    instead (page numbers, for the legacy routes: bound it, the rows skipped are read)."""
    query = select(Notification).where(Notification.app_id == app_id)
    if status:
        query = query.where(Notification.status == status)
    if category:
        query = query.where(Notification.category == category)
    if since:
        query = query.where(Notification.created_at >= since)
    if until:
        query = query.where(Notification.created_at < until)
    if after:
        query = query.where(Notification.id < after)
    query = query.order_by(Notification.id.desc()).offset(offset or None).limit(limit)
    return list((await session.execute(query)).scalars())


async def cancel(
    *, session: AsyncSession, app_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification:
    """Cancel a notification that has not been dispatched yet.

    Raises:
        NotFoundError: not in this app.
        ConflictError: code `not_cancelable`, dispatch has started or it is final.
    """
    now = utcnow()
    result = await session.execute(
        update(Notification)
        .where(
            Notification.id == notification_id,
            Notification.app_id == app_id,
            Notification.status.in_([NotificationStatus.SCHEDULED, NotificationStatus.ACCEPTED]),
        )
        .values(status=NotificationStatus.CANCELED, updated_at=now, completed_at=now)
    )
    row = await get(session=session, app_id=app_id, notification_id=notification_id)
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise ConflictError(
            f"a notification in status {row.status} cannot be canceled",
            code="not_cancelable",
        )
    await session.refresh(row)
    # Never dispatched, so never counted there (sending.dispatch): counted now.
    await rollups.add_notification(
        session=session, app_id=app_id, category=row.category, accepted_at=row.created_at
    )
    return row


async def delivery_counts(
    *, session: AsyncSession, notification_id: uuid.UUID
) -> dict[str, dict[str, int]]:
    """platform -> status -> count, from the deliveries themselves."""
    query = (
        select(Delivery.platform, Delivery.status, func.count())
        .where(Delivery.notification_id == notification_id)
        .group_by(Delivery.platform, Delivery.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for platform, status, count in await session.execute(query):
        counts.setdefault(platform, {})[status] = int(count)
    return counts


async def delivery_counts_many(
    *, session: AsyncSession, notification_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """notification -> status -> count, for a page of notifications in one query. Callers
    pass ids of their own app's notifications."""
    if not notification_ids:
        return {}
    query = (
        select(Delivery.notification_id, Delivery.status, func.count())
        .where(db.one_of(session, Delivery.notification_id, notification_ids))
        .group_by(Delivery.notification_id, Delivery.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for notification_id, status, count in await session.execute(query):
        counts.setdefault(notification_id, {})[status] = int(count)
    return counts


def counts_summary(by_platform: dict[str, dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {status.value: 0 for status in DeliveryStatus}
    for by_status in by_platform.values():
        for status, count in by_status.items():
            total[status] = total.get(status, 0) + count
    total["total"] = sum(v for k, v in total.items() if k != "total")
    return total
