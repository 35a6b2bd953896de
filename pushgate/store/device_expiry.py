"""Device expiry: when a device was last seen (registered again, or delivered to), Web Push
subscriptions past their `expirationTime` deactivated as `expired`, and devices unseen for
`devices.stale_after_days` announced (`device.expiring`) and then, still unseen after
`devices.stale_grace_days`, deactivated as `stale`.

The lifecycle job (sending/lifecycle.py) calls the batch functions here, each in its own short
transaction; `seen` is on the delivery path (sending/outcomes.py). A deactivation here is a
provider's in all but its cause: `device.invalidated` (reason `expired` or `stale`), the
`expired` count of the analytics rollups, one live device fewer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, Uuid, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.webhooks import EventType
from pushgate.store import db, rollups, webhooks
from pushgate.store.tables import Device

EXPIRED = "expired"
STALE = "stale"
# A successful delivery moves `last_seen_at` only when it is older than this: staleness is
# counted in days, so a device sent to all day long is written once a day, not per delivery.
SEEN_EVERY = timedelta(days=1)

_TABLE = cast(Table, Device.__table__)


def _seen_statement(postgres: bool) -> Any:
    c = _TABLE.c
    values: dict[str, Any] = {"last_seen_at": bindparam("seen_at"), "expiring_at": None}
    if not postgres:
        # SQLite runs one writer at a time: no row locks to skip.
        return (
            update(_TABLE)
            .where(c.id.in_(bindparam("ids", expanding=True)), c.last_seen_at < bindparam("mark"))
            .values(**values)
        )
    # Rows another transaction holds (a registration, another batch's `seen`, an
    # invalidation) are skipped, never waited for: this statement adds no lock wait, and so no
    # deadlock, to the outcome write it rides in. A skipped device is seen by its next delivery.
    chosen = (
        select(c.id)
        .where(
            c.id == any_(bindparam("ids", type_=ARRAY(Uuid))), c.last_seen_at < bindparam("mark")
        )
        .order_by(c.id)
        .with_for_update(skip_locked=True)
        .cte("chosen")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return update(_TABLE).where(c.id == chosen.c.id).values(**values)


_SEEN_PG = _seen_statement(True)
_SEEN = _seen_statement(False)


async def seen(*, session: AsyncSession, device_ids: Collection[uuid.UUID], now: datetime) -> None:
    """Mark devices delivered to successfully as seen, in the caller's transaction (the outcome
    write of a batch: one more statement per batch, no extra transaction). Only the devices
    not seen for `SEEN_EVERY` are written, so each device is written at most once a day
    however often it is sent to; seeing one cancels its announced expiry."""
    if not device_ids:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    await session.execute(
        _SEEN_PG if postgres else _SEEN,
        {"ids": sorted(device_ids), "mark": now - SEEN_EVERY, "seen_at": now},
        execution_options={"synchronize_session": False},
    )


@dataclass(frozen=True, slots=True)
class Changed:
    """A device a batch here changed."""

    id: uuid.UUID
    app_id: uuid.UUID
    platform: str
    user_id: str | None
    last_seen_at: datetime


_RETURNED = (
    _TABLE.c.id,
    _TABLE.c.app_id,
    _TABLE.c.platform,
    _TABLE.c.user_id,
    _TABLE.c.last_seen_at,
)


async def _change(
    session: AsyncSession, order: Any, eligible: list[Any], values: dict[str, Any], limit: int
) -> list[Changed]:
    """Pick up to `limit` devices by `order` (a partial index's column), then change those that
    are still `eligible`: the UPDATE checks it again, so one registered meanwhile stays."""
    chosen = list(
        (
            await session.execute(select(_TABLE.c.id).where(*eligible).order_by(order).limit(limit))
        ).scalars()
    )
    if not chosen:
        return []
    result = await session.execute(
        update(_TABLE)
        .where(db.one_of(session, _TABLE.c.id, chosen), *eligible)
        .values(**values)
        .returning(*_RETURNED)
    )
    return [Changed(*row) for row in result]


async def expire_subscriptions(*, session: AsyncSession, now: datetime, limit: int) -> int:
    """Deactivate up to `limit` live devices whose Web Push subscription expired (its
    `expirationTime` is past) with reason `expired`; how many."""
    c = _TABLE.c
    gone = await _change(
        session,
        c.expires_at,
        [c.invalidated_at.is_(None), c.expires_at.is_not(None), c.expires_at <= now],
        {"invalidated_at": now, "invalidation_reason": EXPIRED, "updated_at": now},
        limit,
    )
    await _deactivated(session, gone, EXPIRED, now)
    return len(gone)


async def announce_unseen(
    *, session: AsyncSession, now: datetime, unseen_since: datetime, grace: timedelta, limit: int
) -> int:
    """Mark up to `limit` live devices not seen since `unseen_since` as expiring and emit
    `device.expiring` for each (deactivated `grace` later unless seen); how many."""
    c = _TABLE.c
    marked = await _change(
        session,
        c.last_seen_at,
        [c.invalidated_at.is_(None), c.expiring_at.is_(None), c.last_seen_at < unseen_since],
        {"expiring_at": now},
        limit,
    )
    events = [
        _event(
            d,
            EventType.DEVICE_EXPIRING,
            last_seen_at=d.last_seen_at.isoformat(),
            deactivate_at=(now + grace).isoformat(),
        )
        for d in marked
    ]
    if events:
        await webhooks.emit(session=session, events=events, now=now)
    return len(marked)


async def deactivate_unseen(
    *, session: AsyncSession, now: datetime, announced_before: datetime, limit: int
) -> int:
    """Deactivate, with reason `stale`, up to `limit` devices announced as expiring before
    `announced_before` and not seen since; how many."""
    c = _TABLE.c
    gone = await _change(
        session,
        c.expiring_at,
        [
            c.invalidated_at.is_(None),
            c.expiring_at.is_not(None),
            c.expiring_at <= announced_before,
            c.last_seen_at <= c.expiring_at,
        ],
        {"invalidated_at": now, "invalidation_reason": STALE, "updated_at": now},
        limit,
    )
    await _deactivated(session, gone, STALE, now)
    return len(gone)


async def _deactivated(
    session: AsyncSession, gone: list[Changed], reason: str, now: datetime
) -> None:
    """Announce the devices a batch deactivated (`device.invalidated`) and count them in the
    rollups, in the batch's transaction (rollups last: see store/rollups.py)."""
    if not gone:
        return
    # The fields of a provider's `device.invalidated` (sending/outcomes.py), those about a
    # delivery null: no delivery caused this one.
    about_no_delivery = dict.fromkeys(("notification_id", "delivery_id", "status_code", "attempts"))
    events = [
        _event(d, EventType.DEVICE_INVALIDATED, reason=reason, **about_no_delivery) for d in gone
    ]
    await webhooks.emit(session=session, events=events, now=now)
    counts = rollups.device_counts()
    for d in gone:
        counts[d.app_id, d.platform][rollups.invalidation_kind(reason)] += 1
    await rollups.add_devices(session=session, at=now, counts=counts)


def _event(device: Changed, kind: EventType, **data: Any) -> webhooks.Event:
    """A webhook event about a device, ordered with its device's other events."""
    return webhooks.Event(
        app_id=device.app_id,
        type=kind.value,
        key=str(device.id),
        data={
            "device_id": str(device.id),
            "platform": device.platform,
            "user_id": device.user_id,
            **data,
        },
    )
