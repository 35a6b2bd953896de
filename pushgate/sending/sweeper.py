"""The scheduler and sweeper: the database says what is due or unfinished, this loop hands it
to the broker. Scheduled sends fire from here (any send time, surviving restarts), and work
whose job was lost (a crash between commit and publish, a dead worker) is published again.

Deliveries that dispatch planned for later (`deferred`: quiet hours, local-time delivery, a
throttled send) are released from here too, when their `next_attempt_at` comes: they become
`pending` and their deliver jobs are published, so a wait of hours holds no job in a queue.

Queued is not lost. A delivery waits `pending` while its job sits in the deliver queue, and
behind a broadcast of a million devices that is minutes, so "pending for a minute" cannot mean
"lost". Both brokers keep a published job until a consumer settles it (a dead consumer's jobs
come back), so a job is lost before it reaches the broker (the dispatcher, or this sweeper,
committed the deliveries and died before publishing) or, rarely, after a worker took it (a
queue purged by hand, a job settled without its claim). The sweeper therefore asks the
broker, not the clock, whether a delivery may still be queued (recording with every delivery
when its job was published would cost the hot path a write per delivery; this costs one
question per sweep). Every sweep it looks at how many deliver jobs are ready (`Broker.depth`,
the same question for RabbitMQ and the embedded queue), and with `grace` as the bound both on
the gap between a commit and its publish and on the gap between a worker receiving a job and
claiming its deliveries:

- at a moment E at least `grace` ago, the deliver queue had nothing ready: every job published
  before E had been handed to a worker, which has claimed its deliveries since;
- so a delivery still pending (or retrying and due) since before E - `grace` has no job.

While the queue never empties (a backlog), nothing pending is taken back however old, and once
it drains, what is left of a lost job's deliveries goes out within two `grace` periods. Leases
need no such care: a delivery `sending` past its claim's lease was claimed by a worker that
died, and is taken back as soon as the lease ends.

Every statement is bounded and short, so a claim never waits long on the sweeper: batches of a
few jobs' deliveries, each in its own transaction, on PostgreSQL with `lock_timeout` and
`statement_timeout` set for that transaction (a sweep that times out is logged and tried again
next time) and rows a claim holds skipped, not waited for. The sweeper's transactions name
themselves `pushgate-sweeper` in `pg_stat_activity`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.broker import base as broker_base
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.store import db, deliveries, notification_progress
from pushgate.store.tables import utcnow

log = get_logger(__name__)

JOB_SIZE = 250
# Deliveries taken back per transaction, and transactions per sweep at most: a crash's worth of
# lost deliveries goes out in steps of a few jobs, never one long statement.
BATCH = 1000
MAX_BATCHES = 20
# Per sweeper transaction on PostgreSQL. It never waits for a row (SKIP LOCKED), so a lock wait
# means something holds a table; a statement that runs long is a plan gone wrong. Either way
# give up and sweep again later rather than hold up the claims behind it.
LOCK_TIMEOUT_MS = 1000
STATEMENT_TIMEOUT_MS = 5000
APPLICATION_NAME = "pushgate-sweeper"


class Backlog:
    """When the deliver queue was seen with nothing ready: the sweeper's evidence that the
    deliveries made well before then are not queued (see the module docstring).

    Args:
        settle: how long before a sweep an observation must be to count, so that the jobs it
            saw handed out have been claimed (0: the observation of this sweep counts).
    """

    def __init__(self, *, settle: float) -> None:
        self.settle = timedelta(seconds=settle)
        self._empty: deque[datetime] = deque()

    def saw(self, at: datetime, ready: int) -> None:
        if ready == 0:
            self._empty.append(at)

    def drained(self, now: datetime) -> datetime | None:
        """The latest moment, at least `settle` before `now`, with nothing ready; None if the
        queue has not been seen empty since then."""
        latest = None
        while self._empty and self._empty[0] <= now - self.settle:
            latest = self._empty.popleft()
        if latest is not None:
            self._empty.appendleft(latest)
        return latest


async def _bound(session: AsyncSession) -> None:
    """Bound this transaction's statements and name it `pushgate-sweeper` (`db.bound`)."""
    await db.bound(
        session,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        name=APPLICATION_NAME,
    )


async def _overdue(
    runtime: Runtime, backlog: Backlog, now: datetime, grace: float
) -> datetime | None:
    """Before when a pending or retrying delivery has surely lost its job; None while the
    deliver queue may still hold it."""
    try:
        async with asyncio.timeout(STATEMENT_TIMEOUT_MS / 1000):
            ready = await runtime.broker.depth(broker_base.DELIVER)
    except Exception:
        log.warning("cannot read the deliver queue's depth; not taking back pending work")
        return None
    backlog.saw(now, ready)
    drained = backlog.drained(now)
    return None if drained is None else drained - timedelta(seconds=grace)


async def sweep_once(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    job_size: int = JOB_SIZE,
    grace: float | None = None,
    backlog: Backlog | None = None,
) -> tuple[int, int]:
    """Publish what is due; returns (notifications, deliveries) published.

    The rows are taken back (touched, so the next sweep waits a grace period before asking
    again) and committed before publishing. If the publish then fails, nothing is lost: the
    rows still say the work is unfinished, and a later sweep publishes them again.

    Args:
        grace: the bound on a commit-to-publish gap and on a job-to-claim gap (default: the
            `worker.stale_grace_seconds` setting).
        backlog: the deliver queue's observations of earlier sweeps (`run` keeps one); without
            it only this sweep's look at the queue counts.
    """
    now = now or utcnow()
    grace = runtime.settings.worker.stale_grace_seconds if grace is None else grace
    async with runtime.sessions() as session:
        await _bound(session)
        due = await notification_progress.release_due(session=session, now=now)
        await session.commit()
    if due:
        await runtime.broker.publish(broker_base.DISPATCH, [jobs.dispatch_job(i) for i in due])
    overdue = await _overdue(runtime, backlog or Backlog(settle=0), now, grace)
    republished = 0
    for _ in range(MAX_BATCHES):
        async with runtime.sessions() as session:
            await _bound(session)
            stale = await deliveries.reclaim_stale(
                session=session, now=now, overdue=overdue, limit=BATCH
            )
            await session.commit()
        if stale:
            chunks = [stale[i : i + job_size] for i in range(0, len(stale), job_size)]
            await runtime.broker.publish(broker_base.DELIVER, [jobs.deliver_job(c) for c in chunks])
            republished += len(stale)
        if len(stale) < BATCH:
            break
    if republished:
        log.info("published deferred and stale deliveries", count=republished)
    return len(due), republished


async def run(
    runtime: Runtime,
    *,
    interval: float = 1.0,
    stop: asyncio.Event,
    job_size: int = JOB_SIZE,
    grace: float | None = None,
) -> None:
    """Sweep every `interval` seconds until `stop` is set. Errors are logged, never fatal."""
    grace = runtime.settings.worker.stale_grace_seconds if grace is None else grace
    backlog = Backlog(settle=grace)
    while not stop.is_set():
        try:
            await sweep_once(runtime, job_size=job_size, grace=grace, backlog=backlog)
        except Exception:
            log.exception("sweep failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
