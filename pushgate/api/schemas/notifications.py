"""Bodies of the notifications API. The request shape itself is `domain.request`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from pushgate.domain.notification import DeliveryStatus
from pushgate.domain.request import NotificationCreate
from pushgate.sending import timing
from pushgate.store.tables import Delivery, Notification

__all__ = ["NotificationCreate"]


class NotificationAccepted(BaseModel):
    id: uuid.UUID
    status: str
    status_url: str
    idempotency_key: str | None = None


class TemplateUsed(BaseModel):
    """The template a notification was rendered from, and the version it used."""

    code: str
    version: int
    locale: str | None = Field(default=None, description="The variant the request forced.")

    @classmethod
    def of(cls, options: dict[str, Any] | None) -> TemplateUsed | None:
        used = (options or {}).get("template")
        if used is None:
            return None
        return cls(code=used["code"], version=used["version"], locale=used.get("locale"))


class ThrottlePublic(BaseModel):
    per_minute: int
    expected_end: datetime | None = Field(
        description="When the last delivery leaves at this rate: from the start of dispatch"
        " and the audience found so far (final once dispatch is done); null before it starts."
    )

    @classmethod
    def of(cls, row: Notification) -> ThrottlePublic | None:
        per_minute = (row.options or {}).get("throttle_per_minute")
        if not per_minute:
            return None
        return cls(per_minute=per_minute, expected_end=timing.expected_end(row.options, row.total))


class NotificationPublic(BaseModel):
    id: uuid.UUID
    status: str
    target: dict[str, Any] = Field(description="`{kind, value}`: who it goes to.")
    category: str | None
    metadata: dict[str, Any]
    idempotency_key: str | None
    created_at: datetime
    send_at: datetime | None
    expires_at: datetime
    dispatched_at: datetime | None
    completed_at: datetime | None
    counts: dict[str, int] = Field(description="Deliveries per status, and `total`.")
    throttle: ThrottlePublic | None = Field(
        default=None, description="A throttled send's rate and expected end (see counts)."
    )
    platforms: dict[str, dict[str, int]] = Field(description="platform -> status -> count.")
    message: dict[str, Any]
    template: TemplateUsed | None = Field(
        default=None, description="When it was sent with a template: which, in which version."
    )

    @classmethod
    def of(
        cls, row: Notification, by_platform: dict[str, dict[str, int]], counts: dict[str, int]
    ) -> NotificationPublic:
        return cls(
            id=row.id,
            status=row.status,
            target=row.target,
            category=row.category,
            metadata=row.meta,
            idempotency_key=row.idempotency_key,
            created_at=row.created_at,
            send_at=row.send_at,
            expires_at=row.expires_at,
            dispatched_at=row.dispatched_at,
            completed_at=row.completed_at,
            counts=counts,
            throttle=ThrottlePublic.of(row),
            platforms=by_platform,
            message=row.message,
            template=TemplateUsed.of(row.options),
        )


class NotificationSummary(BaseModel):
    id: uuid.UUID
    status: str
    category: str | None
    target_kind: str
    title: str | None
    created_at: datetime
    send_at: datetime | None
    completed_at: datetime | None
    total: int
    template: TemplateUsed | None = None

    @classmethod
    def of(cls, row: Notification) -> NotificationSummary:
        return cls(
            id=row.id,
            status=row.status,
            category=row.category,
            target_kind=str(row.target.get("kind")),
            title=row.message.get("title"),
            created_at=row.created_at,
            send_at=row.send_at,
            completed_at=row.completed_at,
            total=row.total,
            template=TemplateUsed.of(row.options),
        )


class NotificationsPublic(BaseModel):
    items: list[NotificationSummary]
    next_cursor: str | None


class DeliveryPublic(BaseModel):
    id: int
    device_id: uuid.UUID | None
    platform: str
    status: str
    attempts: int
    response_code: int | None
    error: str | None
    provider_message_id: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    skip_reason: str | None = Field(
        description="Why a `skipped` delivery was not sent (the user's preferences):"
        " `muted`, `category_opted_out:<category>` or `platform_opted_out:<platform>`."
    )
    deferred_until: datetime | None = Field(
        description="When a `deferred` delivery goes (quiet hours, local time, a throttle)."
    )
    locale: str | None = Field(
        default=None, description="The template variant it sent; none: the default one."
    )

    @classmethod
    def of(cls, row: Delivery) -> DeliveryPublic:
        return cls(
            id=row.id,
            device_id=row.device_id,
            platform=row.platform,
            status=row.status,
            attempts=row.attempts,
            response_code=row.response_code,
            error=row.error,
            provider_message_id=row.provider_message_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            sent_at=row.sent_at,
            next_attempt_at=row.next_attempt_at,
            skip_reason=row.error if row.status == DeliveryStatus.SKIPPED else None,
            deferred_until=row.next_attempt_at if row.status == DeliveryStatus.DEFERRED else None,
            locale=row.locale,
        )


class DeliveriesPublic(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None


class BulkCreate(BaseModel):
    notifications: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=1000)]


class BulkItemResult(BaseModel):
    index: int
    status_code: int
    notification: NotificationAccepted | None = None
    replayed: bool = Field(default=False, description="An idempotency key's first answer again.")
    error: dict[str, Any] | None = None


class BulkResult(BaseModel):
    accepted: int
    failed: int
    results: list[BulkItemResult]


class ImmediateDeliveryResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    delivery_id: int
    device_id: uuid.UUID | None
    platform: str
    status: str
    response_code: int | None
    error: str | None
    provider_message_id: str | None


class ImmediateResult(BaseModel):
    id: uuid.UUID
    status: str
    status_url: str
    deliveries: list[ImmediateDeliveryResult]
