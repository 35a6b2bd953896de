"""A `flask_consumer` message on `push.queue`, and the `/v1` request it means:

    {"notification_type": "push", "user_id", "template_code", "variables": {...},
     "request_id", "priority": 5, "metadata": {...}}

- Recognised by `notification_type` (a field pushgate's own format never has), or, for
  producers that left it out, by `request_id` and `template_code` with an integer priority
  (pushgate's own priority is a word, so such a message was never pushgate's).
- `notification_type` other than `push` (`email`, `sms`) is dead-lettered saying so: those
  were for another consumer.
- Every other field already has pushgate's meaning (`request_id` is the idempotency key,
  `template_code` a pushgate template rendered with `variables`, `metadata` stored with the
  notification): only `priority` (0-10, `high` from 5: `compat.queue_fields`) and ids sent
  as numbers are translated, and the request is validated as `/v1` validates it.
"""

from __future__ import annotations

import uuid
from typing import Any

from pushgate.compat import queue_fields
from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime

PUSH = "push"


def matches(data: dict[str, Any]) -> bool:
    """Whether a decoded message is this shape's (see the module's docstring). Pure."""
    if "notification_type" in data:
        return True
    priority = data.get("priority")
    return (
        "request_id" in data
        and "template_code" in data
        and isinstance(priority, int)
        and not isinstance(priority, bool)
    )


def request_of(data: dict[str, Any]) -> NotificationCreate:
    """The `/v1` request a message means. Pure.

    Raises:
        ValueError: a `notification_type` other than `push`, or a message that can never be
            sent (pydantic's ValidationError included, naming the request's field).
    """
    kind = data.get("notification_type", PUSH)
    if kind != PUSH:
        raise ValueError(
            f"unsupported_notification_type: notification_type is {kind!r}, not 'push':"
            " pushgate sends push notifications only (this message was for another consumer)"
        )
    request = {k: v for k, v in data.items() if k != "notification_type"}
    for name in ("user_id", "request_id"):
        if name in request:
            request[name] = queue_fields.text_id(data, name)
    request["priority"] = queue_fields.priority(data.get("priority"))
    for name in ("variables", "metadata"):
        if name in request and request[name] is None:
            request[name] = {}  # a producer's `None` default, serialised: nothing
    return NotificationCreate.model_validate(request)


async def translate(
    _runtime: Runtime, _app_id: uuid.UUID, data: dict[str, Any]
) -> NotificationCreate:
    return request_of(data)
