"""Dead letters as operators handle them: the worker's recorder moves every letter out of the
broker's `failed` queue into `dead_letters` (per app, filterable), and replay and purge work
on those rows. The API and `pushgate dlq` both call `replay` and `purge` here.

Why a table and not the queue itself: RabbitMQ can neither filter nor peek cheaply (a look is
a fetch of every message before it), and letters must be listed per app; the embedded broker
would need the same per-app columns. The broker stays transport: a letter is in `failed` only
for the moment between being dead-lettered and being recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.bootstrap import DEFAULT_APP
from pushgate.broker import base as broker_base
from pushgate.domain.dead_letters import LetterFilter
from pushgate.errors import NotFoundError
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import letters
from pushgate.store import apps
from pushgate.store import dead_letters as stored
from pushgate.store.tables import DeadLetterRecord, Notification, utcnow

log = get_logger(__name__)

# After a batch could not be recorded (the database is unwell), before its letters go back.
RETRY_PAUSE = 1.0
# Letters per replay transaction: one UPDATE, then one publish per queue.
REPLAY_CHUNK = 500


class Recorder:
    """The handler of the `failed` queue: each letter becomes a `dead_letters` row, then is
    acknowledged. A letter is recorded once: one handed out again (the broker marks it
    redelivered: its ack was lost) is skipped when its message id is already recorded. Ids
    are looked up only then, not made a unique key, because they are not unique enough:
    another service publishing to push.queue may reuse them, and SQLite may give a deleted
    job's id to the next one."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._apps: dict[str, uuid.UUID | None] = {}

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        try:
            async with self.runtime.sessions() as session:
                again = [m.id for m in batch if m.redelivered and m.id]
                seen = await stored.recorded(session=session, message_ids=again)
                rows = [await self._row(session, m) for m in batch if m.id not in seen]
                await stored.add(session=session, rows=rows)
                await session.commit()
        except Exception:
            # Left unsettled, the letters go back to `failed`; the pause keeps a database
            # outage from turning into a tight loop of redeliveries.
            log.exception("cannot record dead letters; they stay in the queue", count=len(batch))
            await asyncio.sleep(RETRY_PAUSE)
            return
        for message in batch:
            message.ack()

    async def _row(
        self, session: AsyncSession, message: broker_base.IncomingMessage
    ) -> dict[str, Any]:
        info = message.letter or broker_base.LetterInfo("", "", None)
        said = letters.describe(info.origin, message.body)
        return {
            "app_id": await self._app_of(session, info.origin, said),
            "message_id": message.id[:255],
            "queue": info.origin[:32],
            "reason": info.reason,
            "reason_code": said.outcome or letters.reason_code(info.reason),
            "provider": said.provider,
            "notification_id": said.notification_id,
            "delivery_id": said.delivery_id,
            "attempts": message.attempts,
            "failed_at": info.failed_at or utcnow(),
            "body": message.body,
            "headers": dict(message.headers) or None,
            "last_status_code": said.status_code,
            "last_error": said.error,
            "replays": 0,
        }

    async def _app_of(
        self, session: AsyncSession, origin: str, said: letters.Described
    ) -> uuid.UUID | None:
        """The app the letter names (or whose notification it is about), else the default
        app: a letter nobody can place is the installation's to see."""
        if said.app_ref is not None:
            found = await self._app_named(session, said.app_ref)
            if found is not None:
                return found
        if said.notification_id is not None and origin == broker_base.DISPATCH:
            owner = await session.scalar(
                select(Notification.app_id).where(Notification.id == said.notification_id)
            )
            if owner is not None:
                return owner
        return await self._app_named(session, DEFAULT_APP)

    async def _app_named(self, session: AsyncSession, ref: str) -> uuid.UUID | None:
        if ref in self._apps:
            return self._apps[ref]
        try:
            row = await apps.get(session=session, app_id=uuid.UUID(ref))
        except ValueError:
            try:
                row = await apps.get_by_name(session=session, name=ref)
            except NotFoundError:
                return None  # not cached: the app may be created later
        except NotFoundError:
            return None
        self._apps[ref] = row.id
        return row.id


async def replay(
    runtime: Runtime,
    *,
    app_id: uuid.UUID | None,
    ids: Collection[uuid.UUID] | None = None,
    chosen: LetterFilter | None = None,
) -> int:
    """Put letters back on their queue: those with `ids` (again, if replayed before), or every
    one `chosen` not yet replayed. Returns how many. A failed delivery's letter goes back to
    `deliver` as it is, where the deliverer reopens the delivery (`pending`, attempts from
    zero, its last answer kept until the new one)."""
    count = 0
    if ids is not None:
        wanted = list(ids)
        for start in range(0, len(wanted), REPLAY_CHUNK):
            part = wanted[start : start + REPLAY_CHUNK]
            count += await _replay_some(runtime, app_id=app_id, ids=part, chosen=None)
        return count
    # Letters that fail again while this runs are new rows: bounded by now, they are not
    # taken in the same replay (which could then never end).
    started = utcnow()
    chosen = chosen or LetterFilter()
    until = started if chosen.until is None else min(chosen.until, started)
    bounded = LetterFilter(
        reason=chosen.reason,
        provider=chosen.provider,
        queue=chosen.queue,
        since=chosen.since,
        until=until,
    )
    while moved := await _replay_some(runtime, app_id=app_id, ids=None, chosen=bounded):
        count += moved
    return count


async def _replay_some(
    runtime: Runtime,
    *,
    app_id: uuid.UUID | None,
    ids: list[uuid.UUID] | None,
    chosen: LetterFilter | None,
) -> int:
    # Marked and committed before the publish, not published inside the transaction: on
    # SQLite the embedded broker's publish needs the write lock this transaction would hold.
    # Marking first also keeps two replays running at once from publishing a letter twice.
    async with runtime.sessions() as session:
        rows = await stored.take(
            session=session,
            app_id=app_id,
            ids=ids,
            chosen=chosen,
            queues=broker_base.WORK_QUEUES,
            now=utcnow(),
            limit=REPLAY_CHUNK,
        )
        await session.commit()
    groups: dict[tuple[str, bytes], list[DeadLetterRecord]] = {}
    for row in rows:
        headers = orjson.dumps(row.headers or {}, option=orjson.OPT_SORT_KEYS)
        groups.setdefault((row.queue, headers), []).append(row)
    for (queue, headers), group in groups.items():
        try:
            await runtime.broker.publish(
                queue, [row.body for row in group], headers=orjson.loads(headers) or None
            )
        except Exception:
            # Not on the queue after all: take the marks back, then fail the replay.
            async with runtime.sessions() as session:
                await stored.unmark(session=session, ids=[row.id for row in group])
                await session.commit()
            raise
    return len(rows)


async def purge(runtime: Runtime, *, app_id: uuid.UUID | None, chosen: LetterFilter) -> int:
    """Delete the letters `chosen`, replayed or not; how many."""
    async with runtime.sessions() as session:
        count = await stored.purge(session=session, app_id=app_id, chosen=chosen)
        await session.commit()
    return count
