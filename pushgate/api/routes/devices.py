"""The device registry: register, read, list, update, delete devices and their topics.

Keys that may read devices (send, admin) manage any device of their app and see it whole. A
`subscribe` key lives in a web page or an app, so it is trusted with nothing but the device it
runs on: it addresses a device by id only together with that device's token or endpoint (the
`X-Device-Token` header), never changes the user a device has, and gets back a `DeviceReceipt`.
An end user signed in with a JWT (api/signin.py) sees and manages its own devices only: its
`sub` is the user of every device it registers (api/owners.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate import netguard
from pushgate.api import owners
from pushgate.api.deps import Caller, DeviceReader, DeviceWriter, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas import devices as schemas
from pushgate.domain import subscription
from pushgate.domain.apikeys import Permission
from pushgate.domain.platforms import PlatformName
from pushgate.domain.subscription import Platform, PushAddress
from pushgate.errors import InvalidInputError, PermissionDeniedError
from pushgate.runtime import Runtime
from pushgate.sending import addresses
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
HeldToken = Annotated[
    str | None,
    Header(
        alias="X-Device-Token",
        description="The device's FCM or APNs token, or its Web Push endpoint: required of"
        " `subscribe` keys, which may touch only a device they hold. Not read for other keys.",
    ),
]
NOT_FOUND = errors(
    described={
        404: "No such device in the caller's app, or (subscribe keys) `X-Device-Token`"
        " is not its token (`device_not_found`)"
    }
)
BY_HOLDER = NOT_FOUND | errors(
    described={
        403: "A key whose scope does not allow this (`insufficient_scope`), a subscribe key"
        " without `X-Device-Token` (`device_token_required`), or one asking to change or clear"
        " the user of a device that has one (`device_user_locked`)"
    }
)
Answer = schemas.DevicePublic | schemas.DeviceReceipt


def trusted(caller: Caller) -> bool:
    """Whether the key may see and manage every device of its app (it may read devices)."""
    return caller.can(Permission.DEVICES_READ)


def held_token(caller: Caller, presented: str | None) -> str | None:
    """The token a subscribe key must show for the device it addresses; None for trusted keys.

    Raises: PermissionDeniedError `device_token_required`.
    """
    if trusted(caller):
        return None
    if not presented:
        raise PermissionDeniedError(
            "a subscribe key must send the device's token or Web Push endpoint"
            " in the X-Device-Token header",
            code="device_token_required",
        )
    return presented


def answer(
    caller: Caller,
    record: devices.DeviceRecord,
    *,
    sent: Collection[str] = (),
    topics: Collection[str] = (),
) -> Answer:
    """The whole device for trusted keys; for a subscribe key, the receipt of what it sent."""
    if trusted(caller):
        return schemas.DevicePublic.of(record)
    return schemas.DeviceReceipt.of(record, sent=sent, topics=topics)


async def push_address(body: schemas.DeviceCreate, runtime: Runtime) -> PushAddress:
    """The device's checked address: a subscription for webpush, a token checked by its
    provider for any other platform."""
    if body.platform == Platform.WEBPUSH:
        if body.token is not None:
            raise InvalidInputError(
                "webpush devices send `subscription`, not `token`", field="token"
            )
        sub = body.subscription
        if sub is None:
            raise InvalidInputError("webpush devices need a `subscription`", field="subscription")
        await netguard.check_endpoint(sub.endpoint, runtime.settings.webpush)
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
    return addresses.token_address(runtime.providers, body.platform, body.token)


@router.post(
    "/v1/devices",
    status_code=201,
    summary="Register a device, or refresh an existing one (200)",
    response_model_exclude_unset=True,
    responses={
        200: {"model": Answer, "description": "An existing device, updated"},
        **errors(
            described={
                403: "A key whose scope does not allow this (`insufficient_scope`), or a"
                " subscribe key asking to change or clear the user of an existing device that"
                " has one (`device_user_locked`)",
                409: "An end user's token registered to another user (`device_taken`)",
            }
        ),
    },
)
async def register_device(
    body: schemas.DeviceCreate,
    caller: DeviceWriter,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> Answer:
    registration = await register(runtime, session, caller, body)
    response.status_code = 201 if registration.created else 200
    return answer(caller, registration.record, sent=body.model_fields_set)


async def register(
    runtime: Runtime, session: AsyncSession, caller: Caller, body: schemas.DeviceCreate
) -> devices.Registration:
    """Register a device, or refresh the one with its token, for `caller`, and commit: the use
    case of `POST /v1/devices` (also the legacy `/subscribe` routes', pushgate/compat)."""
    address = await push_address(body, runtime)
    profile = owners.profile(caller, body.profile())
    with owners.taken_token(caller):
        registration = await devices.upsert(
            session=session,
            app_id=caller.app_id,
            address=address,
            profile=profile,
            topics=body.topics,
            keep_user=not trusted(caller) or caller.user_id is not None,
        )
    await session.commit()
    return registration


@router.get("/v1/devices/{device_id}", summary="One device", responses=NOT_FOUND)
async def get_device(
    device_id: DeviceId, caller: DeviceReader, session: SessionDep
) -> schemas.DevicePublic:
    record = await devices.get(session=session, app_id=caller.app_id, device_id=device_id)
    return schemas.DevicePublic.of(owners.own(caller, record))


@router.get("/v1/devices", summary="A page of the app's devices")
async def list_devices(
    caller: DeviceReader,
    session: SessionDep,
    user_id: Annotated[schemas.UserId | None, Query(min_length=1, max_length=255)] = None,
    platform: PlatformName | None = None,
    topic: TopicQuery = None,
    enabled: bool | None = None,
    status: StatusQuery = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> schemas.DevicesPublic:
    page = await devices.list_page(
        session=session,
        app_id=caller.app_id,
        user_id=owners.user_filter(caller, user_id),
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
    platform: PlatformName | None = None,
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


@router.patch(
    "/v1/devices/{device_id}",
    summary="Change a device",
    response_model_exclude_unset=True,
    responses=BY_HOLDER,
)
async def update_device(
    device_id: DeviceId,
    body: schemas.DeviceUpdate,
    caller: DeviceWriter,
    session: SessionDep,
    presented: HeldToken = None,
) -> Answer:
    await owners.check(caller, session, device_id)
    record = await devices.update(
        session=session,
        app_id=caller.app_id,
        device_id=device_id,
        profile=owners.profile(caller, body.profile()),
        topics=body.topics if "topics" in body.model_fields_set else None,
        held_token=held_token(caller, presented),
        keep_user=not trusted(caller) or caller.user_id is not None,
    )
    await session.commit()
    return answer(caller, record, sent=body.model_fields_set)


@router.delete(
    "/v1/devices/{device_id}",
    status_code=204,
    response_model=None,
    summary="Delete a device (soft: kept for history); `purge=true` removes it (admin keys)",
    responses=BY_HOLDER,
)
async def delete_device(
    device_id: DeviceId,
    caller: DeviceWriter,
    session: SessionDep,
    purge: Annotated[bool, Query(description="Remove the row for good (admin keys only).")] = False,
    presented: HeldToken = None,
) -> Response:
    if purge:
        if not caller.can(Permission.ADMIN):
            raise PermissionDeniedError(
                f"a {caller.scope.value} key may not purge devices (needs admin)",
                code="insufficient_scope",
            )
        await devices.purge(session=session, app_id=caller.app_id, device_id=device_id)
    else:
        await owners.check(caller, session, device_id)
        await devices.deactivate(
            session=session,
            app_id=caller.app_id,
            device_id=device_id,
            held_token=held_token(caller, presented),
        )
    await session.commit()
    return Response(status_code=204)


@router.post(
    "/v1/devices/{device_id}/topics",
    summary="Subscribe a device to topics",
    response_model_exclude_unset=True,
    responses=BY_HOLDER,
)
async def add_device_topics(
    device_id: DeviceId,
    body: schemas.DeviceTopicsCreate,
    caller: DeviceWriter,
    session: SessionDep,
    presented: HeldToken = None,
) -> Answer:
    await owners.check(caller, session, device_id)
    record = await devices.add_topics(
        session=session,
        app_id=caller.app_id,
        device_id=device_id,
        topics=body.topics,
        held_token=held_token(caller, presented),
    )
    await session.commit()
    return answer(caller, record, topics=body.topics)


@router.delete(
    "/v1/devices/{device_id}/topics/{topic}",
    summary="Unsubscribe a device from a topic",
    response_model_exclude_unset=True,
    responses=BY_HOLDER,
)
async def remove_device_topic(
    device_id: DeviceId,
    topic: TopicName,
    caller: DeviceWriter,
    session: SessionDep,
    presented: HeldToken = None,
) -> Answer:
    await owners.check(caller, session, device_id)
    record = await devices.remove_topic(
        session=session,
        app_id=caller.app_id,
        device_id=device_id,
        topic=topic,
        held_token=held_token(caller, presented),
    )
    await session.commit()
    return answer(caller, record)
