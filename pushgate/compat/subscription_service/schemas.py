"""The legacy subscription service's bodies and answers, as its clients send and read them.

Bodies ignore fields they do not know, as the old service (FastAPI's default) did, and type
their fields loosely: the rules are `/v1`'s, applied once when translate.py builds the `/v1`
request (so a refusal names the same code as on `/v1`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from pushgate.domain.subscription import Platform
from pushgate.store import devices

# --- subscriptions -----------------------------------------------------------------------------


class SubscriptionKeys(BaseModel):
    p256dh: str
    auth: str


class SubscriptionCreate(BaseModel):
    """A browser's PushSubscription, nested (`keys`) or flat (`p256dh`, `auth`)."""

    endpoint: str
    keys: SubscriptionKeys | None = None
    p256dh: str | None = None
    auth: str | None = None
    expiration_time: float | None = Field(
        default=None, alias="expirationTime", description="Unix milliseconds, or null."
    )
    topics: list[str] | None = None
    user_id: str | None = None


class SubscriptionUpdate(BaseModel):
    """What `PUT` changes: the topics (replaced) and the client's switch."""

    topics: list[str] | None = None
    enabled: bool | None = None


class SubscriptionPublic(BaseModel):
    """A subscription as the old service answered it; `id` is pushgate's device id."""

    id: uuid.UUID
    endpoint: str
    p256dh: str | None
    auth: str | None
    topics: list[str]
    enabled: bool = Field(description="Receives pushes: enabled and not deleted.")
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    last_used: datetime | None = Field(
        description="Last registered, or delivered to successfully (moved at most once a day)."
    )

    @classmethod
    def of(
        cls, record: devices.DeviceRecord, *, whole: bool, sent: Collection[str] = ()
    ) -> SubscriptionPublic:
        """`record` in the legacy shape. Not `whole` (a subscribe key, which may hold nothing
        but the browser it runs in): of the keys, the user and the topics, only what this
        request sent, as on `/v1` (`DeviceReceipt`)."""
        d = record.device

        def shown(name: str) -> bool:
            return whole or name in sent

        return cls(
            id=d.id,
            endpoint=d.token,
            p256dh=d.p256dh if shown("keys") else None,
            auth=d.auth if shown("keys") else None,
            topics=list(record.topics) if shown("topics") else [],
            enabled=devices.status_of(d) is devices.Status.ACTIVE,
            user_id=d.user_id if shown("user_id") else None,
            created_at=d.created_at,
            updated_at=d.updated_at,
            last_used=d.last_seen_at,
        )


def is_subscription(record: devices.DeviceRecord) -> bool:
    return record.device.platform == Platform.WEBPUSH.value


# --- notifications -----------------------------------------------------------------------------


class NotificationPayload(BaseModel):
    """What a notification shows (`type` is pushgate's `category`)."""

    title: str | None = None
    body: str | None = None
    icon: str | None = None
    image: str | None = None
    badge: str | None = None
    url: str | None = None
    tag: str | None = None
    type: str | None = Field(default=None, description="pushgate's `category`.")
    actions: list[dict[str, Any]] | None = Field(
        default=None, description="`{action, title, icon?}` each, as the Notifications API."
    )
    data: dict[str, Any] | None = None


class NotificationSend(NotificationPayload):
    """A send to ONE of `topics`, `user_ids` or `subscription_ids` (pushgate device ids); an
    empty list counts as not given. For everyone: `/notifications/broadcast/`."""

    topics: list[str] | None = None
    user_ids: list[str] | None = None
    subscription_ids: list[str] | None = None


class Statistics(BaseModel):
    total: int = Field(description="Deliveries planned so far (they grow while dispatching).")
    sent: int
    failed: int = Field(description="failed, invalid (subscription gone), rejected, expired.")
    pending: int = Field(description="Not final yet: pending, sending, retrying, deferred.")


class SendResult(BaseModel):
    notification_id: uuid.UUID
    status: str = Field(description="pushgate's notification status (`accepted`, ...).")
    statistics: Statistics


class HistoryItem(BaseModel):
    notification_id: uuid.UUID
    title: str | None
    body: str | None
    type: str | None
    status: str
    statistics: Statistics
    created_at: datetime
    completed_at: datetime | None


class HistoryPage(BaseModel):
    """One page, newest first. No total count: counting an app's whole history costs what
    reading it does."""

    notifications: list[HistoryItem]
    page: int
    limit: int
    has_next: bool


# --- analytics ---------------------------------------------------------------------------------


class SubscriptionDay(BaseModel):
    date: date
    new: int
    deleted: int
    invalidated: int = Field(description="Declared gone by their push service.")
    expired: int


class SubscriptionReport(BaseModel):
    date_from: date
    date_to: date
    active: int = Field(description="Live Web Push subscriptions now.")
    new: int
    deleted: int
    invalidated: int
    expired: int
    daily: list[SubscriptionDay]


class DeliveryDay(BaseModel):
    date: date
    total: int
    sent: int
    failed: int


class DeliveryReport(BaseModel):
    date_from: date
    date_to: date
    type: str | None
    total: int = Field(description="Web Push deliveries that reached a final status.")
    sent: int
    failed: int
    success_rate: float | None
    by_outcome: dict[str, int]
    daily: list[DeliveryDay]
