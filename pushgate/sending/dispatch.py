"""Dispatch: expand a notification's audience page by page into deliveries, and publish deliver
jobs for each page. Resumable: the keyset cursor is stored with each page, so a redelivered
job continues where a crashed dispatcher stopped."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.broker import base as broker_base
from pushgate.domain import notification as notification_rules
from pushgate.domain import subscription
from pushgate.domain.notification import TargetKind
from pushgate.logs import get_logger
from pushgate.providers.base import DeliveryProvider
from pushgate.runtime import Runtime
from pushgate.sending import addresses, jobs, planning
from pushgate.store import audience, deliveries, fanout, notification_progress, rollups
from pushgate.store.tables import utcnow

log = get_logger(__name__)

DONE = "done"
# Attempts of a dispatch job that keeps failing before it is parked in the dead-letter queue.
MAX_ATTEMPTS = 5


class Dispatcher:
    """Consumes `dispatch` jobs.

    Args:
        page_size: devices read and deliveries inserted per transaction.
        job_size: delivery ids per deliver job (the deliver side claims and sends a job's ids
            together, so this is also its batch size).
        lease: seconds a dispatcher holds a notification; renewed with every page.
        clock: the time now, read once per page (tests move it: planning compares it with
            quiet hours, local send times and lifetimes).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        page_size: int = 1000,
        job_size: int = 250,
        lease: float = 120.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.page_size = page_size
        self.job_size = job_size
        self.lease = lease

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        for message in batch:
            try:
                notification_id = jobs.read_dispatch_job(message.body)
            except jobs.BadJobError as exc:
                message.dead_letter(str(exc))
                continue
            try:
                await self.dispatch(notification_id)
            except Exception as exc:  # the database or broker failed under us
                # Not a tight loop of immediate redeliveries: wait, and after a few attempts
                # park the job. The notification itself is not lost either way: it stays
                # `dispatching` in the database and the sweeper publishes it again once its
                # lease runs out, resuming from the stored cursor.
                reason = f"dispatch failed: {type(exc).__name__}: {exc}"[:500]
                if message.attempts >= MAX_ATTEMPTS:
                    log.exception("dispatch failed; dead-lettered", attempts=message.attempts)
                    message.dead_letter(reason)
                else:
                    log.exception("dispatch failed; will retry", attempts=message.attempts)
                    message.retry(min(2.0**message.attempts, 60.0), reason)
                continue
            message.ack()

    async def dispatch(self, notification_id: uuid.UUID, *, publish: bool = True) -> list[int]:
        """Create the notification's deliveries and publish deliver jobs for them, page by
        page. With `publish` False (send-immediate, a small audience) nothing is published and
        the ids of the deliveries made are returned; otherwise the list stays empty, so a
        broadcast to a million devices holds one page in memory, not a million ids."""
        made: list[int] = []
        row: notification_progress.Dispatching | None = None
        cursor: str | None = None
        offset = 0
        direct = False
        while cursor != DONE:
            now = self.clock()
            # One transaction per page; the first also takes the notification, so a small
            # notification is claimed, expanded and recorded in a single commit.
            async with self.runtime.sessions() as session:
                if row is None:
                    row = await notification_progress.claim_dispatch(
                        session=session,
                        notification_id=notification_id,
                        now=now,
                        until=now + timedelta(seconds=self.lease),
                    )
                    if row is None or row.dispatch_cursor == DONE:
                        await session.commit()
                        return []
                    cursor = row.dispatch_cursor
                    offset = row.total
                    # Counted in the transaction that moves the cursor off None: once.
                    counted = cursor is not None
                    # Made in the database while the pages are plain; once a page needs
                    # planning (its devices have users), the rest are planned too.
                    direct = fanout.usable(session, row.target, row.options)
                else:
                    counted = True
                made_here = None
                if direct:
                    made_here = await fanout.insert_page(
                        session=session,
                        notification_id=row.id,
                        app_id=row.app_id,
                        target=row.target,
                        after=uuid.UUID(cursor) if cursor else None,
                        limit=self.page_size,
                        now=now,
                    )
                    direct = not made_here.planned
                page: list[deliveries.NewDelivery] = []
                if made_here is not None and not made_here.planned:
                    ids, added, next_cursor = made_here.ids, made_here.size, made_here.cursor
                else:
                    page, next_cursor = await self._page(session, row, cursor, now, offset)
                    # The ids to send now: not the deferred ones, nor those final already.
                    ids = await deliveries.insert_many(
                        session=session,
                        notification_id=row.id,
                        app_id=row.app_id,
                        items=page,
                        now=now,
                    )
                    added = len(page)
                cursor = str(next_cursor) if next_cursor else DONE
                await notification_progress.record_page(
                    session=session,
                    notification_id=row.id,
                    added=added,
                    finished=planning.finished(page) if len(ids) < len(page) else 0,
                    cursor=cursor,
                    lease_until=now + timedelta(seconds=self.lease),
                    last=cursor == DONE,
                )
                # Last: the rollup rows are shared with other writers (see store/rollups.py).
                if not counted:
                    await rollups.add_notification(
                        session=session,
                        app_id=row.app_id,
                        category=row.category,
                        accepted_at=row.created_at,
                    )
                if len(ids) < len(page):
                    await _count_final(session, row, page, now)
                await session.commit()
                offset += added
            if not publish:
                made.extend(ids)
            elif ids:
                chunks = [ids[i : i + self.job_size] for i in range(0, len(ids), self.job_size)]
                # A publish lost here is recovered by the sweeper (pending deliveries, no job).
                await self.runtime.broker.publish(
                    broker_base.DELIVER, [jobs.deliver_job(c) for c in chunks]
                )
        return made

    async def _page(
        self,
        session: AsyncSession,
        row: notification_progress.Dispatching,
        cursor: str | None,
        now: datetime,
        offset: int,
    ) -> tuple[list[deliveries.NewDelivery], uuid.UUID | None]:
        """The next page of the notification's deliveries after `cursor`, planned (see
        `planning`), and the next cursor (None: this is the last page)."""
        context = planning.Page(
            runtime=self.runtime, session=session, notification=row, now=now, offset=offset
        )
        if notification_rules.is_fcm_topic(row.target):
            # One message to FCM's topic or condition: FCM fans it out, not us.
            return [_fcm_topic(row.target)], None
        if row.target["kind"] == TargetKind.TOKENS:
            made = _raw_tokens(self.runtime.providers, row.target)
            if row.options is None:
                return made, None
            return await planning.plan(context, [planning.from_delivery(d) for d in made]), None
        recipients, next_cursor = await audience.page(
            session=session,
            app_id=row.app_id,
            target=row.target,
            after=uuid.UUID(cursor) if cursor else None,
            limit=self.page_size,
        )
        if planning.needed(row, recipients):
            planned = [planning.from_recipient(r) for r in recipients]
            return await planning.plan(context, planned), next_cursor
        page = [
            deliveries.NewDelivery(
                device_id=r.device_id,
                platform=r.platform,
                token=r.token,
                p256dh=r.p256dh,
                auth=r.auth,
            )
            for r in recipients
        ]
        return page, next_cursor


