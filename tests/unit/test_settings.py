"""Settings: embedded defaults, PUSHGATE_ variables, legacy names, the TOML file, precedence,
one-line errors and the redacted view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from typer.testing import CliRunner

from pushgate import cli
from pushgate.errors import ConfigError
from pushgate.settings import Settings, load_settings, redact_url, redacted


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pushgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults --------------------------------------------------------------------------------


def test_nothing_configured_gives_the_embedded_profile(data_home: Path) -> None:
    # Given no setting at all
    # When
    settings = load_settings()

    # Then
    assert settings.data_dir == data_home / "pushgate"
    assert settings.database_url == f"sqlite+aiosqlite:///{data_home / 'pushgate' / 'pushgate.db'}"
    assert settings.is_embedded_database
    assert settings.broker.url == "embedded"
    assert settings.redis.url is None
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8000)


def test_data_dir_moves_the_sqlite_file(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "here")

    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'here' / 'pushgate.db'}"


# --- environment -----------------------------------------------------------------------------


def test_nested_pushgate_variables_reach_their_section(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    monkeypatch.setenv("PUSHGATE_DATABASE__URL", "postgresql://app@db.internal/push")
    monkeypatch.setenv("PUSHGATE_BROKER__URL", "amqp://guest:guest@mq:5672/")
    monkeypatch.setenv("PUSHGATE_REDIS__URL", "redis://cache:6379/1")
    monkeypatch.setenv("PUSHGATE_SERVER__PORT", "9000")
    monkeypatch.setenv("PUSHGATE_LOG__LEVEL", "debug")
    monkeypatch.setenv("PUSHGATE_WORKER__CONCURRENCY", "7")

    # When
    settings = load_settings()

    # Then
    assert settings.database_url == "postgresql+asyncpg://app@db.internal/push"
    assert not settings.is_embedded_database
    assert settings.broker.url == "amqp://guest:guest@mq:5672/"
    assert settings.redis.url == "redis://cache:6379/1"
    assert settings.server.port == 9000
    assert settings.log.level == "DEBUG"
    assert settings.worker.concurrency == 7


@pytest.mark.parametrize(
    ("name", "value", "section", "field", "expected"),
    [
        ("DATABASE_URL", "postgresql://u@h/db", "database", "url", "postgresql://u@h/db"),
        ("RABBITMQ_URL", "amqp://mq/", "broker", "url", "amqp://mq/"),
        ("REDIS_URL", "redis://cache:6379/0", "redis", "url", "redis://cache:6379/0"),
        ("SERVICE_PORT", "8123", "server", "port", 8123),
        ("LOG_LEVEL", "warning", "log", "level", "WARNING"),
        ("MAX_RETRIES", "9", "delivery", "max_attempts", 9),
        ("MAX_RETRIES", "0", "delivery", "max_attempts", 0),  # 0: until the TTL
        ("CIRCUIT_BREAKER_THRESHOLD", "11", "circuit_breaker", "threshold", 11),
        ("CIRCUIT_BREAKER_TIMEOUT", "45.5", "circuit_breaker", "timeout", 45.5),
        ("WORKER_PREFETCH_COUNT", "64", "worker", "prefetch_count", 64),
    ],
)
def test_legacy_names_map_to_their_section(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    section: str,
    field: str,
    expected: object,
) -> None:
    # Given a deployment that still uses the plain name
    monkeypatch.setenv(name, value)

    # When
    settings = load_settings()

    # Then
    assert getattr(getattr(settings, section), field) == expected


def test_pushgate_variable_and_legacy_name_on_one_section_combine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@legacy/db")
    monkeypatch.setenv("PUSHGATE_DATABASE__POOL_SIZE", "3")

    settings = load_settings()

    assert settings.database.url == "postgresql://u@legacy/db"
    assert settings.database.pool_size == 3


@pytest.mark.parametrize(
    "url",
    ["postgres://u:p@db:5432/push", "postgresql://u:p@db:5432/push"],
)
def test_postgres_urls_use_the_async_driver(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)

    assert load_settings().database_url == "postgresql+asyncpg://u:p@db:5432/push"


def test_webpush_extra_hosts_accept_a_comma_separated_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHGATE_WEBPUSH__EXTRA_HOSTS", "push.acme.io, push2.acme.io")

    assert load_settings().webpush.extra_hosts == ["push.acme.io", "push2.acme.io"]


def test_jwks_settings_are_read_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATE_JWKS__ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("PUSHGATE_JWKS__REFETCH_SECONDS", "5")
    jwks = load_settings().jwks
    assert jwks.allow_private_addresses is True
    assert jwks.refetch_seconds == 5

    monkeypatch.setenv("PUSHGATE_JWKS__CACHE_SECONDS", "0")
    with pytest.raises(ConfigError, match="JWKS__CACHE_SECONDS"):
        load_settings()


# --- precedence ------------------------------------------------------------------------------


def test_precedence_overrides_then_variables_then_legacy_then_file_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the port set at every level, the host only in the file and at the top,
    # and the log level only in the file
    config = write_config(
        tmp_path,
        '[server]\nport = 1111\nhost = "10.0.0.1"\n'
        '[log]\nlevel = "ERROR"\n'
        "[worker]\nprefetch_count = 5\nconcurrency = 6\n",
    )
    monkeypatch.setenv("SERVICE_PORT", "3333")
    monkeypatch.setenv("PUSHGATE_SERVER__PORT", "4444")
    monkeypatch.setenv("WORKER_PREFETCH_COUNT", "50")

    # When / Then: each level wins over the ones below it
    top = load_settings(config_file=config, server={"port": 5555})
    assert top.server.port == 5555
    assert top.server.host == "10.0.0.1"  # an override of one field keeps the section's others

    variables = load_settings(config_file=config)
    assert variables.server.port == 4444
    assert variables.worker.prefetch_count == 50  # legacy name beats the file
    assert variables.worker.concurrency == 6  # the file beats the default
    assert variables.log.level == "ERROR"
    assert variables.delivery.max_attempts == 100  # nothing set: the default

    monkeypatch.delenv("PUSHGATE_SERVER__PORT")
    assert load_settings(config_file=config).server.port == 3333

    monkeypatch.delenv("SERVICE_PORT")
    assert load_settings(config_file=config).server.port == 1111


def test_pushgate_config_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, '[broker]\nurl = "amqp://mq.acme.io/"\n')
    monkeypatch.setenv("PUSHGATE_CONFIG", str(config))

    assert load_settings().broker.url == "amqp://mq.acme.io/"


def test_config_file_argument_wins_over_pushgate_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 2222\n", encoding="utf-8")
    monkeypatch.setenv("PUSHGATE_CONFIG", str(other))
    config = write_config(tmp_path, "[server]\nport = 1111\n")

    assert load_settings(config_file=config).server.port == 1111


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("SERVICE_PORT", "abc", "SERVICE_PORT"),
        ("PUSHGATE_SERVER__PORT", "70000", "PUSHGATE_SERVER__PORT"),
        ("PUSHGATE_BROKER__URL", "http://x", "PUSHGATE_BROKER__URL"),
        ("PUSHGATE_DATABASE__URL", "mysql://u@h/db", "PUSHGATE_DATABASE__URL"),
        ("REDIS_URL", "http://cache", "REDIS_URL"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL"),
        ("PUSHGATE_SERVER", "{not json", "PUSHGATE_SERVER"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    # Given
    monkeypatch.setenv(name, value)

    # When
    with pytest.raises(ConfigError) as caught:
        load_settings()

    # Then
    message = str(caught.value)
    assert "\n" not in message
    assert named in message


def test_bad_value_in_the_file_names_the_setting(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[server]\nport = "eighty"\n')

    with pytest.raises(ConfigError, match="SERVER__PORT") as caught:
        load_settings(config_file=config)

    assert "\n" not in str(caught.value)


def test_broken_toml_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[server\nport = 1\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config)

    assert str(config) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("PUSHGATE_CONFIG", str(missing))

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert str(missing) in str(caught.value)
    assert "\n" not in str(caught.value)


# --- redacted view ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "shown"),
    [
        (
            {
                "DATABASE_URL": "postgresql://app:db-pass-1@db:5432/push",
                "RABBITMQ_URL": "amqp://guest:mq-pass-2@mq:5672/",
                "REDIS_URL": "redis://:redis-pass-3@cache:6379/0",
            },
            {
                ("database", "url"): "postgresql://app:********@db:5432/push",
                ("broker", "url"): "amqp://guest:********@mq:5672/",
                ("redis", "url"): "redis://:********@cache:6379/0",
            },
        ),
        (
            {
                "DATABASE_URL": "postgresql://app@db/push?password=db-pass-1",
                "REDIS_URL": "redis://cache/0?password=redis-pass-3",
                "PUSHGATE_FCM__TOKEN_URIS": "https://sso.example/token?key=fcm-pass-4",
            },
            {
                ("database", "url"): "postgresql://********@db/push?password=********",
                ("redis", "url"): "redis://cache/0?password=********",
                ("fcm", "token_uris"): ["https://sso.example/token?key=********"],
            },
        ),
    ],
    ids=["userinfo", "query-parameters-and-lists"],
)
def test_redacted_hides_passwords_in_urls(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    shown: dict[tuple[str, str], Any],
) -> None:
    # Given
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    # When
    view = redacted(load_settings())

    # Then
    assert "-pass-" not in repr(view)
    for (section, name), value in shown.items():
        assert view[section][name] == value
    assert view["server"]["port"] == 8000  # everything else is shown as is


class _Credentials(BaseModel):
    project_id: str = "acme"
    private_key: SecretStr = SecretStr("nested-secret-value")


class _SettingsWithSecrets(Settings):
    api_token: SecretStr = SecretStr("top-secret-value")
    credentials: _Credentials = _Credentials()


def test_redacted_hides_secret_values() -> None:
    view = redacted(_SettingsWithSecrets())

    text = repr(view)
    assert "top-secret-value" not in text
    assert "nested-secret-value" not in text
    assert view["credentials"]["project_id"] == "acme"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u@h/db?password=pw-1", "postgresql://********@h/db?password=********"),
        ("redis://h/0?password=pw-1", "redis://h/0?password=********"),
        ("redis://:pw-1@h:6379/0", "redis://:********@h:6379/0"),
        (
            "rediss://default:pw-1@h:6380/0?ssl_cert_reqs=none",
            "rediss://default:********@h:6380/0?ssl_cert_reqs=none",
        ),
        ("redis://pw-1@h/0", "redis://********@h/0"),
        (
            "amqp://guest:pw-1@mq:5672/%2F?heartbeat=30",
            "amqp://guest:********@mq:5672/%2F?heartbeat=30",
        ),
        ("postgresql://app:p/w-1@db/push", "postgresql://app:********@db/push"),
        (
            "postgresql://h/db?sslmode=require&sslpassword=pw-1&application_name=pg",
            "postgresql://h/db?sslmode=require&sslpassword=********&application_name=pg",
        ),
        (
            "https://h/hook?access_token=pw-1&api_key=pw-1&Secret=pw-1&X-Amz-Signature=pw-1&a=1",
            "https://h/hook?access_token=********&api_key=********&Secret=********"
            "&X-Amz-Signature=********&a=1",
        ),
        ("https://h/cb#token=pw-1&state=s", "https://h/cb#token=********&state=s"),
        ("https://h/x?pass%77ord=pw-1", "https://h/x?pass%77ord=********"),
        (
            "unix:///run/redis.sock?db=0&password=pw-1",
            "unix:///run/redis.sock?db=0&password=********",
        ),
        (
            "sqlite+aiosqlite:////var/lib/pushgate/pushgate.db",
            "sqlite+aiosqlite:////var/lib/pushgate/pushgate.db",
        ),
        ("https://fcm.googleapis.com", "https://fcm.googleapis.com"),
        ("embedded", "embedded"),
    ],
    ids=[
        "pg-user-and-password-parameter",
        "redis-password-parameter",
        "redis-password-only",
        "rediss-user-password",
        "redis-bare-token-userinfo",
        "amqp-user-password",
        "unencoded-slash-in-password",
        "libpq-sslpassword",
        "token-key-secret-signature",
        "fragment-token",
        "percent-encoded-name",
        "unix-socket",
        "sqlite-path-untouched",
        "plain-url-untouched",
        "not-a-url",
    ],
)
def test_redact_url_hides_every_secret_looking_part(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "pw-1" not in redact_url(url)


def test_config_show_prints_no_password_given_as_a_query_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/push?password=db-pass-1")
    monkeypatch.setenv("REDIS_URL", "redis://cache/0?password=redis-pass-2")

    # When
    shown = CliRunner().invoke(cli.app, ["config", "show"])
    as_json = CliRunner().invoke(cli.app, ["config", "show", "--json"])

    # Then
    assert shown.exit_code == 0, shown.output
    assert as_json.exit_code == 0, as_json.output
    for output in (shown.output, as_json.output):
        assert "db-pass-1" not in output
        assert "redis-pass-2" not in output
    effective = json.loads(as_json.output)["database"]["effective_url"]
    assert effective == "postgresql+asyncpg://********@db/push?password=********"


# --- rates -----------------------------------------------------------------------------------


def test_rate_limits_are_on_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().rate_limits.enabled
    assert str(load_settings().rate_limits.key_send) == "60000/minute"

    monkeypatch.setenv("PUSHGATE_RATE_LIMITS__KEY_SEND", "600/minute")
    monkeypatch.setenv("PUSHGATE_RATE_LIMITS__APP_READ", "off")

    limits = load_settings().rate_limits
    assert (limits.key_send.count, limits.key_send.period) == (600, 60.0)
    assert limits.app_read.unlimited
    assert redacted(load_settings())["rate_limits"]["key_send"] == "600/minute"


def test_a_rate_that_does_not_read_stops_start_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHGATE_RATE_LIMITS__KEY_READ", "lots")

    with pytest.raises(ConfigError, match="PUSHGATE_RATE_LIMITS__KEY_READ"):
        load_settings()


def test_pacing_per_provider_adds_to_fcms_default_and_per_credential_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert str(load_settings().pacing.rate("fcm", "any-project")) == "600000/minute"
    assert load_settings().pacing.rate("apns", "TEAM") is None

    monkeypatch.setenv("PUSHGATE_PACING__PER_PROVIDER__APNS", "100/second")
    monkeypatch.setenv(
        "PUSHGATE_PACING__PER_CREDENTIAL", '{"fcm:small-project": "60/minute", "fcm:free": "off"}'
    )

    pacing = load_settings().pacing
    assert str(pacing.rate("apns", "TEAM")) == "100/second"
    assert str(pacing.rate("fcm", "other")) == "600000/minute"
    assert str(pacing.rate("fcm", "small-project")) == "60/minute"
    assert pacing.rate("fcm", "free") is None


def test_metrics_and_sentry_settings_are_read_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUSHGATE_METRICS__TOKEN", "scrape-token-1")
    monkeypatch.setenv("PUSHGATE_METRICS__ALLOW", "10.0.0.0/8, 127.0.0.1/32")
    monkeypatch.setenv("PUSHGATE_METRICS__WORKER_PORT", "9100")
    monkeypatch.setenv("PUSHGATE_SENTRY__DSN", "http://sentry-key-1@127.0.0.1:9000/1")
    monkeypatch.setenv("PUSHGATE_SENTRY__TRACES_SAMPLE_RATE", "0.25")

    settings = load_settings()

    assert settings.metrics.enabled is True
    assert settings.metrics.allow == ["10.0.0.0/8", "127.0.0.1/32"]
    assert settings.metrics.worker_port == 9100
    assert settings.metrics.token is not None
    assert settings.sentry.traces_sample_rate == 0.25
    text = repr(redacted(settings))
    assert "scrape-token-1" not in text
    assert "sentry-key-1" not in text


def test_metrics_allow_refuses_what_is_not_a_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATE_METRICS__ALLOW", "10.0.0.0/8,intranet")

    with pytest.raises(ConfigError, match=r"PUSHGATE_METRICS__ALLOW.*intranet"):
        load_settings()


def test_metrics_and_sentry_defaults() -> None:
    settings = load_settings()

    assert settings.metrics.token is None
    assert settings.metrics.allow == []
    assert settings.metrics.worker_port == 9464
    assert settings.sentry.dsn is None
    assert settings.sentry.traces_sample_rate == 0
