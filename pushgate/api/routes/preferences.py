"""A user's preferences: read (the defaults when none are stored), replace, reset. Send and
admin keys only: the backend speaks for its users, a page's `subscribe` key does not.

The user is the `user_id` devices are registered with; preferences may be set before the user
has any device. Dispatch applies them (`sending.preferences`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from pushgate.api.deps import Sender, SessionDep
from pushgate.api.routes.devices import UserIdPath
from pushgate.api.schemas import preferences as schemas
from pushgate.store import preferences as stored

router = APIRouter(prefix="/v1/users/{user_id}/preferences", tags=["preferences"])


@router.get("", summary="A user's preferences (the defaults when none are set)")
async def get_preferences(
    user_id: UserIdPath, caller: Sender, session: SessionDep
) -> schemas.PreferencesPublic:
    saved = await stored.get(session=session, app_id=caller.app_id, user_id=user_id)
    return schemas.PreferencesPublic.of(user_id, saved)


@router.put("", summary="Replace a user's preferences")
async def put_preferences(
    user_id: UserIdPath, body: schemas.PreferencesUpdate, caller: Sender, session: SessionDep
) -> schemas.PreferencesPublic:
    saved = await stored.put(
        session=session, app_id=caller.app_id, user_id=user_id, preferences=body.preferences()
    )
    await session.commit()
    return schemas.PreferencesPublic.of(user_id, saved)


@router.delete("", status_code=204, summary="Reset a user's preferences to the defaults")
async def delete_preferences(user_id: UserIdPath, caller: Sender, session: SessionDep) -> Response:
    # Idempotent: resetting a user who has none is not an error.
    await stored.remove(session=session, app_id=caller.app_id, user_id=user_id)
    await session.commit()
    return Response(status_code=204)
