"""What happens after a send, as a user of the API sees it: gone subscriptions deactivate their
device, transient failures are retried (respecting Retry-After) and end in the dead-letter
queue when they never stop, our own mistakes are rejected without touching the device, a
failing push service opens a circuit that makes deliveries wait (shown on /health/ready), and
nothing is sent after its notification expired. Both backend profiles, against the fake Web
Push service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest

from pushgate.runtime import open_runtime
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory
from tests.integration.test_ingress import recorded_letters

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 15.0, what: str = "condition"
) -> T:
    """The first truthy value `probe` returns, polling until `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {within}s")
        await asyncio.sleep(0.02)


async def only_delivery(pushgate: Pushgate, headers: dict[str, str], notification: str) -> Any:
    [delivery] = await pushgate.deliveries(headers, notification)
    return delivery


def retrying(pushgate: Pushgate, headers: dict[str, str], notification: str) -> Any:
    """A probe for `eventually`: the notification's one delivery once it is `retrying`."""

    async def probe() -> Any:
        items = await pushgate.deliveries(headers, notification)
        return items[0] if len(items) == 1 and items[0]["status"] == "retrying" else None

    return probe


async def device(pushgate: Pushgate, headers: dict[str, str], device_id: str) -> Any:
    response = await pushgate.http.get(f"/v1/devices/{device_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("status", [410, 404])
async def test_gone_subscription_deactivates_device(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService, status: int
) -> None:
    # Given a user with two browsers, one of which the push service says is gone
    gone, alive = fake_push.new_subscription(), fake_push.new_subscription()
    gone_id = await pushgate.subscribe(acme.subscribe, gone, user_id="u1")
    alive_id = await pushgate.subscribe(acme.subscribe, alive, user_id="u1")
    fake_push.script(status, subscription=gone, times=None)

    # When a notification goes to that user
    first = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "One"})
    summary = await pushgate.finished(acme.send, first)

    # Then the gone device is deactivated with the reason, its delivery is invalid, not retried
    assert summary["status"] == "partially_failed"
    by_device = {d["device_id"]: d for d in await pushgate.deliveries(acme.send, first)}
    assert by_device[gone_id]["status"] == "invalid"
    assert by_device[gone_id]["attempts"] == 1
    assert by_device[gone_id]["response_code"] == status
    assert by_device[alive_id]["status"] == "sent"
    gone_device = await device(pushgate, acme.admin, gone_id)
    assert gone_device["status"] == "deactivated"
    assert (gone_device["active"], gone_device["enabled"]) == (False, True)
    assert gone_device["invalidation_reason"]
    assert gone_device["invalidated_at"]
    alive_device = await device(pushgate, acme.admin, alive_id)
    assert (alive_device["status"], alive_device["active"]) == ("active", True)
    assert fake_push.status_counts[status] == 1

    # And the next notification to that user goes only to the live browser
    second = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Two"})
    assert (await pushgate.finished(acme.send, second))["status"] == "completed"
    [delivery] = await pushgate.deliveries(acme.send, second)
    assert delivery["device_id"] == alive_id
    assert fake_push.status_counts[status] == 1
    assert [r.payload["title"] for r in fake_push.received_for(alive)] == ["One", "Two"]


async def test_server_error_is_retried_then_sent(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a push service that fails once with a 500
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(500, subscription=subscription, times=1)

    # When a notification with a 30 s lifetime goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi", "ttl": 30})
    summary = await pushgate.finished(acme.send, notification)

    # Then the second attempt delivered it
    assert summary["status"] == "completed"
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["status"] == "sent"
    assert delivery["attempts"] == 2
    assert delivery["provider_message_id"]
    [arrived] = fake_push.received_for(subscription)
    assert arrived.payload["title"] == "Hi"
    # with only what is left of its lifetime: the push service must not show it late
    assert int(arrived.headers["ttl"]) < 30


async def test_lasting_server_error_fails_into_dead_letter_queue(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given pushgate allowing three attempts, and a push service that always answers 500
    pushgate = await make_pushgate(max_attempts=3)
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(500, subscription=subscription, times=None, body=b"upstream broke")

    # When a notification goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    summary = await pushgate.finished(acme.send, notification)

    # Then it fails after exactly three attempts
    assert summary["status"] == "failed"
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    assert delivery["response_code"] == 500
    assert fake_push.status_counts[500] == 3

    # And the dead-letter queue holds the delivery with the last answer
    async def dead() -> Any:
        for letter in await recorded_letters(pushgate):
            body = orjson.loads(letter.body)
            if body.get("delivery_id") == delivery["id"]:
                return letter, body
        return None

    letter, body = await eventually(dead, what="dead letter")
    assert body["notification_id"] == notification
    assert body["last_status_code"] == 500
    assert "upstream broke" in body["last_error"]
    assert body["attempts"] == 3
    assert "retry_later" in letter.reason
    assert "upstream broke" in letter.reason


async def test_too_many_requests_waits_for_retry_after(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a push service that answers the first request 429 with Retry-After: 2
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(429, subscription=subscription, times=1, retry_after=2)

    # When a notification goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})

    async def requested() -> bool:
        return fake_push.requests >= 1

    await eventually(requested, what="first request")
    first_request = time.time()

    # Then the delivery waits at least two seconds before its second attempt
    waiting = await eventually(retrying(pushgate, acme.send, notification), what="a retry")
    assert waiting["response_code"] == 429
    assert waiting["attempts"] == 1
    summary = await pushgate.finished(acme.send, notification)
    assert summary["status"] == "completed"
    [arrived] = fake_push.received_for(subscription)
    assert arrived.received_at - first_request >= 1.9
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["attempts"] == 2


@pytest.mark.parametrize("status", [400, 413])
async def test_request_refused_by_push_service_is_rejected_without_retry(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService, status: int
) -> None:
    # Given a push service that refuses our request
    subscription = fake_push.new_subscription()
    device_id = await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(status, subscription=subscription, times=None)

    # When a notification goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    summary = await pushgate.finished(acme.send, notification)

    # Then the delivery is rejected after one attempt, and the device stays active
    assert summary["status"] == "failed"
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["status"] == "rejected"
    assert delivery["attempts"] == 1
    assert delivery["response_code"] == status
    assert fake_push.status_counts[status] == 1
    subscribed = await device(pushgate, acme.admin, device_id)
    assert subscribed["status"] == "active"
    assert subscribed["invalidation_reason"] is None


async def test_failing_push_service_opens_circuit_and_deliveries_wait(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a circuit that opens after two failures for three seconds
    pushgate = await make_pushgate(circuit_breaker={"threshold": 2, "timeout": 3.0})
    acme = await pushgate.tenant()
    first, second = fake_push.new_subscription(), fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, first, user_id="u1")
    await pushgate.subscribe(acme.subscribe, second, user_id="u1")
    later = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, later, user_id="u2")
    fake_push.script(500, times=2)

    # When two deliveries fail, and then another notification is sent to the same service
    failing = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "One"})

    async def both_retrying() -> bool:
        items = await pushgate.deliveries(acme.send, failing)
        return len(items) == 2 and all(d["status"] == "retrying" for d in items)

    await eventually(both_retrying, what="two failed deliveries")
    waiting = await pushgate.send(acme.send, {"user_ids": ["u2"], "title": "Two"})

    # Then the new delivery waits without spending an attempt, and nothing reaches the service
    delivery = await eventually(retrying(pushgate, acme.send, waiting), what="a wait")
    assert delivery["attempts"] == 0
    assert delivery["response_code"] is None
    assert fake_push.requests == 2

    # And readiness shows the open circuit, yet stays 200
    response = await pushgate.http.get("/health/ready")
    assert response.status_code == 200, response.text
    ready = response.json()
    assert ready["status"] == "degraded"
    assert ready["checks"] == {"database": "ok", "kv": "ok", "broker": "ok"}
    [shown] = ready["circuits"]
    assert shown["app_id"] == str(acme.app_id)
    assert shown["provider"] == "webpush"
    assert shown["origin"] == fake_push.origin
    assert shown["state"] == "open"
    assert 0 < shown["retry_in"] <= 3.0
    if pushgate.settings.redis.url:
        # An API process of its own (`pushgate api`) has no breakers: it reads the workers'.
        api_only = await open_runtime(pushgate.settings, start_broker=False)
        try:
            [seen] = await api_only.open_circuits()
        finally:
            await api_only.close()
        assert (seen.origin, seen.state.value) == (fake_push.origin, "open")

    # And after the timeout a probe succeeds and every waiting delivery is sent
    assert (await pushgate.finished(acme.send, failing))["status"] == "completed"
    assert (await pushgate.finished(acme.send, waiting))["status"] == "completed"
    assert [d["attempts"] for d in await pushgate.deliveries(acme.send, failing)] == [2, 2]
    assert (await only_delivery(pushgate, acme.send, waiting))["attempts"] == 1
    assert fake_push.requests == 5
    for subscription in (first, second, later):
        assert len(fake_push.received_for(subscription)) == 1

    async def closed() -> Any:
        body = (await pushgate.http.get("/health/ready")).json()
        return body if body["status"] == "ok" else None

    assert (await eventually(closed, what="closed circuit"))["circuits"] == []


async def test_notification_expiring_before_it_can_be_sent_is_never_sent_late(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a push service that fails the first request and would accept the next one
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(500, subscription=subscription, times=1)

    # When a notification that lives one second goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi", "ttl": 1})
    summary = await pushgate.finished(acme.send, notification)

    # Then it expired instead of being delivered after its lifetime
    assert summary["status"] == "expired"
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["status"] == "expired"
    assert delivery["sent_at"] is None
    assert fake_push.received_for(subscription) == []
    assert fake_push.requests <= 1


async def failing_service(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService, failures: int | None
) -> tuple[Pushgate, TenantKeys, dict[str, Any], str]:
    """Pushgate with the default retry settings but short steps (so a test runs in seconds)
    and no circuit (so every retry reaches the service); a browser whose push service fails
    its next `failures` requests (None: all). Returns pushgate, the app, the subscription and
    its device id."""
    pushgate = await make_pushgate(backoff_base_seconds=0.05, circuit_breaker={"threshold": 100})
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    device_id = await pushgate.subscribe(acme.subscribe, subscription)
    fake_push.script(503, subscription=subscription, times=failures)
    return pushgate, acme, subscription, device_id


async def test_by_default_retries_go_on_past_a_handful_of_failures(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given default retry settings and a push service failing its next 7 requests
    pushgate, acme, subscription, device_id = await failing_service(make_pushgate, fake_push, 7)

    # When a notification goes out
    notification = await pushgate.send(acme.send, {"device_ids": [device_id], "title": "Hi"})

    # Then it is sent once the service is back (the old default gave up after 5 attempts)
    summary = await pushgate.finished(acme.send, notification, within=60)
    assert summary["status"] == "completed", summary
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert (delivery["status"], delivery["attempts"]) == ("sent", 8)
    assert len(fake_push.received_for(subscription)) == 1


async def test_by_default_a_push_service_down_longer_than_the_ttl_expires_it_unsent(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given default retry settings and a push service that fails every request
    pushgate, acme, subscription, device_id = await failing_service(make_pushgate, fake_push, None)

    # When a notification that lives 15 seconds goes out
    notification = await pushgate.send(
        acme.send, {"device_ids": [device_id], "title": "Hi", "ttl": 15}
    )

    # Then it is retried until its TTL ran out and expires (not failed after a few attempts,
    # never sent late)
    summary = await pushgate.finished(acme.send, notification, within=60)
    assert summary["status"] == "expired", summary
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert (delivery["status"], delivery["sent_at"]) == ("expired", None)
    assert fake_push.received_for(subscription) == []


async def test_app_without_vapid_subject_is_rejected_with_the_fix(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given pushgate with no default VAPID subject, and an app that set none
    pushgate = await make_pushgate(webpush={"vapid_subject": None})
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    device_id = await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")

    # When a notification goes out
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    summary = await pushgate.finished(acme.send, notification)

    # Then the delivery is rejected with the command that fixes it, and nothing was sent
    assert summary["status"] == "failed"
    delivery = await only_delivery(pushgate, acme.send, notification)
    assert delivery["status"] == "rejected"
    assert "pushgate vapid subject" in delivery["error"]
    assert fake_push.requests == 0
    assert (await device(pushgate, acme.admin, device_id))["status"] == "active"
