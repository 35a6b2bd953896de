"""The nested inputs of a notification request: an action button, and an unregistered address
(a raw token, or a Web Push subscription as the browser gives it). Pure validation, like the
request itself (`domain.request`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from pushgate.domain import storable
from pushgate.domain.platforms import PlatformName

# Every free text is `storable.TEXT` (no NUL, no lone surrogate): the same refusal on SQLite
# and PostgreSQL, naming the field.
URLText = Annotated[str, StringConstraints(max_length=2048), storable.TEXT]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-_.~%]{1,255}$")]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Annotated[str, StringConstraints(min_length=1, max_length=64), storable.TEXT]
    title: Annotated[str, StringConstraints(min_length=1, max_length=128), storable.TEXT]
    icon: URLText | None = None


class SubscriptionKeysIn(BaseModel):
    p256dh: Annotated[str, StringConstraints(min_length=1, max_length=200), storable.TEXT]
    auth: Annotated[str, StringConstraints(min_length=1, max_length=100), storable.TEXT]


class SubscriptionIn(BaseModel):
    """A browser's PushSubscription JSON (`subscription.toJSON()`)."""

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=2048), storable.TEXT]
    keys: SubscriptionKeysIn
    expirationTime: float | None = Field(default=None, allow_inf_nan=False)  # noqa: N815 (the browser's own name)


class TokenIn(BaseModel):
    """One unregistered address: a token (FCM, APNs or a plugin provider's), or a Web Push
    subscription."""

    model_config = ConfigDict(extra="forbid")

    platform: PlatformName
    token: (
        Annotated[str, StringConstraints(min_length=1, max_length=4096), storable.TEXT] | None
    ) = None
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
        if self.platform == "webpush":
            if self.subscription is None:
                raise ValueError("a webpush token needs `subscription` (the PushSubscription JSON)")
            if self.token is not None:
                raise ValueError("a webpush token is its `subscription`, not a `token`")
        else:
            if not self.token:
                raise ValueError(f"a {self.platform} token needs `token`")
            if self.subscription is not None:
                raise ValueError(f"a {self.platform} token has no `subscription`")
        return self
