"""An app's provider credentials: set, replace, list (metadata only) and remove, admin keys
only. Credentials are checked when set, so a bad key is a 422 now, not failed sends later."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from pushgate.api.deps import Admin, RuntimeDep, SessionDep
from pushgate.api.schemas import credentials as schemas
from pushgate.errors import NotFoundError
from pushgate.sending import credentials as sending
from pushgate.store import credentials as stored

router = APIRouter(prefix="/v1/apps/current/credentials", tags=["credentials"])

PlatformPath = Annotated[schemas.CredentialPlatform, Path(description="`fcm` or `apns`.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Nothing is configured for that platform (`credentials_not_found`)"}
}


@router.put("/fcm", summary="Set or replace the app's FCM service account")
async def set_fcm(
    body: schemas.FCMCredentialsUpdate, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> schemas.CredentialPublic:
    account = runtime.credentials.read("fcm", body.source(), {})
    row = await sending.save(
        session=session, box=runtime.credentials.box(), app_id=caller.app_id, credentials=account
    )
    await session.commit()
    runtime.credentials.forget(caller.app_id)
    return schemas.CredentialPublic.of(row)


@router.put("/apns", summary="Set or replace the app's APNs signing key")
async def set_apns(
    body: schemas.APNSCredentialsUpdate, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> schemas.CredentialPublic:
    key = runtime.credentials.read("apns", body.key, body.model_dump(exclude={"key"}))
    row = await sending.save(
        session=session, box=runtime.credentials.box(), app_id=caller.app_id, credentials=key
    )
    await session.commit()
    runtime.credentials.forget(caller.app_id)
    return schemas.CredentialPublic.of(row)


@router.get("", summary="What is configured (metadata and fingerprints, never secrets)")
async def list_credentials(caller: Admin, session: SessionDep) -> schemas.CredentialsPublic:
    rows = await stored.list_for_app(session=session, app_id=caller.app_id)
    return schemas.CredentialsPublic(items=[schemas.CredentialPublic.of(r) for r in rows])


@router.delete(
    "/{platform}", status_code=204, summary="Remove the app's credentials", responses=NOT_FOUND
)
async def delete_credentials(
    platform: PlatformPath, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> Response:
    if not await stored.remove(session=session, app_id=caller.app_id, platform=platform):
        raise NotFoundError(
            f"no {platform} credentials are set for this app", code="credentials_not_found"
        )
    await session.commit()
    runtime.credentials.forget(caller.app_id)
    return Response(status_code=204)
