"""Rate limits hold what they are about, through the whole pipeline on both profiles: APNs's 429
and FCM's device quota hold that one device token while the app's other devices go on at once;
FCM's project quota holds the app's FCM sends; a Web Push service's 429 holds that service's
origin.
"""

from __future__ import annotations

from typing import Any

import pytest

from pushgate.domain.circuit import State
from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, provider_settings
from tests.integration.test_pipeline_fcm_apns import (
    apns_token,
    circuit,
    set_credentials,
    settled,
)


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    return provider_settings(settings, fake_fcm, fake_apns)


async def register(pushgate: Pushgate, tenant: TenantKeys, platform: str, token: str) -> str:
    response = await pushgate.http.post(
        "/v1/devices", json={"platform": platform, "token": token}, headers=tenant.subscribe
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send_to(pushgate: Pushgate, tenant: TenantKeys, device_id: str) -> str:
    return await pushgate.send(tenant.send, {"device_ids": [device_id], "title": "t", "body": "x"})


async def first_round(pushgate: Pushgate, tenant: TenantKeys, notification: str) -> Any:
    """The notification's one delivery once its first round is over: sent, or waiting to retry
    (after an answer, or held back before it was sent)."""
    [delivery] = await settled(
        pushgate,
        tenant,
        notification,
        until=lambda ds: ds[0]["status"] in ("sent", "retrying"),
    )
    return delivery


@pytest.mark.parametrize("platform", ["apns", "fcm"])
async def test_a_device_rate_limit_holds_that_device_while_the_others_go_at_once(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    platform: str,
) -> None:
    # Given two devices of the app, the provider throttling one of them (APNs's 429
    # TooManyRequests; FCM's QUOTA_EXCEEDED for that device's message rate)
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    if platform == "apns":
        throttled, healthy = apns_token(), apns_token()
        fake_apns.script("TooManyRequests", token=throttled, times=None)
    else:
        throttled, healthy = fake_fcm.new_token(), fake_fcm.new_token()
        fake_fcm.script("QUOTA_EXCEEDED_DEVICE", token=throttled, times=None, retry_after=60)
    throttled_id = await register(pushgate, acme, platform, throttled)
    healthy_id = await register(pushgate, acme, platform, healthy)
    waiting = await first_round(pushgate, acme, await send_to(pushgate, acme, throttled_id))
    assert (waiting["status"], waiting["response_code"]) == ("retrying", 429)

    # When the app sends to the healthy device, and again to the throttled one
    to_healthy = await send_to(pushgate, acme, healthy_id)
    to_throttled = await send_to(pushgate, acme, throttled_id)

    # Then the healthy device's delivery is sent at once, while the throttled device's waits
    # without being sent (no attempt spent, nothing more asked of the provider)
    assert (await first_round(pushgate, acme, to_healthy))["status"] == "sent"
    held = await first_round(pushgate, acme, to_throttled)
    assert (held["status"], held["attempts"]) == ("retrying", 0)
    if platform == "apns":
        assert [a for a in fake_apns.answers if a[0] == throttled] == [
            (throttled, 429, "TooManyRequests")
        ]
    else:
        assert fake_fcm.requests == 2
    assert circuit(pushgate, acme, platform) is State.CLOSED


async def test_an_fcm_project_quota_holds_every_fcm_send_of_the_app(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given FCM answering the app's first send that the project's quota is used up
    await set_credentials(pushgate, acme, fake_fcm, fake_apns)
    first, second = fake_fcm.new_token(), fake_fcm.new_token()
    fake_fcm.script("QUOTA_EXCEEDED_PROJECT", token=first, retry_after=60)
    first_id = await register(pushgate, acme, "fcm", first)
    second_id = await register(pushgate, acme, "fcm", second)
    waiting = await first_round(pushgate, acme, await send_to(pushgate, acme, first_id))
    assert (waiting["status"], waiting["response_code"]) == ("retrying", 429)

    # When the app sends to another device
    held = await first_round(pushgate, acme, await send_to(pushgate, acme, second_id))

    # Then it waits for the project's quota too, unsent
    assert (held["status"], held["attempts"]) == ("retrying", 0)
    assert fake_fcm.received_for(second) == []
    assert circuit(pushgate, acme, "fcm") is State.RATE_LIMITED


async def test_a_push_service_429_holds_every_subscription_on_its_origin(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given two browsers on one push service, which answers 429 with Retry-After: 60
    first, second = fake_push.new_subscription(), fake_push.new_subscription()
    first_id = await pushgate.subscribe(acme.subscribe, first)
    second_id = await pushgate.subscribe(acme.subscribe, second)
    fake_push.script(429, subscription=first, retry_after=60)
    waiting = await first_round(pushgate, acme, await send_to(pushgate, acme, first_id))
    assert (waiting["status"], waiting["response_code"]) == ("retrying", 429)

    # When the app sends to the other browser
    held = await first_round(pushgate, acme, await send_to(pushgate, acme, second_id))

    # Then it waits for that push service too, unsent
    assert (held["status"], held["attempts"]) == ("retrying", 0)
    assert fake_push.received_for(second) == []
