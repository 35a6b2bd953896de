"""Plan each delivery of a dispatch page: whether it goes (its user's preferences may skip it),
in which words (a template's locale variant), and when (local-time delivery, a throttled send,
quiet hours).

Each rule is a step in its own module, run in `STEPS` order over the page's `Planned` items;
a step only reads and marks them. Then `settle` decides each one's status: a time to go later
than now is `deferred` until then (the sweeper releases it: see `sending.sweeper`), a time past
the notification's lifetime is `expired` (never sent late), the rest go now.

A plain notification (no options: see `NotificationCreate.options`) to devices that belong
to no user has nothing to plan: its page becomes deliveries directly, as fast as before there
was any planning (the bench's end-to-end scenarios are such notifications).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import FINAL_DELIVERY, DeliveryStatus
from pushgate.runtime import Runtime
from pushgate.sending import locales, preferences, timing
from pushgate.store.audience import Recipient
from pushgate.store.deliveries import NewDelivery
from pushgate.store.notification_progress import Dispatching


@dataclass(slots=True)
class Planned:
    """One delivery being planned: its address, what is known of its device, and the marks
    the steps leave on it."""

    device_id: Any
    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None
    # Of the device (None for a raw token).
    user_id: str | None = None
    device_locale: str | None = None
    device_timezone: str | None = None
    # Marks: the template variant, not sent and why, not before when.
    locale: str | None = None
    skipped: str | None = None
    not_before: datetime | None = None
    # When this delivery's `ttl` starts counting, when not at the notification's send time:
    # a local-time delivery's own local time (see `sending.timing`).
    ttl_from: datetime | None = None

    def skip(self, reason: str) -> None:
        """Do not send it: a final `skipped` delivery with this reason (the first one kept)."""
        if self.skipped is None:
            self.skipped = reason

    def not_until(self, when: datetime) -> None:
        """Send it no earlier than `when` (the latest of what the steps ask)."""
        if self.not_before is None or when > self.not_before:
            self.not_before = when


@dataclass(slots=True)
class Page:
    """What the steps know of the page they plan.

    Args:
        offset: deliveries the notification's earlier pages made (a throttle's position).
        facts: what one step found for the next ones, by the step's own key (the preferences
            step leaves each user's preferences for the quiet-hours step).
    """

    runtime: Runtime
    session: AsyncSession
    notification: Dispatching
    now: datetime
    offset: int
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        return self.notification.options or {}


Step = Callable[[Page, list[Planned]], Awaitable[None]]

# The rules, in the order they apply: who is skipped first, then in which words, then when.
STEPS: list[Step] = [
    preferences.skip_unwanted,
    locales.choose_variants,
    timing.plan,
    preferences.defer_quiet_hours,
]


def from_recipient(recipient: Recipient) -> Planned:
    return Planned(
        device_id=recipient.device_id,
        platform=recipient.platform,
        token=recipient.token,
        p256dh=recipient.p256dh,
        auth=recipient.auth,
        user_id=recipient.user_id,
        device_locale=recipient.locale,
        device_timezone=recipient.timezone,
    )


def from_delivery(delivery: NewDelivery) -> Planned:
    return Planned(
        device_id=delivery.device_id,
        platform=delivery.platform,
        token=delivery.token,
        p256dh=delivery.p256dh,
        auth=delivery.auth,
    )


def needed(notification: Dispatching, recipients: Sequence[Recipient]) -> bool:
    """Whether the page has anything to plan: the notification has options, or one of its
    devices belongs to a user (who may have preferences)."""
    return notification.options is not None or any(r.user_id for r in recipients)


async def plan(page: Page, items: list[Planned]) -> list[NewDelivery]:
    """Run the steps over `items` and settle each one into the delivery to insert."""
    for step in STEPS:
        if items:
            await step(page, items)
    return [settle(page, item) for item in items]


def settle(page: Page, item: Planned) -> NewDelivery:
    """The delivery a planned item becomes: skipped, expired (its time to go is not before the
    end of the notification's lifetime), deferred (its time is still to come), or pending.

    A delivery held back (a time to go after now) is held to the message's own `ttl`
    (`Dispatching.ttl_ends`, or counted from the delivery's own `ttl_from`), not only to
    `expires_at`, which gives a short `ttl` a minute for the pipeline's own delays: a wait
    that the planning chose must not send a message after its ttl (a 30 s message deferred by
    40 s is expired, not sent 10 s late).
    """
    status = DeliveryStatus.PENDING
    reason = item.skipped
    not_before = item.not_before
    if reason is not None:
        status, not_before = DeliveryStatus.SKIPPED, None
    elif not_before is not None:
        notification = page.notification
        held = not_before > page.now
        ttl_ends = (
            notification.ttl_ends
            if item.ttl_from is None
            else item.ttl_from + timedelta(seconds=notification.ttl)
        )
        if not_before >= notification.expires_at or (held and not_before >= ttl_ends):
            status, not_before = DeliveryStatus.EXPIRED, None
            reason = "its time to go came after the notification's lifetime"
        elif held:
            status = DeliveryStatus.DEFERRED
        else:
            not_before = None
    return NewDelivery(
        device_id=item.device_id,
        platform=item.platform,
        token=item.token,
        p256dh=item.p256dh,
        auth=item.auth,
        locale=item.locale,
        status=status,
        not_before=not_before,
        reason=reason,
    )


def finished(page: Sequence[NewDelivery]) -> int:
    """How many of a page's deliveries are final already (skipped or expired when planned)."""
    return sum(1 for d in page if d.status in FINAL_DELIVERY)
