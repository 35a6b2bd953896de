"""The old gateway's token registry: `POST /api/device-tokens` (register or update),
`GET /api/device-tokens/{user_id}` (a user's active tokens) and
`DELETE /api/device-tokens/{token}` (deactivate), on the device use cases of `/v1/devices`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.deps import Caller, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.routes import devices as device_routes
from pushgate.api.schemas.devices import DeviceCreate
from pushgate.compat import ShapeName
from pushgate.compat.auth import legacy_caller
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.fcm_gateway import schemas, translate
from pushgate.compat.shapes import tag
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.domain.subscription import Platform
from pushgate.runtime import Runtime
from pushgate.store import devices

SHAPE: ShapeName = "fcm_gateway"
# Pages read to list one user's tokens: a user has a handful; the loop ends at the last page.
PAGE = 500

router = APIRouter(route_class=LegacyRoute, tags=[tag(SHAPE)], deprecated=True)

TokenWriter = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.DEVICES_WRITE, RouteClass.SUBSCRIBE))
]
TokenReader = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.DEVICES_READ, RouteClass.READ))
]
NOT_FOUND = errors(described={404: "No such token in the app (`device_not_found`)"})


async def register(
    runtime: Runtime,
    session: AsyncSession,
    caller: Caller,
    *,
    token: str,
    user_id: str | None,
    platform: str,
) -> devices.Registration:
    """Register `token` for `user_id` (or refresh the device it is), as `POST /v1/devices`
    does: a known token is the same device, never a second one. Commits.

    Raises:
        RequestValidationError: what `/v1/devices` refuses in the body, on the legacy field.
        PushgateError: what registering raises (a token its provider refuses, ...).
    """
    fields = {"platform": platform, "token": token}
    if user_id is not None:  # an unset user_id keeps the device's user; None would clear it
        fields["user_id"] = user_id
    try:
        body = DeviceCreate.model_validate(fields)
    except ValidationError as exc:
        raise translate.refused(exc.errors()) from None
    return await device_routes.register(runtime, session, caller, body)


@router.post(
    "/api/device-tokens",
    status_code=201,
    summary="Register a token for a user, or update it (200)",
    response_model=schemas.DeviceTokenPublic,
    responses={200: {"model": schemas.DeviceTokenPublic, "description": "A known token"}},
)
async def register_token(
    body: schemas.DeviceTokenCreate,
    caller: TokenWriter,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> schemas.DeviceTokenPublic:
    registration = await register(
        runtime,
        session,
        caller,
        token=body.token,
        user_id=body.user_id,
        platform=translate.platform(body.platform),
    )
    response.status_code = 201 if registration.created else 200
    whole = device_routes.trusted(caller)
    return schemas.DeviceTokenPublic.of(registration.record, whole=whole)


# The old service's two routes on this path named its segment `user_id` (GET) and `token`
# (DELETE); one name for both keeps them one path in the OpenAPI document, so the methods it
# lists for the path (and `Allow` on a 405) agree.
@router.get(
    "/api/device-tokens/{key}",
    summary="A user's active tokens",
    response_model=schemas.DeviceTokensPublic,
)
async def list_tokens(
    key: Annotated[str, Path(min_length=1, max_length=255, description="The user id")],
    caller: TokenReader,
    session: SessionDep,
) -> schemas.DeviceTokensPublic:
    user_id = key
    found: list[devices.DeviceRecord] = []
    after = None
    while True:
        page = await devices.list_page(
            session=session,
            app_id=caller.app_id,
            user_id=user_id,
            statuses={devices.Status.ACTIVE},
            after=after,
            limit=PAGE,
        )
        found += page.items
        if page.next_after is None:
            break
        after = page.next_after
    # Web Push subscriptions (registered through /v1) are no tokens of this gateway's.
    tokens = [
        schemas.DeviceTokenPublic.of(r) for r in found if r.device.platform != Platform.WEBPUSH
    ]
    return schemas.DeviceTokensPublic(user_id=user_id, tokens=tokens, count=len(tokens))


@router.delete(
    "/api/device-tokens/{key}",
    summary="Deactivate a token (soft: kept for history, like DELETE /v1/devices/{id})",
    response_model=schemas.TokenDeactivated,
    responses=NOT_FOUND,
)
async def deactivate_token(
    key: Annotated[str, Path(min_length=1, max_length=4096, description="The token")],
    caller: TokenWriter,
    session: SessionDep,
) -> schemas.TokenDeactivated:
    token = key
    found = await devices.by_token(session=session, app_id=caller.app_id, token=token)
    if not found:
        raise devices.device_not_found()
    for device in found:
        await devices.deactivate(session=session, app_id=caller.app_id, device_id=device.id)
    await session.commit()
    return schemas.TokenDeactivated(token=token)
