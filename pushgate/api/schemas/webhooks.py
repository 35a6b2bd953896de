"""Request and response bodies of an app's webhooks. The signing secret goes out once, in the
answer that makes it (create, rotate-secret), never in a listing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pushgate.store.tables import Webhook, WebhookEvent

EventName = Literal[
    "device.registered",
    "device.invalidated",
    "device.expiring",
    "delivery.failed",
    "notification.completed",
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="An https URL with a public address.")
    events: list[EventName] = Field(min_length=1, max_length=16, description="Events to receive.")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1, max_length=16)
    enabled: bool | None = Field(
        default=None, description="`true` re-enables a disabled webhook and clears its reason."
    )


class WebhookPublic(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    failures: int = Field(description="Failed attempts in a row.")
    previous_secret_until: datetime | None = Field(
        description="Until when the secret rotated out still signs (a second signature)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Webhook) -> WebhookPublic:
        return cls(
            id=row.id,
            url=row.url,
            events=list(row.events),
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            failures=row.failures,
            previous_secret_until=row.previous_secret_until,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(description="`whsec_...`: shown this once; keep it to verify signatures.")


class WebhooksPublic(BaseModel):
    items: list[WebhookPublic]


class DeliveryAttempt(BaseModel):
    """An event for the webhook and its last attempt's answer."""

    event_id: int
    message_id: str = Field(description="The `webhook-id` header it is sent with.")
    type: str
    status: str = Field(description="`pending`, `sent` or `failed`.")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: WebhookEvent) -> DeliveryAttempt:
        return cls(
            event_id=row.id,
            message_id=f"msg_{row.id}",
            type=row.type,
            status=row.status,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            created_at=row.created_at,
            sent_at=row.sent_at,
            payload=row.payload,
        )


class DeliveryAttempts(BaseModel):
    items: list[DeliveryAttempt]
