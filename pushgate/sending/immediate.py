"""Send-immediate: accept, expand and deliver a small notification within the request, and
report each device's outcome. Retries still go through the broker afterwards."""

from __future__ import annotations

import uuid

from pushgate.domain.notification import TargetKind
from pushgate.domain.request import NotificationCreate
from pushgate.errors import InvalidInputError, PushgateError
from pushgate.runtime import Runtime
from pushgate.sending import accept, deliver, dispatch
from pushgate.store import audience, notifications
from pushgate.store.tables import Notification


async def send(
    runtime: Runtime, *, app_id: uuid.UUID, request: NotificationCreate
) -> tuple[Notification, list[deliver.Result]]:
    """Raises:
    InvalidInputError: code `audience_too_large` when the target has more devices than
        `delivery.immediate_max_devices`, or the request is scheduled.
    """
    if request.send_at is not None:
        raise InvalidInputError("send-immediate cannot be scheduled", field="send_at")
    limit = runtime.settings.delivery.immediate_max_devices
    await _check_audience(runtime, app_id, request, limit)
    [result] = await accept.accept_many(runtime, app_id=app_id, requests=[request], publish=False)
    if isinstance(result, PushgateError):
        raise result
    row = result.notification
    if result.replayed:  # the same request again: report it, do not send again
        return row, []
    ids = await dispatch.Dispatcher(runtime, page_size=limit).dispatch(row.id, publish=False)
    results = await deliver.Deliverer(runtime).deliver(ids) if ids else []
    async with runtime.sessions() as session:
        row = await notifications.get(session=session, app_id=app_id, notification_id=row.id)
    return row, results


async def _check_audience(
    runtime: Runtime, app_id: uuid.UUID, request: NotificationCreate, limit: int
) -> None:
    target = request.target()
    if target["kind"] == TargetKind.TOKENS:
        size_ok = len(target["value"]) <= limit
    else:
        async with runtime.sessions() as session:
            recipients, more = await audience.page(
                session=session, app_id=app_id, target=target, after=None, limit=limit + 1
            )
        size_ok = len(recipients) <= limit and more is None
    if not size_ok:
        raise InvalidInputError(
            f"send-immediate reaches at most {limit} devices; use POST /v1/notifications",
            field="target",
            code="audience_too_large",
        )
