"""No device route lets one app see or touch another app's devices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys

Tenants = tuple[TenantKeys, TenantKeys, dict[str, Any]]


@pytest.fixture
async def two_tenants(
    client: httpx.AsyncClient, tenant_factory: Callable[[str], Awaitable[TenantKeys]]
) -> Tenants:
    """acme, and globex with one device (user "u1", topic "news")."""
    acme, globex = await tenant_factory("acme"), await tenant_factory("globex")
    body = {"platform": "fcm", "token": "globex-token", "user_id": "u1", "topics": ["news"]}
    response = await client.post("/v1/devices", json=body, headers=globex.send)
    assert response.status_code == 201
    return acme, globex, response.json()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/devices/{id}", None),
        ("PATCH", "/v1/devices/{id}", {"locale": "fr", "enabled": False}),
        ("DELETE", "/v1/devices/{id}", None),
        ("DELETE", "/v1/devices/{id}?purge=true", None),
        ("POST", "/v1/devices/{id}/topics", {"topics": ["stolen"]}),
        ("DELETE", "/v1/devices/{id}/topics/news", None),
    ],
)
async def test_another_apps_device_id_is_not_found(
    client: httpx.AsyncClient, two_tenants: Tenants, method: str, path: str, body: Any
) -> None:
    # Given globex's device and acme's admin key
    acme, globex, theirs = two_tenants
    # When acme addresses globex's device by id
    response = await client.request(
        method, path.format(id=theirs["id"]), json=body, headers=acme.admin
    )
    # Then it does not exist for acme (404, not 403), and nothing of it leaks
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "device_not_found"
    assert "globex-token" not in response.text
    # And globex's device is unchanged
    after = await client.get(f"/v1/devices/{theirs['id']}", headers=globex.send)
    assert after.json() == theirs


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/v1/devices/{id}", {"locale": "fr", "enabled": False}),
        ("DELETE", "/v1/devices/{id}", None),
        ("POST", "/v1/devices/{id}/topics", {"topics": ["stolen"]}),
        ("DELETE", "/v1/devices/{id}/topics/news", None),
    ],
)
async def test_another_apps_device_is_not_found_by_its_holder_token(
    client: httpx.AsyncClient, two_tenants: Tenants, method: str, path: str, body: Any
) -> None:
    # Given globex's device, and acme's subscribe key showing that device's token
    acme, globex, theirs = two_tenants
    holder = acme.subscribe | {"X-Device-Token": "globex-token"}
    # When it addresses globex's device by id
    response = await client.request(method, path.format(id=theirs["id"]), json=body, headers=holder)
    # Then it does not exist for acme, and globex's device is unchanged
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "device_not_found"
    after = await client.get(f"/v1/devices/{theirs['id']}", headers=globex.send)
    assert after.json() == theirs


@pytest.mark.parametrize(
    "path",
    [
        "/v1/devices",
        "/v1/devices?status=all",
        "/v1/devices?user_id=u1",
        "/v1/devices?topic=news",
        "/v1/devices?platform=fcm",
        "/v1/users/u1/devices",
    ],
)
async def test_lists_never_show_another_apps_devices(
    client: httpx.AsyncClient, two_tenants: Tenants, path: str
) -> None:
    acme, _globex, _theirs = two_tenants
    response = await client.get(path, headers=acme.admin)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_cursor_from_another_app_shows_nothing_of_it(
    client: httpx.AsyncClient, two_tenants: Tenants
) -> None:
    # Given a cursor globex's listing could produce
    acme, globex, _theirs = two_tenants
    second = {"platform": "fcm", "token": "globex-2"}
    await client.post("/v1/devices", json=second, headers=globex.subscribe)
    cursor = (await client.get("/v1/devices?limit=1", headers=globex.send)).json()["next_cursor"]
    assert cursor is not None
    # When acme presents it, Then acme sees only its own (no) devices
    response = await client.get("/v1/devices", params={"cursor": cursor}, headers=acme.admin)
    assert response.json()["items"] == []


async def test_same_token_in_two_apps_is_two_independent_devices(
    client: httpx.AsyncClient, two_tenants: Tenants
) -> None:
    # When acme registers the token globex already has
    acme, globex, theirs = two_tenants
    body = {"platform": "fcm", "token": "globex-token", "user_id": "someone-else"}
    response = await client.post("/v1/devices", json=body, headers=acme.subscribe)
    # Then acme gets a new device, and globex's keeps its own user
    assert response.status_code == 201
    assert response.json()["id"] != theirs["id"]
    after = await client.get(f"/v1/devices/{theirs['id']}", headers=globex.send)
    assert after.json()["user_id"] == "u1"
    # And deleting acme's copy leaves globex's active
    holder = acme.subscribe | {"X-Device-Token": "globex-token"}
    deleted = await client.delete(f"/v1/devices/{response.json()['id']}", headers=holder)
    assert deleted.status_code == 204
    after = await client.get(f"/v1/devices/{theirs['id']}", headers=globex.send)
    assert after.json()["status"] == "active"
