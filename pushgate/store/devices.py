"""Queries on devices: race-safe registration, keyset pages, topics (sets of them in
`device_topics`), soft and hard delete.

Every query filters on `app_id`; a device of another app is indistinguishable from a missing one.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import ids
from pushgate.domain.subscription import Platform, PushAddress
from pushgate.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from pushgate.store import db, device_topics, rollups, webhooks
from pushgate.store.tables import Device, DeviceTopic, utcnow

MAX_TOPICS = 100
DELETED = "deleted"

# The device attributes a client may set besides its address and topics.
PROFILE_FIELDS = frozenset({"user_id", "locale", "timezone", "app_version", "meta", "enabled"})
_COLUMN_OF = {"meta": "metadata"}


class Status(StrEnum):
    """What a device is to a sender: `deactivated` (deleted or invalidated by a provider) wins
    over `disabled` (switched off by the client), which wins over `active`."""

    ACTIVE = "active"
    DISABLED = "disabled"
    DEACTIVATED = "deactivated"


VISIBLE = frozenset({Status.ACTIVE, Status.DISABLED})


def status_of(device: Device) -> Status:
    if device.invalidated_at is not None:
        return Status.DEACTIVATED
    return Status.ACTIVE if device.enabled else Status.DISABLED


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device row and its topics, sorted."""

    device: Device
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Registration:
    record: DeviceRecord
    created: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One keyset page; `next_after` is the id to continue after, None on the last page."""

    items: list[DeviceRecord]
    next_after: uuid.UUID | None


def device_not_found() -> NotFoundError:
    return NotFoundError("no such device", code="device_not_found")


def user_locked() -> PermissionDeniedError:
    return PermissionDeniedError(
        "this key may not change or clear the user_id of a device that has one"
        " (a send or admin key may)",
        code="device_user_locked",
    )


async def upsert(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    address: PushAddress,
    profile: Mapping[str, Any] | None = None,
    topics: Sequence[str] | None = None,
    keep_user: bool = False,
    now: datetime | None = None,
) -> Registration:
    """Register a device, or refresh the one with the same (app, platform, token).

    A re-registration changes only the `profile` fields given (and the Web Push keys), refreshes
    `last_seen_at` and `updated_at`, and revives a deleted or provider-invalidated device. `topics`,
    when given, replace the device's set. One `INSERT ... ON CONFLICT`, so concurrent registrations
    of one token meet in the database instead of failing on the unique constraint.

    With `keep_user` a device that has a user keeps it; one without may be given one.

    Raises: PermissionDeniedError `device_user_locked`, with `keep_user`, when `profile` asks
    for another user than the device has (the caller must then roll back).
    """
    now = now or utcnow()
    profile = _checked(profile or {})
    new_id = ids.new_id()
    insert = db.insert_for(session)
    values: dict[str, Any] = {
        "id": new_id,
        "app_id": app_id,
        "platform": str(address.platform),
        "token": address.token,
        "p256dh": address.p256dh,
        "auth": address.auth,
        "expires_at": address.expires_at,
        "enabled": True,
        "meta": {},
        "created_at": now,
        "updated_at": now,
        "last_seen_at": now,
        "expiring_at": None,
    }
    statement = insert(Device).values(values | profile)
    refreshed = ("p256dh", "auth", "expires_at", *(_COLUMN_OF.get(k, k) for k in profile))
    changes: dict[str, Any] = {name: statement.excluded[name] for name in refreshed}
    if keep_user and "user_id" in changes:
        # Decided in the statement, so two registrations racing cannot both move the device.
        changes["user_id"] = func.coalesce(Device.__table__.c.user_id, changes["user_id"])
    # A deactivated device registered again is live again: its `updated_at` comes back one
    # microsecond early, which tells the live-device counter so in the same statement (the
    # RETURNING clause sees only the new row).
    revived_at = now - timedelta(microseconds=1)
    table = cast(Table, Device.__table__)
    changes |= {
        "updated_at": case((table.c.invalidated_at.is_(None), now), else_=revived_at),
        "last_seen_at": now,
        # Seen again: an announced expiry (store/device_expiry.py) is off.
        "expiring_at": None,
        "invalidated_at": None,
        "invalidation_reason": None,
    }
    statement = statement.on_conflict_do_update(
        index_elements=["app_id", "platform", "token"], set_=changes
    )
    result = await session.execute(
        statement.returning(Device), execution_options={"populate_existing": True}
    )
    device = result.scalar_one()
    if keep_user and "user_id" in profile and device.user_id != profile["user_id"]:
        raise user_locked()
    if topics is not None:
        await device_topics.replace(session, app_id=app_id, device_id=device.id, topics=topics)
        kept = tuple(sorted(set(topics)))
    else:
        kept = await device_topics.of(session, app_id=app_id, device_id=device.id)
    created = device.id == new_id
    if created:  # announced in the registration's transaction, so never for a rolled-back one
        await webhooks.device_registered(session=session, device=device, now=now)
        await rollups.add_device(
            session=session, app_id=app_id, platform=device.platform, at=now, what="new"
        )
    elif device.updated_at == revived_at:
        await rollups.add_device(
            session=session, app_id=app_id, platform=device.platform, at=now, what="revived"
        )
    return Registration(DeviceRecord(device, kept), created=created)


async def get(*, session: AsyncSession, app_id: uuid.UUID, device_id: uuid.UUID) -> DeviceRecord:
    """Raises: NotFoundError `device_not_found`, also for another app's device."""
    device = await _row(session, app_id=app_id, device_id=device_id)
    return DeviceRecord(device, await device_topics.of(session, app_id=app_id, device_id=device_id))


