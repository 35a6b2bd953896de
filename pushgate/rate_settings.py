"""The settings sections of rates both ways: `rate_limits` (requests coming in, per API key and
per app) and `pacing` (sends going out, per provider credential). Part of `Settings`
(settings.py), kept apart to keep that module small."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer, field_validator
from pydantic_settings import NoDecode

from pushgate.domain import rates
from pushgate.domain.rates import Rate, RouteClass
from pushgate.errors import InvalidInputError


def _rate(value: Any) -> Any:
    if isinstance(value, Rate):
        return value
    if isinstance(value, str | int):
        try:
            return rates.parse(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
    raise ValueError("must be a rate such as 600/minute, or off")


# Written and shown as `600/minute`; `off` (or 0) is no limit. NoDecode: a Rate is a dataclass,
# which pydantic-settings would otherwise insist on reading from the environment as JSON.
RateSetting = Annotated[
    Rate, NoDecode, BeforeValidator(_rate), PlainSerializer(str, return_type=str)
]


class RateLimitSettings(BaseModel):
    """Requests coming in: a token bucket per API key and one per app (all its keys together),
    per route class, shared by every API process through the key-value store. A key's own limit
    (`pushgate keys create --rate-limit`) replaces the `key_*` ones for it; an app's own limits
    (`pushgate apps limits`) replace the `app_*` ones."""

    enabled: bool = True
    # POST /v1/notifications and its sub-routes (bulk, send-immediate, cancel).
    key_send: RateSetting = Field(default=Rate(60_000, 60.0), validate_default=True)
    # Device writes: register, update, delete, topics.
    key_subscribe: RateSetting = Field(default=Rate(60_000, 60.0), validate_default=True)
    # Every GET, and the admin routes.
    key_read: RateSetting = Field(default=Rate(60_000, 60.0), validate_default=True)
    app_send: RateSetting = Field(default=Rate(120_000, 60.0), validate_default=True)
    app_subscribe: RateSetting = Field(default=Rate(120_000, 60.0), validate_default=True)
    app_read: RateSetting = Field(default=Rate(120_000, 60.0), validate_default=True)

    def for_key(self, route: RouteClass) -> Rate:
        rate: Rate = getattr(self, f"key_{route.value}")
        return rate

    def for_app(self, route: RouteClass) -> Rate:
        rate: Rate = getattr(self, f"app_{route.value}")
        return rate


# FCM's default quota: 600,000 messages a minute per project
# (docs/protocols.md#limits-ttl-priority-collapsing).
DEFAULT_PACING = {"fcm": Rate(600_000, 60.0)}


class PacingSettings(BaseModel):
    """Sends going out: a schedule per provider credential (an FCM project, an APNs team, a push
    service's origin per app: the provider says), shared by every worker through the key-value
    store. A delivery waits for its slot without holding a send slot, or, when its slot is
    further off than `max_wait_seconds`, waits in the queue (`retrying`, the attempt given back).
    """

    # Per provider (its platform name), over the defaults (`DEFAULT_PACING`: naming `apns` keeps
    # FCM's); a provider not named, or `off`, is not paced.
    per_provider: dict[str, RateSetting] = Field(default_factory=lambda: dict(DEFAULT_PACING))
    # Per credential, `<provider>:<credential key>` (`fcm:my-project`, `apns:ABCDE12345`,
    # `webpush:<app id>:<push service origin>`): wins over `per_provider`; `off` unpaces one.
    per_credential: dict[str, RateSetting] = Field(default_factory=dict)
    # How long a delivery may wait in the worker for its slot; a later slot defers it instead.
    max_wait_seconds: float = Field(default=2.0, ge=0, le=30)
    # How far a credential's schedule may lag behind now: after an idle spell this many
    # seconds' worth of sends go at once (the vendors count per minute, not per millisecond).
    burst_seconds: float = Field(default=1.0, ge=0, le=60)

    @field_validator("per_provider")
    @classmethod
    def _over_defaults(cls, value: dict[str, Rate]) -> dict[str, Rate]:
        return {**DEFAULT_PACING, **value}

    def rate(self, provider: str, credential: str) -> Rate | None:
        """The pace of one credential of `provider`, or None when it is not paced."""
        rate = self.per_credential.get(f"{provider}:{credential}") or self.per_provider.get(
            provider
        )
        return None if rate is None or rate.unlimited else rate
