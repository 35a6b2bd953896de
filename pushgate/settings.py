"""Settings: nested sections read from PUSHGATE_* variables, plain legacy names and a TOML file.

Precedence, highest first: arguments given to `load_settings`, `PUSHGATE_<SECTION>__<FIELD>`
variables, the plain names existing deployments use (`DATABASE_URL`, `RABBITMQ_URL`, ...), the
config file (`PUSHGATE_CONFIG` or `--config`), then the embedded defaults (SQLite file, embedded
broker, in-memory key-value store), so `pushgate serve` runs with nothing configured.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from pushgate.backend_settings import BrokerSettings, RedisSettings
from pushgate.compat import env as compat_env
from pushgate.compat.settings import CompatSettings
from pushgate.errors import ConfigError
from pushgate.lifecycle_settings import DeviceExpirySettings, RetentionSettings
from pushgate.provider_settings import APNSSettings, FCMSettings, WebPushSettings, split_list
from pushgate.rate_settings import PacingSettings, RateLimitSettings

ENV_PREFIX = "PUSHGATE_"

# Plain names used by the deployments pushgate replaces, mapped to (section, field).
LEGACY_ENV: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("database", "url"),
    "RABBITMQ_URL": ("broker", "url"),
    "REDIS_URL": ("redis", "url"),
    "SERVICE_PORT": ("server", "port"),
    "LOG_LEVEL": ("log", "level"),
    "MAX_RETRIES": ("delivery", "max_attempts"),
    "CIRCUIT_BREAKER_THRESHOLD": ("circuit_breaker", "threshold"),
    "CIRCUIT_BREAKER_TIMEOUT": ("circuit_breaker", "timeout"),
    "WORKER_PREFETCH_COUNT": ("worker", "prefetch_count"),
    "SERVICE_ACCOUNT_PATH": ("fcm", "service_account_path"),
    "PROJECT_ID": ("fcm", "project_id"),
    "API_KEY": ("compat", "api_key"),
    "WORKER_THREADS": ("worker", "concurrency"),
    "SENTRY_DSN": ("sentry", "dsn"),
    "PROMETHEUS_METRICS_ENABLED": ("metrics", "enabled"),
    "RATE_LIMIT_SUBSCRIPTION": ("rate_limits", "key_subscribe"),
    "RATE_LIMIT_NOTIFICATION": ("rate_limits", "key_send"),
    "RATE_LIMIT_ANALYTICS": ("rate_limits", "key_read"),
    "RABBITMQ_QUEUE_NAME": ("broker", "ingress_queue"),
    "FIREBASE_KEY": ("fcm", "service_account_json"),
}


def default_data_dir() -> Path:
    """Where the embedded profile keeps its SQLite file: `$XDG_DATA_HOME/pushgate`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pushgate"


