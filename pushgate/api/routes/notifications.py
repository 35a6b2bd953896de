"""Notifications: accept (single, bulk, immediate), status, deliveries, history, cancel."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import AfterValidator, ValidationError
from pydantic_core import PydanticCustomError
from starlette.datastructures import State

from pushgate.api.deps import Caller, NotificationReader, RuntimeDep, Sender, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas.notifications import (
    BulkCreate,
    BulkItemResult,
    BulkResult,
    DeliveriesPublic,
    DeliveryPublic,
    ImmediateDeliveryResult,
    ImmediateResult,
    NotificationAccepted,
    NotificationCreate,
    NotificationPublic,
    NotificationsPublic,
    NotificationSummary,
)
from pushgate.domain import storable
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.errors import InvalidInputError, PushgateError
from pushgate.sending import accept, immediate
from pushgate.store import deliveries, notifications
from pushgate.store.tables import Notification

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

IDEMPOTENCY_KEY_MAX_LENGTH = 255

ACCEPTING = errors(
    described={
        409: "A request with the same idempotency key is in progress; retry after"
        " `Retry-After` (`idempotency_in_progress`)",
        413: "Request body too large, or a payload over a push service's limit"
        " (`payload_too_large`; `details.field` names the largest field)",
    }
)
NOT_FOUND = errors(described={404: "No such notification in the app (`notification_not_found`)"})


def header_key_ok(value: str) -> bool:
    """Whether an `Idempotency-Key` header value (decoded as latin-1, as HTTP headers are) is
    printable ASCII: a header carries no character set, so a non-ASCII key would be stored as
    whatever its bytes mean in latin-1 and never found again by the key the client knows.
    (The IETF draft defines the header as a structured-field string: printable ASCII.)"""
    return value.isascii() and value.isprintable()


def _header_key(value: str | None) -> str | None:
    if value is not None and not header_key_ok(value):
        raise PydanticCustomError(
            "idempotency_key_header",
            "the Idempotency-Key header must be printable ASCII; send other characters as the"
            " body's idempotency_key",
        )
    return value


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        description="Same key + same body replays the first answer; kept 24 h or more."
        " Printable ASCII (other characters: the body's `idempotency_key`).",
    ),
    AfterValidator(_header_key),
]
StoredText = Annotated[str, storable.TEXT]


def _status(row: Notification | notifications.Created, *, replayed: bool) -> str:
    if replayed:
        # A replay is the first answer again, not the notification's progress since (that is
        # what `status_url` is for).
        scheduled = row.send_at is not None and row.send_at > row.created_at
        return NotificationStatus.SCHEDULED if scheduled else NotificationStatus.ACCEPTED
    return row.status


def _accepted(row: Notification, *, replayed: bool = False) -> NotificationAccepted:
    return NotificationAccepted(
        id=row.id,
        status=_status(row, replayed=replayed),
        status_url=f"/v1/notifications/{row.id}",
        idempotency_key=row.idempotency_key,
    )


def _with_key(body: NotificationCreate, header: str | None) -> NotificationCreate:
    if header is None:
        return body
    if body.idempotency_key is not None and body.idempotency_key != header:
        raise InvalidInputError(
            "the Idempotency-Key header and the body's idempotency_key differ",
            field="idempotency_key",
        )
    return body.model_copy(update={"idempotency_key": header})


@router.post(
    "",
    status_code=202,
    summary="Accept a notification for delivery",
    response_model=NotificationAccepted,
    responses=ACCEPTING,
)
async def create(
    body: NotificationCreate,
    caller: Sender,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # Well-formed requests rarely get here: `api.fastlane` answers them before FastAPI does,
    # through the same `accept_one`. This route describes the operation in the OpenAPI
    # document and answers the rest (malformed bodies, bad headers) as FastAPI does.
    return await accept_one(request.app.state, caller, body, idempotency_key)


async def accept_one(
    state: State, caller: Caller, body: NotificationCreate, idempotency_key: str | None
) -> Response:
    """Accept one notification and answer 202 (or raise the PushgateError to answer).

    The hot path: no session of its own (the key comes from the cache, the row is stored by
    the group commit with the accepts of other requests in flight), and the answer is
    serialised once, by orjson, rather than validated and encoded again by FastAPI.
    """
    result = await grouped(state, caller.app_id, _with_key(body, idempotency_key))
    row = result.stored
    headers = accept_headers(row.id, replayed=result.replayed)
    location = headers["Location"]
    answer = {
        "id": str(row.id),
        "status": _status(row, replayed=result.replayed),
        "status_url": location,
        "idempotency_key": row.idempotency_key,
    }
    return Response(
        orjson.dumps(answer), status_code=202, headers=headers, media_type="application/json"
    )


async def grouped(state: State, app_id: uuid.UUID, request: NotificationCreate) -> accept.Accepted:
    """Accept one notification through the API's group commit (stored with the accepts of
    other requests in flight): `/v1/notifications` and the legacy send routes (compat).

    Raises:
        PushgateError: the request is refused.
    """
    [result] = await accept.accept_many(
        state.runtime, app_id=app_id, requests=[request], group=state.accepts
    )
    if isinstance(result, PushgateError):
        raise result
    return result


def accept_headers(notification_id: uuid.UUID, *, replayed: bool) -> dict[str, str]:
    """What an accept answers besides its body: where the status is, and whether a repeated
    idempotency key replayed the first accept."""
    headers = {"Location": f"/v1/notifications/{notification_id}"}
    if replayed:
        headers["Idempotency-Replay"] = "true"
    return headers


@router.post("/bulk", status_code=200, summary="Accept up to 1000 notifications, each on its own")
async def create_bulk(
    body: BulkCreate, caller: Sender, runtime: RuntimeDep, session: SessionDep
) -> BulkResult:
    outcomes: list[accept.Accepted | PushgateError | None] = []
    parsed: list[NotificationCreate] = []
    for index, item in enumerate(body.notifications):
        try:
            parsed.append(NotificationCreate.model_validate(item))
            outcomes.append(None)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            field = f"notifications.{index}.{where}" if where else f"notifications.{index}"
            outcomes.append(
                InvalidInputError(f"{where or 'item'}: {first.get('msg')}", field=field)
            )
    accepted = iter(
        await accept.accept_many(runtime, app_id=caller.app_id, requests=parsed, session=session)
    )
    items: list[BulkItemResult] = []
    for index, outcome in enumerate(outcomes):
        result = outcome if outcome is not None else next(accepted)
        if isinstance(result, accept.Accepted):
            items.append(
                BulkItemResult(
                    index=index,
                    status_code=202,
                    notification=_accepted(result.notification, replayed=result.replayed),
                    replayed=result.replayed,
                )
            )
        else:
            items.append(
                BulkItemResult(
                    index=index,
                    status_code=result.status_code,
                    error={
                        "code": result.code,
                        "message": result.message,
                        "details": result.details,
                    },
                )
            )
    count = sum(1 for i in items if i.status_code == 202)
    return BulkResult(accepted=count, failed=len(items) - count, results=items)


@router.post(
    "/send-immediate",
    summary="Deliver now to a small audience and report each outcome",
    responses=ACCEPTING,
)
async def send_immediate(
    body: NotificationCreate,
    caller: Sender,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ImmediateResult:
    request = _with_key(body, idempotency_key)
    sent = await immediate.send(runtime, app_id=caller.app_id, request=request, session=session)
    row = sent.notification
    response.headers["Location"] = f"/v1/notifications/{row.id}"
    if sent.replayed:
        response.headers["Idempotency-Replay"] = "true"
    return ImmediateResult(
        id=row.id,
        status=row.status,
        status_url=f"/v1/notifications/{row.id}",
        deliveries=[ImmediateDeliveryResult.model_validate(d) for d in sent.deliveries],
    )


@router.get("", summary="History, newest first")
async def history(
    caller: NotificationReader,
    session: SessionDep,
    status: NotificationStatus | None = None,
    category: StoredText | None = None,
    since: storable.Instant | None = None,
    until: storable.Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> NotificationsPublic:
    rows = await notifications.history(
        session=session,
        app_id=caller.app_id,
        status=status,
        category=category,
        since=since,
        until=until,
        after=_uuid_cursor(cursor),
        limit=limit + 1,  # one more says whether there is a next page
    )
    next_cursor = _encode(str(rows[limit - 1].id)) if len(rows) > limit else None
    rows = rows[:limit]
    return NotificationsPublic(
        items=[NotificationSummary.of(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/by-idempotency-key/{key:path}",
    summary="Find a notification by its idempotency key",
    responses=NOT_FOUND,
)
async def get_by_key(
    key: StoredText, caller: NotificationReader, session: SessionDep
) -> NotificationPublic:
    row = await notifications.get_by_idempotency_key(session=session, app_id=caller.app_id, key=key)
    return await _public(session, row)


@router.get("/{notification_id}", summary="Status and counters", responses=NOT_FOUND)
async def get(
    notification_id: uuid.UUID, caller: NotificationReader, session: SessionDep
) -> NotificationPublic:
    row = await notifications.get(
        session=session, app_id=caller.app_id, notification_id=notification_id
    )
    return await _public(session, row)


async def _public(session: Any, row: Notification) -> NotificationPublic:
    by_platform = await notifications.delivery_counts(session=session, notification_id=row.id)
    return NotificationPublic.of(row, by_platform, notifications.counts_summary(by_platform))


@router.get("/{notification_id}/deliveries", summary="Each device's outcome", responses=NOT_FOUND)
async def list_deliveries(
    notification_id: uuid.UUID,
    caller: NotificationReader,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> DeliveriesPublic:
    after = None
    if cursor is not None:
        try:
            after = int(_decode(cursor))
        except ValueError:
            raise InvalidInputError("cursor is not one this API gave", field="cursor") from None
    rows = await deliveries.page_for_notification(
        session=session,
        app_id=caller.app_id,
        notification_id=notification_id,
        status=status,
        after=after,
        limit=limit + 1,
    )
    next_cursor = _encode(str(rows[limit - 1].id)) if len(rows) > limit else None
    return DeliveriesPublic(
        items=[DeliveryPublic.of(r) for r in rows[:limit]], next_cursor=next_cursor
    )


@router.post(
    "/{notification_id}/cancel",
    summary="Cancel a notification not dispatched yet",
    responses=NOT_FOUND
    | errors(
        described={409: "Dispatch has started, or the notification is final (`not_cancelable`)"}
    ),
)
async def cancel(
    notification_id: uuid.UUID, caller: Sender, session: SessionDep
) -> NotificationAccepted:
    row = await notifications.cancel(
        session=session, app_id=caller.app_id, notification_id=notification_id
    )
    await session.commit()
    return _accepted(row)


def _encode(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("bad cursor") from None


def _uuid_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(_decode(cursor))
    except ValueError:
        raise InvalidInputError("cursor is not one this API gave", field="cursor") from None
