"""The webhooks API: an admin adds, lists, changes, rotates and removes the app's webhooks;
the secret is shown once; private addresses are refused unless allowed; other apps and
non-admin keys see nothing. On both profiles."""

from __future__ import annotations

import base64

import httpx
import pytest

from pushgate.settings import Settings
from tests.conftest import TenantKeys

URL = "/v1/webhooks"
EVENTS = ["device.invalidated", "delivery.failed"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Private addresses stay refused here: the SSRF guard is under test.
    return settings


async def test_admin_adds_lists_changes_and_removes_a_webhook(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # When the admin adds a webhook on a public address
    made = await client.post(
        URL, json={"url": "https://93.184.215.14/hooks", "events": EVENTS}, headers=tenant.admin
    )

    # Then it is made, with a secret shown this once
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["events"] == EVENTS
    assert body["enabled"] is True
    hook = body["id"]
    listed = await client.get(URL, headers=tenant.admin)
    assert [w["id"] for w in listed.json()["items"]] == [hook]
    assert "secret" not in listed.json()["items"][0]
    one = await client.get(f"{URL}/{hook}", headers=tenant.admin)
    assert one.status_code == 200
    assert "secret" not in one.json()

    # When it is disabled, changed, then enabled again
    off = await client.patch(
        f"{URL}/{hook}",
        json={"enabled": False, "events": ["notification.completed"]},
        headers=tenant.admin,
    )
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    assert off.json()["events"] == ["notification.completed"]
    on = await client.patch(f"{URL}/{hook}", json={"enabled": True}, headers=tenant.admin)
    assert on.json()["enabled"] is True
    assert on.json()["disabled_reason"] is None

    # When its secret is rotated, a new one is shown and the old one keeps signing for a while
    rotated = await client.post(f"{URL}/{hook}/rotate-secret", headers=tenant.admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != body["secret"]
    assert rotated.json()["previous_secret_until"] is not None
    deliveries = await client.get(f"{URL}/{hook}/deliveries", headers=tenant.admin)
    assert deliveries.status_code == 200
    assert deliveries.json()["items"] == []

    # When it is removed, it is gone
    gone = await client.delete(f"{URL}/{hook}", headers=tenant.admin)
    assert gone.status_code == 204
    again = await client.get(f"{URL}/{hook}", headers=tenant.admin)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "webhook_not_found"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
    ],
)
async def test_a_private_address_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys, url: str
) -> None:
    made = await client.post(URL, json={"url": url, "events": EVENTS}, headers=tenant.admin)

    assert made.status_code == 422, made.text
    assert made.json()["error"]["code"] == "unsafe_endpoint"
    assert (await client.get(URL, headers=tenant.admin)).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://93.184.215.14/hook", "events": EVENTS}, "url"),
        ({"url": "https://93.184.215.14/hook", "events": ["device.exploded"]}, "events"),
        ({"url": "https://93.184.215.14/hook", "events": []}, "events"),
    ],
)
async def test_bad_input_is_a_422(
    client: httpx.AsyncClient, tenant: TenantKeys, body: dict[str, object], field: str
) -> None:
    made = await client.post(URL, json=body, headers=tenant.admin)

    assert made.status_code == 422, made.text
    assert field in made.text


async def test_other_apps_and_non_admin_keys_see_nothing(
    client: httpx.AsyncClient, tenant: TenantKeys, tenant_factory: object
) -> None:
    made = await client.post(
        URL, json={"url": "https://93.184.215.14/h", "events": EVENTS}, headers=tenant.admin
    )
    hook = made.json()["id"]
    other = await tenant_factory("other")  # type: ignore[operator]

    assert (await client.get(f"{URL}/{hook}", headers=other.admin)).status_code == 404
    assert (await client.delete(f"{URL}/{hook}", headers=other.admin)).status_code == 404
    assert (await client.get(URL, headers=tenant.send)).status_code == 403
    assert (await client.post(URL, json={}, headers=tenant.subscribe)).status_code == 403
