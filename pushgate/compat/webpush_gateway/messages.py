"""The Web Push gateway's messages on the ingress queue: `{"notification_id", "user_id",
"devices": [<PushSubscription>...], "title", "body", "action_url"}`, recognised by `devices`, a
list of objects (pushgate's own format has no such field).

The subscriptions are checked as `POST /v1/devices` checks them (the same validation and
endpoint guard) and registered for the user when unknown, so the notification goes to pushgate
devices: an invalidated one is deactivated and reported (`device.invalidated`) like any other.
`notification_id` is the idempotency key, `action_url` the click URL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.routes import devices as device_routes
from pushgate.api.schemas import devices as device_schemas
from pushgate.domain.request import NotificationCreate
from pushgate.domain.subscription import PushAddress
from pushgate.errors import InvalidInputError, PermissionDeniedError
from pushgate.runtime import Runtime
from pushgate.store import devices
from pushgate.store.tables import Device

# The old gateway sent one message per user: a user's browsers, never thousands.
MAX_DEVICES = 100


class GatewayMessage(BaseModel):
    """A message as the old gateway's producers publish it. Other fields are ignored, as the
    old consumer ignored them."""

    model_config = ConfigDict(extra="ignore")

    notification_id: Annotated[str, Field(min_length=1, max_length=255)] | int | None = None
    user_id: device_schemas.UserId | None = None
    devices: Annotated[
        list[device_schemas.WebPushSubscription], Field(min_length=1, max_length=MAX_DEVICES)
    ]
    title: str | None = None
    body: str | None = None
    action_url: str | None = None


def matches(data: dict[str, Any]) -> bool:
    """Whether `data` is this shape's: `devices` is a list of objects."""
    found = data.get("devices")
    return isinstance(found, list) and all(isinstance(item, dict) for item in found)


async def translate(
    runtime: Runtime, app_id: uuid.UUID, data: dict[str, Any]
) -> NotificationCreate:
    """The `/v1` request the message means, its subscriptions registered first.

    Raises:
        ValidationError: a field of the message (or of the request it makes) is refused.
        PushgateError: a subscription is refused (`invalid_subscription`, `unsafe_endpoint`),
            naming it (`devices.1.endpoint`); none is registered then.
    """
    message = GatewayMessage.model_validate(data)
    fields = {
        "title": message.title,
        "body": message.body,
        "url": message.action_url,
        "idempotency_key": None
        if message.notification_id is None
        else str(message.notification_id),
    }
    fields = {name: value for name, value in fields.items() if value is not None}
    # The request is checked before anything is registered: a message refused for its text
    # leaves no devices behind. The placeholder target is replaced below.
    request = NotificationCreate.model_validate({**fields, "device_ids": [uuid.uuid4()]})
    addresses = [await _address(runtime, i, s) for i, s in enumerate(message.devices)]
    profile = {"user_id": message.user_id} if message.user_id is not None else {}
    async with runtime.sessions() as session:
        ids = [await _register(session, app_id, address, profile) for address in addresses]
        await session.commit()
    return request.model_copy(update={"device_ids": list(dict.fromkeys(ids))})


async def _address(
    runtime: Runtime, index: int, subscription: device_schemas.WebPushSubscription
) -> PushAddress:
    body = device_schemas.DeviceCreate(platform="webpush", subscription=subscription)
    try:
        return await device_routes.push_address(body, runtime)
    except InvalidInputError as exc:
        # The dead letter's reason says which subscription: `devices.1: ...`.
        exc.field = f"devices.{index}.{exc.field or 'endpoint'}"
        exc.details = {**(exc.details or {}), "field": exc.field}
        exc.message = f"devices.{index}: {exc.message}"
        raise


async def _register(
    session: AsyncSession, app_id: uuid.UUID, address: PushAddress, profile: dict[str, Any]
) -> uuid.UUID:
    """The device of `address`: registered for the message's user when new or userless."""
    try:
        registration = await devices.upsert(
            session=session, app_id=app_id, address=address, profile=profile, keep_user=True
        )
    except PermissionDeniedError:
        # Another user's already (the statement kept it theirs, and refreshed the rest): the
        # old gateway sent to the subscriptions it was given, so this one gets it too.
        query = select(Device.id).where(
            Device.app_id == app_id,
            Device.platform == str(address.platform),
            Device.token == address.token,
        )
        return (await session.execute(query)).scalar_one()
    return registration.record.device.id
