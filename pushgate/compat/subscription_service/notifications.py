"""`/notifications/`: the legacy send, broadcast and history, through `/v1`'s accept use case
(the same validation, idempotency, pipeline and statuses) and its history query."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from pushgate.api.deps import Caller, SessionDep
from pushgate.api.routes import notifications as notification_routes
from pushgate.compat.auth import legacy_caller
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.shapes import tag
from pushgate.compat.subscription_service import SHAPE, schemas, translate
from pushgate.domain import storable
from pushgate.domain.apikeys import Permission
from pushgate.domain.notification import NotificationStatus
from pushgate.domain.rates import RouteClass
from pushgate.domain.request import NotificationCreate
from pushgate.errors import InvalidInputError
from pushgate.runtime import Runtime
from pushgate.store import notifications

router = APIRouter(route_class=LegacyRoute, tags=[tag(SHAPE)], deprecated=True)

Sender = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.NOTIFICATIONS_SEND, RouteClass.SEND))
]
Reader = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.NOTIFICATIONS_READ, RouteClass.READ))
]

MAX_LIMIT = 100
# Page numbers are an offset scan: it stops this far back (older history: /v1's cursors).
MAX_OFFSET = 10_000


@router.post(
    "/notifications/send/",
    summary="Send to the subscriptions of topics, users or ids",
    responses=notification_routes.ACCEPTING,
)
async def send(
    body: schemas.NotificationSend,
    caller: Sender,
    request: Request,
    response: Response,
    idempotency_key: notification_routes.IdempotencyKey = None,
) -> schemas.SendResult:
    wanted = translate.notification_create(body, broadcast=False, idempotency_key=idempotency_key)
    return await _accept(request, response, caller, wanted)


@router.post(
    "/notifications/broadcast/",
    summary="Send to every device of the app",
    responses=notification_routes.ACCEPTING,
)
async def broadcast(
    body: schemas.NotificationPayload,
    caller: Sender,
    request: Request,
    response: Response,
    idempotency_key: notification_routes.IdempotencyKey = None,
) -> schemas.SendResult:
    wanted = translate.notification_create(body, broadcast=True, idempotency_key=idempotency_key)
    return await _accept(request, response, caller, wanted)


async def _accept(
    request: Request, response: Response, caller: Caller, wanted: NotificationCreate
) -> schemas.SendResult:
    """Accept as `POST /v1/notifications` does (through the group commit), and answer the
    notification's status and its deliveries so far (a replay: as they stand now)."""
    state = request.app.state
    runtime: Runtime = state.runtime
    stored = (await notification_routes.grouped(state, caller.app_id, wanted)).stored
    response.headers.update(notification_routes.accept_headers(stored.id, replayed=stored.replayed))
    async with runtime.sessions() as session:
        row = await notifications.get(
            session=session, app_id=caller.app_id, notification_id=stored.id
        )
        counts = await notifications.delivery_counts(session=session, notification_id=row.id)
    return schemas.SendResult(
        notification_id=row.id,
        status=row.status,
        statistics=translate.statistics(notifications.counts_summary(counts)),
    )


@router.get("/notifications/history/", summary="Notifications by page, newest first")
async def history(
    caller: Reader,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, description="1 for the newest.")] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    category: Annotated[
        Annotated[str, storable.TEXT] | None, Query(alias="type", min_length=1, max_length=100)
    ] = None,
    status: NotificationStatus | None = None,
) -> schemas.HistoryPage:
    offset = (page - 1) * limit
    if offset > MAX_OFFSET:
        raise InvalidInputError(
            f"pages reach back {MAX_OFFSET} notifications; older ones:"
            " GET /v1/notifications (cursors)",
            field="page",
            code="invalid_range",
        )
    rows = await notifications.history(
        session=session,
        app_id=caller.app_id,
        status=status,
        category=category,
        offset=offset,
        limit=limit + 1,  # one more says whether there is a next page
    )
    shown = rows[:limit]
    counts = await notifications.delivery_counts_many(
        session=session, notification_ids=[r.id for r in shown]
    )
    return schemas.HistoryPage(
        notifications=[
            schemas.HistoryItem(
                notification_id=row.id,
                title=row.message.get("title"),
                body=row.message.get("body"),
                type=row.category,
                status=row.status,
                statistics=translate.statistics(counts.get(row.id, {})),
                created_at=row.created_at,
                completed_at=row.completed_at,
            )
            for row in shown
        ],
        page=page,
        limit=limit,
        has_next=len(rows) > limit,
    )
