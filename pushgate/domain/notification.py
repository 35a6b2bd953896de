"""Notification and delivery statuses, audience kinds, and how a notification's final status
follows from its deliveries."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class NotificationStatus(StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    DISPATCHING = "dispatching"
    COMPLETED = "completed"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"


FINAL_NOTIFICATION = frozenset(
    {
        NotificationStatus.COMPLETED,
        NotificationStatus.PARTIALLY_FAILED,
        NotificationStatus.FAILED,
        NotificationStatus.EXPIRED,
        NotificationStatus.CANCELED,
    }
)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELED = "canceled"


OPEN_DELIVERY = frozenset({DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING})
FINAL_DELIVERY = frozenset(DeliveryStatus) - OPEN_DELIVERY


class TargetKind(StrEnum):
    """Who a notification goes to: exactly one kind per notification."""

    DEVICE_IDS = "device_ids"
    TOKENS = "tokens"
    USER_IDS = "user_ids"
    TOPICS = "topics"
    CONDITION = "condition"
    BROADCAST = "broadcast"


def final_status(counts: Mapping[str, int]) -> NotificationStatus:
    """The status of a notification whose deliveries are all final, from their counts.

    No audience at all is `completed` (there was nothing to do); every delivery sent is
    `completed`; all expired is `expired`; none sent is `failed`; a mix is `partially_failed`.
    """
    total = sum(counts.values())
    sent = counts.get(DeliveryStatus.SENT, 0)
    if total == 0 or sent == total:
        return NotificationStatus.COMPLETED
    if counts.get(DeliveryStatus.EXPIRED, 0) == total:
        return NotificationStatus.EXPIRED
    if counts.get(DeliveryStatus.CANCELED, 0) == total:
        return NotificationStatus.CANCELED
    if sent == 0:
        return NotificationStatus.FAILED
    return NotificationStatus.PARTIALLY_FAILED
