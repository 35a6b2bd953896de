"""A notification's progress after it is accepted: the dispatcher's claim and resume cursor, what a
deliverer reads of it, the finished counter, the final status, and the sweeper's release of due
and lost ones."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import NotificationStatus, final_status
from pushgate.domain.webhooks import EventType
from pushgate.store import notifications, webhooks
from pushgate.store.tables import Notification, utcnow

# An accepted notification whose dispatch job has not started after this long is published
# again (its job was lost between commit and publish, or with a broker outage).
STALE_ACCEPTED_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Dispatching:
    """What a dispatcher needs of the notification it holds."""

    id: uuid.UUID
    app_id: uuid.UUID
    target: dict[str, Any]
    dispatch_cursor: str | None
    # What planning each delivery needs (see `sending.planning`); `options` None: a plain one.
    options: dict[str, Any] | None
    category: str | None
    created_at: datetime
    send_at: datetime | None
    expires_at: datetime
    # Deliveries made by the pages before this one.
    total: int
    # The message's `ttl` in seconds.
    ttl: int

    @property
    def ttl_ends(self) -> datetime:
        """When the message's own `ttl` runs out: its send time plus the ttl, as the
        deliverer counts it (`sending.deliver`'s `lifetime_ends`). `expires_at` is later for a
        ttl under a minute (see `domain.request.MIN_DELIVERY_WINDOW_SECONDS`)."""
        return max(self.send_at or self.created_at, self.created_at) + timedelta(seconds=self.ttl)


@dataclass(frozen=True, slots=True)
class Sending:
    """What a deliverer needs of a notification: whether and for how long to send, and what."""

    id: uuid.UUID
    app_id: uuid.UUID
    status: str
    target: dict[str, Any]
    message: dict[str, Any]
    created_at: datetime
    send_at: datetime | None
    expires_at: datetime
    # A template's text per other locale (`Notification.renders`), or None.
    renders: dict[str, Any] | None
    # `NotificationCreate.options` (a local-time delivery's lifetime counts from its own time).
    options: dict[str, Any] | None
    category: str | None


_TABLE: Table = Notification.__table__  # type: ignore[assignment]


async def claim_dispatch(
    *, session: AsyncSession, notification_id: uuid.UUID, now: datetime, until: datetime
) -> Dispatching | None:
    """Take the notification for dispatching until `until`, or None when there is nothing to
    do: canceled, final, not due yet, or held by another live dispatcher. One UPDATE, so two
    workers given the same job never both expand the audience."""
    c = _TABLE.c
    statement = (
        update(_TABLE)
        .where(
            c.id == notification_id,
            or_(
                c.status == NotificationStatus.ACCEPTED.value,
                and_(c.status == NotificationStatus.SCHEDULED.value, c.send_at <= now),
                and_(
                    c.status == NotificationStatus.DISPATCHING.value,
                    c.dispatched_at.is_(None),
                    or_(c.lease_until.is_(None), c.lease_until < now),
                ),
            ),
        )
        .values(status=NotificationStatus.DISPATCHING.value, lease_until=until, updated_at=now)
        .returning(
            c.id,
            c.app_id,
            c.target,
            c.dispatch_cursor,
            c.options,
            c.category,
            c.created_at,
            c.send_at,
            c.expires_at,
            c.total,
            c.message["ttl"].as_integer(),
        )
    )
    row = (await session.execute(statement)).first()
    return None if row is None else Dispatching(*row)


async def get_many(*, session: AsyncSession, ids: Collection[uuid.UUID]) -> list[Sending]:
    c = _TABLE.c
    query = select(
        c.id,
        c.app_id,
        c.status,
        c.target,
        c.message,
        c.created_at,
        c.send_at,
        c.expires_at,
        c.renders,
        c.options,
        c.category,
    ).where(c.id.in_(list(ids)))
    return [Sending(**row._asdict()) for row in await session.execute(query)]


async def record_page(
    *,
    session: AsyncSession,
    notification_id: uuid.UUID,
    added: int,
    cursor: str,
    lease_until: datetime,
    last: bool = False,
    finished: int = 0,
) -> None:
    """Count a page of deliveries (`finished` of them final already: skipped or expired when
    planned), move the resume cursor and renew the dispatcher's hold; on the `last` page, also
    mark the dispatch done (in the same statement).

    A last page with deliveries still to send cannot complete the notification: they are not
    published yet. Only a last page whose deliveries are all final (none at all: an empty
    audience, or a previous page that ended exactly at the end) may leave every delivery of
    the notification final already, so only then is the notification finalized here.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "total": Notification.total + added,
        "finished": Notification.finished + finished,
        "dispatch_cursor": cursor,
        "lease_until": None if last else lease_until,
        "updated_at": now,
    }
    statement = update(Notification).where(Notification.id == notification_id)
    if last:
        statement = statement.where(Notification.dispatched_at.is_(None))
        values["dispatched_at"] = now
    await session.execute(statement.values(values))
    if last and added == finished:
        await finalize(session=session, notification_ids=[notification_id])


