"""The credentials API: an admin sets, replaces, lists and removes the app's FCM and APNs
credentials; secrets are checked on the way in, encrypted at rest and never come back out;
apps never see each other's; send and subscribe keys are refused. On both profiles."""

from __future__ import annotations

import json
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import text

from pushgate.domain import vapid
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store.credentials import KEY_FILE
from tests.conftest import TenantKeys
from tests.fakes.fcm_server import FakeFCMService
from tests.integration.conftest import provider_settings

URL = "/v1/apps/current/credentials"


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: Any) -> Settings:
    return provider_settings(settings, fake_fcm, fake_apns)


def pem(key: Any) -> str:
    raw: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return raw.decode()


def apns_body(**fields: Any) -> dict[str, Any]:
    return {
        "key": pem(ec.generate_private_key(ec.SECP256R1())),
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "topic": "com.example.shop",
        "environment": "sandbox",
        **fields,
    }


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_admin_sets_replaces_lists_and_removes_credentials(
    client: httpx.AsyncClient, tenant: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    # Given a service account and an APNs key
    account = fake_fcm.service_account("shop-prod")
    apns = apns_body()

    # When the admin sets both
    fcm_set = await client.put(
        f"{URL}/fcm", json={"service_account": account}, headers=tenant.admin
    )
    apns_set = await client.put(f"{URL}/apns", json=apns, headers=tenant.admin)

    # Then the answers describe them without the secrets
    assert fcm_set.status_code == 200, fcm_set.text
    assert apns_set.status_code == 200, apns_set.text
    fcm_public = fcm_set.json()
    assert fcm_public["platform"] == "fcm"
    assert fcm_public["project_id"] == "shop-prod"
    assert fcm_public["client_email"] == account["client_email"]
    assert len(fcm_public["fingerprint"]) == 16
    assert apns_set.json() | {"fingerprint": "", "created_at": "", "updated_at": ""} == {
        "platform": "apns",
        "fingerprint": "",
        "project_id": None,
        "client_email": None,
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "topic": "com.example.shop",
        "environment": "sandbox",
        "created_at": "",
        "updated_at": "",
    }
    listed = await client.get(URL, headers=tenant.admin)
    assert listed.status_code == 200
    assert [c["platform"] for c in listed.json()["items"]] == ["apns", "fcm"]
    for text_out in (fcm_set.text, apns_set.text, listed.text):
        assert "PRIVATE KEY" not in text_out
        assert "private_key" not in text_out

    # When the admin replaces the service account (as JSON text this time)
    other = fake_fcm.service_account("shop-prod")
    replaced = await client.put(
        f"{URL}/fcm", json={"service_account_json": json.dumps(other)}, headers=tenant.admin
    )

    # Then the fingerprint and e-mail change, the creation time stays
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["client_email"] == other["client_email"]
    assert replaced.json()["fingerprint"] != fcm_public["fingerprint"]
    assert replaced.json()["created_at"] == fcm_public["created_at"]

    # When the admin removes FCM
    removed = await client.delete(f"{URL}/fcm", headers=tenant.admin)

    # Then only APNs is left, and removing again is a 404
    assert removed.status_code == 204
    listed = await client.get(URL, headers=tenant.admin)
    assert [c["platform"] for c in listed.json()["items"]] == ["apns"]
    again = await client.delete(f"{URL}/fcm", headers=tenant.admin)
    assert again.status_code == 404
    assert error_of(again)["code"] == "credentials_not_found"


async def test_secrets_are_encrypted_at_rest(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    runtime: Runtime,
    settings: Settings,
    fake_fcm: FakeFCMService,
) -> None:
    # Given
    account = fake_fcm.service_account()
    apns = apns_body()

    # When
    await client.put(f"{URL}/fcm", json={"service_account": account}, headers=tenant.admin)
    await client.put(f"{URL}/apns", json=apns, headers=tenant.admin)

    # Then the database holds neither key in the clear
    async with runtime.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT secret FROM app_credentials"))).all()
    assert len(stored) == 2
    body_lines = account["private_key"].splitlines()[1:3] + apns["key"].splitlines()[1:3]
    for (secret,) in stored:
        assert "PRIVATE KEY" not in secret
        assert not any(line in secret for line in body_lines)
    # nor the app's VAPID private key, which the same key opens to the pair it signs with
    async with runtime.engine.connect() as connection:
        sealed, public = (
            await connection.execute(text("SELECT vapid_private_key, vapid_public_key FROM apps"))
        ).one()
    private = runtime.credentials.box().open(sealed)
    assert private not in sealed
    assert vapid.import_key_pair(private).public_key == public
    if settings.is_embedded_database:
        # and the embedded profile made its own key, readable by its owner only
        key_file = Path(settings.data_dir) / KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# (change to a valid body, the field the error names, words its message must contain)
BAD_SERVICE_ACCOUNTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "no-key": ({"private_key": None}, "service_account", '"private_key" is missing'),
    "bad-key": (
        {"private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"},
        "service_account",
        "PEM",
    ),
    "bad-email": ({"client_email": "nobody"}, "service_account", "e-mail"),
    "nul-in-project": ({"project_id": "shop\u0000prod"}, "service_account", "NUL"),
    "not-a-service-account": ({"type": "authorized_user"}, "service_account", "authorized_user"),
    "foreign-token-uri": (
        {"token_uri": "https://internal.example/token"},
        "service_account.token_uri",
        "token_uri",
    ),
}


