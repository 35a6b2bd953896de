"""Web Push set-up for browsers: the app's VAPID application server key."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pushgate.api.deps import CallerDep, SessionDep
from pushgate.store import apps

router = APIRouter(prefix="/v1/webpush", tags=["webpush"])


class VapidPublicKey(BaseModel):
    public_key: str = Field(
        description="Base64url uncompressed P-256 point: pass it as `applicationServerKey` to "
        "`pushManager.subscribe()`."
    )


@router.get("/vapid-public-key", summary="The app's VAPID public key (any key scope)")
async def vapid_public_key(caller: CallerDep, session: SessionDep) -> VapidPublicKey:
    app = await apps.get(session=session, app_id=caller.app_id)
    return VapidPublicKey(public_key=app.vapid_public_key)
