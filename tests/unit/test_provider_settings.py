"""FCM, APNs and secrets settings, and the box that encrypts apps' credentials at rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from pushgate.errors import ConfigError
from pushgate.settings import load_settings
from pushgate.store.credentials import KEY_FILE, SecretBox, fingerprint


def test_legacy_service_account_names_configure_fcm(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SERVICE_ACCOUNT_PATH", "/etc/pushgate/firebase.json")
    monkeypatch.setenv("PROJECT_ID", "shop-prod")
    monkeypatch.setenv("PUSHGATE_FCM__TOKEN_URIS", "https://a.example/token, https://b.example/t")

    settings = load_settings(data_dir=tmp_path)

    assert settings.fcm.service_account_path == Path("/etc/pushgate/firebase.json")
    assert settings.fcm.project_id == "shop-prod"
    assert settings.fcm.token_uris == ["https://a.example/token", "https://b.example/t"]


def test_provider_urls_must_be_https(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PUSHGATE_APNS__SANDBOX_URL"):
        load_settings(data_dir=tmp_path, apns={"sandbox_url": "http://127.0.0.1:8443"})
    with pytest.raises(ConfigError, match="PUSHGATE_FCM__BASE_URL"):
        load_settings(data_dir=tmp_path, fcm={"base_url": "http://fcm.example"})


def test_embedded_profile_makes_one_key_file_and_keeps_it(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")

    sealed = SecretBox.from_settings(settings).seal("secret")

    key_file = tmp_path / "data" / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert SecretBox.from_settings(settings).open(sealed) == "secret"
    assert "secret" not in sealed


def test_a_shared_database_needs_a_key(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, database={"url": "postgresql://db/pushgate"})

    with pytest.raises(ConfigError, match="PUSHGATE_SECRETS__KEY must be set") as caught:
        SecretBox.from_settings(settings)

    assert caught.value.code == "secrets_key_missing"
    assert not (tmp_path / KEY_FILE).exists()


def test_a_malformed_key_is_refused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, secrets={"key": "not-a-key"})

    with pytest.raises(ConfigError, match="not a Fernet key"):
        SecretBox.from_settings(settings)


def test_keys_rotate_new_first_old_still_decrypts(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox.from_settings(load_settings(data_dir=tmp_path, secrets={"key": old})).seal(
        "secret"
    )

    rotated = SecretBox.from_settings(
        load_settings(data_dir=tmp_path, secrets={"key": f"{new},{old}"})
    )
    alone = SecretBox.from_settings(load_settings(data_dir=tmp_path, secrets={"key": new}))

    assert rotated.open(sealed) == "secret"
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        alone.open(sealed)


def test_fingerprint_is_sixteen_hex_digits_of_sha256() -> None:
    assert fingerprint("abc") == "ba7816bf8f01cfea"
