"""The old gateway's notification routes: `send` (queued), `send-immediate`, `send-bulk` and
`status`, on the accept, send-immediate and read use cases of `/v1/notifications`. A send with
a token registers it first (`tokens.register`) and goes to that device; without one, to the
user's devices."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.deps import Caller, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.routes import notifications as notification_routes
from pushgate.compat import ShapeName
from pushgate.compat.auth import legacy_caller
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.fcm_gateway import schemas, tokens, translate
from pushgate.compat.shapes import tag
from pushgate.domain import storable
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.domain.request import NotificationCreate
from pushgate.domain.subscription import Platform
from pushgate.errors import InvalidInputError, PushgateError
from pushgate.runtime import Runtime
from pushgate.sending import accept, immediate
from pushgate.store import deliveries, notifications

SHAPE: ShapeName = "fcm_gateway"

router = APIRouter(route_class=LegacyRoute, tags=[tag(SHAPE)], deprecated=True)

Sender = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.NOTIFICATIONS_SEND, RouteClass.SEND))
]
Reader = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.NOTIFICATIONS_READ, RouteClass.READ))
]
ACCEPTING = errors(
    described={
        409: "The idempotency_key was used with another body (`idempotency_key_reused`), or a"
        " request with it is in progress (`idempotency_in_progress`)",
        413: "A payload over a push service's limit (`payload_too_large`)",
    }
)
NOT_FOUND = errors(described={404: "No such notification in the app (`notification_not_found`)"})


async def aimed(
    runtime: Runtime, session: AsyncSession, caller: Caller, send: schemas.SendRequest
) -> NotificationCreate:
    """The `/v1` request `send` means. Checked before its token is registered, so a refused
    send registers nothing.

    Raises:
        RequestValidationError: what `/v1` refuses in it, on the legacy field.
        PushgateError: what registering the token raises.
    """
    token = translate.token_of(send.token)
    checked = translate.request(send.model_dump(), to_token=token is not None)
    if token is None:
        return checked
    registration = await tokens.register(
        runtime, session, caller, token=token, user_id=send.user_id, platform=Platform.FCM
    )
    return translate.to_device(checked, registration.record.device.id)


@router.post(
    "/api/notifications/send",
    status_code=202,
    summary="Queue one notification to a token or to a user's devices",
    response_model=schemas.SendAccepted,
    responses=ACCEPTING,
)
async def send(
    body: schemas.SendRequest,
    caller: Sender,
    runtime: RuntimeDep,
    session: SessionDep,
    request: Request,
    response: Response,
) -> schemas.SendAccepted:
    wanted = await aimed(runtime, session, caller, body)
    stored = (await notification_routes.grouped(request.app.state, caller.app_id, wanted)).stored
    response.headers.update(notification_routes.accept_headers(stored.id, replayed=stored.replayed))
    return schemas.SendAccepted(
        notification_id=stored.id,
        status=_accepted_status(stored),
        idempotency_key=stored.idempotency_key,
    )


def _accepted_status(stored: notifications.Created) -> str:
    # A replay answers the first answer again (accepted, so pending), as /v1 does.
    return "pending" if stored.replayed else translate.status(stored.status)


@router.post(
    "/api/notifications/send-immediate",
    summary="Send now and answer each device's outcome",
    response_model=schemas.ImmediateResult,
    responses=ACCEPTING,
)
async def send_immediate(
    body: schemas.SendRequest,
    caller: Sender,
    runtime: RuntimeDep,
    session: SessionDep,
    response: Response,
) -> schemas.ImmediateResult:
    wanted = await aimed(runtime, session, caller, body)
    sent = await immediate.send(runtime, app_id=caller.app_id, request=wanted, session=session)
    row = sent.notification
    # The deliveries' tokens (send-immediate reports devices): at most
    # `delivery.immediate_max_devices` of them.
    rows = await deliveries.page_for_notification(
        session=session,
        app_id=caller.app_id,
        notification_id=row.id,
        limit=max(1, len(sent.deliveries)),
    )
    token_of = {d.id: d.token for d in rows}
    results = [
        schemas.DeviceResult(
            token=token_of.get(d.delivery_id),
            platform=d.platform,
            device_id=d.device_id,
            status=translate.delivery_status(d.status),
            pushgate_status=d.status,
            message_id=d.provider_message_id,
            response_code=d.response_code,
            error=d.error,
        )
        for d in sent.deliveries
    ]
    response.headers.update(notification_routes.accept_headers(row.id, replayed=sent.replayed))
    return schemas.ImmediateResult(
        notification_id=row.id,
        status=translate.status(row.status),
        pushgate_status=row.status,
        idempotency_key=row.idempotency_key,
        success_count=sum(1 for r in results if r.status == "sent"),
        failure_count=sum(1 for r in results if r.status == "failed"),
        results=results,
    )


@router.post(
    "/api/notifications/send-bulk",
    summary=f"Queue up to {schemas.MAX_BULK} notifications, each on its own",
    response_model=schemas.BulkResult,
)
async def send_bulk(
    body: schemas.BulkRequest, caller: Sender, runtime: RuntimeDep, session: SessionDep
) -> schemas.BulkResult:
    refusals: list[PushgateError | None] = []
    wanted: list[NotificationCreate] = []
    for index, item in enumerate(body.notifications):
        try:
            send = schemas.SendRequest.model_validate(item)
            wanted.append(await aimed(runtime, session, caller, send))
            refusals.append(None)
        except (ValidationError, RequestValidationError) as exc:
            refusals.append(_refusal(index, exc.errors()))
        except PushgateError as exc:
            await session.rollback()  # a registration refused in its statement
            refusals.append(exc)
    # As /v1/notifications/bulk: one accept for the lot, each item its own result.
    accepted = iter(
        await accept.accept_many(runtime, app_id=caller.app_id, requests=wanted, session=session)
    )
    results: list[schemas.BulkItem] = []
    for index, refusal in enumerate(refusals):
        result = refusal if refusal is not None else next(accepted)
        if isinstance(result, accept.Accepted):
            stored = result.stored
            results.append(
                schemas.BulkItem(
                    index=index,
                    status_code=202,
                    notification_id=stored.id,
                    status=_accepted_status(stored),
                    idempotency_key=stored.idempotency_key,
                    replayed=stored.replayed,
                )
            )
        else:
            results.append(
                schemas.BulkItem(
                    index=index,
                    status_code=result.status_code,
                    detail=result.message,
                    error={
                        "code": result.code,
                        "message": result.message,
                        "details": result.details,
                    },
                )
            )
    count = sum(1 for r in results if r.status_code == 202)
    return schemas.BulkResult(
        total=len(results), accepted=count, failed=len(results) - count, results=results
    )


def _refusal(index: int, problems: Any) -> InvalidInputError:
    """One bulk item's refusal, named as /v1/notifications/bulk names them."""
    first = problems[0] if problems else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    field = f"notifications.{index}.{where}" if where else f"notifications.{index}"
    return InvalidInputError(f"{where or 'item'}: {first.get('msg', 'invalid')}", field=field)


