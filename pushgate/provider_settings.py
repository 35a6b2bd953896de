"""The settings sections of the push providers (`webpush`, `fcm`, `apns`): where each is reached,
how TLS is verified, which subscription endpoints are accepted, and the single-tenant
credentials. Part of `pushgate.settings.Settings`, kept apart to keep that module small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from pushgate.domain import vapid
from pushgate.errors import InvalidInputError


class WebPushSettings(BaseModel):
    """Which subscription endpoints are accepted (SSRF guard) and how TLS is verified."""

    # NoDecode: `PUSHGATE_WEBPUSH__EXTRA_HOSTS=a.example,b.example` is what people write, and
    # pydantic-settings would otherwise insist on JSON for a list.
    extra_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allow_private_addresses: bool = False
    ca_bundle: Path | None = None
    # The VAPID contact for apps that set none of their own (`pushgate vapid subject`).
    vapid_subject: str | None = None
    connection_limit: int = Field(default=200, ge=1)
    # One push service is one host for all its subscriptions: allow as many connections as
    # the worker has sends in flight (worker.concurrency), or the host becomes the limit.
    connections_per_host: int = Field(default=200, ge=1)

    @field_validator("vapid_subject")
    @classmethod
    def _usable_subject(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return vapid.validate_subject(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("extra_hosts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)


def split_list(value: Any) -> Any:
    """`a,b` or a JSON list, as people write lists in environment variables."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class FCMSettings(BaseModel):
    """Firebase Cloud Messaging (HTTP v1): where to reach it, and an optional service account
    for single-tenant deployments (apps set their own with `pushgate credentials set-fcm`)."""

    base_url: str = "https://fcm.googleapis.com"
    ca_bundle: Path | None = None
    # OAuth token endpoints a service account may name besides Google's own (an uploaded
    # service account's token_uri is otherwise refused: SSRF).
    token_uris: Annotated[list[str], NoDecode] = Field(default_factory=list)
    service_account_path: Path | None = None
    # The same service account as JSON text (the legacy FIREBASE_KEY variable), for
    # deployments that pass it in the environment: read from memory, never written to a file.
    service_account_json: SecretStr | None = None
    # Overrides the service account's own project_id (the legacy PROJECT_ID variable).
    project_id: str | None = None

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @field_validator("token_uris", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("service_account_json")
    @classmethod
    def _blank_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty FIREBASE_KEY (a blank line in a .env file) means none.
        return value if value is not None and value.get_secret_value().strip() else None

    @model_validator(mode="after")
    def _one_service_account(self) -> FCMSettings:
        if self.service_account_path is not None and self.service_account_json is not None:
            raise ValueError(
                "give service_account_path (SERVICE_ACCOUNT_PATH) or service_account_json"
                " (FIREBASE_KEY), not both"
            )
        return self


class APNSSettings(BaseModel):
    """Apple Push Notification service: endpoints, connection pool, and an optional token-auth
    key for single-tenant deployments (apps set their own with `pushgate credentials set-apns`)."""

    production_url: str = "https://api.push.apple.com:443"
    sandbox_url: str = "https://api.sandbox.push.apple.com:443"
    ca_bundle: Path | None = None
    max_connections: int = Field(default=4, ge=1, le=100)
    max_streams: int = Field(default=100, ge=1, le=1000)
    key_path: Path | None = None
    key_id: str | None = None
    team_id: str | None = None
    topic: str | None = None
    environment: Literal["production", "sandbox"] = "production"

    @field_validator("production_url", "sandbox_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value
