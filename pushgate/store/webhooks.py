"""Apps' webhooks and their outbox (`webhook_events`): CRUD, the per-process directory of who
listens to what, writing events in the caller's transaction, and the sender's lease, order and
bookkeeping.

Events are written by `emit` in the same session (and so the same commit) as their cause: an
event of a rolled-back change never exists. Which webhooks an app has is cached per process for
`webhooks.cache_seconds`; an app with none costs the delivery path a dictionary look-up. A
webhook created in another process starts receiving events within that time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pushgate.domain.webhooks import EventStatus, EventType
from pushgate.errors import NotFoundError
from pushgate.store.tables import Device, Webhook, WebhookEvent, utcnow

DEFAULT_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Listener:
    webhook_id: uuid.UUID
    events: frozenset[str]


class Directory:
    """Which enabled webhooks each app has, cached for a few seconds in this process."""

    def __init__(self, ttl: float = DEFAULT_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._apps: dict[uuid.UUID, tuple[float, tuple[Listener, ...]]] = {}

    def cached(self, app_id: uuid.UUID) -> tuple[Listener, ...] | None:
        hit = self._apps.get(app_id)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    async def listeners(self, session: AsyncSession, app_id: uuid.UUID) -> tuple[Listener, ...]:
        hit = self.cached(app_id)
        if hit is not None:
            return hit
        rows = await session.execute(
            select(Webhook.id, Webhook.events).where(
                Webhook.app_id == app_id, Webhook.enabled.is_(True)
            )
        )
        found = tuple(Listener(r.id, frozenset(r.events)) for r in rows)
        self._apps[app_id] = (time.monotonic() + self.ttl, found)
        return found

    def forget(self, app_id: uuid.UUID) -> None:
        self._apps.pop(app_id, None)


# One per process: the store functions that emit events are called from many places that
# hold a session, not the runtime. The runtime sets its ttl from the settings.
directory = Directory()


@dataclass(frozen=True, slots=True)
class Event:
    """An event to emit: its app, type, ordering key (a device or notification id) and data."""

    app_id: uuid.UUID
    type: str
    key: str
    data: dict[str, Any]


async def emit(*, session: AsyncSession, events: Sequence[Event], now: datetime) -> int:
    """Add one outbox row per event and subscribed enabled webhook of its app, in the
    caller's transaction. Returns how many rows were added."""
    rows: list[dict[str, Any]] = []
    for event in events:
        for listener in await directory.listeners(session, event.app_id):
            if event.type in listener.events:
                rows.append(
                    {
                        "app_id": event.app_id,
                        "webhook_id": listener.webhook_id,
                        "type": event.type,
                        "payload": event.data,
                        "ordering_key": event.key[:64],
                        "status": EventStatus.PENDING.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    if rows:
        await session.execute(insert(WebhookEvent), rows)
    return len(rows)


async def wanted(*, session: AsyncSession, events: Sequence[Event]) -> list[Event]:
    """The events some enabled webhook of their app listens to (none: no query, once the
    apps' webhooks are cached), less `device.invalidated` for devices deactivated already.
    Call it before deactivating the devices."""
    kept = []
    for event in events:
        if any(event.type in w.events for w in await directory.listeners(session, event.app_id)):
            kept.append(event)
    invalidated = {e.key for e in kept if e.type == EventType.DEVICE_INVALIDATED.value}
    if invalidated:
        active = {
            str(device_id)
            for device_id in (
                await session.execute(
                    select(Device.id).where(
                        Device.id.in_([uuid.UUID(k) for k in invalidated]),
                        Device.invalidated_at.is_(None),
                    )
                )
            ).scalars()
        }
        kept = [e for e in kept if e.type != EventType.DEVICE_INVALIDATED.value or e.key in active]
    return kept


async def device_registered(*, session: AsyncSession, device: Device, now: datetime) -> None:
    """Emit `device.registered` for a device just made."""
    data = {"device_id": str(device.id), "platform": device.platform, "user_id": device.user_id}
    event = Event(device.app_id, EventType.DEVICE_REGISTERED.value, str(device.id), data)
    await emit(session=session, events=[event], now=now)


# --- CRUD (admin API) ---


async def create(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    url: str,
    events: Sequence[str],
    sealed_secret: str,
) -> Webhook:
    row = Webhook(
        app_id=app_id,
        url=url,
        events=list(dict.fromkeys(events)),
        secret=sealed_secret,
        enabled=True,
        failures=0,
    )
    session.add(row)
    await session.flush()
    directory.forget(app_id)
    return row


async def list_for_app(*, session: AsyncSession, app_id: uuid.UUID) -> list[Webhook]:
    query = select(Webhook).where(Webhook.app_id == app_id).order_by(Webhook.created_at)
    return list((await session.execute(query)).scalars())


async def get(*, session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
    """Raises: NotFoundError `webhook_not_found`."""
    row = (
        await session.execute(
            select(Webhook).where(Webhook.app_id == app_id, Webhook.id == webhook_id)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no webhook {webhook_id} in this app", code="webhook_not_found")
    return row


async def change(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    webhook_id: uuid.UUID,
    url: str | None = None,
    events: Sequence[str] | None = None,
    enabled: bool | None = None,
) -> Webhook:
    """Raises: NotFoundError `webhook_not_found`."""
    row = await get(session=session, app_id=app_id, webhook_id=webhook_id)
    if url is not None:
        row.url = url
    if events is not None:
        row.events = list(dict.fromkeys(events))
    if enabled is not None:
        row.enabled = enabled
        if enabled:
            row.disabled_reason = None
            row.failures = 0
    row.updated_at = utcnow()
    await session.flush()
    directory.forget(app_id)
    return row


async def rotate(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    webhook_id: uuid.UUID,
    sealed_secret: str,
    overlap_until: datetime,
) -> Webhook:
    """Raises: NotFoundError `webhook_not_found`."""
    row = await get(session=session, app_id=app_id, webhook_id=webhook_id)
    row.previous_secret = row.secret
    row.previous_secret_until = overlap_until
    row.secret = sealed_secret
    row.updated_at = utcnow()
    await session.flush()
    return row


async def remove(*, session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    """Raises: NotFoundError `webhook_not_found`."""
    row = await get(session=session, app_id=app_id, webhook_id=webhook_id)
    await session.execute(delete(WebhookEvent).where(WebhookEvent.webhook_id == row.id))
    await session.delete(row)
    await session.flush()
    directory.forget(app_id)


async def recent_events(
    *, session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID, limit: int = 50
) -> list[WebhookEvent]:
    await get(session=session, app_id=app_id, webhook_id=webhook_id)
    query = (
        select(WebhookEvent)
        .where(WebhookEvent.app_id == app_id, WebhookEvent.webhook_id == webhook_id)
        .order_by(WebhookEvent.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


# --- the sender ---


@dataclass(frozen=True, slots=True)
class Due:
    """An event taken for sending, with what signing and posting it needs."""

    id: int
    app_id: uuid.UUID
    webhook_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None


async def claim(
    *, session: AsyncSession, now: datetime, lease_seconds: float, limit: int
) -> list[Due]:
    """Take due events for sending until their lease ends: the first unsent event of each
    (webhook, ordering key) only, so events of one key go out in order. Each is taken by a
    conditional UPDATE, so two senders never send the same one at once."""
    earlier = aliased(WebhookEvent)
    blocked = exists().where(
        earlier.webhook_id == WebhookEvent.webhook_id,
        earlier.ordering_key == WebhookEvent.ordering_key,
        earlier.id < WebhookEvent.id,
        earlier.status == EventStatus.PENDING.value,
    )
    free = (WebhookEvent.lease_until.is_(None)) | (WebhookEvent.lease_until < now)
    candidates = (
        await session.execute(
            select(WebhookEvent.id)
            .join(Webhook, Webhook.id == WebhookEvent.webhook_id)
            .where(
                WebhookEvent.status == EventStatus.PENDING.value,
                WebhookEvent.next_attempt_at <= now,
                Webhook.enabled.is_(True),
                free,
                ~blocked,
            )
            .order_by(WebhookEvent.id)
            .limit(limit)
        )
    ).scalars()
    ids = list(candidates)
    if not ids:
        return []
    until = now + timedelta(seconds=lease_seconds)
    taken = (
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_(ids), WebhookEvent.status == EventStatus.PENDING.value, free)
            .values(lease_until=until, attempts=WebhookEvent.attempts + 1, last_attempt_at=now)
            .returning(WebhookEvent.id)
            .execution_options(synchronize_session=False)
        )
    ).scalars()
    taken_ids = list(taken)
    if not taken_ids:
        return []
    rows = await session.execute(
        select(
            WebhookEvent.id,
            WebhookEvent.app_id,
            WebhookEvent.webhook_id,
            WebhookEvent.type,
            WebhookEvent.payload,
            WebhookEvent.attempts,
            WebhookEvent.created_at,
            Webhook.url,
            Webhook.secret,
            Webhook.previous_secret,
            Webhook.previous_secret_until,
        )
        .join(Webhook, Webhook.id == WebhookEvent.webhook_id)
        .where(WebhookEvent.id.in_(taken_ids))
        .order_by(WebhookEvent.id)
    )
    return [Due(*row) for row in rows]


async def record(
    *,
    session: AsyncSession,
    due: Due,
    now: datetime,
    status_code: int | None,
    error: str | None,
    ok: bool,
    next_attempt_at: datetime | None,
    disable_after: int,
) -> None:
    """Write one attempt's answer: sent, pending again at `next_attempt_at`, or failed (no
    next attempt); count the webhook's failures in a row and disable it at `disable_after`."""
    if ok:
        status = EventStatus.SENT
    else:
        status = EventStatus.PENDING if next_attempt_at is not None else EventStatus.FAILED
    await session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id == due.id)
        .values(
            status=status.value,
            lease_until=None,
            last_status_code=status_code,
            last_error=error[:1000] if error else None,
            sent_at=now if ok else None,
            **({"next_attempt_at": next_attempt_at} if next_attempt_at else {}),
        )
        .execution_options(synchronize_session=False)
    )
    hook = and_(Webhook.id == due.webhook_id, Webhook.app_id == due.app_id)
    if ok:
        await session.execute(update(Webhook).where(hook, Webhook.failures != 0).values(failures=0))
        return
    failures = (
        await session.execute(
            update(Webhook)
            .where(hook)
            .values(failures=Webhook.failures + 1)
            .returning(Webhook.failures)
        )
    ).scalar_one_or_none()
    if failures is not None and failures >= disable_after:
        reason = f"{failures} failed attempts in a row, the last: {error or status_code}"
        await session.execute(
            update(Webhook)
            .where(hook, Webhook.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason[:255], updated_at=now)
        )
        directory.forget(due.app_id)
