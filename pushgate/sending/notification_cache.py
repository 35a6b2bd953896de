"""What the deliverer knows of each notification it sends (`Cached`, read at most every
`NOTIFICATION_CACHE_SECONDS`): its decoded message, its lifetime, whether a delivery of it may
still go (`unsendable`), and when each delivery of a local-time notification was due."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import notification as notification_rules
from pushgate.domain.message import Message
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.request import MIN_DELIVERY_WINDOW_SECONDS
from pushgate.sending import jobs, timing
from pushgate.store.deliveries import Claimed
from pushgate.store.notification_progress import Sending

NOTIFICATION_CACHE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Cached:
    """A notification as the deliverer sends it: its row read at most every
    `NOTIFICATION_CACHE_SECONDS`, its message (and template variants) decoded once."""

    status: str
    app_id: uuid.UUID
    expires_at: datetime
    # When the message's own `ttl` runs out (send time + ttl). `expires_at` may be later: the
    # first attempt gets a minimum window (see domain.request), but a retry after the ttl
    # would show the message late, so retries stop here.
    lifetime_ends: datetime
    message: Message
    loaded: float
    # A template's other variants by locale (`Notification.renders`), decoded once.
    renders: dict[str, Message] | None = None
    # One message to an FCM topic or condition (`fcm_topic`): the delivery's token is FCM's
    # destination, not a registration token.
    fcm_topic: bool = False
    # `send_at_local`'s wall-clock time: each delivery's lifetime counts from its own local
    # time (see `own`), not from the notification's first zone's.
    local: datetime | None = None
    category: str | None = None

    @property
    def due(self) -> datetime:
        """When it was due (accepted, or its `send_at`): a sent delivery's latency counts from
        then."""
        return self.lifetime_ends - timedelta(seconds=self.message.ttl)

    def own(self, at: datetime | None) -> Cached:
        """The notification as one local-time delivery due `at` sees it: its TTL counts from
        then (or from the notification's start, for a time already past when it was sent),
        and it expires within the notification's lifetime, which covers every zone."""
        ttl = self.message.ttl
        start = self.lifetime_ends - timedelta(seconds=ttl)
        if at is not None and at > start:
            start = at
        window = timedelta(seconds=max(ttl, MIN_DELIVERY_WINDOW_SECONDS))
        return dataclasses.replace(
            self,
            expires_at=min(self.expires_at, start + window),
            lifetime_ends=start + timedelta(seconds=ttl),
        )


def unsendable(info: Cached, delivery: Claimed, now: datetime) -> DeliveryStatus | None:
    if info.status == NotificationStatus.CANCELED:
        return DeliveryStatus.CANCELED
    if now >= info.expires_at:
        return DeliveryStatus.EXPIRED  # never sent late
    # `attempts` already counts this claim: above 1, an earlier attempt reached the provider.
    if delivery.attempts > 1 and now >= info.lifetime_ends:
        return DeliveryStatus.EXPIRED
    return None


def cache(row: Sending, loaded: float) -> Cached:
    return Cached(
        status=row.status,
        app_id=row.app_id,
        expires_at=row.expires_at,
        lifetime_ends=max(row.send_at or row.created_at, row.created_at)
        + timedelta(seconds=int(row.message["ttl"])),
        message=jobs.decode_message(row.message),
        loaded=loaded,
        renders={k: jobs.decode_message(v) for k, v in row.renders.items()}
        if row.renders
        else None,
        fcm_topic=notification_rules.is_fcm_topic(row.target),
        local=_wall_time(row.options),
        category=row.category,
    )


def _wall_time(options: dict[str, Any] | None) -> datetime | None:
    wall = options.get("send_at_local") if options else None
    return None if wall is None else datetime.fromisoformat(wall)


async def local_starts(
    session: AsyncSession, claimed: list[Claimed], cached: dict[uuid.UUID, Cached]
) -> dict[int, datetime]:
    """When each claimed local-time delivery was due: its wall-clock time in its zone, found
    as dispatch found it. One lookup per local-time notification in the batch; none for others."""
    if all(info.local is None for info in cached.values()):
        return {}  # the usual batch: nothing per delivery
    by_notification: dict[tuple[uuid.UUID, datetime], list[Claimed]] = {}
    for delivery in claimed:
        info = cached.get(delivery.notification_id)
        if info is not None and info.local is not None:
            by_notification.setdefault((delivery.notification_id, info.local), []).append(delivery)
    due: dict[int, datetime] = {}
    for (_, wall), group in by_notification.items():
        starts, no_device = await timing.local_starts(
            session, wall, group[0].app_id, {d.device_id for d in group if d.device_id}
        )
        for delivery in group:
            due[delivery.id] = starts.get(delivery.device_id, no_device)  # type: ignore[arg-type]
    return due
