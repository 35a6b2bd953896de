"""An app's dead letters: list (filtered, newest first), read one with its last provider
answer, replay one or a filtered set, purge a filtered set. Admin keys only; the work is in
sending/dead_letters.py, shared with `pushgate dlq`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from pushgate.api.deps import Admin, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas import dead_letters as schemas
from pushgate.domain.dead_letters import LetterFilter
from pushgate.sending import dead_letters as letters
from pushgate.store import dead_letters as stored

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

LetterId = Annotated[uuid.UUID, Path(description="The dead letter's id.")]
NOT_FOUND = errors(described={404: "No such dead letter in the app (`dead_letter_not_found`)"})
FILTER_REQUIRED = errors(described={400: "No filter and no `all=true` (`filter_required`)"})
# The replay's filter is a body, which may also be unreadable (400 as on every body).
REPLAY_FILTER_REQUIRED = errors(
    described={
        400: "No filter and no `all=true` (`filter_required`), or a body that could not be read"
    }
)
Reason = Annotated[str | None, Query(max_length=64, description="A `reason_code`.")]
Provider = Annotated[str | None, Query(max_length=32, description="`fcm`, `apns`, `webpush`...")]
QueueFilter = Annotated[schemas.QueueName | None, Query(description="The queue it failed on.")]
Since = Annotated[datetime | None, Query(description="Failed at or after (ISO 8601, with zone).")]
Until = Annotated[datetime | None, Query(description="Failed before (ISO 8601, with zone).")]


@router.get("", summary="The app's dead letters, newest first")
async def list_dead_letters(
    caller: Admin,
    session: SessionDep,
    reason: Reason = None,
    provider: Provider = None,
    queue: QueueFilter = None,
    since: Since = None,
    until: Until = None,
    replayed: Annotated[
        bool, Query(description="`true`: the letters already replayed instead.")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> schemas.DeadLettersPublic:
    chosen = schemas.checked_filter(
        LetterFilter(reason, provider, queue, since, until), everything=True
    )
    rows = await stored.page(
        session=session,
        app_id=caller.app_id,
        chosen=chosen,
        replayed=replayed,
        after=schemas.decode_cursor(cursor),
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return schemas.DeadLettersPublic(
        items=[schemas.DeadLetterPublic.of(r) for r in rows],
        next_cursor=schemas.encode_cursor((rows[-1].failed_at, rows[-1].id)) if more else None,
    )


@router.post(
    "/replay",
    status_code=202,
    summary="Put every letter a filter selects back on its queue",
    responses=REPLAY_FILTER_REQUIRED,
)
async def replay_dead_letters(
    body: schemas.ReplayFilter, caller: Admin, runtime: RuntimeDep
) -> schemas.Replayed:
    count = await letters.replay(runtime, app_id=caller.app_id, chosen=body.chosen())
    return schemas.Replayed(replayed=count)


@router.get(
    "/{letter_id}", summary="One dead letter, its body and last answer", responses=NOT_FOUND
)
async def get_dead_letter(
    letter_id: LetterId, caller: Admin, session: SessionDep
) -> schemas.DeadLetterDetail:
    row = await stored.get(session=session, app_id=caller.app_id, letter_id=letter_id)
    return schemas.DeadLetterDetail.of(row)


@router.post(
    "/{letter_id}/replay",
    status_code=202,
    summary="Put one letter back on its queue",
    responses=NOT_FOUND,
)
async def replay_dead_letter(
    letter_id: LetterId, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> schemas.Replayed:
    await stored.get(session=session, app_id=caller.app_id, letter_id=letter_id)
    count = await letters.replay(runtime, app_id=caller.app_id, ids=[letter_id])
    return schemas.Replayed(replayed=count)


@router.delete("", summary="Delete the letters a filter selects", responses=FILTER_REQUIRED)
async def purge_dead_letters(
    caller: Admin,
    runtime: RuntimeDep,
    reason: Reason = None,
    provider: Provider = None,
    queue: QueueFilter = None,
    since: Since = None,
    until: Until = None,
    everything: Annotated[
        bool, Query(alias="all", description="Required to purge with no filter at all.")
    ] = False,
) -> schemas.Purged:
    chosen = schemas.checked_filter(
        LetterFilter(reason, provider, queue, since, until), everything=everything
    )
    return schemas.Purged(purged=await letters.purge(runtime, app_id=caller.app_id, chosen=chosen))
