"""The environment names of the two legacy queue consumers' deployments: `FCM_SERVER_KEY`
refused at start (template_consumer); `RABBITMQ_HOST`, `REDIS_HOST` ... combined into URLs and
`FIREBASE_KEY` read as the service account (flask_consumer), below `PUSHGATE_*` and the URL
names, and masked by `pushgate config`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pushgate.errors import ConfigError
from pushgate.settings import Settings, load_settings, redacted

PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----not-a-real-key"
ACCOUNT = json.dumps({"type": "service_account", "project_id": "shop", "private_key": PRIVATE_KEY})


def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path)


def test_fcm_server_key_stops_the_start_pointing_to_a_service_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FCM_SERVER_KEY", "AAAA-legacy-server-key")
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path)
    assert "\n" not in refused.value.message
    assert refused.value.message.startswith("FCM_SERVER_KEY is a key for FCM's legacy HTTP API")
    assert "shut down in 2024" in refused.value.message
    assert "SERVICE_ACCOUNT_PATH" in refused.value.message
    assert "AAAA-legacy" not in refused.value.message
    monkeypatch.setenv("FCM_SERVER_KEY", " ")  # a blank line in a .env file: none
    assert settings(tmp_path).fcm.service_account_path is None


def test_rabbitmq_host_builds_the_broker_url_with_pika_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RABBITMQ_HOST", "mq.internal")
    assert settings(tmp_path).broker.url == "amqp://guest:guest@mq.internal:5672/"
    monkeypatch.setenv("RABBITMQ_PORT", "5673")
    monkeypatch.setenv("RABBITMQ_USER", "push")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "p@ss/word")
    loaded = settings(tmp_path)
    assert loaded.broker.url == "amqp://push:p%40ss%2Fword@mq.internal:5673/"
    assert redacted(loaded)["broker"]["url"] == "amqp://push:********@mq.internal:5673/"
    monkeypatch.setenv("RABBITMQ_PORT", "amqp")
    with pytest.raises(ConfigError, match=r"^invalid setting RABBITMQ_PORT: 'amqp' is not a port"):
        settings(tmp_path)


def test_rabbitmq_url_and_pushgate_names_win_over_rabbitmq_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RABBITMQ_HOST", "mq.internal")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://u:p@other:5672/")
    assert settings(tmp_path).broker.url == "amqp://u:p@other:5672/"
    monkeypatch.setenv("PUSHGATE_BROKER__URL", "amqp://mine:5672/")
    assert settings(tmp_path).broker.url == "amqp://mine:5672/"
    monkeypatch.delenv("RABBITMQ_URL")
    assert settings(tmp_path).broker.url == "amqp://mine:5672/"
    monkeypatch.delenv("PUSHGATE_BROKER__URL")
    monkeypatch.setenv("PUSHGATE_BROKER__PREFIX", "shop.")  # another field of the section
    loaded = settings(tmp_path)
    assert (loaded.broker.url, loaded.broker.prefix) == (
        "amqp://guest:guest@mq.internal:5672/",
        "shop.",
    )


def test_redis_host_port_and_password_build_the_redis_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")  # without a host: nothing to build
    assert settings(tmp_path).redis.url is None
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    loaded = settings(tmp_path)
    assert loaded.redis.url == "redis://:s3cret@cache.internal:6379/0"
    assert redacted(loaded)["redis"]["url"] == "redis://:********@cache.internal:6379/0"
    monkeypatch.delenv("REDIS_PASSWORD")
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert settings(tmp_path).redis.url == "redis://cache.internal:6380/0"
    monkeypatch.setenv("REDIS_HOST", "fd00::7")
    assert settings(tmp_path).redis.url == "redis://[fd00::7]:6380/0"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/1")
    assert settings(tmp_path).redis.url == "redis://elsewhere:6379/1"
    monkeypatch.setenv("PUSHGATE_REDIS__URL", "redis://mine:6379/2")
    assert settings(tmp_path).redis.url == "redis://mine:6379/2"
    monkeypatch.setenv("REDIS_PORT", "0")
    with pytest.raises(ConfigError, match=r"^invalid setting REDIS_PORT"):
        settings(tmp_path)


def test_firebase_key_is_the_service_account_kept_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIREBASE_KEY", ACCOUNT)
    loaded = settings(tmp_path)
    assert loaded.fcm.service_account_json is not None
    assert loaded.fcm.service_account_json.get_secret_value() == ACCOUNT
    shown = json.dumps(redacted(loaded))
    assert PRIVATE_KEY not in shown
    assert redacted(loaded)["fcm"]["service_account_json"] == "**********"
    assert PRIVATE_KEY not in repr(loaded)

    monkeypatch.setenv("PUSHGATE_FCM__SERVICE_ACCOUNT_JSON", ACCOUNT.replace("shop", "mine"))
    winner = settings(tmp_path).fcm.service_account_json
    assert winner is not None
    assert "mine" in winner.get_secret_value()
    monkeypatch.delenv("PUSHGATE_FCM__SERVICE_ACCOUNT_JSON")

    monkeypatch.setenv("SERVICE_ACCOUNT_PATH", "/etc/pushgate/firebase.json")
    with pytest.raises(ConfigError, match=r"SERVICE_ACCOUNT_PATH.*or.*FIREBASE_KEY.*not both"):
        settings(tmp_path)
    monkeypatch.setenv("FIREBASE_KEY", "")
    assert settings(tmp_path).fcm.service_account_json is None
