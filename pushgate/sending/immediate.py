"""Send-immediate: accept, expand and deliver a small notification within the request, and
report each device's outcome. Retries still go through the broker afterwards."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.notification import TargetKind
from pushgate.domain.request import NotificationCreate
from pushgate.errors import InvalidInputError, PushgateError
from pushgate.runtime import Runtime
from pushgate.sending import accept, deliver, dispatch, outcomes
from pushgate.store import audience, deliveries, notifications
from pushgate.store.tables import Delivery, Notification


@dataclass(frozen=True, slots=True)
class DeviceOutcome:
    """One device's delivery as send-immediate reports it."""

    delivery_id: int
    device_id: uuid.UUID | None
    platform: str
    status: str
    response_code: int | None
    error: str | None
    provider_message_id: str | None

    @classmethod
    def of_result(cls, result: outcomes.Result) -> DeviceOutcome:
        outcome = result.outcome
        return cls(
            delivery_id=result.delivery_id,
            device_id=result.device_id,
            platform=result.platform,
            status=result.status.value,
            response_code=outcome.status_code if outcome else None,
            error=(outcome.error or None) if outcome else None,
            provider_message_id=outcome.message_id if outcome else None,
        )

    @classmethod
    def of_row(cls, row: Delivery) -> DeviceOutcome:
        return cls(
            delivery_id=row.id,
            device_id=row.device_id,
            platform=row.platform,
            status=row.status,
            response_code=row.response_code,
            error=row.error,
            provider_message_id=row.provider_message_id,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    notification: Notification
    deliveries: list[DeviceOutcome]
    replayed: bool


async def send(
    runtime: Runtime,
    *,
    app_id: uuid.UUID,
    request: NotificationCreate,
    session: AsyncSession | None = None,
) -> Sent:
    """Accept the notification, expand it and deliver it now. A replayed idempotency key sends
    nothing again: it reports the deliveries as they stand.

    Args:
        session: the API request's session, used (and committed) for checking and accepting;
            dispatch and delivery open their own afterwards.

    Raises:
        InvalidInputError: code `audience_too_large` when the target has more devices than
            `delivery.immediate_max_devices`, or the request is scheduled.
        PushgateError: what accepting it raises (validation, idempotency).
    """
    for later in ("send_at", "send_at_local", "throttle_per_minute"):
        if getattr(request, later) is not None:
            raise InvalidInputError("send-immediate sends now, not later", field=later)
    limit = runtime.settings.delivery.immediate_max_devices
    # Checked before accepting, so a refused request leaves no notification (nor a used key).
    await _check_audience(runtime, session, app_id, request, limit)
    [result] = await accept.accept_many(
        runtime, app_id=app_id, requests=[request], publish=False, session=session
    )
    if session is not None:
        # Hand its connection back before dispatch and delivery take their own.
        await session.commit()
    if isinstance(result, PushgateError):
        raise result
    row = result.notification
    if result.replayed:
        return Sent(row, await _recorded(runtime, app_id, row.id, limit), replayed=True)
    ids = await dispatch.Dispatcher(runtime, page_size=limit).dispatch(row.id, publish=False)
    results = await deliver.Deliverer(runtime).deliver(ids) if ids else []
    async with runtime.sessions() as session:
        row = await notifications.get(session=session, app_id=app_id, notification_id=row.id)
    sent = [DeviceOutcome.of_result(r) for r in results]
    if row.total > len(sent):
        # Planning kept some from going now (skipped by the user's preferences, deferred to the
        # end of quiet hours): shown as recorded.
        done = {o.delivery_id for o in sent}
        recorded = await _recorded(runtime, app_id, row.id, limit)
        sent += [o for o in recorded if o.delivery_id not in done]
    return Sent(row, sent, replayed=False)


async def _recorded(
    runtime: Runtime, app_id: uuid.UUID, notification_id: uuid.UUID, limit: int
) -> list[DeviceOutcome]:
    async with runtime.sessions() as session:
        rows = await deliveries.page_for_notification(
            session=session, app_id=app_id, notification_id=notification_id, limit=limit
        )
    return [DeviceOutcome.of_row(r) for r in rows]


async def _check_audience(
    runtime: Runtime,
    given: AsyncSession | None,
    app_id: uuid.UUID,
    request: NotificationCreate,
    limit: int,
) -> None:
    target = request.target()
    if request.fcm_topic:
        size = 1  # one message to FCM's topic or condition, whoever is subscribed
    elif target["kind"] == TargetKind.TOKENS:
        size = len(target["value"])
    else:
        # Pages, because a condition filters a page after reading it: stop once over the limit.
        size, after = 0, None
        async with contextlib.AsyncExitStack() as stack:
            session = given
            if session is None:
                session = await stack.enter_async_context(runtime.sessions())
            while size <= limit:
                recipients, after = await audience.page(
                    session=session, app_id=app_id, target=target, after=after, limit=limit + 1
                )
                size += len(recipients)
                if after is None:
                    break
    if size > limit:
        raise InvalidInputError(
            f"send-immediate reaches at most {limit} devices; use POST /v1/notifications",
            field="target",
            code="audience_too_large",
        )