async def add_finished(*, session: AsyncSession, finished: dict[uuid.UUID, int]) -> None:
    """Count deliveries that reached a final status, and finalize the notifications this
    completes. Each UPDATE returns whether its notification is now complete, so a batch that
    completes nothing costs no further query."""
    c = _TABLE.c
    complete = and_(
        c.status == NotificationStatus.DISPATCHING.value,
        c.dispatched_at.is_not(None),
        c.finished >= c.total,
    )
    done: list[uuid.UUID] = []
    for notification_id, count in sorted(finished.items()):  # sorted: a stable lock order
        result = await session.execute(
            update(_TABLE)
            .where(c.id == notification_id)
            .values(finished=c.finished + count)
            .returning(c.id, complete)
        )
        row = result.first()
        if row is not None and row[1]:
            done.append(row[0])
    if done:
        await finalize(session=session, notification_ids=done)


async def finalize(*, session: AsyncSession, notification_ids: Sequence[uuid.UUID]) -> None:
    """Give a final status to each notification whose deliveries are all final."""
    if not notification_ids:
        return
    query = select(Notification.id, Notification.app_id).where(
        Notification.id.in_(notification_ids),
        Notification.status == NotificationStatus.DISPATCHING,
        Notification.dispatched_at.is_not(None),
        Notification.finished >= Notification.total,
    )
    done = [(row[0], row[1]) for row in await session.execute(query)]
    now = utcnow()
    events: list[webhooks.Event] = []
    for notification_id, app_id in done:
        counts: dict[str, int] = {}
        for by_status in (
            await notifications.delivery_counts(session=session, notification_id=notification_id)
        ).values():
            for status, count in by_status.items():
                counts[status] = counts.get(status, 0) + count
        await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == NotificationStatus.DISPATCHING,
            )
            .values(status=final_status(counts), completed_at=now, updated_at=now)
        )
        events.append(
            webhooks.Event(
                app_id=app_id,
                type=EventType.NOTIFICATION_COMPLETED.value,
                key=str(notification_id),
                data={
                    "notification_id": str(notification_id),
                    "status": final_status(counts),
                    "counts": counts,
                },
            )
        )
    if events:
        # In the transaction that makes the notifications final.
        await webhooks.emit(session=session, events=events, now=now)


async def release_due(*, session: AsyncSession, now: datetime, limit: int = 500) -> list[uuid.UUID]:
    """The notifications to publish for dispatch now: scheduled ones whose time has come, and
    ones whose dispatch job was lost (accepted a while ago and never taken, or held by a
    dispatcher whose lease ran out). Each is touched so the next sweep waits before asking
    again; a scheduled one becomes `accepted`, which keeps it cancelable until dispatch."""
    stale = now - timedelta(seconds=STALE_ACCEPTED_SECONDS)
    query = (
        select(Notification.id)
        .where(
            or_(
                and_(
                    Notification.status == NotificationStatus.SCHEDULED,
                    Notification.send_at <= now,
                ),
                and_(
                    Notification.status == NotificationStatus.ACCEPTED,
                    Notification.updated_at < stale,
                ),
                and_(
                    Notification.status == NotificationStatus.DISPATCHING,
                    Notification.dispatched_at.is_(None),
                    Notification.lease_until < now,
                ),
            )
        )
        .limit(limit)
    )
    ids = list((await session.execute(query)).scalars())
    if ids:
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.status == NotificationStatus.SCHEDULED)
            .values(status=NotificationStatus.ACCEPTED)
        )
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.status != NotificationStatus.DISPATCHING)
            .values(updated_at=now)
        )
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.status == NotificationStatus.DISPATCHING)
            .values(lease_until=now + timedelta(seconds=STALE_ACCEPTED_SECONDS))
        )
    return ids
