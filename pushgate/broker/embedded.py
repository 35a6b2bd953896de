"""EmbeddedBroker: the Broker port on the `jobs` table of our own database (SQLite or PostgreSQL).

A job is claimable when `queue` matches and `run_at` has passed. Claiming moves `run_at` to the
end of a lease and stamps the consumer's token, in one statement: `UPDATE ... WHERE id IN
(SELECT ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING ...`. A live consumer renews the leases of
the jobs it holds; a dead one stops renewing, so its jobs become claimable again when their leases
run out. Every settlement is checked against the token, so a consumer that lost a lease cannot
delete a job another consumer now holds. Consumers poll with a short interval, and are woken at
once when their own broker publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pushgate.broker.base import (
    FAILED,
    QUEUES,
    WORK_QUEUES,
    Broker,
    Consumer,
    DeadLetter,
    Handler,
    IncomingMessage,
    LetterInfo,
    Settlement,
    check_headers,
    check_queue,
    public_headers,
)
from pushgate.logs import get_logger
from pushgate.store import db, tables

JOBS = cast(Table, tables.Job.__table__)
# Rows per INSERT batch and ids per IN list: far below SQLite's 32,766 variables per statement.
CHUNK = 1000
ERROR_PAUSE = 1.0
log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class EmbeddedBroker(Broker):
    """Jobs in the application database: no other service needed, several processes may consume.

    Args:
        engine: the application's engine (the broker does not dispose it).
        lease: seconds a claimed job stays invisible to other consumers without renewal.
        poll_interval: seconds between looks at an idle queue.
        clock: the current UTC time (tests may shift it).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: float = 30.0,
        poll_interval: float = 0.1,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if lease <= 0 or poll_interval <= 0:
            raise ValueError("lease and poll_interval must be positive")
        self._engine = engine
        self._lease = timedelta(seconds=lease)
        self.poll_interval = poll_interval
        self._clock = clock
        self._sqlite = not db.is_postgres(engine)
        self._consumers: set[EmbeddedConsumer] = set()

    @property
    def lease_seconds(self) -> float:
        return self._lease.total_seconds()

    async def start(self) -> None:
        await self.ping()

    async def close(self) -> None:
        await asyncio.gather(*(c.stop() for c in list(self._consumers)))

    async def ping(self) -> None:
        # Reading the table also proves the migrations ran.
        async with self._engine.connect() as connection:
            await connection.execute(select(JOBS.c.id).limit(1))

    async def publish(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        check_queue(queue)
        await self._insert(queue, bodies, delay=delay, headers=check_headers(headers))
        if delay <= 0:
            self._wake(queue)

    async def dead_letter(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        reason: str,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        check_queue(queue)
        await self._insert(
            FAILED,
            bodies,
            headers=check_headers(headers),
            origin=queue,
            reason=reason,
            attempts=attempts,
        )

    async def _insert(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        headers: dict[str, str],
        delay: float = 0.0,
        origin: str | None = None,
        reason: str | None = None,
        attempts: int = 1,
    ) -> None:
        if not bodies:
            return
        now = self._clock()
        run_at = now + timedelta(seconds=max(delay, 0.0))
        common = {
            "queue": queue,
            "headers": headers or None,
            "attempts": attempts,
            "claims": 0,
            "run_at": run_at,
            "origin": origin,
            "reason": reason,
            "created_at": now,
        }
        async with self._engine.begin() as connection:
            for start in range(0, len(bodies), CHUNK):
                rows = [{**common, "body": b} for b in bodies[start : start + CHUNK]]
                await connection.execute(insert(JOBS), rows)

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 200,
        max_batch: int = 100,
        max_wait: float = 0.05,
    ) -> Consumer:
        check_queue(queue, QUEUES)
        if prefetch < 1 or max_batch < 1:
            raise ValueError("prefetch and max_batch must be >= 1")
        consumer = EmbeddedConsumer(self, queue, handler, prefetch=prefetch, max_batch=max_batch)
        self._consumers.add(consumer)
        consumer.start()
        return consumer

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        query = (
            select(JOBS)
            .where(JOBS.c.queue == FAILED)
            .order_by(JOBS.c.run_at, JOBS.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            DeadLetter(
                id=str(row.id),
                queue=row.origin or "",
                body=row.body,
                headers=public_headers(row.headers),
                attempts=row.attempts,
                reason=row.reason or "",
                failed_at=row.run_at,
            )
            for row in rows
        ]

    async def requeue_dead_letters(self, ids: Collection[str] | None = None) -> int:
        statement = (
            update(JOBS)
            .where(JOBS.c.queue == FAILED, JOBS.c.origin.is_not(None))
            .values(
                queue=JOBS.c.origin,
                origin=None,
                reason=None,
                attempts=1,
                claims=0,
                claimed_by=None,
                run_at=self._clock(),
            )
        )
        moved = 0
        async with self._engine.begin() as connection:
            if ids is None:
                moved = (await connection.execute(statement)).rowcount
            else:
                numbers = [int(i) for i in ids if i.isdigit()]
                for start in range(0, len(numbers), CHUNK):
                    chunk = numbers[start : start + CHUNK]
                    result = await connection.execute(statement.where(JOBS.c.id.in_(chunk)))
                    moved += result.rowcount
        for queue in WORK_QUEUES:
            self._wake(queue)
        return moved

    async def depth(self, queue: str) -> int:
        check_queue(queue, QUEUES)
        query = (
            select(func.count())
            .select_from(JOBS)
            .where(JOBS.c.queue == queue, JOBS.c.run_at <= self._clock())
        )
        async with self._engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    # --- used by EmbeddedConsumer ----------------------------------------------------------

    def _wake(self, queue: str) -> None:
        for consumer in self._consumers:
            if consumer.queue == queue:
                consumer.wake()

    def _forget(self, consumer: EmbeddedConsumer) -> None:
        self._consumers.discard(consumer)

    async def _claim(self, queue: str, limit: int, token: str) -> Sequence[Row[Any]]:
        now = self._clock()
        ready = (
            select(JOBS.c.id)
            .where(JOBS.c.queue == queue, JOBS.c.run_at <= now)
            .order_by(JOBS.c.run_at)
            .limit(limit)
        )
        if self._sqlite:
            # Every UPDATE takes SQLite's single write lock, even when it matches nothing, so
            # look first with a plain read (its own transaction: a read that later upgrades
            # to a write can fail at once with SQLITE_BUSY instead of waiting).
            async with self._engine.connect() as connection:
                if (await connection.execute(ready.limit(1))).first() is None:
                    return []
        else:
            # Rows another consumer is claiming right now are skipped, not waited for.
            ready = ready.with_for_update(skip_locked=True)
        claim = (
            update(JOBS)
            .where(JOBS.c.id.in_(ready))
            .values(run_at=now + self._lease, claimed_by=token, claims=JOBS.c.claims + 1)
            .returning(
                JOBS.c.id,
                JOBS.c.body,
                JOBS.c.headers,
                JOBS.c.attempts,
                JOBS.c.claims,
                JOBS.c.origin,
                JOBS.c.reason,
            )
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(claim)).all()

    async def _renew(self, ids: Collection[int], token: str) -> None:
        statement = update(JOBS).values(run_at=self._clock() + self._lease)
        async with self._engine.begin() as connection:
            for chunk in _chunks(list(ids)):
                await connection.execute(
                    statement.where(JOBS.c.id.in_(chunk), JOBS.c.claimed_by == token)
                )

    async def _settle(self, messages: Sequence[IncomingMessage], token: str) -> None:
        """Apply a batch's decisions in one transaction; unsettled messages are released."""
        now = self._clock()
        acked: list[int] = []
        released: list[int] = []
        retried: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for message in messages:
            job_id = cast(int, message.receipt)
            if message.settlement is Settlement.ACK:
                acked.append(job_id)
            elif message.settlement is Settlement.RETRY:
                run_at = now + timedelta(seconds=message.delay)
                retried.append({"b_id": job_id, "b_run_at": run_at, "b_reason": message.reason})
            elif message.settlement is Settlement.DEAD_LETTER:
                dead.append({"b_id": job_id, "b_reason": message.reason})
            else:
                released.append(job_id)
        mine = JOBS.c.claimed_by == token
        async with self._engine.begin() as connection:
            for chunk in _chunks(acked):
                await connection.execute(delete(JOBS).where(JOBS.c.id.in_(chunk), mine))
            for chunk in _chunks(released):
                await connection.execute(
                    update(JOBS)
                    .where(JOBS.c.id.in_(chunk), mine)
                    .values(run_at=now, claimed_by=None)
                )
            await _execute_many(
                connection,
                update(JOBS)
                .where(JOBS.c.id == bindparam("b_id"), mine)
                .values(
                    run_at=bindparam("b_run_at"),
                    reason=bindparam("b_reason"),
                    attempts=JOBS.c.attempts + 1,
                    claims=0,
                    claimed_by=None,
                ),
                retried,
            )
            await _execute_many(
                connection,
                update(JOBS)
                .where(JOBS.c.id == bindparam("b_id"), mine)
                .values(
                    queue=FAILED,
                    origin=JOBS.c.queue,
                    reason=bindparam("b_reason"),
                    run_at=now,
                    # Its first handout from `failed` is not a redelivery.
                    claims=0,
                    claimed_by=None,
                ),
                dead,
            )
        if released or any(m.delay <= 0 for m in messages if m.settlement is Settlement.RETRY):
            self._wake(messages[0].queue)


async def _execute_many(connection: AsyncConnection, statement: Any, rows: list[Any]) -> None:
    if rows:
        await connection.execute(statement, rows)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


class EmbeddedConsumer(Consumer):
    """One claim loop on one queue, a lease-renewal loop, and the handler tasks in flight."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        queue: str,
        handler: Handler,
        *,
        prefetch: int,
        max_batch: int,
    ) -> None:
        self._broker = broker
        self._queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._max_batch = max_batch
        # Unique per consumer, so a settlement never touches a job another consumer holds.
        self._token = uuid.uuid4().hex
        self._in_flight: set[int] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._event = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queue(self) -> str:
        return self._queue

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name=f"embedded-consume-{self._queue}"),
            asyncio.create_task(self._renew_loop(), name=f"embedded-renew-{self._queue}"),
        ]

    def wake(self) -> None:
        self._event.set()

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._event.set()
        claim_loop, renew_loop = self._tasks
        await claim_loop
        # Leases must stay renewed until the last handler has settled.
        while self._handlers:
            await asyncio.gather(*list(self._handlers), return_exceptions=True)
        renew_loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew_loop
        self._broker._forget(self)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            room = min(self._prefetch - len(self._in_flight), self._max_batch)
            # Cleared before looking, so a publish during the claim still wakes the wait below.
            self._event.clear()
            if room <= 0:
                await self._event.wait()
                continue
            try:
                rows = await self._broker._claim(self._queue, room, self._token)
            except Exception:
                log.exception("embedded broker: claim failed", queue=self._queue)
                # The database is unwell: look again in a while, not at the polling rate.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), ERROR_PAUSE)
                continue
            if rows:
                self._hand_over(rows)
            if len(rows) < room:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), self._broker.poll_interval)

    def _hand_over(self, rows: Sequence[Row[Any]]) -> None:
        messages = [
            IncomingMessage(
                id=str(row.id),
                queue=self._queue,
                body=row.body,
                headers=public_headers(row.headers),
                attempts=row.attempts,
                redelivered=row.claims > 1,
                receipt=row.id,
                # The time it failed is not kept (`run_at` is the lease now): the recorder
                # takes it as the time it reads the letter, a moment later.
                letter=LetterInfo(row.origin or "", row.reason or "", None)
                if self._queue == FAILED
                else None,
            )
            for row in rows
        ]
        self._in_flight.update(row.id for row in rows)
        task = asyncio.create_task(self._handle(messages))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, messages: list[IncomingMessage]) -> None:
        try:
            await self._handler(messages)
        except Exception:
            log.exception("handler failed; unsettled messages will be redelivered")
        try:
            unsettled = sum(1 for m in messages if not m.settled)
            if unsettled:
                log.warning("releasing unsettled messages", queue=self._queue, count=unsettled)
            await self._broker._settle(messages, self._token)
        except Exception:
            # The leases stop being renewed below, so the jobs come back when they run out.
            log.exception("embedded broker: settling failed", queue=self._queue)
        finally:
            self._in_flight.difference_update(cast(int, m.receipt) for m in messages)
            self._event.set()

    async def _renew_loop(self) -> None:
        interval = self._broker.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if not self._in_flight:
                continue
            try:
                await self._broker._renew(set(self._in_flight), self._token)
            except Exception:
                log.exception("embedded broker: lease renewal failed", queue=self._queue)
