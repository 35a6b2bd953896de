"""What a `subscribe` key (held by a web page or an app) may do to devices, on both profiles.

It may register a device, and update or remove a device it proves it holds (the device's token
or endpoint in `X-Device-Token`); it never moves a device to another user, and gets back only
what it sent. Send and admin keys manage every device of their app.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.integration.test_devices_api import browser_subscription, register

RECEIPT = {"id", "platform", "token", "endpoint", "enabled", "active", "status"}
PRIVATE = {"user_id", "metadata", "locale", "timezone", "app_version", "topics"}


def holding(tenant: TenantKeys, token: str) -> dict[str, str]:
    """The subscribe key's headers with the proof that it holds the device."""
    return tenant.subscribe | {"X-Device-Token": token}


def new_token() -> str:
    return "fcm-token-" + os.urandom(6).hex()


async def owned_device(client: httpx.AsyncClient, tenant: TenantKeys) -> dict[str, Any]:
    """A device of alice's with a profile, registered by the backend (send key)."""
    response = await register(
        client,
        tenant.send,
        token=new_token(),
        user_id="alice",
        topics=["orders", "news"],
        locale="en",
        metadata={"email": "alice@example.com"},
    )
    assert response.status_code == 201, response.text
    device: dict[str, Any] = response.json()
    return device


