"""Request and response bodies of an app's provider credentials (FCM, APNs). Secrets go in,
never out: responses carry metadata and a fingerprint only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pushgate.store.tables import AppCredential

CredentialPlatform = Literal["fcm", "apns"]


class FCMCredentialsUpdate(BaseModel):
    """A Firebase service account: the JSON downloaded from the Firebase console, as an
    object (`service_account`) or as text (`service_account_json`). Content only: a file
    name is not JSON and is refused like any other text that is not (the server's files are
    the operator's, set with the CLI or the settings)."""

    model_config = ConfigDict(extra="forbid")

    service_account: dict[str, Any] | None = Field(
        default=None, description="The service-account JSON, as an object."
    )
    service_account_json: str | None = Field(
        default=None,
        max_length=65_536,
        description="The service-account JSON, as a string (its content, never a file name).",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> FCMCredentialsUpdate:
        if (self.service_account is None) == (self.service_account_json is None):
            raise ValueError("send exactly one of service_account or service_account_json")
        return self

    def source(self) -> dict[str, Any] | str:
        """The service account as given (the validator ensures one is)."""
        if self.service_account is not None:
            return self.service_account
        return self.service_account_json or ""


class APNSCredentialsUpdate(BaseModel):
    """An APNs token-auth key (the .p8 file from the Apple developer account) and its ids."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        max_length=16_384, description="The .p8 file's text, -----BEGIN PRIVATE KEY-----..."
    )
    key_id: str = Field(max_length=64, description="The key's 10-character id.")
    team_id: str = Field(max_length=64, description="The 10-character developer team id.")
    topic: str = Field(max_length=255, description="The app's bundle id.")
    environment: Literal["production", "sandbox"] = Field(
        default="production", description="`sandbox` for development builds."
    )


class CredentialPublic(BaseModel):
    """What is configured for one platform: metadata, never the secret."""

    platform: CredentialPlatform
    fingerprint: str = Field(description="First 16 hex digits of the secret's SHA-256.")
    project_id: str | None = Field(description="FCM: the Firebase project.")
    client_email: str | None = Field(description="FCM: the service account.")
    key_id: str | None = Field(description="APNs: the signing key's id.")
    team_id: str | None = Field(description="APNs: the developer team.")
    topic: str | None = Field(description="APNs: the bundle id.")
    environment: str | None = Field(description="APNs: production or sandbox.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: AppCredential) -> CredentialPublic:
        return cls(
            platform="fcm" if row.platform == "fcm" else "apns",
            fingerprint=row.fingerprint,
            project_id=row.project_id,
            client_email=row.client_email,
            key_id=row.key_id,
            team_id=row.team_id,
            topic=row.topic,
            environment=row.environment,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class CredentialsPublic(BaseModel):
    items: list[CredentialPublic]
