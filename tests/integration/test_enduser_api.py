"""End-user sign-in: JWTs from the app's own backend on the device routes, both profiles."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from pushgate.api import signin
from pushgate.api.app import create_app
from pushgate.runtime import open_runtime
from pushgate.settings import JWKSSettings, Settings
from tests.conftest import TenantKeys
from tests.fakes.jwks_server import FakeJWKS

SECRET = "s3cret-shared-with-the-app-backend-0123456789"
AUDIENCE = "pushgate"


def token(sub: str, *, key: Any = SECRET, alg: str = "HS256", **claims: Any) -> str:
    claims = {"sub": sub, "aud": AUDIENCE, "exp": int(time.time()) + 600} | claims
    headers = {"kid": claims.pop("kid")} if "kid" in claims else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def as_user(tenant: TenantKeys, jwt_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt_token}", "X-Pushgate-App": tenant.app_name}


async def enable(client: httpx.AsyncClient, tenant: TenantKeys, **body: Any) -> httpx.Response:
    body.setdefault("audience", AUDIENCE)
    return await client.put("/v1/apps/current/auth", json=body, headers=tenant.admin)


async def test_a_user_registers_its_own_device_and_not_anothers(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given an app that accepts HS256 tokens, and Bob's device registered by the backend
    assert (await enable(client, tenant, hs256_secret=SECRET)).status_code == 200
    bob = await client.post(
        "/v1/devices",
        json={"platform": "fcm", "token": "bob-token-1", "user_id": "bob"},
        headers=tenant.send,
    )
    assert bob.status_code == 201, bob.text
    alice = as_user(tenant, token("alice"))

    # When Alice registers her own device (naming no user)
    mine = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "alice-token-1"}, headers=alice
    )
    # Then it is hers
    assert mine.status_code == 201, mine.text
    assert mine.json()["user_id"] == "alice"

    # And she sees, changes and deletes only her own
    listed = await client.get("/v1/devices", headers=alice)
    assert [d["user_id"] for d in listed.json()["items"]] == ["alice"]
    assert (await client.get("/v1/users/bob/devices", headers=alice)).status_code == 403
    bob_id = bob.json()["id"]
    assert (await client.get(f"/v1/devices/{bob_id}", headers=alice)).status_code == 403
    patched = await client.patch(f"/v1/devices/{bob_id}", json={"locale": "fr"}, headers=alice)
    assert patched.status_code == 403
    assert patched.json()["error"]["code"] == "device_of_another_user"
    assert (await client.delete(f"/v1/devices/{bob_id}", headers=alice)).status_code == 403
    mine_id = mine.json()["id"]
    assert (await client.get(f"/v1/devices/{mine_id}", headers=alice)).status_code == 200
    own = await client.patch(f"/v1/devices/{mine_id}", json={"locale": "fr"}, headers=alice)
    assert own.status_code == 200, own.text

    # And taking Bob's token is a conflict, which leaves it Bob's
    taken = await client.post(
        "/v1/devices", json={"platform": "fcm", "token": "bob-token-1"}, headers=alice
    )
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["code"] == "device_taken"
    still = await client.get(f"/v1/devices/{bob_id}", headers=tenant.send)
    assert still.json()["user_id"] == "bob"

    # And naming another user is refused
    other = await client.post(
        "/v1/devices",
        json={"platform": "fcm", "token": "alice-token-2", "user_id": "bob"},
        headers=alice,
    )
    assert other.status_code == 403

    # And an admin key can still reassign Bob's token
    moved = await client.post(
        "/v1/devices",
        json={"platform": "fcm", "token": "bob-token-1", "user_id": "alice"},
        headers=tenant.admin,
    )
    assert moved.json()["user_id"] == "alice"


@pytest.mark.parametrize(
    ("claims", "key"),
    [
        pytest.param({"exp": int(time.time()) - 3600}, SECRET, id="expired"),
        pytest.param({"aud": "another-service"}, SECRET, id="wrong-audience"),
        pytest.param({}, "not-the-secret-of-this-app-at-all-0123456789", id="wrong-signature"),
        pytest.param({"exp": None}, SECRET, id="no-expiry"),
    ],
)
async def test_a_bad_token_is_401_with_the_json_error(
    client: httpx.AsyncClient, tenant: TenantKeys, claims: dict[str, Any], key: str
) -> None:
    # Given an app that accepts HS256 tokens for its audience
    await enable(client, tenant, hs256_secret=SECRET)
    made = {"sub": "alice", "aud": AUDIENCE, "exp": int(time.time()) + 600} | claims
    bad = jwt.encode({k: v for k, v in made.items() if v is not None}, key, algorithm="HS256")
    # When it is used
    response = await client.get("/v1/devices", headers=as_user(tenant, bad))
    # Then it is refused with the error shape
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_token"


async def test_a_token_for_an_unknown_app_or_an_app_without_sign_in_is_401(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # An app without sign-in
    response = await client.get("/v1/devices", headers=as_user(tenant, token("alice")))
    assert response.status_code == 401
    # No such app
    headers = {"Authorization": f"Bearer {token('alice')}", "X-Pushgate-App": "nope"}
    assert (await client.get("/v1/devices", headers=headers)).status_code == 401
    # No app named at all
    headers = {"Authorization": f"Bearer {token('alice')}"}
    assert (await client.get("/v1/devices", headers=headers)).status_code == 401


async def test_a_user_token_opens_only_the_device_routes(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await enable(client, tenant, hs256_secret=SECRET)
    alice = as_user(tenant, token("alice"))
    assert (await client.get("/v1/webpush/vapid-public-key", headers=alice)).status_code == 200
    assert (await client.get("/v1/apps/current/auth", headers=alice)).status_code == 401
    sent = await client.post("/v1/notifications", json={"broadcast": True}, headers=alice)
    assert sent.status_code == 401


async def test_the_settings_never_show_the_secret(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await enable(client, tenant, hs256_secret=SECRET, cors_origins=["https://App.example"])
    shown = await client.get("/v1/apps/current/auth", headers=tenant.admin)
    assert shown.status_code == 200
    assert SECRET not in shown.text
    assert shown.json()["hs256_secret_set"] is True
    assert shown.json()["cors_origins"] == ["https://app.example"]
    # A subscribe key may not read or set them
    assert (await client.get("/v1/apps/current/auth", headers=tenant.subscribe)).status_code == 403


async def test_a_private_jwks_url_is_refused_unless_allowed(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await enable(client, tenant, jwks_url="https://127.0.0.1:8443/jwks.json")
    assert response.status_code == 422, response.text
    plain = await enable(client, tenant, jwks_url="http://example.com/jwks.json")
    assert plain.status_code == 422


def rsa_jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return key, public | {"kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture
async def jwks() -> AsyncIterator[FakeJWKS]:
    async with FakeJWKS() as fake:
        yield fake


@pytest.fixture
async def jwks_client(
    settings: Settings, jwks: FakeJWKS, tenant: TenantKeys
) -> AsyncIterator[tuple[httpx.AsyncClient, list[float]]]:
    """A client on a pushgate allowed to fetch the fake JWKS, with the cache's clock in hand."""
    allowed = settings.model_copy(
        update={"jwks": JWKSSettings(allow_private_addresses=True, ca_bundle=jwks.ca_pem_path)}
    )
    runtime = await open_runtime(allowed)
    now = [1000.0]
    app = create_app(allowed, runtime=runtime)
    app.state.jwks = signin.JWKSCache(allowed.jwks, clock=lambda: now[0])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
        ) as http,
    ):
        yield http, now
    await runtime.close()


