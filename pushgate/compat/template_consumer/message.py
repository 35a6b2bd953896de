"""A `template_consumer` message on `push.queue`, and the `/v1` request it means:

    {"notification_id", "user_id", "template_id", "variables": {"title", "message", ...},
     "priority": 1, "metadata": {...}}

- Recognised by `template_id` (a field pushgate's own format never has), or by
  `notification_id` with `variables` and no `devices` (`webpush_gateway`'s messages have
  `notification_id` and `devices`, pushgate's own have neither); never a message with
  `notification_type` (`flask_consumer`'s).
- `notification_id` is the idempotency key; `user_id` the target (the user's devices).
- `template_id` names a pushgate template of the app (`/v1/templates`): it is rendered with
  `variables`. When the app has no such template, `variables.title` and `variables.message`
  are the title and body, and the other variables are not used.
- `priority` 0-10: `high` from 5 (`compat.queue_fields`).
- `metadata` is stored with the notification; without a template its flat values are also the
  push's `data` (`compat.queue_fields.data_of`). A template gives its own `data`.
- Any other field is read as pushgate's own (`ttl`, `category` ...): the same validation as
  `/v1` refuses an unknown one.
"""

from __future__ import annotations

import uuid
from typing import Any

from pushgate.compat import queue_fields
from pushgate.domain import storable
from pushgate.domain.request import NotificationCreate
from pushgate.errors import NotFoundError
from pushgate.runtime import Runtime
from pushgate.store import templates

LEGACY_FIELDS = ("notification_id", "user_id", "template_id", "variables", "priority", "metadata")


def matches(data: dict[str, Any]) -> bool:
    """Whether a decoded message is this shape's (see the module's docstring). Pure."""
    if "notification_type" in data:
        return False
    if "template_id" in data:
        return True
    return "notification_id" in data and "variables" in data and "devices" not in data


def template_code(data: dict[str, Any]) -> str | None:
    """The template the message names, as a code; None when it names none.

    Raises:
        ValueError: `template_id` is neither text nor a number, or holds unstorable text.
    """
    value = queue_fields.text_id(data, "template_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("invalid_input: template_id: must be a string")
    problem = storable.text_problem(value)
    if problem is not None:
        raise ValueError(f"invalid_input: template_id: must not contain {problem}")
    return value


def request_of(data: dict[str, Any], *, template: str | None) -> NotificationCreate:
    """The `/v1` request a message means, `template` being the pushgate template to render
    (None: the app has none of that code). Pure.

    Raises:
        ValueError: the message can never be sent (pydantic's ValidationError included,
            naming the request's field).
    """
    variables = data.get("variables")
    if variables is None:
        variables = {}
    if not isinstance(variables, dict):
        raise ValueError("invalid_input: variables: must be an object")
    metadata = data.get("metadata")
    request: dict[str, Any] = {k: v for k, v in data.items() if k not in LEGACY_FIELDS}
    request.update(
        user_id=queue_fields.text_id(data, "user_id"),
        idempotency_key=queue_fields.text_id(data, "notification_id"),
        priority=queue_fields.priority(data.get("priority")),
        metadata={} if metadata is None else metadata,
    )
    if template is not None:
        request.update(template_code=template, variables=variables)
    else:
        for field, name in (("title", "title"), ("body", "message")):
            value = variables.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"invalid_input: variables.{name}: must be a string")
            if value is not None:
                request[field] = value
        request["data"] = queue_fields.data_of(metadata)
    return NotificationCreate.model_validate(request)


async def translate(
    runtime: Runtime, app_id: uuid.UUID, data: dict[str, Any]
) -> NotificationCreate:
    """`request_of`, with the app's template of that code when it has one."""
    code = template_code(data)
    if code is not None and not await _has_template(runtime, app_id, code):
        code = None
    return request_of(data, template=code)


async def _has_template(runtime: Runtime, app_id: uuid.UUID, code: str) -> bool:
    async with runtime.sessions() as session:
        try:
            await templates.current(session=session, app_id=app_id, code=code)
        except NotFoundError:
            return False
    return True