async def read(client: httpx.AsyncClient, tenant: TenantKeys, device_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/devices/{device_id}", headers=tenant.send)
    assert response.status_code == 200, response.text
    device: dict[str, Any] = response.json()
    return device


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "alice" not in response.text


# --- registration ----------------------------------------------------------------------------


async def test_subscribe_key_registration_answers_only_what_it_sent(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # When a page registers a new device with a profile
    token = new_token()
    response = await register(
        client, tenant.subscribe, token=token, user_id="u1", topics=["b", "a"], locale="pt_BR"
    )

    # Then it gets the device's id, address and state, and the fields it sent as stored
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == RECEIPT | {"user_id", "topics", "locale"}
    assert (created["token"], created["user_id"], created["topics"]) == (token, "u1", ["a", "b"])
    assert (created["locale"], created["active"], created["status"]) == ("pt-BR", True, "active")

    # And registering the token again with only a version answers the version, not the rest
    again = await register(client, tenant.subscribe, token=token, app_version="2.0")
    assert again.status_code == 200, again.text
    assert again.json() == {
        "id": created["id"],
        "platform": "fcm",
        "token": token,
        "endpoint": None,
        "enabled": True,
        "active": True,
        "status": "active",
        "app_version": "2.0",
    }


async def test_subscribe_key_reregistering_a_known_token_does_not_reveal_its_profile(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given alice's device, registered by the backend
    device = await owned_device(client, tenant)

    # When a page registers the same token without a user
    response = await register(client, tenant.subscribe, token=device["token"])

    # Then the device is refreshed and the answer carries none of alice's data
    assert response.status_code == 200, response.text
    assert set(response.json()) == RECEIPT
    assert "alice" not in response.text
    assert (await read(client, tenant, device["id"]))["user_id"] == "alice"


@pytest.mark.parametrize("new_user", ["mallory", None])
async def test_subscribe_key_reregistering_cannot_move_or_detach_a_device(
    client: httpx.AsyncClient, tenant: TenantKeys, new_user: str | None
) -> None:
    # Given alice's device
    device = await owned_device(client, tenant)

    # When a page registers its token for another user (or none), with other changes
    response = await register(
        client, tenant.subscribe, token=device["token"], user_id=new_user, metadata={"x": 1}
    )

    # Then it is refused and nothing changed
    assert_refused(response, 403, "device_user_locked")
    assert await read(client, tenant, device["id"]) == device


async def test_subscribe_key_reregistering_a_deleted_device_keeps_its_user(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given alice's device, deleted
    device = await owned_device(client, tenant)
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=tenant.send)).is_success

    # When a page registers its token for mallory
    response = await register(client, tenant.subscribe, token=device["token"], user_id="mallory")

    # Then it is refused and the device stays alice's, deactivated
    assert_refused(response, 403, "device_user_locked")
    kept = await read(client, tenant, device["id"])
    assert (kept["user_id"], kept["status"], kept["active"]) == ("alice", "deactivated", False)


async def test_subscribe_key_may_give_a_user_to_a_device_without_one(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a device a page registered before anyone signed in
    token = new_token()
    anonymous = (await register(client, tenant.subscribe, token=token)).json()

    # When the page registers it again once alice signed in
    response = await register(client, tenant.subscribe, token=token, user_id="alice")

    # Then the device is hers, and from then on the page cannot give it to someone else
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"
    assert (await read(client, tenant, anonymous["id"]))["user_id"] == "alice"
    moved = await client.patch(
        f"/v1/devices/{anonymous['id']}", json={"user_id": "bob"}, headers=holding(tenant, token)
    )
    assert_refused(moved, 403, "device_user_locked")
    assert (await read(client, tenant, anonymous["id"]))["user_id"] == "alice"


async def test_subscribe_key_webpush_registration_echoes_its_endpoint(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    subscription = browser_subscription()

    response = await register(
        client, tenant.subscribe, platform="webpush", subscription=subscription
    )

    assert response.status_code == 201, response.text
    assert response.json()["endpoint"] == subscription["endpoint"]
    assert set(response.json()) == RECEIPT


# --- routes by device id: PATCH, DELETE, topics ----------------------------------------------


def by_id_requests(device_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    url = f"/v1/devices/{device_id}"
    return [
        ("PATCH", url, {"enabled": False}),
        ("DELETE", url, None),
        ("POST", f"{url}/topics", {"topics": ["promo"]}),
        ("DELETE", f"{url}/topics/news", None),
    ]


ROUTES = ["patch", "delete", "add-topics", "remove-topic"]


async def call(
    client: httpx.AsyncClient, route: str, device_id: str, headers: dict[str, str]
) -> httpx.Response:
    method, url, body = by_id_requests(device_id)[ROUTES.index(route)]
    return await client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize("route", ROUTES)
async def test_subscribe_key_without_the_token_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, route: str
) -> None:
    # Given alice's device
    device = await owned_device(client, tenant)

    # When a subscribe key addresses it by id alone
    response = await call(client, route, device["id"], tenant.subscribe)

    # Then it is refused, nothing is revealed and nothing changed
    assert_refused(response, 403, "device_token_required")
    assert await read(client, tenant, device["id"]) == device


@pytest.mark.parametrize("route", ROUTES)
async def test_subscribe_key_with_another_devices_token_finds_no_device(
    client: httpx.AsyncClient, tenant: TenantKeys, route: str
) -> None:
    # Given alice's device, and a device the page does hold
    device = await owned_device(client, tenant)
    mine = new_token()
    assert (await register(client, tenant.subscribe, token=mine)).status_code == 201

    # When the page addresses alice's device with its own token
    response = await call(client, route, device["id"], holding(tenant, mine))

    # Then the device does not exist for it, and nothing changed
    assert_refused(response, 404, "device_not_found")
    assert await read(client, tenant, device["id"]) == device


async def test_subscribe_key_patches_a_device_it_holds_and_sees_only_what_it_sent(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given alice's device
    device = await owned_device(client, tenant)

    # When the app on it switches pushes off and changes its locale, showing its token
    response = await client.patch(
        f"/v1/devices/{device['id']}",
        json={"enabled": False, "locale": "fr_FR"},
        headers=holding(tenant, device["token"]),
    )

    # Then the change is made and the answer holds only those fields and the state
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": device["id"],
        "platform": "fcm",
        "token": device["token"],
        "endpoint": None,
        "enabled": False,
        "active": False,
        "status": "disabled",
        "locale": "fr-FR",
    }
    changed = await read(client, tenant, device["id"])
    assert (changed["enabled"], changed["locale"], changed["user_id"]) == (False, "fr-FR", "alice")


@pytest.mark.parametrize("new_user", ["mallory", None])
async def test_subscribe_key_patch_cannot_move_or_detach_a_device(
    client: httpx.AsyncClient, tenant: TenantKeys, new_user: str | None
) -> None:
    device = await owned_device(client, tenant)

    response = await client.patch(
        f"/v1/devices/{device['id']}",
        json={"user_id": new_user, "enabled": False},
        headers=holding(tenant, device["token"]),
    )

    assert_refused(response, 403, "device_user_locked")
    assert await read(client, tenant, device["id"]) == device


async def test_subscribe_key_patch_may_repeat_the_devices_user(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    device = await owned_device(client, tenant)

    response = await client.patch(
        f"/v1/devices/{device['id']}",
        json={"user_id": "alice"},
        headers=holding(tenant, device["token"]),
    )

    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"


async def test_subscribe_key_patch_may_give_a_user_to_a_device_without_one(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    token = new_token()
    anonymous = (await register(client, tenant.subscribe, token=token)).json()

    response = await client.patch(
        f"/v1/devices/{anonymous['id']}", json={"user_id": "alice"}, headers=holding(tenant, token)
    )

    assert response.status_code == 200, response.text
    assert set(response.json()) == RECEIPT | {"user_id"}
    assert (await read(client, tenant, anonymous["id"]))["user_id"] == "alice"


async def test_subscribe_key_deletes_a_device_it_holds(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a browser's device, registered by the page
    subscription = browser_subscription()
    device = (
        await register(client, tenant.subscribe, platform="webpush", subscription=subscription)
    ).json()

    # When the page removes it, showing its endpoint
    response = await client.delete(
        f"/v1/devices/{device['id']}", headers=holding(tenant, subscription["endpoint"])
    )

    # Then it is deactivated
    assert response.status_code == 204, response.text
    gone = await read(client, tenant, device["id"])
    assert (gone["status"], gone["active"]) == ("deactivated", False)


async def test_subscribe_key_apns_token_proves_in_any_case(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    token = os.urandom(32).hex()
    device = (await register(client, tenant.subscribe, platform="apns", token=token)).json()

    response = await client.delete(
        f"/v1/devices/{device['id']}", headers=holding(tenant, token.upper())
    )

    assert response.status_code == 204, response.text


async def test_subscribe_key_topics_answer_only_the_topics_it_sent(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given alice's device with the topics orders and news
    device = await owned_device(client, tenant)
    url = f"/v1/devices/{device['id']}/topics"
    headers = holding(tenant, device["token"])

    # When the app adds promo, then removes news
    added = await client.post(url, json={"topics": ["promo"]}, headers=headers)
    removed = await client.delete(f"{url}/news", headers=headers)

    # Then both are done, and the answers show neither her other topics nor her profile
    assert added.status_code == 200, added.text
    assert set(added.json()) == RECEIPT | {"topics"}
    assert added.json()["topics"] == ["promo"]
    assert removed.status_code == 200, removed.text
    assert set(removed.json()) == RECEIPT
    assert (await read(client, tenant, device["id"]))["topics"] == ["orders", "promo"]


# --- send and admin keys keep managing every device ------------------------------------------


@pytest.mark.parametrize("scope", ["send", "admin"])
async def test_trusted_keys_manage_any_device_without_its_token(
    client: httpx.AsyncClient, tenant: TenantKeys, scope: str
) -> None:
    # Given alice's device
    device = await owned_device(client, tenant)
    headers = getattr(tenant, scope)

    # When the backend gives it to bob by re-registering, then patches and tags it by id
    moved = await register(client, headers, token=device["token"], user_id="bob")
    patched = await client.patch(
        f"/v1/devices/{device['id']}", json={"locale": "de"}, headers=headers
    )
    tagged = await client.post(
        f"/v1/devices/{device['id']}/topics", json={"topics": ["promo"]}, headers=headers
    )

    # Then each answer is the whole device
    assert moved.status_code == 200, moved.text
    assert (moved.json()["user_id"], moved.json()["metadata"]) == ("bob", device["metadata"])
    assert patched.json()["locale"] == "de"
    assert tagged.json()["topics"] == ["news", "orders", "promo"]
    assert tagged.json() == await read(client, tenant, device["id"])