@router.get(
    "/api/notifications/status",
    summary="A notification's status, by notification_id or idempotency_key",
    response_model=schemas.StatusPublic,
    responses=NOT_FOUND,
)
async def status(
    caller: Reader,
    session: SessionDep,
    notification_id: uuid.UUID | None = None,
    idempotency_key: Annotated[
        str | None, Query(min_length=1, max_length=255), storable.TEXT
    ] = None,
) -> schemas.StatusPublic:
    # As the old gateway read them: notification_id when given, else idempotency_key.
    if notification_id is not None:
        row = await notifications.get(
            session=session, app_id=caller.app_id, notification_id=notification_id
        )
    elif idempotency_key is not None:
        row = await notifications.get_by_idempotency_key(
            session=session, app_id=caller.app_id, key=idempotency_key
        )
    else:
        missing = "give notification_id or idempotency_key"
        raise translate.refused(
            [{"loc": ("notification_id",), "msg": missing, "type": "missing"}], at=("query",)
        )
    by_platform = await notifications.delivery_counts(session=session, notification_id=row.id)
    return schemas.StatusPublic(
        notification_id=row.id,
        idempotency_key=row.idempotency_key,
        status=translate.status(row.status),
        pushgate_status=row.status,
        created_at=row.created_at,
        completed_at=row.completed_at,
        counts=notifications.counts_summary(by_platform),
    )