async def test_malformed_service_account_is_refused_naming_the_problem(
    client: httpx.AsyncClient, tenant: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    # Given a valid service account, spoiled one way per case
    valid = fake_fcm.service_account()
    found: dict[str, tuple[int, str, str]] = {}
    for case, (change, _, _) in BAD_SERVICE_ACCOUNTS.items():
        account = {k: v for k, v in (valid | change).items() if v is not None}

        # When
        response = await client.put(
            f"{URL}/fcm", json={"service_account": account}, headers=tenant.admin
        )

        error = error_of(response)
        found[case] = (response.status_code, error["details"]["field"], error["message"])

    # Then each is a 422 naming the field and the problem, and nothing was stored
    for case, (_, field, words) in BAD_SERVICE_ACCOUNTS.items():
        status, named, message = found[case]
        assert (status, named) == (422, field), case
        assert words in message, (case, message)
    not_json = await client.put(
        f"{URL}/fcm", json={"service_account_json": "{not json"}, headers=tenant.admin
    )
    assert not_json.status_code == 422
    assert "not JSON" in error_of(not_json)["message"]
    listed = await client.get(URL, headers=tenant.admin)
    assert listed.json()["items"] == []


async def test_a_file_name_is_refused_the_same_whether_or_not_the_file_exists(
    client: httpx.AsyncClient, tenant: TenantKeys, fake_fcm: FakeFCMService, tmp_path: Path
) -> None:
    # Given a usable service account in a file on the server
    real = tmp_path / "operator-service-account.json"
    real.write_text(json.dumps(fake_fcm.service_account("operator-prod")))
    names = [str(real), f"file://{real}", str(tmp_path), "/nonexistent/x", "/root", "@\u0000"]

    # When a tenant's admin names each where the service account's content goes
    answers = [
        await client.put(f"{URL}/fcm", json={"service_account_json": name}, headers=tenant.admin)
        for name in names
    ]

    # Then every one is the same 422: nothing was read, nothing tells which files exist
    assert [r.status_code for r in answers] == [422] * len(names)
    assert len({r.text for r in answers}) == 1, [r.text for r in answers]
    error = error_of(answers[0])
    assert error["details"]["field"] == "service_account"
    assert "not JSON" in error["message"]
    assert "operator-prod" not in answers[0].text
    listed = await client.get(URL, headers=tenant.admin)
    assert listed.json()["items"] == []


BAD_APNS_KEYS: dict[str, tuple[dict[str, Any], str, str]] = {
    "not-pem": (
        {"key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        "key",
        "PEM",
    ),
    "rsa-key": (
        {"key": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))},
        "key",
        "P-256",
    ),
    "key-id": ({"key_id": "short"}, "key_id", "10 capital letters"),
    "team-id": ({"team_id": "team123456"}, "team_id", "10 capital letters"),
    "topic": ({"topic": "com example"}, "topic", "bundle id"),
    "nul-in-topic": ({"topic": "com.example\u0000shop"}, "topic", "bundle id"),
    "surrogate-in-topic": ({"topic": "com.example.\udc00"}, "topic", "valid string"),
    "environment": ({"environment": "staging"}, "environment", "production"),
}


async def test_malformed_apns_key_is_refused_naming_the_problem(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    found: dict[str, tuple[int, str, str]] = {}
    for case, (change, _, _) in BAD_APNS_KEYS.items():
        # As escaped JSON text: httpx would not encode a lone surrogate.
        response = await client.put(
            f"{URL}/apns",
            content=json.dumps(apns_body(**change)),
            headers=tenant.admin | {"Content-Type": "application/json"},
        )
        error = error_of(response)
        found[case] = (response.status_code, error["details"]["field"], error["message"])

    for case, (_, field, words) in BAD_APNS_KEYS.items():
        status, named, message = found[case]
        assert (status, named) == (422, field), case
        assert words in message, (case, message)
    listed = await client.get(URL, headers=tenant.admin)
    assert listed.json()["items"] == []


async def test_apps_never_see_each_others_credentials(
    client: httpx.AsyncClient,
    tenant_factory: Callable[[str], Awaitable[TenantKeys]],
    fake_fcm: FakeFCMService,
) -> None:
    # Given app A with FCM credentials
    a = await tenant_factory("a")
    b = await tenant_factory("b")
    account = fake_fcm.service_account()
    put = await client.put(f"{URL}/fcm", json={"service_account": account}, headers=a.admin)
    assert put.status_code == 200

    # When B's admin looks and tries to remove them
    listed = await client.get(URL, headers=b.admin)
    removed = await client.delete(f"{URL}/fcm", headers=b.admin)

    # Then B sees nothing, removes nothing, and A still has them
    assert listed.json()["items"] == []
    assert removed.status_code == 404
    still = await client.get(URL, headers=a.admin)
    assert [c["client_email"] for c in still.json()["items"]] == [account["client_email"]]


async def test_only_admin_keys_manage_credentials(
    client: httpx.AsyncClient, tenant: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    account = fake_fcm.service_account()
    for headers in (tenant.send, tenant.subscribe):
        answers = [
            await client.get(URL, headers=headers),
            await client.put(f"{URL}/fcm", json={"service_account": account}, headers=headers),
            await client.put(f"{URL}/apns", json=apns_body(), headers=headers),
            await client.delete(f"{URL}/apns", headers=headers),
        ]
        assert [r.status_code for r in answers] == [403] * 4
        assert {error_of(r)["code"] for r in answers} == {"insufficient_scope"}
