"""Request and response bodies of an app's end-user sign-in settings. The HS256 secret goes
in, never out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pushgate.domain.enduser import AuthConfig


class AppAuthUpdate(BaseModel):
    """How the app's end users sign in: at least one of `hs256_secret`, `public_keys`,
    `jwks_url`. Replaces what was set (a secret not given is removed)."""

    model_config = ConfigDict(extra="forbid")

    hs256_secret: str | None = Field(
        default=None, max_length=1024, description="Shared secret for HS256 (32+ characters)."
    )
    issuer: str | None = Field(default=None, max_length=255, description="Required `iss`.")
    audience: str | None = Field(default=None, max_length=255, description="Required `aud`.")
    public_keys: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="RSA or EC public keys in PEM (RS256, ES256).",
    )
    jwks_url: str | None = Field(
        default=None, max_length=2048, description="An https JWKS URL (RS256, ES256 by `kid`)."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Origins whose pages may call the device routes (`https://app.example`).",
    )


class AppAuthPublic(BaseModel):
    """What is set, without the secret."""

    enabled: bool
    algorithms: list[str] = []
    hs256_secret_set: bool = False
    issuer: str | None = None
    audience: str | None = None
    public_keys: list[str] = []
    jwks_url: str | None = None
    cors_origins: list[str] = []

    @classmethod
    def of(cls, config: AuthConfig | None) -> AppAuthPublic:
        if config is None:
            return cls(enabled=False)
        return cls(
            enabled=True,
            algorithms=config.algorithms(),
            hs256_secret_set=config.hs256,
            issuer=config.issuer,
            audience=config.audience,
            public_keys=list(config.public_keys),
            jwks_url=config.jwks_url,
            cors_origins=list(config.cors_origins),
        )
