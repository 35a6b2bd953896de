"""The `compat.webpush_gateway` settings: the VAPID key pair and subject the old gateway's
deployment sets (imported as one app's on start), the user service told of invalidated
subscriptions, the welcome notification per app, and the open (keyless) subscribe mode."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from pushgate.domain.rates import Rate
from pushgate.rate_settings import RateSetting


class Welcome(BaseModel):
    """The notification a new subscription gets: a template, or a title and body."""

    template_code: str | None = Field(default=None, min_length=1, max_length=255)
    title: str | None = Field(default=None, min_length=1, max_length=4096)
    body: str | None = Field(default=None, min_length=1, max_length=4096)
    url: str | None = Field(default=None, min_length=1, max_length=2048)

    @model_validator(mode="after")
    def _one_source(self) -> Welcome:
        given = self.title or self.body or self.url
        if self.template_code is not None and given:
            raise ValueError("give template_code, or title/body/url, not both")
        if self.template_code is None and not (self.title or self.body):
            raise ValueError("give template_code, or a title or body")
        return self


class WebPushGatewaySettings(BaseModel):
    """The Web Push gateway shape (`PUSHGATE_COMPAT__WEBPUSH_GATEWAY__*`)."""

    # The app the legacy environment configures: VAPID_* are its key pair and subject,
    # USER_SERVICE_URL gets its invalidated subscriptions.
    app: str = Field(default="default", min_length=1, max_length=100)
    # VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY: imported as `app`'s pair on start (never replacing
    # a pair in use); VAPID_SUBJECT, or VAPID_EMAIL as a mailto: address, its subject.
    vapid_public_key: str | None = None
    vapid_private_key: SecretStr | None = None
    vapid_subject: str | None = None
    # USER_SERVICE_URL: a webhook for `device.invalidated` of `app`, made on start.
    user_service_url: str | None = None
    # The app whose pages may call /subscribe and /vapid_public_key without a key (off when
    # unset), each client address at most `open_rate`.
    open_app: str | None = Field(default=None, min_length=1, max_length=100)
    open_rate: RateSetting = Field(default=Rate(20, 60.0), validate_default=True)
    # The welcome notification of each app (by name) a new subscription gets; none by default.
    welcome: dict[str, Welcome] = Field(default_factory=dict)

    # Before the length checks: a blank line in a .env file means unset.
    @field_validator(
        "vapid_public_key", "vapid_subject", "user_service_url", "open_app", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("vapid_private_key")
    @classmethod
    def _blank_key_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value