class ServerSettings(BaseModel):
    """The HTTP listener."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Deprecated alias: when set, N/minute replaces every `rate_limits.key_*` default.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    # How long an API process trusts a key it has checked before reading it again: a key
    # revoked by another process (`pushgate keys revoke`) stops working here within this many
    # seconds (in the revoking process at once). 0 reads the key on every request.
    key_cache_seconds: float = Field(default=5.0, ge=0, le=300)


class DatabaseSettings(BaseModel):
    """The source of truth: SQLite (embedded) or PostgreSQL (production)."""

    url: str = ""
    pool_size: int = Field(default=10, ge=1)
    echo: bool = False
    # Seconds PostgreSQL may take, in a process that serves the API (`api`, `serve`), to open a
    # connection, to hand out a pooled one, and to answer a statement. Past it the statement
    # fails and the request answers 503 (Retry-After), instead of waiting as long as the
    # database stalls. `pushgate worker` and migrations are not bounded by it.
    timeout: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.split(":", 1)[0].startswith(("sqlite", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class LogSettings(BaseModel):
    """Structured logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["console", "json"] = "console"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class MetricsSettings(BaseModel):
    """Prometheus metrics (`/metrics` on the API; its own port in `pushgate worker`)."""

    enabled: bool = True
    # When set, a scrape must send `Authorization: Bearer <token>`.
    token: SecretStr | None = None
    # Client networks (CIDRs) allowed to scrape; empty: any client.
    allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # `pushgate worker` serves its page here (`pushgate serve` has one page, on the API).
    # 0: no page. A port in use is logged and the worker runs without one.
    worker_host: str = "127.0.0.1"
    worker_port: int = Field(default=9464, ge=0, le=65535)
    # How often the queue depth and consumer gauges are read from the broker.
    refresh_seconds: float = Field(default=10.0, ge=1, le=3600)

    @field_validator("allow", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network (e.g. 10.0.0.0/8)") from None
        return value


class SentrySettings(BaseModel):
    """Error reporting to Sentry, when a DSN is set."""

    dsn: SecretStr | None = None
    environment: str | None = None
    # Share of requests traced for performance monitoring (0: errors only).
    traces_sample_rate: float = Field(default=0.0, ge=0, le=1)


class DeliverySettings(BaseModel):
    """Retry policy for provider sends."""

    # Retries go on while the notification's TTL allows; this caps them (0: the TTL alone).
    # With the default steps (each at least half of `backoff_max_seconds` once grown), 100
    # attempts span at least 7.5 hours.
    max_attempts: int = Field(default=100, ge=0, le=100_000)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    # One step's longest wait: a push service that comes back is tried again within it.
    backoff_max_seconds: float = Field(default=600.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    immediate_max_devices: int = Field(default=100, ge=1, le=1000)


class CircuitBreakerSettings(BaseModel):
    """When to stop sending to a failing upstream, and for how long."""

    threshold: int = Field(default=5, ge=1)
    timeout: float = Field(default=30.0, gt=0)


WorkerQueue = Literal["push", "dispatch", "deliver", "failed"]
WORKER_QUEUES: tuple[WorkerQueue, ...] = ("push", "dispatch", "deliver", "failed")


class WorkerSettings(BaseModel):
    """Consumer concurrency."""

    prefetch_count: int = Field(default=200, ge=1)
    concurrency: int = Field(default=200, ge=1)
    sweep_interval: float = Field(default=1.0, gt=0)
    # Devices expanded per dispatch transaction: a broadcast's fan-out rate. Each page costs a
    # round of statements and waits its turn on the worker's event loop, so fewer, larger
    # pages fan out faster: a 1,000,000-device broadcast fanned out at 14,800 devices/s with
    # 5,000 and 26,000/s with 20,000, the dispatcher at 152 MB (bench/README.md, broadcast).
    dispatch_page_size: int = Field(default=20_000, ge=1, le=50_000)
    deliver_job_size: int = Field(default=250, ge=1, le=5000)
    # How long a worker's claim on deliveries lasts before another worker (or the sweeper) may
    # take them back; the worker raises it to cover its own slowest send. Lower: a crashed
    # worker's deliveries come back sooner.
    claim_lease_seconds: float = Field(default=60.0, gt=0)
    # How long a delivery may wait for its job before the sweeper may publish it again: once
    # longer than this ago the deliver queue was seen with nothing ready, a delivery made more
    # than this before that is not queued but lost (sending/sweeper.py).
    stale_grace_seconds: float = Field(default=60.0, gt=0)
    # How long a stopping worker waits for its work in flight (a round of sends, a statement
    # blocked on a lock) before abandoning it: its jobs come back to the queue.
    shutdown_grace_seconds: float = Field(default=20.0, gt=0)
    # The queues this worker consumes: `push` (the ingress queue), `dispatch` (expanding
    # audiences into deliveries), `deliver` (the sends) and `failed` (recording dead letters).
    # A worker with only `dispatch` (`pushgate worker --queues dispatch`) beside workers
    # without it gives a broadcast's fan-out a process of its own: in a sender, each page waits
    # its turn on an event loop kept busy by hundreds of sends (docs/operations.md).
    queues: Annotated[list[WorkerQueue], NoDecode] = Field(
        default_factory=lambda: list(WORKER_QUEUES), min_length=1
    )

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("queues")
    @classmethod
    def _unique_queues(cls, value: list[WorkerQueue]) -> list[WorkerQueue]:
        return list(dict.fromkeys(value))


class WebhookSettings(BaseModel):
    """Apps' webhooks (store/webhooks.py, sending/webhooks.py): which URLs are accepted (the
    same SSRF rule as Web Push endpoints), TLS, retries and when a failing webhook is disabled."""

    allow_private_addresses: bool = False
    ca_bundle: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How long an event is retried (exponential backoff) before it is `failed`.
    retry_for_seconds: float = Field(default=86_400.0, ge=60, le=7 * 86_400)
    backoff_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    backoff_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    # Failed attempts in a row after which a webhook is disabled (an admin re-enables it).
    disable_after_failures: int = Field(default=100, ge=1, le=100_000)
    # How long a rotated-out secret keeps signing beside the new one.
    rotation_overlap_seconds: float = Field(default=86_400.0, ge=0, le=30 * 86_400)
    # How long a process trusts what it read of an app's webhooks (the delivery hot path).
    cache_seconds: float = Field(default=5.0, ge=0, le=300)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_size: int = Field(default=100, ge=1, le=10_000)


class JWKSSettings(BaseModel):
    """Where apps' JWKS documents (end-user sign-in) may be fetched from (SSRF guard), how TLS
    is verified, and how often they are fetched again."""

    allow_private_addresses: bool = False
    ca_bundle: Path | None = None
    # Keys are used this long before the document is fetched again.
    cache_seconds: float = Field(default=300.0, gt=0, le=86400)
    # A token with an unknown `kid` fetches the document again at most this often per app, so
    # made-up kids cannot turn pushgate into a load generator against the app's JWKS host.
    refetch_seconds: float = Field(default=30.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class SecretsSettings(BaseModel):
    """Encryption at rest of the provider credentials apps upload and of their VAPID private
    keys."""

    # One or more Fernet keys, comma-separated: the first encrypts, all decrypt (rotation).
    # Unset on the embedded profile: a key file is made under data_dir. Required otherwise.
    key: SecretStr | None = None


class Settings(BaseSettings):
    """Every setting pushgate reads. Build with `load_settings()`, never at import time."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    webpush: WebPushSettings = Field(default_factory=WebPushSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    jwks: JWKSSettings = Field(default_factory=JWKSSettings)
    fcm: FCMSettings = Field(default_factory=FCMSettings)
    apns: APNSSettings = Field(default_factory=APNSSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    pacing: PacingSettings = Field(default_factory=PacingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    devices: DeviceExpirySettings = Field(default_factory=DeviceExpirySettings)
    compat: CompatSettings = Field(default_factory=CompatSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        legacy = InitSettingsSource(settings_cls, init_kwargs=_legacy_values(os.environ))
        return (init_settings, env_settings, legacy)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy async URL, with the default SQLite file under `data_dir`."""
        if not self.database.url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'pushgate.db'}"
        return async_database_url(self.database.url)

    @property
    def is_embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")


def async_database_url(url: str) -> str:
    """Map the URLs people write (`postgres://`, `postgresql://`, `sqlite://`) to async drivers."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        return f"postgresql+asyncpg{sep}{rest}"
    if scheme == "sqlite":
        return f"sqlite+aiosqlite{sep}{rest}"
    return url


def _legacy_values(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    values: dict[str, dict[str, Any]] = {}
    for name, (section, field) in LEGACY_ENV.items():
        if name in environ:
            values.setdefault(section, {})[field] = environ[name]
    # Names that translate rather than rename (pushgate/compat/env.py); a plain rename wins.
    for section, fields in compat_env.values(environ).items():
        for field, value in fields.items():
            values.setdefault(section, {}).setdefault(field, value)
    return dict(values)


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _setting_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    legacy = {v: k for k, v in LEGACY_ENV.items()}
    name = ENV_PREFIX + "__".join(p.upper() for p in parts)
    if len(parts) == 2 and (parts[0], parts[1]) in legacy:
        return f"{name} (or {legacy[(parts[0], parts[1])]})"
    return name


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the effective settings.

    Args:
        config_file: a TOML file with the same nested sections; `PUSHGATE_CONFIG` names one too.
        overrides: values that win over everything else (tests, CLI flags).

    Raises:
        ConfigError: one line naming the first bad setting and why.
    """
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    try:
        # Init kwargs outrank the environment in pydantic-settings, so passing the file's values
        # as kwargs would let the file win. Read the environment alone first, keep only what it
        # set explicitly, and layer: file < environment < overrides.
        from_env = Settings().model_dump(exclude_unset=True)
        return Settings(**_deep_merge(_deep_merge(file_values, from_env), overrides))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"invalid setting {_setting_name(first['loc'])}: {first['msg']}"
        ) from None
    except SettingsError as exc:
        # A section given whole (`PUSHGATE_SERVER='{...}'`) that is not JSON.
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + field.group(1).upper() if field else "from the environment"
        reason = " ".join(str(exc.__cause__ or exc).split())
        raise ConfigError(f"invalid setting {name}: not a JSON object ({reason})") from None


MASK = "********"
# Query (and fragment) parameters whose value is hidden: passwords, secrets, tokens, keys,
# signatures and anything auth-like, whatever the driver calls them (`password`, `sslpassword`,
# `access_token`, `api_key`, `X-Amz-Signature` ...). Over-hiding a harmless value costs nothing.
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with secret values masked, and every URL (any
    string with `://`, lists included) passed through `redact_url`."""
    data = settings.model_dump(mode="json")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and "://" in node:
            return redact_url(node)
        return node

    result = walk(data)
    for name, value in settings:
        if isinstance(value, SecretStr):
            result[name] = MASK
    return dict(result)


def redact_url(url: str) -> str:
    """The URL with its secret-looking parts masked: the password of the userinfo (all of a
    userinfo without one, which is often a token: `redis://TOKEN@host`), and the values of
    query and fragment parameters named like a secret (`?password=`, `token`, `key` ...).

    Works on the text itself, so everything else stays exactly as written (urlunsplit would
    rewrite `sqlite:////abs/path`)."""
    rest, hash_sign, fragment = url.partition("#")
    rest, question, query = rest.partition("?")
    scheme, sep, after = rest.partition("://")
    # The last "@" ends the userinfo even when an unencoded "/" in the password would have
    # ended the host part: better to hide part of a path than to show part of a password.
    userinfo, at, location = after.rpartition("@")
    if sep and at:
        user, colon, _password = userinfo.partition(":")
        rest = (
            f"{scheme}{sep}{user}:{MASK}@{location}" if colon else f"{scheme}{sep}{MASK}@{location}"
        )
    return f"{rest}{question}{_redact_params(query)}{hash_sign}{_redact_params(fragment)}"


def _redact_params(text: str) -> str:
    fields = []
    for field in text.split("&"):
        name, equals, _value = field.partition("=")
        if equals and _SECRET_PARAM.search(unquote_plus(name)):
            field = f"{name}={MASK}"
        fields.append(field)
    return "&".join(fields)
