"""A plain page of a broadcast or topic notification expanded inside PostgreSQL: one
`INSERT ... SELECT` makes the page's deliveries from the devices table and returns only their
ids, so no device row travels to the dispatcher and back (`store.audience.page` plus
`store.deliveries.insert_many` do for every other page).

Plain means what `sending.planning.needed` says: the notification has no options and none of
the page's devices belongs to a user (whose preferences would be read). The statement checks
the second itself and inserts nothing when a device has a user: the dispatcher then plans that
page the usual way. Measured on a 100,000-device broadcast (a dispatch-only worker, 2-core
machine), the dispatcher's CPU per device fell from ~21 to ~4 µs; PostgreSQL's stayed at
~15-20 µs, now most of a page's cost (bench/README.md, broadcast).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Uuid, exists, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import DeliveryStatus, TargetKind, is_fcm_topic
from pushgate.store import audience
from pushgate.store.tables import Delivery

# The target kinds whose pages need nothing of a device beyond what the query selects: a
# `condition` is checked per page in Python, `device_ids` and raw tokens are not streamed, and
# `user_ids` names devices that belong to users (planned, always).
KINDS = frozenset({TargetKind.BROADCAST, TargetKind.TOPICS})


@dataclass(frozen=True, slots=True)
class DirectPage:
    """What one direct page did.

    Args:
        ids: the deliveries made (all pending); empty when `planned`.
        size: the devices in the page.
        cursor: the last device of a full page (None: this was the last page).
        planned: a device of the page belongs to a user, so nothing was inserted: plan it.
    """

    ids: list[int]
    size: int
    cursor: uuid.UUID | None
    planned: bool


def usable(session: AsyncSession, target: dict[str, object], options: object) -> bool:
    """Whether a notification's pages may be made in the database: PostgreSQL (SQLite has no
    data-modifying CTE), a streamed kind with nothing left to check per device (not one message
    to an FCM topic either), no options."""
    return (
        options is None
        and session.get_bind().dialect.name == "postgresql"
        and target.get("kind") in KINDS
        and not is_fcm_topic(target)
    )


async def insert_page(
    *,
    session: AsyncSession,
    notification_id: uuid.UUID,
    app_id: uuid.UUID,
    target: dict[str, object],
    after: uuid.UUID | None,
    limit: int,
    now: datetime,
) -> DirectPage:
    """Insert the deliveries of the page after device `after`, unless a device of it belongs
    to a user (see the module's docstring)."""
    query, parsed = audience.streamed(session, app_id, target, after=after, limit=limit, now=now)
    if parsed is not None:
        raise ValueError("a condition is checked per page: not a direct page")
    # Referenced several times, so PostgreSQL computes the page once (a materialised CTE):
    # the count, the cursor and the inserted rows all see the same devices.
    page = query.cte("page")
    owned = exists(select(page.c.id).where(page.c.user_id.is_not(None)))
    made = (
        insert(Delivery)
        .from_select(
            [
                "notification_id",
                "app_id",
                "device_id",
                "platform",
                "token",
                "p256dh",
                "auth",
                "status",
                "attempts",
                "created_at",
                "updated_at",
            ],
            select(
                literal(notification_id, Uuid),
                literal(app_id, Uuid),
                page.c.id,
                page.c.platform,
                page.c.token,
                page.c.p256dh,
                page.c.auth,
                literal(DeliveryStatus.PENDING.value, String),
                literal(0, Integer),
                literal(now, DateTime(timezone=True)),
                literal(now, DateTime(timezone=True)),
            ).where(~owned),
        )
        .returning(Delivery.id)
        .cte("made")
    )
    statement = select(
        select(func.count()).select_from(page).scalar_subquery(),
        select(page.c.id).order_by(page.c.id.desc()).limit(1).scalar_subquery(),
        owned,
        select(func.array_agg(made.c.id)).scalar_subquery(),
    )
    size, last, planned, ids = (await session.execute(statement)).one()
    return DirectPage(
        ids=list(ids or ()),
        size=size,
        cursor=last if size == limit else None,
        planned=bool(planned),
    )
