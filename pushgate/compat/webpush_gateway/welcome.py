"""The welcome notification a new subscription gets (`compat.webpush_gateway.welcome`, per
app; none when unset): an ordinary notification to that one device, accepted like `POST
/v1/notifications` with an idempotency key of the device, so it is sent once."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from pushgate.domain.request import NotificationCreate
from pushgate.errors import PushgateError
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import accept

log = get_logger(__name__)


async def send(runtime: Runtime, app_id: uuid.UUID, app_name: str, device_id: uuid.UUID) -> None:
    """Queue `app_name`'s welcome to the device, if the app has one. A welcome that cannot be
    accepted (a template that does not exist, say) is logged: the subscription stands."""
    chosen = runtime.settings.compat.webpush_gateway.welcome.get(app_name)
    if chosen is None:
        return
    fields: dict[str, Any] = {
        "device_ids": [device_id],
        "idempotency_key": f"webpush-welcome:{device_id}",
        **chosen.model_dump(exclude_none=True),
    }
    try:
        request = NotificationCreate.model_validate(fields)
    except ValidationError as exc:
        log.warning("welcome notification refused", app=app_name, error=str(exc.errors()[0]))
        return
    try:
        [result] = await accept.accept_many(runtime, app_id=app_id, requests=[request])
    except PushgateError as exc:  # the store is away: the page need not subscribe again
        result = exc
    if isinstance(result, PushgateError):
        log.warning(
            "welcome notification refused", app=app_name, code=result.code, error=result.message
        )
