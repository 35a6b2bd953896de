"""The lifecycle job: keeps the data bounded and the device registry honest. Every
`retention.interval_seconds` one worker of the deployment (the one that takes the key-value
lock `lifecycle`) deactivates expired Web Push subscriptions and stale devices (announcing
`device.expiring` first: store/device_expiry.py), then deletes what is past its retention
(store/retention.py): idempotency keys, deliveries, notifications, dead letters, deactivated
devices. The analytics rollups are kept.

Each batch (`retention.batch_size` rows) is its own transaction, bounded on PostgreSQL by a
lock and a statement timeout, so the job never holds many locks or a long transaction beside
the delivery path; a run stops taking batches after half an interval, and what is left waits
for the next run. Every change re-checks its condition, so two runs at once (a lock lost to a
key-value outage) do the same work twice, never wrong work. Batched deletes rather than time
partitions: see store/retention.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.store import device_expiry, retention
from pushgate.store.tables import utcnow

log = get_logger(__name__)

LOCK_KEY = "lifecycle"

# One batch: given the session (by keyword), what it deleted or changed.
Batch = Callable[..., Awaitable[int]]


class Lifecycle:
    """One run of the job with the runtime's settings.

    Args:
        now: the time the run judges ages by (tests move it; default the wall clock).
        budget: seconds after which no new batch starts (None: until everything is done).
        stop: set, no new batch starts either (the worker is stopping).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        now: datetime | None = None,
        budget: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.runtime = runtime
        self.now = now or utcnow()
        self.limit = runtime.settings.retention.batch_size
        self._deadline = None if budget is None else time.monotonic() + budget
        self.counts: dict[str, int] = {}
        self._stop = stop

    def _time_left(self) -> bool:
        if self._stop is not None and self._stop.is_set():
            return False
        return self._deadline is None or time.monotonic() < self._deadline

    async def _batch(self, step: Batch) -> int:
        async with self.runtime.sessions() as session:
            await retention.bound(session)
            done = await step(session=session)
            await session.commit()
        return done

    async def _repeat(self, name: str, step: Batch) -> None:
        """Run `step` in batches until one does less than a full batch (or time is up)."""
        while self._time_left():
            done = await self._batch(step)
            self._add(name, done)
            if done < self.limit:
                return

    async def _walk(self, name: str, step: Callable[..., Awaitable[retention.Batch]]) -> None:
        """Run a keyset walk (`step(session=, after=)`) to its end (or until time is up)."""
        after: Any = None
        while self._time_left():
            async with self.runtime.sessions() as session:
                await retention.bound(session)
                batch = await step(session=session, after=after)
                await session.commit()
            self._add(name, batch.done)
            if batch.after is None:
                return
            after = batch.after

    def _add(self, name: str, done: int) -> None:
        if done:
            self.counts[name] = self.counts.get(name, 0) + done

    async def run(self) -> dict[str, int]:
        """Every step once; returns what each did (steps that did nothing are left out)."""
        await self.expire_devices()
        await self.delete_old()
        if self.counts:
            log.info("lifecycle run", **self.counts)
        return self.counts

    async def expire_devices(self) -> None:
        now, limit = self.now, self.limit
        await self._repeat(
            "subscriptions_expired",
            functools.partial(device_expiry.expire_subscriptions, now=now, limit=limit),
        )
        expiry = self.runtime.settings.devices
        if not expiry.stale_after_days:
            return
        grace = timedelta(days=expiry.stale_grace_days)
        unseen_since = now - timedelta(days=expiry.stale_after_days)
        await self._repeat(
            "devices_expiring",
            functools.partial(
                device_expiry.announce_unseen,
                now=now,
                unseen_since=unseen_since,
                grace=grace,
                limit=limit,
            ),
        )
        await self._repeat(
            "devices_stale",
            functools.partial(
                device_expiry.deactivate_unseen, now=now, announced_before=now - grace, limit=limit
            ),
        )

    async def delete_old(self) -> None:
        keep = self.runtime.settings.retention
        now, limit = self.now, self.limit
        # (what, kept how long, one batch); a zero age keeps that kind forever.
        walks = (
            (
                "idempotency_keys",
                timedelta(hours=keep.idempotency_hours),
                retention.clear_idempotency,
            ),
            ("deliveries", timedelta(days=keep.deliveries_days), retention.delete_deliveries),
        )
        for name, age, walk in walks:
            if age:
                await self._walk(name, functools.partial(walk, before=now - age, limit=limit))
        if keep.notifications_days:
            await self.delete_notifications(now - timedelta(days=keep.notifications_days))
        repeats = (
            ("dead_letters", timedelta(days=keep.dead_letters_days), retention.delete_dead_letters),
            ("devices_purged", timedelta(days=keep.deleted_devices_days), retention.purge_devices),
        )
        for name, age, batch in repeats:
            if age:
                await self._repeat(name, functools.partial(batch, before=now - age, limit=limit))

    async def delete_notifications(self, before: datetime) -> None:
        """Notifications final since before `before`: a batch of them is picked, their
        deliveries deleted a batch at a time, then they are (the cascade then has nothing to
        do, so no statement deletes a broadcast's million deliveries at once)."""
        after = None
        while self._time_left():
            async with self.runtime.sessions() as session:
                chosen, after = await retention.old_notifications(
                    session=session, before=before, after=after, limit=self.limit
                )
                await session.commit()
            if chosen:
                await self._delete_notifications(chosen, before)
            if after is None:
                return

    async def _delete_notifications(self, chosen: list[uuid.UUID], before: datetime) -> None:
        await self._repeat(
            "deliveries",
            functools.partial(
                retention.delete_deliveries_of, notification_ids=chosen, limit=self.limit
            ),
        )
        if self._time_left():
            delete = functools.partial(
                retention.delete_notifications, notification_ids=chosen, before=before
            )
            self._add("notifications", await self._batch(delete))


async def claim_run(runtime: Runtime, *, ttl: float) -> bool:
    """Whether this worker runs the job now: the one that stores the lock (kept `ttl`
    seconds, never released, so the deployment runs it once per interval whatever the number
    of workers). An unreachable key-value store skips this run rather than risk all at once."""
    try:
        return await runtime.kv.add(LOCK_KEY, str(os.getpid()).encode(), ttl=ttl)
    except Exception:
        log.warning("cannot take the lifecycle lock; skipping this run", exc_info=True)
        return False


async def run(runtime: Runtime, *, stop: asyncio.Event) -> None:
    """Until `stop` is set: wait an interval, then run the job if this worker takes the
    lock. The first run waits an interval too: a worker that just started has nothing urgent
    to delete. Errors are logged, never fatal."""
    interval = runtime.settings.retention.interval_seconds
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            if await claim_run(runtime, ttl=interval):
                await Lifecycle(runtime, budget=interval / 2, stop=stop).run()
        except Exception:
            log.exception("lifecycle run failed; trying again next interval")
