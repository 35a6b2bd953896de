"""An app's webhooks: create (the secret shown once), list, read, change, remove, rotate the
secret (the old one keeps signing for `webhooks.rotation_overlap_seconds`), and the recent
deliveries with their answers. Admin keys only. URLs pass the SSRF guard of Web Push
endpoints (`webhooks.allow_private_addresses` opens private ones)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from pushgate import netguard
from pushgate.api.deps import Admin, RuntimeDep, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas import webhooks as schemas
from pushgate.domain import webhooks as rules
from pushgate.runtime import Runtime
from pushgate.store import webhooks as stored
from pushgate.store.tables import utcnow

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook's id.")]
NOT_FOUND = errors(described={404: "No such webhook in the app (`webhook_not_found`)"})


async def _checked(runtime: Runtime, url: str) -> str:
    return await netguard.check_webhook_url(
        url, allow_private_addresses=runtime.settings.webhooks.allow_private_addresses
    )


@router.post("", status_code=201, summary="Add a webhook (its secret is shown this once)")
async def create_webhook(
    body: schemas.WebhookCreate, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> schemas.WebhookWithSecret:
    url = await _checked(runtime, body.url)
    secret = rules.new_secret()
    row = await stored.create(
        session=session,
        app_id=caller.app_id,
        url=url,
        events=body.events,
        sealed_secret=runtime.credentials.box().seal(secret),
    )
    await session.commit()
    return schemas.WebhookWithSecret(**schemas.WebhookPublic.of(row).model_dump(), secret=secret)


@router.get("", summary="The app's webhooks")
async def list_webhooks(caller: Admin, session: SessionDep) -> schemas.WebhooksPublic:
    rows = await stored.list_for_app(session=session, app_id=caller.app_id)
    return schemas.WebhooksPublic(items=[schemas.WebhookPublic.of(r) for r in rows])


@router.get("/{webhook_id}", summary="One webhook", responses=NOT_FOUND)
async def get_webhook(
    webhook_id: WebhookId, caller: Admin, session: SessionDep
) -> schemas.WebhookPublic:
    row = await stored.get(session=session, app_id=caller.app_id, webhook_id=webhook_id)
    return schemas.WebhookPublic.of(row)


@router.patch("/{webhook_id}", summary="Change a webhook, or enable it again", responses=NOT_FOUND)
async def update_webhook(
    webhook_id: WebhookId,
    body: schemas.WebhookUpdate,
    caller: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
) -> schemas.WebhookPublic:
    url = None if body.url is None else await _checked(runtime, body.url)
    row = await stored.change(
        session=session,
        app_id=caller.app_id,
        webhook_id=webhook_id,
        url=url,
        events=body.events,
        enabled=body.enabled,
    )
    await session.commit()
    return schemas.WebhookPublic.of(row)


@router.delete(
    "/{webhook_id}", status_code=204, summary="Remove a webhook and its events", responses=NOT_FOUND
)
async def delete_webhook(webhook_id: WebhookId, caller: Admin, session: SessionDep) -> Response:
    await stored.remove(session=session, app_id=caller.app_id, webhook_id=webhook_id)
    await session.commit()
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    summary="A new secret (shown this once); the old one keeps signing for an overlap",
    responses=NOT_FOUND,
)
async def rotate_secret(
    webhook_id: WebhookId, caller: Admin, session: SessionDep, runtime: RuntimeDep
) -> schemas.WebhookWithSecret:
    secret = rules.new_secret()
    overlap = timedelta(seconds=runtime.settings.webhooks.rotation_overlap_seconds)
    row = await stored.rotate(
        session=session,
        app_id=caller.app_id,
        webhook_id=webhook_id,
        sealed_secret=runtime.credentials.box().seal(secret),
        overlap_until=utcnow() + overlap,
    )
    await session.commit()
    return schemas.WebhookWithSecret(**schemas.WebhookPublic.of(row).model_dump(), secret=secret)


@router.get(
    "/{webhook_id}/deliveries",
    summary="Recent events for the webhook and their last answers",
    responses=NOT_FOUND,
)
async def list_deliveries(
    webhook_id: WebhookId,
    caller: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> schemas.DeliveryAttempts:
    rows = await stored.recent_events(
        session=session, app_id=caller.app_id, webhook_id=webhook_id, limit=limit
    )
    return schemas.DeliveryAttempts(items=[schemas.DeliveryAttempt.of(r) for r in rows])
