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
    # Planned at dispatch for a later time (quiet hours, local-time delivery, a throttled
    # send): `next_attempt_at` says when; the sweeper makes it `pending` then.
    DEFERRED = "deferred"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELED = "canceled"
    # Not sent, by the user's choice (muted, a category or platform opted out, a local time
    # already past): `error` says why. Final, never an error.
    SKIPPED = "skipped"


OPEN_DELIVERY = frozenset(
    {
        DeliveryStatus.PENDING,
        DeliveryStatus.SENDING,
        DeliveryStatus.RETRYING,
        DeliveryStatus.DEFERRED,
    }
)
FINAL_DELIVERY = frozenset(DeliveryStatus) - OPEN_DELIVERY


class TargetKind(StrEnum):
    """Who a notification goes to: exactly one kind per notification."""

    DEVICE_IDS = "device_ids"
    TOKENS = "tokens"
    USER_IDS = "user_ids"
    TOPICS = "topics"
    CONDITION = "condition"
    BROADCAST = "broadcast"


# An `fcm_topic` notification (see `NotificationCreate.fcm_topic`) has one delivery with no
# device, whose token column holds FCM's destination instead of a registration token:
# `topic:<name>` or `condition:<expression>`. The prefix says which, for people reading the
# row; the deliverer goes by the notification's target (`fcm_topic` set), so a registration
# token that happened to start with `topic:` is never mistaken for a topic.
FCM_TOPIC_PREFIX = "topic:"
FCM_CONDITION_PREFIX = "condition:"
FCM_TOPIC_KEY = "fcm_topic"


def is_fcm_topic(target: Mapping[str, object]) -> bool:
    """Whether a stored target goes to FCM as one topic or condition message."""
    return target.get(FCM_TOPIC_KEY) is True


def fcm_topic_address(target: Mapping[str, object]) -> str:
    """The delivery token of an `fcm_topic` target: one topic is `topic:<name>`; several
    topics, or a condition, are `condition:<expression>` (several topics as `'a' in topics ||
    'b' in topics`, which is who a `topics` target reaches)."""
    value = target["value"]
    if target["kind"] == TargetKind.CONDITION:
        return FCM_CONDITION_PREFIX + str(value).strip()
    if target["kind"] != TargetKind.TOPICS or not isinstance(value, list) or not value:
        raise ValueError(f"an fcm_topic target is topics or a condition, not {target['kind']}")
    topics = list(dict.fromkeys(str(v) for v in value))
    if len(topics) == 1:
        return FCM_TOPIC_PREFIX + topics[0]
    return FCM_CONDITION_PREFIX + " || ".join(f"'{t}' in topics" for t in topics)


def fcm_destination(address: str) -> str:
    """What `FCMProvider.send_to_topic` takes, from a delivery token `fcm_topic_address` made.

    Raises:
        ValueError: the token is not such an address.
    """
    for prefix in (FCM_TOPIC_PREFIX, FCM_CONDITION_PREFIX):
        if address.startswith(prefix):
            return address.removeprefix(prefix)
    raise ValueError("not an FCM topic or condition address")


def final_status(counts: Mapping[str, int]) -> NotificationStatus:
    """The status of a notification whose deliveries are all final, from their counts.

    Skipped deliveries (the users chose not to get it) do not count: no audience at all, or
    only skipped ones, is `completed` (there was nothing to do); every other delivery sent is
    `completed`; all expired is `expired`; none sent is `failed`; a mix is `partially_failed`.
    """
    total = sum(counts.values()) - counts.get(DeliveryStatus.SKIPPED, 0)
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
