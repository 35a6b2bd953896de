"""A fourth provider, installed only as an entry point (`tests/plugins/webhook_provider`),
through the whole pipeline on both profiles: devices of its platform register over the API,
notifications reach them, and its outcomes are recorded like any built-in provider's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import TenantKeys
from tests.fakes.webhook_server import FakeWebhooks
from tests.integration.conftest import Pushgate
from tests.plugins import PLUGINS_DIR


@pytest.fixture(autouse=True)
def _installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `pip install` of the plugin would do: its package and dist-info on the path,
    # before pushgate starts (autouse fixtures come first).
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))


@pytest.fixture
def webhooks() -> Iterator[FakeWebhooks]:
    with FakeWebhooks() as fake:
        yield fake


async def register(pushgate: Pushgate, acme: TenantKeys, url: str, **fields: object) -> str:
    body = {"platform": "webhook", "token": url, **fields}
    response = await pushgate.http.post("/v1/devices", json=body, headers=acme.subscribe)
    assert response.status_code == 201, response.text
    assert response.json()["platform"] == "webhook"
    return str(response.json()["id"])


async def test_a_plugin_platform_device_receives_a_notification(
    pushgate: Pushgate, acme: TenantKeys, webhooks: FakeWebhooks
) -> None:
    # Given two devices of the plugin's platform, registered over the API
    for name in ("phone", "watch"):
        await register(pushgate, acme, webhooks.url(name), user_id="u1")

    # When a backend sends to their user
    notification = await pushgate.send(
        acme.send, {"user_ids": ["u1"], "title": "Hello", "body": "World", "data": {"n": 1}}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then the provider POSTed the message to each, and the notification completed
    assert status["status"] == "completed"
    assert status["platforms"]["webhook"]["sent"] == 2
    for name in ("phone", "watch"):
        assert webhooks.received[name] == [
            {"title": "Hello", "body": "World", "url": None, "data": {"n": "1"}}
        ]
    deliveries = await pushgate.deliveries(acme.send, notification)
    assert {d["status"] for d in deliveries} == {"sent"}
    assert all(d["provider_message_id"] for d in deliveries)


async def test_a_raw_token_send_reaches_the_plugin(
    pushgate: Pushgate, acme: TenantKeys, webhooks: FakeWebhooks
) -> None:
    body = {"tokens": [{"platform": "webhook", "token": webhooks.url("raw")}], "title": "Hi"}

    status = await pushgate.finished(acme.send, await pushgate.send(acme.send, body))

    assert status["status"] == "completed"
    assert [m["title"] for m in webhooks.received["raw"]] == ["Hi"]


async def test_a_gone_answer_from_the_plugin_deactivates_the_device(
    pushgate: Pushgate, acme: TenantKeys, webhooks: FakeWebhooks
) -> None:
    # Given a device whose webhook has gone away
    webhooks.gone.add("old")
    device = await register(pushgate, acme, webhooks.url("old"), user_id="u1")

    # When it is sent to
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    status = await pushgate.finished(acme.send, notification)

    # Then the provider's token_invalid outcome deactivates it, as for a built-in provider
    assert status["status"] == "failed"
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert delivery["status"] == "invalid"
    read = await pushgate.http.get(f"/v1/devices/{device}", headers=acme.send)
    assert read.json()["status"] == "deactivated"


async def test_a_dry_run_on_the_plugin_contacts_no_one(
    pushgate: Pushgate, acme: TenantKeys, webhooks: FakeWebhooks
) -> None:
    # Given a provider without a dry-run mode of its own
    await register(pushgate, acme, webhooks.url("quiet"), user_id="u1")

    # When a dry run is sent to its device
    notification = await pushgate.send(
        acme.send, {"user_ids": ["u1"], "title": "Hi", "dry_run": True}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then pushgate's generic dry run answers for it, and nothing was POSTed
    assert status["status"] == "completed"
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert delivery["provider_message_id"] == "dry-run"
    assert webhooks.received == {}


async def test_a_token_the_plugin_refuses_is_invalid_input(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    response = await pushgate.http.post(
        "/v1/devices", json={"platform": "webhook", "token": "not a url"}, headers=acme.subscribe
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]["field"]) == ("invalid_token", "token")


async def test_the_openapi_document_lists_the_plugin_platform(pushgate: Pushgate) -> None:
    document = (await pushgate.http.get("/openapi.json")).json()

    platform = document["components"]["schemas"]["DeviceCreate"]["properties"]["platform"]
    assert platform["enum"] == ["fcm", "apns", "webpush", "webhook"]
