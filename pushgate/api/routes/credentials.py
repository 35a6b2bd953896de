"""An app's provider credentials: set, replace, list (metadata only) and remove, admin keys
only. Credentials are checked when set, so a bad key is a 422 now, not failed sends later."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.deps import Admin, Caller, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas import credentials as schemas
from pushgate.errors import NotFoundError
from pushgate.runtime import Runtime
from pushgate.sending import credentials as sending
from pushgate.store import credentials as stored

router = APIRouter(prefix="/v1/apps/current/credentials", tags=["credentials"])

NOT_FOUND = errors(
    described={404: "Nothing is configured for that platform (`credentials_not_found`)"}
)


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


# One DELETE per platform, beside its PUT, rather than one `/{platform}` route: a path that
# overlaps a literal one makes the literal path's methods ambiguous (a GET on `/fcm` would be
# routed as a `{platform}` it is not, and `Allow` could not say what `/fcm` answers).
@router.delete(
    "/fcm", status_code=204, summary="Remove the app's FCM service account", responses=NOT_FOUND
)
async def delete_fcm(caller: Admin, session: SessionDep, runtime: RuntimeDep) -> Response:
    return await _remove("fcm", caller, session, runtime)


@router.delete(
    "/apns", status_code=204, summary="Remove the app's APNs signing key", responses=NOT_FOUND
)
async def delete_apns(caller: Admin, session: SessionDep, runtime: RuntimeDep) -> Response:
    return await _remove("apns", caller, session, runtime)


async def _remove(
    platform: schemas.CredentialPlatform, caller: Caller, session: AsyncSession, runtime: Runtime
) -> Response:
    if not await stored.remove(session=session, app_id=caller.app_id, platform=platform):
        raise NotFoundError(
            f"no {platform} credentials are set for this app", code="credentials_not_found"
        )
    await session.commit()
    runtime.credentials.forget(caller.app_id)
    return Response(status_code=204)
