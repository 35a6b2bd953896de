"""The client's own models of the API's JSON. They mirror `pushgate.api.schemas` without
importing it (a backend installs httpx and pydantic, not the server), and they accept fields a
newer server adds (`extra="allow"`), so upgrading the server never breaks a deployed client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Request(Model):
    """A request body: only the fields given are sent, so the server's defaults apply."""

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)


class Page(Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# Devices


class WebPushKeys(Model):
    p256dh: str
    auth: str


class WebPushSubscription(Model):
    """What the browser's `PushSubscription.toJSON()` gives."""

    endpoint: str
    keys: WebPushKeys
    expiration_time: float | None = Field(default=None, alias="expirationTime")


class DeviceProfile(Model):
    """What a device says of its user; a `subscribe` key's answers (receipts) carry only the
    fields its request sent, hence the defaults."""

    user_id: str | None = None
    topics: list[str] | None = None
    locale: str | None = None
    timezone: str | None = None
    app_version: str | None = None
    metadata: dict[str, Any] | None = None


class DeviceCreate(DeviceProfile, Request):
    platform: str
    token: str | None = None
    subscription: WebPushSubscription | None = None


class DeviceUpdate(DeviceProfile, Request):
    """Only the fields given change; `None` clears one."""

    enabled: bool | None = None


class Device(DeviceProfile):
    id: uuid.UUID
    platform: str
    token: str | None = None
    endpoint: str | None = None
    enabled: bool
    active: bool
    status: str
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None
    invalidated_at: datetime | None = None
    invalidation_reason: str | None = None


# Notifications


class NotificationCreate(Request):
    """One notification: one target (`device_ids`, `tokens`, `user_ids`/`user_id`, `topics`,
    `condition` or `broadcast`), a payload or a `template_code`, and options. Fields this model
    does not name are sent as given (extra fields are allowed)."""

    device_ids: list[uuid.UUID] | None = None
    user_ids: list[str] | None = None
    user_id: str | None = None
    topics: list[str] | None = None
    condition: str | None = None
    broadcast: bool | None = None
    title: str | None = None
    body: str | None = None
    icon: str | None = None
    image: str | None = None
    url: str | None = None
    tag: str | None = None
    data: dict[str, Any] | None = None
    priority: str | None = None
    ttl: int | None = None
    collapse_key: str | None = None
    category: str | None = None
    send_at: datetime | None = None
    dry_run: bool | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None
    template_code: str | None = None
    variables: dict[str, Any] | None = None
    locale: str | None = None


class NotificationAccepted(Model):
    id: uuid.UUID
    status: str
    status_url: str
    idempotency_key: str | None = None


class TemplateUsed(Model):
    code: str
    version: int
    locale: str | None = None


class Notification(Model):
    id: uuid.UUID
    status: str
    target: dict[str, Any]
    category: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    created_at: datetime
    send_at: datetime | None = None
    expires_at: datetime | None = None
    dispatched_at: datetime | None = None
    completed_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    platforms: dict[str, dict[str, int]] = Field(default_factory=dict)
    message: dict[str, Any] = Field(default_factory=dict)
    template: TemplateUsed | None = None


class NotificationSummary(Model):
    id: uuid.UUID
    status: str
    category: str | None = None
    target_kind: str
    title: str | None = None
    created_at: datetime
    send_at: datetime | None = None
    completed_at: datetime | None = None
    total: int
    template: TemplateUsed | None = None


class Outcome(Model):
    """One device's outcome of a notification."""

    device_id: uuid.UUID | None = None
    platform: str
    status: str
    response_code: int | None = None
    error: str | None = None
    provider_message_id: str | None = None


class Delivery(Outcome):
    id: int
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    skip_reason: str | None = None
    deferred_until: datetime | None = None
    locale: str | None = None


class BulkItemResult(Model):
    index: int
    status_code: int
    notification: NotificationAccepted | None = None
    replayed: bool = False
    error: dict[str, Any] | None = None


class BulkResult(Model):
    accepted: int
    failed: int
    results: list[BulkItemResult]


class ImmediateDelivery(Outcome):
    delivery_id: int


class ImmediateResult(Model):
    id: uuid.UUID
    status: str
    status_url: str
    deliveries: list[ImmediateDelivery]


# Templates


class TemplateContent(Request):
    """A template version's content: `variants` by locale (each with title, body, url, ...)."""

    default_locale: str
    variants: dict[str, dict[str, Any]]
    description: str | None = None


class TemplateCreate(TemplateContent):
    code: str


class Template(Model):
    code: str
    version: int
    default_locale: str
    variants: dict[str, dict[str, Any]]
    description: str | None = None
    created_at: datetime


class TemplateVersions(Model):
    items: list[Template]


class RenderedVariant(Model):
    title: str | None = None
    body: str | None = None
    url: str | None = None
    image: str | None = None
    data: dict[str, str] = Field(default_factory=dict)


class Preview(Model):
    code: str
    version: int
    default_locale: str
    variants: dict[str, RenderedVariant]


# Preferences


class QuietHours(Model):
    start: str
    end: str
    timezone: str


class PreferencesUpdate(Request):
    muted: bool | None = None
    categories: dict[str, bool] | None = None
    platforms: dict[str, bool] | None = None
    quiet_hours: QuietHours | None = None
    locale: str | None = None
    timezone: str | None = None


class Preferences(Model):
    user_id: str
    muted: bool
    categories: dict[str, bool] = Field(default_factory=dict)
    platforms: dict[str, bool] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    locale: str | None = None
    timezone: str | None = None
    updated_at: datetime | None = None


# Webhooks


class WebhookCreate(Request):
    """`events`: any of `device.registered`, `device.invalidated`, `device.expiring`,
    `delivery.failed`, `notification.completed`."""

    url: str
    events: list[str]


class WebhookUpdate(Request):
    """Only the fields given change; `enabled=True` re-enables a disabled webhook."""

    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None


class Webhook(Model):
    id: uuid.UUID
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = None
    failures: int = 0
    previous_secret_until: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class WebhookWithSecret(Webhook):
    """A webhook as created or rotated: its `secret` (`whsec_...`) is shown this once."""

    secret: str


class Webhooks(Model):
    items: list[Webhook]


class WebhookDelivery(Model):
    """An event for a webhook and its last attempt's answer."""

    event_id: int
    message_id: str
    type: str
    status: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class WebhookDeliveries(Model):
    items: list[WebhookDelivery]
