"""The notification request: one validated shape for `POST /v1/notifications` and for messages
other services publish on `push.queue` (which add `request_id`, `user_id`, `template_code`...).

Validation here is pure (no DNS, no database); the accept use case adds what needs I/O.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from pushgate.domain import condition as conditions
from pushgate.domain.message import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    Action,
    Message,
    Priority,
)
from pushgate.domain.notification import TargetKind

MAX_DEVICE_IDS = 10_000
MAX_TOKENS = 1_000
MAX_USER_IDS = 10_000
MAX_TOPICS = 100
MAX_DATA_KEYS = 100

Text = Annotated[str, StringConstraints(max_length=4096)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=255)]
URLText = Annotated[str, StringConstraints(max_length=2048)]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-_.~%]{1,255}$")]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    icon: URLText | None = None


class SubscriptionKeysIn(BaseModel):
    p256dh: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    auth: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class SubscriptionIn(BaseModel):
    """A browser's PushSubscription JSON (`subscription.toJSON()`)."""

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    keys: SubscriptionKeysIn
    expirationTime: float | None = None  # noqa: N815 (the browser's own name)


class TokenIn(BaseModel):
    """One unregistered address: an FCM or APNs token, or a Web Push subscription."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["fcm", "apns", "webpush"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    subscription: SubscriptionIn | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_subscription(cls, value: Any) -> Any:
        # A bare PushSubscription object is accepted as it comes from the browser.
        if isinstance(value, dict) and "endpoint" in value and "platform" not in value:
            return {"platform": "webpush", "subscription": value}
        return value

    @model_validator(mode="after")
    def _one_address(self) -> TokenIn:
        if self.platform == "webpush" and self.subscription is None:
            raise ValueError("a webpush token needs `subscription`")
        if self.platform != "webpush" and not self.token:
            raise ValueError(f"a {self.platform} token needs `token`")
        return self


class NotificationCreate(BaseModel):
    """A notification: exactly one target, a payload, and options."""

    model_config = ConfigDict(extra="forbid")

    # Target: exactly one of these.
    device_ids: Annotated[list[str], Field(max_length=MAX_DEVICE_IDS)] | None = None
    tokens: Annotated[list[TokenIn], Field(max_length=MAX_TOKENS)] | None = None
    user_ids: Annotated[list[ShortText], Field(max_length=MAX_USER_IDS)] | None = None
    user_id: ShortText | None = Field(
        default=None, description="One user (as existing systems send it): same as user_ids."
    )
    topics: Annotated[list[TopicName], Field(max_length=MAX_TOPICS)] | None = None
    condition: Annotated[str, StringConstraints(max_length=conditions.MAX_LENGTH)] | None = None
    broadcast: bool = False

    # Payload.
    title: Text | None = None
    body: Text | None = None
    icon: URLText | None = None
    image: URLText | None = None
    badge: URLText | None = None
    url: URLText | None = None
    tag: ShortText | None = None
    sound: ShortText | None = None
    actions: Annotated[list[ActionIn], Field(max_length=10)] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)

    # Options.
    priority: Literal["high", "normal"] = "normal"
    ttl: int = Field(default=DEFAULT_TTL_SECONDS, ge=0, le=MAX_TTL_SECONDS)
    collapse_key: ShortText | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    send_at: datetime | None = None
    webpush: dict[str, Any] = Field(default_factory=dict)
    fcm: dict[str, Any] = Field(default_factory=dict)
    apns: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: ShortText | None = Field(
        default=None, validation_alias=AliasChoices("idempotency_key", "request_id")
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    template_code: ShortText | None = None
    variables: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _string_values(cls, value: dict[str, Any]) -> dict[str, str]:
        # FCM requires string values; numbers and booleans convert, nested values cannot.
        if len(value) > MAX_DATA_KEYS:
            raise ValueError(f"at most {MAX_DATA_KEYS} data keys")
        converted: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(item, bool):
                converted[key] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                converted[key] = str(item)
            else:
                raise ValueError(f"data.{key} must be a string, number or boolean")
        return converted

    @field_validator("send_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # a time without offset is taken as UTC
        return value

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            conditions.parse(value)  # InvalidInputError names the field
        return value

    @model_validator(mode="after")
    def _one_target(self) -> NotificationCreate:
        if self.user_id is not None:
            if self.user_ids is not None:
                raise ValueError("give user_id or user_ids, not both")
            self.user_ids = [self.user_id]
            self.user_id = None
        given = [kind for kind in self.target_kinds() if kind is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one target: device_ids, tokens, user_ids, topics, condition "
                f"or broadcast (got {', '.join(given) or 'none'})"
            )
        if self.template_code is not None:
            raise ValueError("templates are not available in this version: send title and body")
        if not (self.title or self.body or self.data or self.webpush or self.fcm or self.apns):
            raise ValueError("nothing to send: give a title, body, data or a platform override")
        return self

    def target_kinds(self) -> list[str | None]:
        return [
            TargetKind.DEVICE_IDS if self.device_ids is not None else None,
            TargetKind.TOKENS if self.tokens is not None else None,
            TargetKind.USER_IDS if self.user_ids is not None else None,
            TargetKind.TOPICS if self.topics is not None else None,
            TargetKind.CONDITION if self.condition is not None else None,
            TargetKind.BROADCAST if self.broadcast else None,
        ]

    def target(self) -> dict[str, Any]:
        """The audience as stored: `{"kind": ..., "value": ...}`."""
        kind = next(k for k in self.target_kinds() if k is not None)
        values: dict[str, Any] = {
            TargetKind.DEVICE_IDS: self.device_ids,
            TargetKind.TOKENS: [t.model_dump() for t in self.tokens or []],
            TargetKind.USER_IDS: self.user_ids,
            TargetKind.TOPICS: self.topics,
            TargetKind.CONDITION: self.condition,
            TargetKind.BROADCAST: True,
        }
        return {"kind": kind, "value": values[kind]}

    def message(self) -> Message:
        return Message(
            title=self.title,
            body=self.body,
            icon=self.icon,
            image=self.image,
            badge=self.badge,
            url=self.url,
            tag=self.tag,
            sound=self.sound,
            actions=tuple(Action(a.action, a.title, a.icon) for a in self.actions),
            data=dict(self.data),
            priority=Priority(self.priority),
            ttl=self.ttl,
            collapse_key=self.collapse_key,
            webpush=self.webpush,
            fcm=self.fcm,
            apns=self.apns,
        )

    def request_hash(self) -> str:
        """Identifies the request's content for idempotency: same key + same hash = replay."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def expires_at(self, now: datetime) -> datetime:
        start = self.send_at if self.send_at and self.send_at > now else now
        return start + timedelta(seconds=self.ttl)
