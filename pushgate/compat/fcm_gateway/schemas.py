"""The bodies the old gateway's routes take and answer. A request body is read as loosely as
the old service read it (fields it did not know are ignored); what it means is then checked
by pushgate's own `/v1` schemas (`translate.py`), never here a second time."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator

from pushgate.compat.fcm_gateway import translate
from pushgate.store import devices

MAX_BULK = 100

Priority = Annotated[
    Literal["high", "normal"],
    BeforeValidator(translate.priority),
    WithJsonSchema(
        {
            "type": "string",
            "description": "high or normal (also max, urgent, 10 / default, low, min, 5)",
        }
    ),
]


class SendRequest(BaseModel):
    """One notification: to `token` (registered for `user_id` if unknown), or with no token
    to every device of `user_id`."""

    title: str | None = None
    body: str | None = None
    token: str | None = None
    user_id: str | None = None
    idempotency_key: str | None = None
    data: dict[str, Any] | None = None
    image: str | None = None
    priority: Priority = "normal"


class BulkRequest(BaseModel):
    """Up to 100 sends, each accepted on its own: `{"notifications": [...]}` or the bare list."""

    notifications: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BULK)]

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"notifications": value} if isinstance(value, list) else value


class SendAccepted(BaseModel):
    notification_id: uuid.UUID
    status: str = Field(description="`pending`: queued (see GET /api/notifications/status).")
    idempotency_key: str | None


class DeviceResult(BaseModel):
    """One device's outcome of a send-immediate."""

    token: str | None
    platform: str
    device_id: uuid.UUID | None
    status: str = Field(description="sent, failed, or pending (a retry is under way).")
    pushgate_status: str
    message_id: str | None = Field(description="The provider's message id, once sent.")
    response_code: int | None
    error: str | None


class ImmediateResult(BaseModel):
    notification_id: uuid.UUID
    status: str
    pushgate_status: str
    idempotency_key: str | None
    success_count: int
    failure_count: int
    results: list[DeviceResult]


class BulkItem(BaseModel):
    index: int
    status_code: int = Field(description="202 accepted, or the status the send alone got.")
    notification_id: uuid.UUID | None = None
    status: str | None = None
    idempotency_key: str | None = None
    replayed: bool = False
    detail: str | None = Field(default=None, description="Why it was refused.")
    error: dict[str, Any] | None = Field(default=None, description="pushgate's error object.")


class BulkResult(BaseModel):
    total: int
    accepted: int
    failed: int
    results: list[BulkItem]


class StatusPublic(BaseModel):
    notification_id: uuid.UUID
    idempotency_key: str | None
    status: str = Field(description="pending, sent or failed (pushgate_status mapped).")
    pushgate_status: str = Field(description="pushgate's own status (GET /v1/notifications/{id}).")
    created_at: datetime
    completed_at: datetime | None
    counts: dict[str, int] = Field(description="Deliveries per pushgate status, and `total`.")


class DeviceTokenCreate(BaseModel):
    """Register a token for a user, or update the user of a known one."""

    user_id: str
    token: str
    platform: str | None = Field(
        default=None,
        description="fcm (default), android, ios or web (FCM tokens all), or apns for a native"
        " APNs device token.",
    )


class DeviceTokenPublic(BaseModel):
    device_id: uuid.UUID
    token: str
    platform: str
    user_id: str | None
    is_active: bool
    created_at: datetime | None = Field(description="null for a subscribe key (as /v1's receipt)")
    updated_at: datetime | None = Field(description="null for a subscribe key")
    last_seen_at: datetime | None = Field(description="null for a subscribe key")

    @classmethod
    def of(cls, record: devices.DeviceRecord, *, whole: bool = True) -> DeviceTokenPublic:
        """The token's device; without `whole` (a key that may not read devices: /v1 answers
        it a receipt) only what its request sent and the device's id and state."""
        d = record.device
        return cls(
            device_id=d.id,
            token=d.token,
            platform=d.platform,
            user_id=d.user_id,
            is_active=devices.status_of(d) is devices.Status.ACTIVE,
            created_at=d.created_at if whole else None,
            updated_at=d.updated_at if whole else None,
            last_seen_at=d.last_seen_at if whole else None,
        )


class DeviceTokensPublic(BaseModel):
    user_id: str
    tokens: list[DeviceTokenPublic]
    count: int


class TokenDeactivated(BaseModel):
    token: str
    status: Literal["deactivated"] = "deactivated"
