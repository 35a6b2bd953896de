"""An app's end-user sign-in settings (admin keys): which JWTs the device routes accept
instead of an API key, and which web origins may call them (CORS)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from pushgate.api import signin
from pushgate.api.deps import Admin, RuntimeDep, SessionDep
from pushgate.api.schemas import signin as schemas
from pushgate.store import apps

router = APIRouter(prefix="/v1/apps/current/auth", tags=["sign-in"])


@router.put("", summary="Set the app's end-user sign-in (JWTs on the device routes)")
async def set_auth(
    body: schemas.AppAuthUpdate,
    caller: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
) -> schemas.AppAuthPublic:
    config = await signin.configure(
        session=session,
        runtime=runtime,
        app_id=caller.app_id,
        **body.model_dump(),
    )
    await session.commit()
    changed(request, caller.app_id)
    return schemas.AppAuthPublic.of(config)


@router.get("", summary="The app's end-user sign-in (never the secret)")
async def get_auth(caller: Admin, session: SessionDep) -> schemas.AppAuthPublic:
    app = await apps.get(session=session, app_id=caller.app_id)
    return schemas.AppAuthPublic.of(apps.auth_config(app))


@router.delete("", status_code=204, response_model=None, summary="Accept API keys only")
async def delete_auth(
    caller: Admin, session: SessionDep, runtime: RuntimeDep, request: Request
) -> Response:
    await apps.set_auth(
        session=session,
        box=runtime.credentials.box(),
        app_id=caller.app_id,
        config=None,
        secret=None,
    )
    await session.commit()
    changed(request, caller.app_id)
    return Response(status_code=204)


def changed(request: Request, app_id: uuid.UUID) -> None:
    """This process forgets what it cached of the app's sign-in; others within their TTLs."""
    request.app.state.cors_origins.forget()
    request.app.state.jwks.forget(app_id)