async def by_token(*, session: AsyncSession, app_id: uuid.UUID, token: str) -> list[Device]:
    """The app's FCM, APNs or plugin-provider devices whose token is `token` (APNs tokens in
    any case), deactivated ones too: a token says nothing of its platform, so one per platform
    at most. Web Push devices are addressed by endpoint, never found here."""
    query = select(Device).where(
        Device.app_id == app_id,
        Device.platform != Platform.WEBPUSH.value,
        Device.token.in_({token, token.lower()}),
    )
    rows = (await session.execute(query.order_by(Device.id))).scalars()
    return [d for d in rows if holds(d, token)]


async def list_page(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    user_id: str | None = None,
    platform: str | None = None,
    topic: str | None = None,
    enabled: bool | None = None,
    statuses: Collection[Status] = VISIBLE,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> Page:
    """One page of an app's devices in id (creation) order, after the device id `after`.

    With a topic the scan walks `ix_device_topics_app_topic_device` in device-id order; with a
    user, `ix_devices_app_user`. Fan-out streams an audience by calling this page by page.
    """
    if topic is not None:
        key = DeviceTopic.device_id
        query = (
            select(Device)
            .join(DeviceTopic, DeviceTopic.device_id == Device.id)
            .where(DeviceTopic.app_id == app_id, DeviceTopic.topic == topic)
        )
    else:
        key = Device.id
        query = select(Device)
    query = query.where(Device.app_id == app_id, _status_clause(statuses))
    if user_id is not None:
        query = query.where(Device.user_id == user_id)
    if platform is not None:
        query = query.where(Device.platform == str(platform))
    if enabled is not None:
        query = query.where(Device.enabled.is_(enabled))
    if after is not None:
        query = query.where(key > after)
    rows = list((await session.execute(query.order_by(key).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    topics = await device_topics.of_many(session, app_id=app_id, device_ids=[d.id for d in rows])
    items = [DeviceRecord(d, topics.get(d.id, ())) for d in rows]
    return Page(items=items, next_after=rows[-1].id if more else None)


async def update(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: uuid.UUID,
    profile: Mapping[str, Any] | None = None,
    topics: Sequence[str] | None = None,
    held_token: str | None = None,
    keep_user: bool = False,
    now: datetime | None = None,
) -> DeviceRecord:
    """Change the given profile fields and, when given, replace the topics. Does not revive a
    deactivated device: only the client re-registering its token shows the token still works.
    With `keep_user` a device that has a user keeps it; one without may be given one.

    Raises:
        NotFoundError: `device_not_found`, also when `held_token` is not the device's.
        PermissionDeniedError: `device_user_locked`, with `keep_user`, when `profile` asks for
            another user than the device has.
    """
    device = await _row(session, app_id=app_id, device_id=device_id, held_token=held_token)
    profile = _checked(profile or {})
    if keep_user and "user_id" in profile and profile["user_id"] != device.user_id:
        await _claim_user(session, device=device, user_id=profile["user_id"])
    for name, value in profile.items():
        setattr(device, name, value)
    device.updated_at = now or utcnow()
    await session.flush()
    if topics is None:
        return DeviceRecord(
            device, await device_topics.of(session, app_id=app_id, device_id=device_id)
        )
    await device_topics.replace(session, app_id=app_id, device_id=device_id, topics=topics)
    return DeviceRecord(device, tuple(sorted(set(topics))))


async def add_topics(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: uuid.UUID,
    topics: Sequence[str],
    held_token: str | None = None,
    now: datetime | None = None,
) -> DeviceRecord:
    """Subscribe a device to topics; topics it already has are left alone.

    Raises:
        NotFoundError: `device_not_found`, also when `held_token` is not the device's.
        InvalidInputError: `too_many_topics`, the device would have more than MAX_TOPICS.
    """
    device = await _row(session, app_id=app_id, device_id=device_id, held_token=held_token)
    existing = await device_topics.of(session, app_id=app_id, device_id=device_id)
    merged = set(existing) | set(topics)
    if len(merged) > MAX_TOPICS:
        raise InvalidInputError(
            f"a device may have at most {MAX_TOPICS} topics", field="topics", code="too_many_topics"
        )
    await device_topics.insert(session, app_id=app_id, device_id=device_id, topics=set(topics))
    device.updated_at = now or utcnow()
    await session.flush()
    return DeviceRecord(device, tuple(sorted(merged)))


async def remove_topic(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: uuid.UUID,
    topic: str,
    held_token: str | None = None,
    now: datetime | None = None,
) -> DeviceRecord:
    """Unsubscribe a device from a topic (nothing happens if it was not subscribed).

    Raises: NotFoundError `device_not_found`, also when `held_token` is not the device's.
    """
    device = await _row(session, app_id=app_id, device_id=device_id, held_token=held_token)
    await session.execute(
        delete(DeviceTopic).where(
            DeviceTopic.app_id == app_id,
            DeviceTopic.device_id == device_id,
            DeviceTopic.topic == topic,
        )
    )
    device.updated_at = now or utcnow()
    await session.flush()
    return DeviceRecord(device, await device_topics.of(session, app_id=app_id, device_id=device_id))


async def deactivate(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    device_id: uuid.UUID,
    reason: str = DELETED,
    held_token: str | None = None,
    now: datetime | None = None,
) -> Device:
    """Soft-delete: the row stays for history and analytics, senders skip it. A device already
    deactivated keeps its first time and reason, which say why it really went away.

    Raises: NotFoundError `device_not_found`, also when `held_token` is not the device's.
    """
    device = await _row(session, app_id=app_id, device_id=device_id, held_token=held_token)
    if device.invalidated_at is None:
        now = now or utcnow()
        device.invalidated_at = now
        device.invalidation_reason = reason
        device.updated_at = now
        await session.flush()
        what = "deleted" if reason == DELETED else rollups.invalidation_kind(reason)
        await rollups.add_device(
            session=session, app_id=app_id, platform=device.platform, at=now, what=what
        )
    return device


@dataclass(frozen=True, slots=True)
class Invalidated:
    """A device `invalidate_many` deactivated (for the analytics rollups)."""

    app_id: uuid.UUID
    platform: str
    reason: str


async def invalidate_many(
    *, session: AsyncSession, reasons: Mapping[uuid.UUID, str], now: datetime
) -> list[Invalidated]:
    """Deactivate devices a provider declared gone (`token invalid`): one UPDATE per distinct
    reason (a batch mostly has one). Devices already deactivated keep their first time and
    reason, and are not returned; the ones deactivated now are."""
    by_reason: dict[str, list[uuid.UUID]] = {}
    for device_id, reason in reasons.items():
        by_reason.setdefault(reason[:255], []).append(device_id)
    table = cast(Table, Device.__table__)
    done: list[Invalidated] = []
    for reason, device_ids in sorted(by_reason.items()):
        statement = (
            sql_update(table)
            .where(db.one_of(session, table.c.id, device_ids), table.c.invalidated_at.is_(None))
            .values(invalidated_at=now, invalidation_reason=reason, updated_at=now)
            .returning(table.c.app_id, table.c.platform)
        )
        done.extend(
            Invalidated(app_id, platform, reason)
            for app_id, platform in await session.execute(statement)
        )
    return done


async def last_seen_many(
    *, session: AsyncSession, device_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """When each device last registered (`last_seen_at`), in one query. For the APNs rule
    that a 410 older than the latest registration does not deactivate the device. Callers
    pass ids from their own app's deliveries."""
    if not device_ids:
        return {}
    query = select(Device.id, Device.last_seen_at).where(
        db.one_of(session, Device.id, list(device_ids))
    )
    return {row.id: row.last_seen_at for row in await session.execute(query)}


async def purge(*, session: AsyncSession, app_id: uuid.UUID, device_id: uuid.UUID) -> None:
    """Delete a device and its topics for good.

    Raises: NotFoundError `device_not_found`.
    """
    await session.execute(
        delete(DeviceTopic).where(DeviceTopic.app_id == app_id, DeviceTopic.device_id == device_id)
    )
    gone = (
        await session.execute(
            delete(Device)
            .where(Device.app_id == app_id, Device.id == device_id)
            .returning(Device.platform, Device.invalidated_at)
        )
    ).first()
    if gone is None:
        raise device_not_found()
    if gone.invalidated_at is None:  # a live device goes: deleted today
        await rollups.add_device(
            session=session, app_id=app_id, platform=gone.platform, at=utcnow(), what="deleted"
        )


# --- helpers ---------------------------------------------------------------------------------


def _checked(profile: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(profile) - PROFILE_FIELDS
    if unknown:
        raise ValueError(f"not device profile fields: {sorted(unknown)}")
    return dict(profile)


def _status_clause(statuses: Collection[Status]) -> ColumnElement[bool]:
    wanted = set(statuses)
    if wanted >= set(Status):
        return true()
    live = Device.invalidated_at.is_(None)
    clauses: list[ColumnElement[bool]] = []
    if Status.DEACTIVATED in wanted:
        clauses.append(Device.invalidated_at.is_not(None))
    if {Status.ACTIVE, Status.DISABLED} <= wanted:
        clauses.append(live)
    elif Status.ACTIVE in wanted:
        clauses.append(and_(live, Device.enabled.is_(True)))
    elif Status.DISABLED in wanted:
        clauses.append(and_(live, Device.enabled.is_(False)))
    return or_(*clauses) if clauses else false()


async def _row(
    session: AsyncSession,
    *,
    app_id: uuid.UUID,
    device_id: uuid.UUID,
    held_token: str | None = None,
) -> Device:
    """The device; with `held_token`, only if that is its token or endpoint. A wrong token
    answers like a missing device, so it tells nothing about the ids of other devices."""
    query = select(Device).where(Device.app_id == app_id, Device.id == device_id)
    device = (await session.execute(query)).scalar_one_or_none()
    if device is None or (held_token is not None and not holds(device, held_token)):
        raise device_not_found()
    return device


def holds(device: Device, token: str) -> bool:
    """Whether `token` is the device's FCM/APNs token or Web Push endpoint (APNs in any case)."""
    if device.platform == Platform.APNS.value:
        token = token.lower()
    return hmac.compare_digest(token.encode(), device.token.encode())


async def _claim_user(session: AsyncSession, *, device: Device, user_id: str | None) -> None:
    """Give a device without a user its first one. The `user_id IS NULL` condition is checked
    by the UPDATE itself, so of two requests racing to give it different users one fails."""
    if device.user_id is not None:
        raise user_locked()
    claimed = await session.execute(
        sql_update(Device)
        .where(Device.id == device.id, Device.user_id.is_(None))
        .values(user_id=user_id)
        .returning(Device.id)
    )
    if claimed.scalar_one_or_none() is None:
        raise user_locked()
