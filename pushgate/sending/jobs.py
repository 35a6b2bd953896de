"""The bodies of internal jobs (dispatch, deliver, dead letters) and the stored message form."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from pushgate.domain.message import Action, Message, Priority


class BadJobError(ValueError):
    """A job body that cannot be read: it goes to the dead-letter queue, never retried."""


def dispatch_job(notification_id: uuid.UUID) -> bytes:
    return orjson.dumps({"notification_id": str(notification_id)})


def read_dispatch_job(body: bytes) -> uuid.UUID:
    try:
        return uuid.UUID(orjson.loads(body)["notification_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadJobError(f"not a dispatch job: {exc}") from None


def deliver_job(ids: list[int]) -> bytes:
    return orjson.dumps({"ids": ids})


def read_deliver_job(body: bytes) -> list[int]:
    try:
        ids = orjson.loads(body)["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise TypeError("ids must be a list of integers")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadJobError(f"not a deliver job: {exc}") from None
    return ids


# The body `deliver` dead-letters a delivery with (see sending/deliver.py): a record for people,
# which `pushgate dlq requeue` puts back on the deliver queue as it is.
DELIVERY_FAILED = "delivery_failed"


def dead_delivery(**record: Any) -> bytes:
    return orjson.dumps({"kind": DELIVERY_FAILED, **record})


def read_requeued_delivery(body: bytes) -> int:
    """The delivery id of a dead letter `deliver` wrote, requeued from `failed`."""
    try:
        data = orjson.loads(body)
        delivery_id = data["delivery_id"]
        if data.get("kind") != DELIVERY_FAILED or not isinstance(delivery_id, int):
            raise TypeError("not a failed delivery's record")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise BadJobError(f"not a deliver job: {exc}") from None
    return delivery_id


def encode_message(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {
        name: getattr(message, name)
        for name in (
            "title",
            "body",
            "icon",
            "image",
            "badge",
            "url",
            "tag",
            "sound",
            "ttl",
            "collapse_key",
        )
    }
    data["priority"] = message.priority.value
    data["actions"] = [
        {"action": a.action, "title": a.title, "icon": a.icon} for a in message.actions
    ]
    data["data"] = dict(message.data)
    for platform in ("webpush", "fcm", "apns"):
        data[platform] = dict(getattr(message, platform))
    if message.dry_run:
        data["dry_run"] = True
    return data


def decode_message(data: dict[str, Any]) -> Message:
    return Message(
        title=data.get("title"),
        body=data.get("body"),
        icon=data.get("icon"),
        image=data.get("image"),
        badge=data.get("badge"),
        url=data.get("url"),
        tag=data.get("tag"),
        sound=data.get("sound"),
        actions=tuple(
            Action(a["action"], a["title"], a.get("icon")) for a in data.get("actions", ())
        ),
        data=data.get("data", {}),
        priority=Priority(data.get("priority", "normal")),
        ttl=int(data["ttl"]),
        collapse_key=data.get("collapse_key"),
        webpush=data.get("webpush", {}),
        fcm=data.get("fcm", {}),
        apns=data.get("apns", {}),
        dry_run=bool(data.get("dry_run", False)),
    )
