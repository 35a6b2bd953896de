"""`pushgate apps auth` through the real CLI: end-user sign-in set, shown without its secret,
a bad origin refused with a one-line reason, and disabled again."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.acceptance.test_serve_cli import run_cli

SECRET = "s3cret-shared-with-the-app-backend-0123456789"


def test_apps_auth_sets_shows_refuses_and_disables(tmp_path: Path) -> None:
    # Given an app and an EC public key of its backend
    data = tmp_path / "data"
    assert run_cli(data, "apps", "create", "shop").returncode == 0
    pem = tmp_path / "backend.pem"
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))

    # When sign-in is set with a secret, a key file and an origin
    made = run_cli(
        data, "apps", "auth", "--app", "shop", "--jwt-hs256-secret", SECRET,
        "--jwt-audience", "pushgate", "--jwt-public-key", str(pem),
        "--cors-origin", "https://shop.example", "--json",
    )  # fmt: skip

    # Then it shows what was set, never the secret
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    assert shown["algorithms"] == ["HS256", "RS256", "ES256"]
    assert shown["cors_origins"] == ["https://shop.example"]
    assert shown["hs256_secret_set"] is True
    assert SECRET not in made.stdout

    # And a wildcard origin is refused with a one-line reason
    refused = run_cli(
        data, "apps", "auth", "--app", "shop", "--jwt-hs256-secret", SECRET,
        "--cors-origin", "*",
    )  # fmt: skip
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "(invalid_input)" in refused.stderr

    # And --disable goes back to API keys only
    off = run_cli(data, "apps", "auth", "--app", "shop", "--disable", "--json")
    assert json.loads(off.stdout)["enabled"] is False
