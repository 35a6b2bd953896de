"""The device registry: register, read, list, update, delete devices and their topics."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from pushgate import netguard
from pushgate.api.deps import DeviceReader, DeviceWriter, RuntimeDep, SessionDep
from pushgate.api.schemas import devices as schemas
from pushgate.domain import subscription
from pushgate.domain.apikeys import Permission
from pushgate.domain.subscription import Platform, PushAddress
from pushgate.errors import InvalidInputError, PermissionDeniedError
from pushgate.settings import WebPushSettings
from pushgate.store import devices

router = APIRouter(tags=["devices"])

DeviceId = Annotated[uuid.UUID, Path(description="The device id pushgate gave out.")]
TopicName = Annotated[str, Path(min_length=1, max_length=255, pattern=schemas.TOPIC_PATTERN)]
UserIdPath = Annotated[schemas.UserId, Path(min_length=1, max_length=255)]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
TopicQuery = Annotated[
    str | None, Query(min_length=1, max_length=255, pattern=schemas.TOPIC_PATTERN)
]
StatusQuery = Annotated[
    schemas.StatusFilter | None,
    Query(description="Default: active and disabled devices; `all` adds deactivated ones."),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such device in the caller's app (`device_not_found`)"}
}


async def push_address(body: schemas.DeviceCreate, policy: WebPushSettings) -> PushAddress:
    """The device's checked address: a token for fcm/apns, a subscription for webpush."""
    if body.platform is Platform.WEBPUSH:
        if body.token is not None:
            raise InvalidInputError(
                "webpush devices send `subscription`, not `token`", field="token"
            )
        sub = body.subscription
        if sub is None:
            raise InvalidInputError("webpush devices need a `subscription`", field="subscription")
        await netguard.check_endpoint(sub.endpoint, policy)
        return subscription.webpush_address(
            endpoint=sub.endpoint,
            p256dh=sub.keys.p256dh,
            auth=sub.keys.auth,
            expiration_time=sub.expiration_time,
        )
    if body.subscription is not None:
        raise InvalidInputError(
            f"{body.platform} devices send `token`, not `subscription`", field="subscription"
        )
    if body.token is None:
        raise InvalidInputError(f"{body.platform} devices need a `token`", field="token")
    return subscription.token_address(body.platform, body.token)


@router.post(
    "/v1/devices",
    status_code=201,
    summary="Register a device, or refresh an existing one (200)",
    responses={200: {"model": schemas.DevicePublic, "description": "An existing device, updated"}},
)
async def register_device(
    body: schemas.DeviceCreate,
    caller: DeviceWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> schemas.DevicePublic:
    address = await push_address(body, runtime.settings.webpush)
    registration = await devices.upsert(
        session=session,
        app_id=caller.app_id,
        address=address,
        profile=body.profile(),
        topics=body.topics,
    )
    await session.commit()
    response.status_code = 201 if registration.created else 200
    return schemas.DevicePublic.of(registration.record)


@router.get("/v1/devices/{device_id}", summary="One device", responses=NOT_FOUND)
async def get_device(
    device_id: DeviceId, caller: DeviceReader, session: SessionDep
) -> schemas.DevicePublic:
    record = await devices.get(session=session, app_id=caller.app_id, device_id=device_id)
    return schemas.DevicePublic.of(record)


@router.get("/v1/devices", summary="A page of the app's devices")
async def list_devices(
    caller: DeviceReader,
    session: SessionDep,
    user_id: Annotated[schemas.UserId | None, Query(min_length=1, max_length=255)] = None,
    platform: Platform | None = None,
    topic: TopicQuery = None,
    enabled: bool | None = None,
    status: StatusQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> schemas.DevicesPublic:
    page = await devices.list_page(
        session=session,
        app_id=caller.app_id,
        user_id=user_id,
        platform=platform,
        topic=topic,
        enabled=enabled,
        statuses=schemas.statuses(status),
        after=schemas.decode_cursor(cursor),
        limit=limit,
    )
    return schemas.DevicesPublic.of(page)


@router.get("/v1/users/{user_id}/devices", summary="A page of one user's devices")
async def list_user_devices(
    user_id: UserIdPath,
    caller: DeviceReader,
    session: SessionDep,
    platform: Platform | None = None,
    topic: TopicQuery = None,
    enabled: bool | None = None,
    status: StatusQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> schemas.DevicesPublic:
    return await list_devices(
        caller=caller,
        session=session,
        user_id=user_id,
        platform=platform,
        topic=topic,
        enabled=enabled,
        status=status,
        limit=limit,
        cursor=cursor,
    )


@router.patch("/v1/devices/{device_id}", summary="Change a device", responses=NOT_FOUND)
async def update_device(
    device_id: DeviceId, body: schemas.DeviceUpdate, caller: DeviceWriter, session: SessionDep
) -> schemas.DevicePublic:
    record = await devices.update(
        session=session,
        app_id=caller.app_id,
        device_id=device_id,
        profile=body.profile(),
        topics=body.topics if "topics" in body.model_fields_set else None,
    )
    await session.commit()
    return schemas.DevicePublic.of(record)


@router.delete(
    "/v1/devices/{device_id}",
    status_code=204,
    response_model=None,
    summary="Delete a device (soft: kept for history); `purge=true` removes it (admin keys)",
    responses=NOT_FOUND,
)
async def delete_device(
    device_id: DeviceId,
    caller: DeviceWriter,
    session: SessionDep,
    purge: Annotated[bool, Query(description="Remove the row for good (admin keys only).")] = False,
) -> Response:
    if purge:
        if not caller.can(Permission.ADMIN):
            raise PermissionDeniedError(
                f"a {caller.scope.value} key may not purge devices (needs admin)",
                code="insufficient_scope",
            )
        await devices.purge(session=session, app_id=caller.app_id, device_id=device_id)
    else:
        await devices.deactivate(session=session, app_id=caller.app_id, device_id=device_id)
    await session.commit()
    return Response(status_code=204)


@router.post(
    "/v1/devices/{device_id}/topics", summary="Subscribe a device to topics", responses=NOT_FOUND
)
async def add_device_topics(
    device_id: DeviceId,
    body: schemas.DeviceTopicsCreate,
    caller: DeviceWriter,
    session: SessionDep,
) -> schemas.DevicePublic:
    record = await devices.add_topics(
        session=session, app_id=caller.app_id, device_id=device_id, topics=body.topics
    )
    await session.commit()
    return schemas.DevicePublic.of(record)


@router.delete(
    "/v1/devices/{device_id}/topics/{topic}",
    summary="Unsubscribe a device from a topic",
    responses=NOT_FOUND,
)
async def remove_device_topic(
    device_id: DeviceId, topic: TopicName, caller: DeviceWriter, session: SessionDep
) -> schemas.DevicePublic:
    record = await devices.remove_topic(
        session=session, app_id=caller.app_id, device_id=device_id, topic=topic
    )
    await session.commit()
    return schemas.DevicePublic.of(record)
