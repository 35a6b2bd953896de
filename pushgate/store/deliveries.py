"""Queries on deliveries: batch insert, claim for sending, record outcomes, list, sweep.

The first three are the delivery pipeline's hot path (a few statements per batch of hundreds
of deliveries), so they are prebuilt Core statements over the table, not ORM work: no
unit-of-work, no instance per row, and on PostgreSQL one array parameter instead of a bind
parameter per id (one prepared statement whatever the batch size).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    TextClause,
    and_,
    any_,
    bindparam,
    case,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.errors import NotFoundError
from pushgate.store.tables import Delivery, Notification

CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

_TABLE: Table = Delivery.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery dispatch makes. Most are `pending`, to send now; a planned one may be
    `deferred` until `not_before`, or final at once (`skipped`, `expired`) with a `reason`."""

    device_id: uuid.UUID | None
    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None
    locale: str | None = None
    status: DeliveryStatus = DeliveryStatus.PENDING
    not_before: datetime | None = None
    reason: str | None = None

    @property
    def plain(self) -> bool:
        """Pending now, in the notification's own words: what the plain INSERT writes."""
        return (
            self.status is DeliveryStatus.PENDING
            and self.locale is None
            and self.not_before is None
            and self.reason is None
        )


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery taken for sending: its address and the attempt this claim counts."""

    id: int
    notification_id: uuid.UUID
    app_id: uuid.UUID
    device_id: uuid.UUID | None
    platform: str
    token: str
    p256dh: str | None
    auth: str | None
    attempts: int
    # The template variant to send (see `Delivery.locale`); None: the notification's message.
    locale: str | None


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# PostgreSQL: one row per array element, inserted by one statement (~3x executemany's rate).
_INSERT_UNNEST = text(
    "INSERT INTO deliveries (notification_id, app_id, device_id, platform, token, p256dh, auth,"
    " status, attempts, created_at, updated_at) "
    "SELECT :notification_id, :app_id, v.device_id, v.platform, v.token, v.p256dh, v.auth,"
    " :status, 0, :now, :now "
    "FROM unnest(CAST(:device_ids AS uuid[]), CAST(:platforms AS varchar[]),"
    " CAST(:tokens AS text[]), CAST(:p256dhs AS varchar[]), CAST(:auths AS varchar[]))"
    " AS v(device_id, platform, token, p256dh, auth) "
    "RETURNING id"
)
# The same with what a planned page may set besides the address (see `NewDelivery`).
_INSERT_UNNEST_PLANNED = text(
    "INSERT INTO deliveries (notification_id, app_id, device_id, platform, token, p256dh, auth,"
    " locale, status, next_attempt_at, error, attempts, created_at, updated_at) "
    "SELECT :notification_id, :app_id, v.device_id, v.platform, v.token, v.p256dh, v.auth,"
    " v.locale, v.status, v.next_attempt_at, v.error, 0, :now, :now "
    "FROM unnest(CAST(:device_ids AS uuid[]), CAST(:platforms AS varchar[]),"
    " CAST(:tokens AS text[]), CAST(:p256dhs AS varchar[]), CAST(:auths AS varchar[]),"
    " CAST(:locales AS varchar[]), CAST(:statuses AS varchar[]),"
    " CAST(:next_attempt_ats AS timestamptz[]), CAST(:errors AS varchar[]))"
    " AS v(device_id, platform, token, p256dh, auth, locale, status, next_attempt_at, error) "
    "RETURNING id, status"
)
_INSERT_MANY = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


async def insert_many(
    *,
    session: AsyncSession,
    notification_id: uuid.UUID,
    app_id: uuid.UUID,
    items: Sequence[NewDelivery],
    now: datetime,
) -> list[int]:
    """Insert a page of deliveries in one statement; the ids of those to send now (pending),
    for the deliver jobs. Deferred ones are the sweeper's to release; final ones are done."""
    if not items:
        return []
    plain = all(item.plain for item in items)
    if _postgres(session):
        params: dict[str, Any] = {
            "notification_id": notification_id,
            "app_id": app_id,
            "status": DeliveryStatus.PENDING.value,
            "now": now,
            "device_ids": [item.device_id for item in items],
            "platforms": [item.platform for item in items],
            "tokens": [item.token for item in items],
            "p256dhs": [item.p256dh for item in items],
            "auths": [item.auth for item in items],
        }
        if not plain:
            params["locales"] = [item.locale for item in items]
            params["statuses"] = [item.status.value for item in items]
            params["next_attempt_ats"] = [item.not_before for item in items]
            params["errors"] = [item.reason for item in items]
        if plain:
            return list((await session.execute(_INSERT_UNNEST, params)).scalars())
        result = await session.execute(_INSERT_UNNEST_PLANNED, params)
        return [row.id for row in result if row.status == DeliveryStatus.PENDING.value]
    rows = [
        {
            "notification_id": notification_id,
            "app_id": app_id,
            "device_id": item.device_id,
            "platform": item.platform,
            "token": item.token,
            "p256dh": item.p256dh,
            "auth": item.auth,
            "locale": item.locale,
            "status": item.status.value,
            "next_attempt_at": item.not_before,
            "error": item.reason,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for item in items
    ]
    ids = (await session.execute(_INSERT_MANY, rows)).scalars()  # in the order of `rows`
    return [i for i, item in zip(ids, items, strict=True) if item.status is DeliveryStatus.PENDING]


def _claim_statement(ids: ColumnElement[bool]) -> Any:
    c = _TABLE.c
    return (
        update(_TABLE)
        .where(
            ids,
            or_(
                and_(
                    c.status.in_([s.value for s in CLAIMABLE]),
                    or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("due")),
                ),
                and_(c.status == DeliveryStatus.SENDING.value, c.lease_until < bindparam("now")),
            ),
        )
        .values(
            status=DeliveryStatus.SENDING.value,
            lease_until=bindparam("lease_until"),
            attempts=c.attempts + 1,
            updated_at=bindparam("now"),
        )
        .returning(
            c.id,
            c.notification_id,
            c.app_id,
            c.device_id,
            c.platform,
            c.token,
            c.p256dh,
            c.auth,
            c.attempts,
            c.locale,
        )
    )