async def _count_final(
    session: AsyncSession,
    row: notification_progress.Dispatching,
    page: list[deliveries.NewDelivery],
    now: datetime,
) -> None:
    """Add the deliveries planning made final at once (skipped, expired) to the rollups."""
    tally = rollups.DeliveryTally()
    for item in page:
        if item.status in notification_rules.FINAL_DELIVERY:
            tally.add(
                app_id=row.app_id,
                at=now,
                provider=item.platform,
                category=row.category,
                outcome=item.status.value,
            )
    if tally:
        await rollups.add_deliveries(session=session, tally=tally)


def _fcm_topic(target: dict[str, Any]) -> deliveries.NewDelivery:
    """The one delivery of an `fcm_topic` notification: no device, FCM's destination in the
    token column (see `domain.notification.fcm_topic_address`)."""
    return deliveries.NewDelivery(
        device_id=None,
        platform=subscription.Platform.FCM.value,
        token=notification_rules.fcm_topic_address(target),
    )


def _raw_tokens(
    providers: Mapping[str, DeliveryProvider[Any]], target: dict[str, Any]
) -> list[deliveries.NewDelivery]:
    """Deliveries for unregistered addresses, normalised as registration would (they were
    checked when the notification was accepted)."""
    page = []
    for item in target["value"]:
        sub = item.get("subscription")
        if sub is not None:
            address = subscription.webpush_address(
                endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
            )
        else:
            address = addresses.token_address(providers, item["platform"], item["token"])
        page.append(
            deliveries.NewDelivery(
                device_id=None,
                platform=address.platform,
                token=address.token,
                p256dh=address.p256dh,
                auth=address.auth,
            )
        )
    return page
