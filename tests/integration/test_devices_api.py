"""The device registry over HTTP, on both backend profiles."""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import TenantKeys

CHROME_ENDPOINT = "https://fcm.googleapis.com/fcm/send/dGVzdC1zdWJzY3JpcHRpb24:APA91bH"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def browser_subscription(endpoint: str = CHROME_ENDPOINT) -> dict[str, Any]:
    """What `PushSubscription.toJSON()` gives in a browser."""
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))},
    }


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> httpx.Response:
    body.setdefault("platform", "fcm")
    if body["platform"] != "webpush":
        body.setdefault("token", "fcm-token-" + os.urandom(6).hex())
    return await client.post("/v1/devices", json=body, headers=headers)


async def test_registering_a_device_answers_201_with_the_device(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # When a backend registers a phone's FCM token with a profile
    response = await register(
        client,
        tenant.send,
        token="fGw0qy4TGgk:APA91bGtWGjuhp4",
        user_id="user-1",
        topics=["news", "alerts"],
        locale="pt_BR",
        timezone="America/Sao_Paulo",
        app_version="3.1.0",
        metadata={"model": "Pixel 8", "os": 14},
    )
    # Then the device comes back, active, with sorted topics and the BCP 47 locale
    assert response.status_code == 201, response.text
    device = response.json()
    assert device["platform"] == "fcm"
    assert device["token"] == "fGw0qy4TGgk:APA91bGtWGjuhp4"
    assert device["endpoint"] is None
    assert device["user_id"] == "user-1"
    assert device["topics"] == ["alerts", "news"]
    assert (device["locale"], device["timezone"]) == ("pt-BR", "America/Sao_Paulo")
    assert device["metadata"] == {"model": "Pixel 8", "os": 14}
    assert (device["enabled"], device["active"], device["status"]) == (True, True, "active")
    assert device["invalidated_at"] is None


async def test_reregistering_answers_200_with_the_same_device(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a registered device with a user
    first = (await register(client, tenant.send, token="tok-1", user_id="u1")).json()
    # When the backend registers the token again with a new version and topics
    response = await register(client, tenant.send, token="tok-1", app_version="2.0", topics=["b"])
    # Then the answer is 200, the same device, old fields kept and times refreshed
    assert response.status_code == 200
    again = response.json()
    assert again["id"] == first["id"]
    assert (again["user_id"], again["app_version"], again["topics"]) == ("u1", "2.0", ["b"])
    assert again["last_seen_at"] >= first["last_seen_at"]
    assert again["created_at"] == first["created_at"]


async def test_webpush_subscription_is_stored_and_its_keys_never_echoed(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # When a browser registers its subscription
    subscription = browser_subscription()
    subscription["expirationTime"] = 1_893_456_000_000
    response = await register(client, tenant.send, platform="webpush", subscription=subscription)
    # Then the device shows the endpoint and the expiry, not the keys
    assert response.status_code == 201, response.text
    device = response.json()
    assert device["endpoint"] == CHROME_ENDPOINT
    assert device["token"] is None
    assert device["expires_at"].startswith("2030-01-01")
    assert subscription["keys"]["p256dh"] not in response.text
    assert subscription["keys"]["auth"] not in response.text


async def test_apns_token_is_stored_lowercase(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    token = os.urandom(32).hex().upper()
    response = await register(client, tenant.subscribe, platform="apns", token=token)
    assert response.status_code == 201
    assert response.json()["token"] == token.lower()
    # The same token in another case is the same device
    again = await register(client, tenant.subscribe, platform="apns", token=token.lower())
    assert again.status_code == 200


async def test_device_can_be_read_back_by_id(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    created = (await register(client, tenant.send, topics=["x"])).json()
    response = await client.get(f"/v1/devices/{created['id']}", headers=tenant.send)
    assert response.status_code == 200
    assert response.json() == created


async def test_unknown_device_id_is_404(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    response = await client.get(
        "/v1/devices/01890a5d-ac96-774b-bcce-b302099a8057", headers=tenant.admin
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "device_not_found"


async def test_listing_pages_through_every_device_with_a_cursor(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given five devices
    made = [(await register(client, tenant.subscribe)).json()["id"] for _ in range(5)]
    # When they are listed two per page, following next_cursor
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        response = await client.get("/v1/devices", params=params, headers=tenant.send)
        assert response.status_code == 200
        body = response.json()
        seen += [d["id"] for d in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    # Then each comes once, in registration order, over three pages
    assert seen == made
    assert pages == 3


async def test_listing_filters_by_user_topic_and_platform(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    phone = (await register(client, tenant.subscribe, user_id="u1", topics=["news"])).json()
    browser = (
        await register(
            client,
            tenant.subscribe,
            platform="webpush",
            subscription=browser_subscription(),
            user_id="u1",
        )
    ).json()
    other = (await register(client, tenant.subscribe, user_id="u2", topics=["news"])).json()

    async def ids(path: str = "/v1/devices", **params: Any) -> list[str]:
        response = await client.get(path, params=params, headers=tenant.send)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["items"]]

    assert await ids(user_id="u1") == [phone["id"], browser["id"]]
    assert await ids(topic="news") == [phone["id"], other["id"]]
    assert await ids(platform="webpush") == [browser["id"]]
    assert await ids(user_id="u1", topic="news") == [phone["id"]]
    assert await ids("/v1/users/u1/devices") == [phone["id"], browser["id"]]
    assert await ids("/v1/users/u1/devices", platform="fcm") == [phone["id"]]
    assert await ids("/v1/users/nobody/devices") == []


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a device with a user, locale and topics
    device = (
        await register(client, tenant.send, user_id="u1", locale="en", topics=["a", "b"])
    ).json()
    # When it is patched: topics replaced, user cleared, disabled
    response = await client.patch(
        f"/v1/devices/{device['id']}",
        json={"topics": ["c"], "user_id": None, "enabled": False},
        headers=tenant.send,
    )
    # Then those changed, the locale did not, and the device shows as disabled
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["topics"], patched["user_id"], patched["locale"]) == (["c"], None, "en")
    assert (patched["enabled"], patched["active"], patched["status"]) == (False, False, "disabled")
    # And a disabled device is still listed by default
    listed = (await client.get("/v1/devices", headers=tenant.send)).json()["items"]
    assert [d["id"] for d in listed] == [device["id"]]
    assert (await client.get("/v1/devices?enabled=true", headers=tenant.send)).json()["items"] == []


async def test_deleting_hides_the_device_but_keeps_it(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a device
    device = (await register(client, tenant.send)).json()
    # When it is deleted
    response = await client.delete(f"/v1/devices/{device['id']}", headers=tenant.send)
    # Then the answer is 204 and the device reads as deactivated, reason "deleted"
    assert response.status_code == 204
    assert response.content == b""
    gone = (await client.get(f"/v1/devices/{device['id']}", headers=tenant.send)).json()
    assert (gone["status"], gone["invalidation_reason"]) == ("deactivated", "deleted")
    assert gone["invalidated_at"] is not None
    # And it says it receives nothing, while the client's switch stays as it was
    assert (gone["active"], gone["enabled"]) == (False, True)
    # And the default list hides it, while status=deactivated and status=all show it
    default = (await client.get("/v1/devices", headers=tenant.send)).json()["items"]
    assert default == []
    for status in ("deactivated", "all"):
        listed = (
            await client.get("/v1/devices", params={"status": status}, headers=tenant.send)
        ).json()["items"]
        assert [d["id"] for d in listed] == [device["id"]]


async def test_reregistering_revives_deleted_device(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # Given a deleted device
    device = (await register(client, tenant.send, token="tok-1")).json()
    await client.delete(f"/v1/devices/{device['id']}", headers=tenant.send)
    # When the app registers the same token again
    response = await register(client, tenant.send, token="tok-1")
    # Then the same device is active again
    assert response.status_code == 200
    revived = response.json()
    assert revived["id"] == device["id"]
    assert (revived["status"], revived["active"]) == ("active", True)
    assert (revived["invalidated_at"], revived["invalidation_reason"]) == (None, None)


async def test_purge_needs_an_admin_key_and_removes_the_device(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    device = (await register(client, tenant.subscribe)).json()
    url = f"/v1/devices/{device['id']}?purge=true"
    # A send key may not purge
    refused = await client.delete(url, headers=tenant.send)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert (await client.get(f"/v1/devices/{device['id']}", headers=tenant.send)).json()[
        "status"
    ] == "active"
    # An admin key may, and the device is then gone for good
    assert (await client.delete(url, headers=tenant.admin)).status_code == 204
    assert (
        await client.get(f"/v1/devices/{device['id']}", headers=tenant.admin)
    ).status_code == 404
    listed = await client.get("/v1/devices?status=all", headers=tenant.admin)
    assert listed.json()["items"] == []


async def test_topics_can_be_added_and_removed(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    device = (await register(client, tenant.send, topics=["a"])).json()
    url = f"/v1/devices/{device['id']}/topics"
    added = await client.post(url, json={"topics": ["c", "b", "a"]}, headers=tenant.send)
    assert added.status_code == 200
    assert added.json()["topics"] == ["a", "b", "c"]
    # Adding again changes nothing
    again = await client.post(url, json={"topics": ["b"]}, headers=tenant.send)
    assert again.json()["topics"] == ["a", "b", "c"]
    removed = await client.delete(f"{url}/b", headers=tenant.send)
    assert removed.status_code == 200
    assert removed.json()["topics"] == ["a", "c"]
    # Topic names may carry percent-encoded text
    encoded = await client.post(url, json={"topics": ["city%2FParis"]}, headers=tenant.send)
    assert "city%2FParis" in encoded.json()["topics"]
    gone = await client.delete(f"{url}/city%252FParis", headers=tenant.send)
    assert gone.json()["topics"] == ["a", "c"]


async def test_subscribe_key_registers_but_cannot_read(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    device = (await register(client, tenant.subscribe)).json()
    for path in (f"/v1/devices/{device['id']}", "/v1/devices", "/v1/users/u1/devices"):
        response = await client.get(path, headers=tenant.subscribe)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "insufficient_scope"


async def test_device_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {"/v1/devices", "/v1/devices/{device_id}", "/v1/users/{user_id}/devices"} <= set(
        document["paths"]
    )
    schemas = document["components"]["schemas"]
    assert {
        "DeviceCreate",
        "DeviceUpdate",
        "DevicePublic",
        "DevicesPublic",
        "DeviceReceipt",
    } <= set(schemas)
    # The field a client reads to know whether a device receives pushes says so
    for shape in ("DevicePublic", "DeviceReceipt"):
        fields = schemas[shape]["properties"]
        assert "receive" in fields["active"]["description"]
        assert "active" in fields["enabled"]["description"]
    # And the routes a subscribe key reaches by id take the device's token
    patch = document["paths"]["/v1/devices/{device_id}"]["patch"]
    assert "X-Device-Token" in [p["name"] for p in patch["parameters"]]
