"""A device's topic rows (`device_topics`): read one device's or a page's, replace or add to a
device's set. The device queries (`store.devices`) call these inside their own transaction;
every query filters on `app_id`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.store import db
from pushgate.store.tables import DeviceTopic


async def of(session: AsyncSession, *, app_id: uuid.UUID, device_id: uuid.UUID) -> tuple[str, ...]:
    query = (
        select(DeviceTopic.topic)
        .where(DeviceTopic.app_id == app_id, DeviceTopic.device_id == device_id)
        .order_by(DeviceTopic.topic)
    )
    return tuple((await session.execute(query)).scalars())


async def of_many(
    session: AsyncSession, *, app_id: uuid.UUID, device_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, ...]]:
    if not device_ids:
        return {}
    query = (
        select(DeviceTopic.device_id, DeviceTopic.topic)
        .where(DeviceTopic.app_id == app_id, DeviceTopic.device_id.in_(device_ids))
        .order_by(DeviceTopic.device_id, DeviceTopic.topic)
    )
    found: dict[uuid.UUID, list[str]] = {}
    for device_id, topic in await session.execute(query):
        found.setdefault(device_id, []).append(topic)
    return {k: tuple(v) for k, v in found.items()}


async def replace(
    session: AsyncSession, *, app_id: uuid.UUID, device_id: uuid.UUID, topics: Sequence[str]
) -> None:
    wanted = set(topics)
    stale = delete(DeviceTopic).where(
        DeviceTopic.app_id == app_id, DeviceTopic.device_id == device_id
    )
    if wanted:
        stale = stale.where(DeviceTopic.topic.not_in(wanted))
    await session.execute(stale)
    await insert(session, app_id=app_id, device_id=device_id, topics=wanted)


async def insert(
    session: AsyncSession, *, app_id: uuid.UUID, device_id: uuid.UUID, topics: Iterable[str]
) -> None:
    rows = [{"device_id": device_id, "topic": t, "app_id": app_id} for t in sorted(topics)]
    if rows:
        statement = db.insert_for(session)(DeviceTopic).values(rows).on_conflict_do_nothing()
        await session.execute(statement)