async def test_a_jwks_rotation_is_picked_up_on_an_unknown_kid(
    jwks_client: tuple[httpx.AsyncClient, list[float]], jwks: FakeJWKS, tenant: TenantKeys
) -> None:
    client, now = jwks_client
    # Given an app whose keys come from a JWKS URL
    first, first_jwk = rsa_jwk("k1")
    jwks.document = {"keys": [first_jwk]}
    assert (await enable(client, tenant, jwks_url=jwks.url)).status_code == 200
    signed = as_user(tenant, token("alice", key=first, alg="RS256", kid="k1"))
    assert (await client.get("/v1/devices", headers=signed)).status_code == 200
    assert (await client.get("/v1/devices", headers=signed)).status_code == 200
    assert jwks.fetches == 1

    # When the app's backend rotates to a new key
    second, second_jwk = rsa_jwk("k2")
    jwks.document = {"keys": [second_jwk]}
    rotated = as_user(tenant, token("alice", key=second, alg="RS256", kid="k2"))

    # Then right after the last fetch an unknown kid does not fetch again (no amplification)
    assert (await client.get("/v1/devices", headers=rotated)).status_code == 401
    assert jwks.fetches == 1
    # And once `refetch_seconds` have passed it does, and the new key is accepted
    now[0] += JWKSSettings().refetch_seconds + 1
    assert (await client.get("/v1/devices", headers=rotated)).status_code == 200
    assert jwks.fetches == 2
    # And a token signed with an RS256 key the app does not know is refused
    stranger, _ = rsa_jwk("k2")
    forged = as_user(tenant, token("alice", key=stranger, alg="RS256", kid="k2"))
    assert (await client.get("/v1/devices", headers=forged)).status_code == 401