_CLAIM_PG = _claim_statement(_TABLE.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
_CLAIM = _claim_statement(_TABLE.c.id.in_(bindparam("ids", expanding=True)))


async def claim(
    *, session: AsyncSession, ids: Sequence[int], now: datetime, lease: float
) -> list[Claimed]:
    """Take the deliveries that are still to send (pending, retrying and due, or held by a
    worker whose lease ran out), mark them `sending` for `lease` seconds and count the attempt.

    Deliveries already sent, final, or held by a live worker are left out, so a redelivered job
    never sends twice. One UPDATE ... RETURNING: atomic on PostgreSQL and SQLite alike.
    """
    if not ids:
        return []
    statement = _CLAIM_PG if _postgres(session) else _CLAIM
    params = {
        "ids": list(ids),
        "now": now,
        "due": now + timedelta(seconds=1),  # a delayed job may arrive a moment early
        "lease_until": now + timedelta(seconds=lease),
    }
    result = await session.execute(statement, params)
    return [Claimed(*row) for row in result]


async def record(*, session: AsyncSession, changes: Sequence[dict[str, Any]]) -> None:
    """Apply per-delivery changes (each a dict with `id` and the new column values), grouped by
    the set of columns changed: on PostgreSQL one `UPDATE ... FROM unnest(...)` per group (one
    statement for a whole batch instead of one per delivery), elsewhere executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change)), []).append(change)
    postgres = _postgres(session)
    for columns, rows in groups.items():
        if postgres and set(columns) <= _PG_ARRAY_TYPES.keys():
            await session.execute(_unnest_update(columns), _as_arrays(columns, rows))
        else:
            # The SET clause is the parameters' other keys.
            await session.execute(
                _UPDATE_BY_ID,
                [{"_id": row["id"], **{c: row[c] for c in columns if c != "id"}} for row in rows],
            )


_UPDATE_BY_ID = update(_TABLE).where(_TABLE.c.id == bindparam("_id"))


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


@functools.lru_cache(maxsize=64)
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


def _is(status: DeliveryStatus) -> ColumnElement[bool]:
    # The status as a literal, not a bind parameter: a prepared statement's generic plan can
    # then still use the partial index on that status.
    return Delivery.status == literal_column(f"'{status.value}'")


async def reclaim_stale(
    *, session: AsyncSession, now: datetime, overdue: datetime | None, limit: int = 1000
) -> list[int]:
    """Take back up to `limit` deliveries that should be in flight but may have no job, and
    return their ids for the caller to publish again (after committing):

    - pending since before `overdue` (the dispatcher died between commit and publish): their
      `updated_at` is moved to `now`;
    - retrying and due before `overdue` (the delayed job was lost, or came early and was
      dropped): `next_attempt_at` is moved to `now`;
    - sending with an expired lease (the worker holding the claim died): back to `retrying`,
      due now, the attempt it made still counted;
    - deferred until now or earlier (quiet hours over, a local time or a throttle slot come):
      `pending`, to send now. Not a loss, only their time: these go first.

    `overdue` None leaves pending and retrying deliveries alone (the caller cannot tell them
    from queued ones yet: see `sending.sweeper`). Each kind is a conditional UPDATE ...
    RETURNING, so two sweepers never both take the same row, and a row a worker claims
    meanwhile is left alone. One query per kind rather than one OR: each walks its own partial
    index in order and stops at `limit` (pending by `updated_at`, retrying by
    `next_attempt_at`, sending by `lease_until`), so a sweep costs what it takes, not the size
    of the table.
    """
    kinds: list[tuple[ColumnElement[bool], Any, dict[str, Any]]] = [
        (
            and_(_is(DeliveryStatus.DEFERRED), Delivery.next_attempt_at <= now),
            Delivery.next_attempt_at,
            {
                "status": DeliveryStatus.PENDING.value,
                "next_attempt_at": None,
                "updated_at": now,
            },
        )
    ]
    if overdue is not None:
        kinds += [
            (
                and_(_is(DeliveryStatus.PENDING), Delivery.updated_at < overdue),
                Delivery.updated_at,
                {"updated_at": now},
            ),
            (
                and_(_is(DeliveryStatus.RETRYING), Delivery.next_attempt_at < overdue),
                Delivery.next_attempt_at,
                {"next_attempt_at": now, "updated_at": now},
            ),
        ]
    kinds.append(
        (
            and_(_is(DeliveryStatus.SENDING), Delivery.lease_until < now),
            Delivery.lease_until,
            {
                "status": DeliveryStatus.RETRYING.value,
                "next_attempt_at": now,
                "lease_until": None,
                "updated_at": now,
            },
        )
    )
    postgres = _postgres(session)
    taken: list[int] = []
    for condition, order, values in kinds:
        room = limit - len(taken)
        if room <= 0:
            break
        chosen = select(Delivery.id).where(condition).order_by(order).limit(room)
        if postgres:
            # A row a worker is claiming right now is skipped, not waited for; the lock
            # re-checks the condition on the row's newest version. Materialized, so the
            # UPDATE joins the few chosen ids by primary key: as `id IN (subquery)` the
            # planner hash-joined them against a scan of the whole table (minutes on a
            # million rows, holding the chosen rows' locks that claims then waited on).
            picked = (
                chosen.with_for_update(skip_locked=True)
                .cte("chosen")
                .prefix_with("MATERIALIZED", dialect="postgresql")
            )
            statement: Any = (
                update(Delivery)
                .where(Delivery.id == picked.c.id)
                .values(**values)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            )
        else:
            # SQLite runs one writer at a time: no row locks to skip.
            statement = (
                update(Delivery)
                .where(Delivery.id.in_(chosen), condition)
                .values(**values)
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            )
        taken.extend((await session.execute(statement)).scalars())
    return taken


# A notification that reached one of these may be reopened by a requeued delivery; `canceled`
# may not (nothing is sent for it any more), nor `expired` (its deliveries are too late).
_REOPENABLE = (
    NotificationStatus.COMPLETED.value,
    NotificationStatus.PARTIALLY_FAILED.value,
    NotificationStatus.FAILED.value,
)


async def reopen_failed(
    *, session: AsyncSession, ids: Sequence[int], now: datetime
) -> dict[uuid.UUID, list[int]]:
    """Make `failed` deliveries sendable again (`pushgate dlq requeue`): back to `pending`
    with no attempts, their last answer (`response_code`, `error`) kept. Their notifications
    count them as unfinished again, and one that was final goes back to `dispatching`, so it
    is finalized again (from the deliveries' statuses) once they are final.

    Only rows still `failed`, of a notification neither canceled nor expired, are reopened:
    a letter requeued twice reopens its delivery once, so the counters never count it twice.
    Returns the reopened ids by notification.
    """
    if not ids:
        return {}
    live = select(Notification.id).where(
        Notification.status.in_([*_REOPENABLE, NotificationStatus.DISPATCHING.value]),
        Notification.expires_at > now,
    )
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(list(ids)),
            Delivery.status == DeliveryStatus.FAILED.value,
            Delivery.notification_id.in_(live),
        )
        .values(
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
        )
        .returning(Delivery.notification_id, Delivery.id)
        .execution_options(synchronize_session=False)
    )
    reopened: dict[uuid.UUID, list[int]] = {}
    for notification_id, delivery_id in result:
        reopened.setdefault(notification_id, []).append(delivery_id)
    n = Notification
    for notification_id, delivery_ids in sorted(reopened.items()):  # a stable lock order
        await session.execute(
            update(n)
            .where(n.id == notification_id)
            .values(
                finished=n.finished - len(delivery_ids),
                status=case(
                    (n.status.in_(_REOPENABLE), NotificationStatus.DISPATCHING.value),
                    else_=n.status,
                ),
                completed_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return reopened
