"""The scheduler and sweeper: the database says what is due or unfinished, this loop hands it
to the broker. Scheduled sends fire from here (any send time, surviving restarts), and work
whose job was lost (a crash between commit and publish, a dead worker) is published again."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from pushgate.broker import base as broker_base
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.store import deliveries, notifications
from pushgate.store.tables import utcnow

log = get_logger(__name__)

JOB_SIZE = 250


async def sweep_once(
    runtime: Runtime, *, now: datetime | None = None, job_size: int = JOB_SIZE
) -> tuple[int, int]:
    """Publish what is due; returns (notifications, deliveries) published.

    The rows are taken back (touched, so the next sweep waits a grace period before asking
    again) and committed before publishing. If the publish then fails, nothing is lost: the
    rows still say the work is unfinished, and a later sweep publishes them again.
    """
    now = now or utcnow()
    async with runtime.sessions() as session:
        due = await notifications.release_due(session=session, now=now)
        stale = await deliveries.reclaim_stale(session=session, now=now)
        await session.commit()
    if due:
        await runtime.broker.publish(broker_base.DISPATCH, [jobs.dispatch_job(i) for i in due])
    if stale:
        chunks = [stale[i : i + job_size] for i in range(0, len(stale), job_size)]
        await runtime.broker.publish(broker_base.DELIVER, [jobs.deliver_job(c) for c in chunks])
        log.info("republished stale deliveries", count=len(stale))
    return len(due), len(stale)


async def run(
    runtime: Runtime, *, interval: float = 1.0, stop: asyncio.Event, job_size: int = JOB_SIZE
) -> None:
    """Sweep every `interval` seconds until `stop` is set. Errors are logged, never fatal."""
    while not stop.is_set():
        try:
            await sweep_once(runtime, job_size=job_size)
        except Exception:
            log.exception("sweep failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
