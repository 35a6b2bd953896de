"""`/subscriptions/`: the legacy registry of Web Push subscriptions, through the `/v1` device
use cases: the same registration checks and SSRF guard, the same rules for end users (their own
subscriptions only) and for `subscribe` keys (a device only with its endpoint in
`X-Device-Token`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api import owners
from pushgate.api.deps import Caller, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.routes import devices as device_routes
from pushgate.compat.auth import legacy_caller
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.shapes import tag
from pushgate.compat.subscription_service import SHAPE, schemas, translate
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.store import devices

router = APIRouter(route_class=LegacyRoute, tags=[tag(SHAPE)], deprecated=True)


def _caller(permission: Permission) -> Any:
    # End-user JWTs name no app (the old clients send no X-Pushgate-App): the static key's.
    return Depends(
        legacy_caller(
            SHAPE, permission, RouteClass.SUBSCRIBE, end_users=True, static_app_for_jwts=True
        )
    )


Writer = Annotated[Caller, _caller(Permission.DEVICES_WRITE)]
Reader = Annotated[Caller, _caller(Permission.DEVICES_READ)]
SubscriptionId = Annotated[
    uuid.UUID, Path(description="The subscription's id (pushgate's device id).")
]
NOT_FOUND = errors(
    described={
        404: "No such Web Push subscription in the app, or (subscribe keys) `X-Device-Token`"
        " is not its endpoint (`device_not_found`)"
    }
)


@router.post(
    "/subscriptions/",
    status_code=201,
    summary="Register a browser's subscription, or refresh it (200)",
    responses={200: {"model": schemas.SubscriptionPublic, "description": "Known, refreshed"}},
)
async def create_subscription(
    body: schemas.SubscriptionCreate,
    caller: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> schemas.SubscriptionPublic:
    device = translate.device_create(body)
    registration = await device_routes.register(runtime, session, caller, device)
    response.status_code = 201 if registration.created else 200
    return schemas.SubscriptionPublic.of(
        registration.record,
        whole=device_routes.trusted(caller),
        sent={"keys", *device.model_fields_set},
    )


@router.get("/subscriptions/{subscription_id}/", summary="One subscription", responses=NOT_FOUND)
async def get_subscription(
    subscription_id: SubscriptionId, caller: Reader, session: SessionDep
) -> schemas.SubscriptionPublic:
    record = await _subscription(caller, session, subscription_id, held=None)
    return schemas.SubscriptionPublic.of(record, whole=True)


@router.put(
    "/subscriptions/{subscription_id}/",
    summary="Change a subscription's topics (replaced) and `enabled`",
    responses=NOT_FOUND,
)
async def update_subscription(
    subscription_id: SubscriptionId,
    body: schemas.SubscriptionUpdate,
    caller: Writer,
    session: SessionDep,
    presented: device_routes.HeldToken = None,
) -> schemas.SubscriptionPublic:
    held = device_routes.held_token(caller, presented)
    await _subscription(caller, session, subscription_id, held=held)
    change = translate.device_update(body)
    record = await devices.update(
        session=session,
        app_id=caller.app_id,
        device_id=subscription_id,
        profile=change.profile(),  # `enabled` only: a PUT never moves the user
        topics=change.topics if "topics" in change.model_fields_set else None,
        held_token=held,
    )
    await session.commit()
    whole = device_routes.trusted(caller)
    return schemas.SubscriptionPublic.of(record, whole=whole, sent=change.model_fields_set)


@router.delete(
    "/subscriptions/{subscription_id}/",
    status_code=204,
    response_model=None,
    summary="Delete a subscription (soft: kept for history)",
    responses=NOT_FOUND,
)
async def delete_subscription(
    subscription_id: SubscriptionId,
    caller: Writer,
    session: SessionDep,
    presented: device_routes.HeldToken = None,
) -> Response:
    held = device_routes.held_token(caller, presented)
    await _subscription(caller, session, subscription_id, held=held)
    await devices.deactivate(
        session=session, app_id=caller.app_id, device_id=subscription_id, held_token=held
    )
    await session.commit()
    return Response(status_code=204)


async def _subscription(
    caller: Caller, session: AsyncSession, subscription_id: uuid.UUID, *, held: str | None
) -> devices.DeviceRecord:
    """The Web Push device `subscription_id`, if the caller may address it: another platform's
    device is not a subscription, and a wrong `held` token answers like a missing device.

    Raises: NotFoundError `device_not_found`; PermissionDeniedError `device_of_another_user`.
    """
    record = await devices.get(session=session, app_id=caller.app_id, device_id=subscription_id)
    if not schemas.is_subscription(record) or (
        held is not None and not devices.holds(record.device, held)
    ):
        raise devices.device_not_found()
    return owners.own(caller, record)
