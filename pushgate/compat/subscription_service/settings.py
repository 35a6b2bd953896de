"""The `compat.subscription_service` settings section: the legacy subscription service's own
option, the HS256 secret its users' JWTs are signed with (`JWT_SECRET_KEY`)."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr, field_validator

from pushgate.domain.enduser import MIN_SECRET_LENGTH


class SubscriptionServiceSettings(BaseModel):
    """Shape 4 (pushgate/compat/subscription_service)."""

    # `JWT_SECRET_KEY`: on start, the sign-in of `compat.static_key_app` is set to accept
    # HS256 tokens signed with it (start.py); an app whose sign-in is set otherwise is an
    # error at start, never silently replaced.
    jwt_secret_key: SecretStr | None = None

    @field_validator("jwt_secret_key")
    @classmethod
    def _strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # a blank line in a .env file means none
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            # The floor pushgate sets for every app's HS256 secret (domain/enduser.py).
            raise ValueError(
                f"JWT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters"
                " (pushgate refuses shorter HS256 secrets)"
            )
        return value
