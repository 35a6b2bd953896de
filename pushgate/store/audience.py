"""Streams a notification's audience from the devices table, one keyset page at a time, so the
memory a broadcast to a million devices needs is that of one page."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import condition
from pushgate.domain.notification import TargetKind
from pushgate.store import db
from pushgate.store.tables import Device, DeviceTopic, utcnow

PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Recipient:
    device_id: uuid.UUID
    platform: str
    token: str
    p256dh: str | None
    auth: str | None
    # For planning each delivery (preferences, locale, local time): see `sending.planning`.
    user_id: str | None
    locale: str | None
    timezone: str | None


_COLUMNS = (
    Device.id,
    Device.platform,
    Device.token,
    Device.p256dh,
    Device.auth,
    Device.user_id,
    Device.locale,
    Device.timezone,
)


async def page(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    target: dict[str, object],
    after: uuid.UUID | None,
    limit: int = PAGE_SIZE,
    now: datetime | None = None,
) -> tuple[list[Recipient], uuid.UUID | None]:
    """The next page of active recipients after the device id `after`, and the cursor for the
    page after it (None when this was the last page). A Web Push subscription whose
    `expirationTime` is past `now` is no recipient (the lifecycle job deactivates it)."""
    now = now or utcnow()
    kind = TargetKind(str(target["kind"]))
    if kind is TargetKind.DEVICE_IDS:
        return await _named(session, app_id, _device_ids(_values(target)), after, limit, now)
    query, parsed = streamed(session, app_id, target, after=after, limit=limit, now=now)
    rows = (await session.execute(query)).all()
    cursor: uuid.UUID | None = rows[-1][0] if len(rows) == limit else None
    recipients = [Recipient(*row) for row in rows]
    if parsed is not None and recipients:
        topics = await _topics_of(session, [r.device_id for r in recipients])
        recipients = [
            r for r in recipients if condition.evaluate(parsed, topics.get(r.device_id, set()))
        ]
    return recipients, cursor


def streamed(
    session: AsyncSession,
    app_id: uuid.UUID,
    target: dict[str, object],
    *,
    after: uuid.UUID | None,
    limit: int,
    now: datetime,
) -> tuple[Select[*tuple[Any, ...]], condition.Expr | None]:
    """The query of the next page of a streamed target's active devices (every column of
    `Recipient`, in device id order; not a Web Push subscription past its `expirationTime` at
    `now`), and the condition each page's devices must still be checked against (None: the
    query is the whole answer). Every kind but `device_ids`."""
    kind = TargetKind(str(target["kind"]))
    # Plain columns, not ORM objects: a broadcast reads every device of the app.
    query = select(*_COLUMNS).where(
        Device.app_id == app_id,
        Device.enabled.is_(True),
        Device.invalidated_at.is_(None),
        _unexpired(now),
    )
    parsed: condition.Expr | None = None
    if kind is TargetKind.USER_IDS:
        users = [str(v) for v in _values(target)]
        query = query.where(db.one_of(session, Device.user_id, users))
    elif kind is TargetKind.TOPICS:
        query = query.where(Device.id.in_(_subscribed(app_id, [str(v) for v in _values(target)])))
    elif kind is TargetKind.CONDITION:
        parsed = condition.parse(str(target["value"]))
        if not condition.needs_every_device(parsed):
            query = query.where(
                Device.id.in_(_subscribed(app_id, sorted(condition.topics_of(parsed))))
            )
    elif kind is not TargetKind.BROADCAST:
        raise ValueError(f"{kind} is not streamed from the devices table")
    if after is not None:
        query = query.where(Device.id > after)
    return query.order_by(Device.id).limit(limit), parsed


async def _named(
    session: AsyncSession,
    app_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    after: uuid.UUID | None,
    limit: int,
    now: datetime,
) -> tuple[list[Recipient], uuid.UUID | None]:
    """A page of the devices a notification names by id. Pages go over the sorted ids
    themselves, so each is a primary-key lookup of at most `limit` ids. The general form
    (ORDER BY id LIMIT n over the app's devices) let PostgreSQL's generic plan walk all of the
    app's devices per notification: measured, nearly all of its CPU in webpush_e2e."""
    wanted = sorted({i for i in ids if after is None or i > after})
    chunk = wanted[:limit]
    if not chunk:
        return [], None
    match = db.one_of(session, Device.id, chunk)
    # Only the key in the WHERE clause, the rest checked here: with the app and status in it,
    # PostgreSQL's generic plan still preferred walking the app's index (measured in
    # apns_e2e); with the key alone, the primary key is the only way in.
    query = select(
        *_COLUMNS, Device.app_id, Device.enabled, Device.invalidated_at, Device.expires_at
    ).where(match)
    recipients = sorted(
        (
            Recipient(
                row.id,
                row.platform,
                row.token,
                row.p256dh,
                row.auth,
                row.user_id,
                row.locale,
                row.timezone,
            )
            for row in await session.execute(query)
            if row.app_id == app_id
            and row.enabled
            and row.invalidated_at is None
            and (row.expires_at is None or row.expires_at > now)
        ),
        key=lambda r: r.device_id,
    )
    return recipients, chunk[-1] if len(wanted) > limit else None


def _unexpired(now: datetime) -> ColumnElement[bool]:
    """Not a Web Push subscription past its `expirationTime`."""
    return or_(Device.expires_at.is_(None), Device.expires_at > now)


def _values(target: dict[str, object]) -> Sequence[object]:
    value = target["value"]
    if not isinstance(value, list):
        raise ValueError("target value must be a list")
    return value


def _device_ids(values: Sequence[object]) -> list[uuid.UUID]:
    """The ids that can name a device. A value that is not a UUID names none: it reaches no
    one, rather than failing the whole dispatch on every attempt."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids


def _subscribed(app_id: uuid.UUID, topics: Sequence[str]) -> Select[uuid.UUID]:
    return select(DeviceTopic.device_id).where(
        DeviceTopic.app_id == app_id, DeviceTopic.topic.in_(topics)
    )


async def _topics_of(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    rows = await session.execute(
        select(DeviceTopic.device_id, DeviceTopic.topic).where(DeviceTopic.device_id.in_(ids))
    )
    topics: dict[uuid.UUID, set[str]] = {}
    for device_id, topic in rows:
        topics.setdefault(device_id, set()).add(topic)
    return topics
