"""The `compat` settings section: which legacy shapes answer their old HTTP routes, and the one
static API key those services used (`API_KEY`), mapped to one app."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from pushgate.compat import ShapeName
from pushgate.compat.subscription_service.settings import SubscriptionServiceSettings
from pushgate.compat.webpush_gateway.settings import WebPushGatewaySettings
from pushgate.domain.apikeys import Scope
from pushgate.provider_settings import split_list


class CompatSettings(BaseModel):
    """Legacy shapes (pushgate/compat). Queue messages of every shape are recognised without
    any setting; a shape's HTTP routes answer only when it is in `enabled`."""

    # `PUSHGATE_COMPAT__ENABLED=fcm_gateway,webpush_gateway`: off by default.
    enabled: Annotated[list[ShapeName], NoDecode] = Field(default_factory=list)
    # The single key the old service checked (`API_KEY`): accepted on the routes of the shapes
    # listed in `static_key`, as a key of `static_key_app` with `static_key_scope`. pushgate's
    # own API keys are accepted on every legacy route whatever this says.
    api_key: SecretStr | None = None
    static_key: Annotated[list[ShapeName], NoDecode] = Field(default_factory=list)
    static_key_app: str = "default"
    static_key_scope: Scope = Scope.SEND
    subscription_service: SubscriptionServiceSettings = Field(
        default_factory=SubscriptionServiceSettings
    )
    webpush_gateway: WebPushGatewaySettings = Field(default_factory=WebPushGatewaySettings)

    @field_validator("enabled", "static_key", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("enabled", "static_key")
    @classmethod
    def _unique(cls, value: list[ShapeName]) -> list[ShapeName]:
        return list(dict.fromkeys(value))

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty API_KEY (a blank line in a .env file) means none, not a key anyone can guess.
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    def static_key_for(self, shape: ShapeName) -> SecretStr | None:
        """The static key `shape`'s routes accept, when they accept one."""
        return self.api_key if shape in self.static_key else None
