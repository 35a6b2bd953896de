"""The credentials commands through the real CLI: set an app's FCM service account and APNs
key from files, list them (metadata only), and refuse a malformed key with a one-line reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.store.credentials import KEY_FILE
from tests.acceptance.test_serve_cli import run_cli


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


# Five CLI processes, each importing the whole service: past the default 60 s on a loaded
# machine once (an xdist worker's timeout ends the whole session).
@pytest.mark.timeout(180)
def test_credentials_set_and_list_from_files(tmp_path: Path) -> None:
    # Given an app, a service-account file and a .p8 key file
    data = tmp_path / "data"
    assert run_cli(data, "apps", "create", "shop").returncode == 0
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = {
        "type": "service_account",
        "project_id": "shop-prod",
        "private_key": pem(rsa_key),
        "client_email": "push@shop-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    (tmp_path / "sa.json").write_text(json.dumps(account))
    apns_key = pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "key.p8").write_text(apns_key)

    # When
    fcm = run_cli(
        data, "credentials", "set-fcm", "--app", "shop",
        "--service-account", str(tmp_path / "sa.json"), "--json",
    )  # fmt: skip
    apns = run_cli(
        data, "credentials", "set-apns", "--app", "shop", "--key", str(tmp_path / "key.p8"),
        "--key-id", "ABC123DEFG", "--team-id", "TEAM123456", "--topic", "com.example.shop",
        "--environment", "sandbox", "--json",
    )  # fmt: skip
    bad = run_cli(
        data, "credentials", "set-apns", "--app", "shop", "--key", str(tmp_path / "key.p8"),
        "--key-id", "nope", "--team-id", "TEAM123456", "--topic", "com.example.shop",
    )  # fmt: skip
    listed = run_cli(data, "credentials", "list", "--app", "shop", "--json")

    # Then both are stored, shown without their secrets, and the bad one was refused
    assert fcm.returncode == 0, fcm.stderr
    assert apns.returncode == 0, apns.stderr
    assert json.loads(fcm.stdout)["project_id"] == "shop-prod"
    assert bad.returncode == 2
    assert "key id must be 10 capital letters" in bad.stderr
    rows = json.loads(listed.stdout)["credentials"]
    assert [(r["platform"], r["project_id"] or r["key_id"]) for r in rows] == [
        ("apns", "ABC123DEFG"),
        ("fcm", "shop-prod"),
    ]
    assert rows[0]["environment"] == "sandbox"
    assert "PRIVATE KEY" not in listed.stdout + fcm.stdout + apns.stdout
    assert (data / KEY_FILE).exists()