async def test_cors_preflight_and_headers_follow_the_apps_origins(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given an app that lets its own site's pages call pushgate
    await enable(client, tenant, hs256_secret=SECRET, cors_origins=["https://app.example"])
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-pushgate-app",
    }
    # When its page asks before registering: answered without any key
    allowed = await client.options("/v1/devices", headers=preflight)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-pushgate-app" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers
    # And another site's page is refused
    other = await client.options(
        "/v1/devices", headers=preflight | {"Origin": "https://evil.example"}
    )
    assert other.status_code == 403
    assert "access-control-allow-origin" not in other.headers

    # When the page then calls, its origin is echoed, even on an error it must read
    page = as_user(tenant, token("alice")) | {"Origin": "https://app.example"}
    key = await client.get("/v1/webpush/vapid-public-key", headers=page)
    assert key.headers["access-control-allow-origin"] == "https://app.example"
    expired = as_user(tenant, token("alice", exp=1)) | {"Origin": "https://app.example"}
    refused = await client.get("/v1/devices", headers=expired)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example"
    # And never for an origin the app does not allow, nor on other routes
    stranger = page | {"Origin": "https://evil.example"}
    assert (
        "access-control-allow-origin"
        not in (await client.get("/v1/devices", headers=stranger)).headers
    )
    admin = tenant.admin | {"Origin": "https://app.example"}
    assert (
        "access-control-allow-origin"
        not in (await client.get("/v1/apps/current/auth", headers=admin)).headers
    )


async def test_a_jwks_fetch_connects_to_the_checked_address_and_verifies_the_hosts_cert(
    jwks: FakeJWKS,
) -> None:
    # Given a JWKS URL by name whose checked address is 127.0.0.1
    url = f"https://localhost:{jwks.port}/.well-known/jwks.json"
    target, headers, extensions = signin.pinned(url, ["127.0.0.1"])
    # Then the request goes to the address, naming the host for TLS and HTTP
    assert target == f"https://127.0.0.1:{jwks.port}/.well-known/jwks.json"
    assert headers["host"] == f"localhost:{jwks.port}"
    # And the certificate is checked for the host's name (the fake's is for localhost)
    async with httpx.AsyncClient(verify=jwks.client_ssl_context()) as http:
        response = await http.get(target, headers=headers, extensions=extensions)
    assert response.status_code == 200
    assert jwks.fetches == 1
    bad = {"sni_hostname": "keys.example"}
    async with httpx.AsyncClient(verify=jwks.client_ssl_context()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(target, headers=headers, extensions=bad)


async def test_a_jwks_host_that_fails_is_not_asked_again_for_every_request(
    jwks_client: tuple[httpx.AsyncClient, list[float]], jwks: FakeJWKS, tenant: TenantKeys
) -> None:
    client, now = jwks_client
    # Given an app whose JWKS document is no JWKS document
    key, _ = rsa_jwk("k1")
    jwks.document = {"not": "keys"}
    assert (await enable(client, tenant, jwks_url=jwks.url)).status_code == 200
    signed = as_user(tenant, token("alice", key=key, alg="RS256", kid="k1"))
    # When tokens keep coming
    for _ in range(3):
        assert (await client.get("/v1/devices", headers=signed)).status_code == 401
    # Then the host was asked once
    assert jwks.fetches == 1
    # And again once refetch_seconds have passed
    now[0] += JWKSSettings().refetch_seconds + 1
    assert (await client.get("/v1/devices", headers=signed)).status_code == 401
    assert jwks.fetches == 2
