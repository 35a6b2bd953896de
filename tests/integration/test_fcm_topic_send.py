"""`fcm_topic`: a `topics` or `condition` notification sent through the whole pipeline (API,
dispatch, deliver) to the fake FCM as ONE topic or condition message instead of one message per
registered device, on both profiles; and the request rules as the API answers them."""

from __future__ import annotations

from typing import Any

import pytest

from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.integration.conftest import Pushgate, PushgateFactory, provider_settings


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    return provider_settings(settings, fake_fcm, fake_apns)


async def set_fcm_credentials(
    pushgate: Pushgate, tenant: TenantKeys, fake_fcm: FakeFCMService
) -> dict[str, Any]:
    account = fake_fcm.service_account()
    response = await pushgate.http.put(
        "/v1/apps/current/credentials/fcm",
        json={"service_account": account},
        headers=tenant.admin,
    )
    assert response.status_code == 200, response.text
    return account


async def register(
    pushgate: Pushgate, tenant: TenantKeys, token: str, topics: list[str], platform: str = "fcm"
) -> str:
    response = await pushgate.http.post(
        "/v1/devices",
        json={"platform": platform, "token": token, "topics": topics},
        headers=tenant.subscribe,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def device_status(pushgate: Pushgate, tenant: TenantKeys, device_id: str) -> str:
    response = await pushgate.http.get(f"/v1/devices/{device_id}", headers=tenant.admin)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def refusal(response: Any) -> str:
    """The field a 422 names."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input", error
    return str(error["details"]["field"])


async def test_one_topic_goes_to_fcm_as_one_topic_message_not_one_per_device(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService, fake_apns: FakeAPNs
) -> None:
    # Given three Android devices and an iPhone subscribed to `news`, and the app's FCM account
    account = await set_fcm_credentials(pushgate, acme, fake_fcm)
    tokens = [fake_fcm.new_token() for _ in range(3)]
    for token in tokens:
        await register(pushgate, acme, token, ["news"])
    await register(pushgate, acme, "ab" * 32, ["news"], platform="apns")

    # When a notification goes to the topic with fcm_topic
    notification = await pushgate.send(
        acme.send, {"topics": ["news"], "fcm_topic": True, "title": "Extra", "data": {"n": 1}}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then FCM received ONE message addressed to the topic, and no device got its own
    assert status["status"] == "completed", status
    assert status["counts"]["total"] == 1
    assert status["counts"]["sent"] == 1
    assert status["target"] == {"kind": "topics", "value": ["news"], "fcm_topic": True}
    [received] = fake_fcm.received
    assert received.project_id == account["project_id"]
    assert received.validate_only is False
    assert received.message["topic"] == "news"
    assert "token" not in received.message
    assert "condition" not in received.message
    assert received.message["notification"] == {"title": "Extra"}
    assert received.message["data"] == {"n": "1"}
    assert all(fake_fcm.received_for(t) == [] for t in tokens)
    assert fake_apns.answers == []
    # ...recorded as one sent FCM delivery without a device
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert delivery["platform"] == "fcm"
    assert delivery["device_id"] is None
    assert delivery["status"] == "sent"
    assert delivery["provider_message_id"] == received.name


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"topics": ["a", "b"]}, "'a' in topics || 'b' in topics"),
        (
            {"condition": "'news' in topics && !('quiet' in topics)"},
            "'news' in topics && !('quiet' in topics)",
        ),
    ],
    ids=["several-topics", "condition"],
)
async def test_several_topics_or_a_condition_go_as_one_condition_message(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_fcm: FakeFCMService,
    target: dict[str, Any],
    expected: str,
) -> None:
    # Given devices subscribed to the topics involved
    await set_fcm_credentials(pushgate, acme, fake_fcm)
    tokens = [fake_fcm.new_token() for _ in range(3)]
    await register(pushgate, acme, tokens[0], ["a", "news"])
    await register(pushgate, acme, tokens[1], ["b"])
    await register(pushgate, acme, tokens[2], ["news"])

    # When the notification goes with fcm_topic
    notification = await pushgate.send(acme.send, {**target, "fcm_topic": True, "body": "x"})
    status = await pushgate.finished(acme.send, notification)

    # Then FCM received one message with the condition, and nothing per device
    assert status["status"] == "completed", status
    assert status["counts"]["sent"] == status["counts"]["total"] == 1
    [received] = fake_fcm.received
    assert received.message["condition"] == expected
    assert "topic" not in received.message
    assert "token" not in received.message
    assert all(fake_fcm.received_for(t) == [] for t in tokens)
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert (delivery["platform"], delivery["device_id"], delivery["status"]) == (
        "fcm",
        None,
        "sent",
    )


async def test_without_fcm_topic_a_topic_still_fans_out_to_each_device(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    # Given two devices subscribed to `news`
    await set_fcm_credentials(pushgate, acme, fake_fcm)
    tokens = [fake_fcm.new_token() for _ in range(2)]
    for token in tokens:
        await register(pushgate, acme, token, ["news"])

    # When a notification goes to the topic without the option
    notification = await pushgate.send(acme.send, {"topics": ["news"], "body": "x"})
    status = await pushgate.finished(acme.send, notification)

    # Then each device got its own message, and none went to the FCM topic
    assert status["counts"]["sent"] == 2
    assert all(len(fake_fcm.received_for(t)) == 1 for t in tokens)
    assert all("topic" not in r.message for r in fake_fcm.received)


async def test_a_topic_dry_run_is_validated_by_fcm(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    # Given the app's FCM account
    await set_fcm_credentials(pushgate, acme, fake_fcm)

    # When a dry run goes to a topic with fcm_topic
    notification = await pushgate.send(
        acme.send, {"topics": ["news"], "fcm_topic": True, "body": "x", "dry_run": True}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then FCM validated the topic message only
    assert status["status"] == "completed", status
    [received] = fake_fcm.received
    assert received.validate_only is True
    assert received.message["topic"] == "news"


async def test_an_answer_that_would_invalidate_a_token_rejects_the_topic_send_only(
    pushgate: Pushgate, acme: TenantKeys, fake_fcm: FakeFCMService
) -> None:
    # Given a device subscribed to `news`, and FCM answering the next send UNREGISTERED
    await set_fcm_credentials(pushgate, acme, fake_fcm)
    device = await register(pushgate, acme, fake_fcm.new_token(), ["news"])
    fake_fcm.script("UNREGISTERED")

    # When a notification goes to the topic with fcm_topic
    notification = await pushgate.send(
        acme.send, {"topics": ["news"], "fcm_topic": True, "body": "x"}
    )
    status = await pushgate.finished(acme.send, notification)

    # Then the one delivery is rejected (a topic has no token to be invalid), and the device
    # subscribed to the topic stays active
    assert status["status"] == "failed", status
    [delivery] = await pushgate.deliveries(acme.send, notification)
    assert delivery["status"] == "rejected"
    assert delivery["response_code"] == 404
    assert await device_status(pushgate, acme, device) == "active"


async def test_send_immediate_counts_a_topic_send_as_one_message(
    make_pushgate: PushgateFactory, fake_fcm: FakeFCMService
) -> None:
    # Given send-immediate limited to 2 devices, and 3 devices subscribed to `news`
    pushgate = await make_pushgate(immediate_max_devices=2)
    acme = await pushgate.tenant()
    await set_fcm_credentials(pushgate, acme, fake_fcm)
    for _ in range(3):
        await register(pushgate, acme, fake_fcm.new_token(), ["news"])
    body = {"topics": ["news"], "body": "x"}

    # When the topic is sent immediately, without and then with fcm_topic
    fan_out = await pushgate.http.post(
        "/v1/notifications/send-immediate", json=body, headers=acme.send
    )
    one = await pushgate.http.post(
        "/v1/notifications/send-immediate", json={**body, "fcm_topic": True}, headers=acme.send
    )

    # Then the fan-out is over the limit, the topic send is one message, reported at once
    assert fan_out.status_code == 422, fan_out.text
    assert one.status_code == 200, one.text
    result = one.json()
    assert result["status"] == "completed"
    [delivery] = result["deliveries"]
    assert (delivery["device_id"], delivery["status"]) == (None, "sent")
    [received] = fake_fcm.received
    assert received.message["topic"] == "news"


async def test_fcm_topic_refusals_name_the_field(pushgate: Pushgate, acme: TenantKeys) -> None:
    # When fcm_topic comes with a target FCM cannot address, or with too many topics
    with_users = await pushgate.http.post(
        "/v1/notifications",
        json={"user_ids": ["u1"], "fcm_topic": True, "body": "x"},
        headers=acme.send,
    )
    six_topics = await pushgate.http.post(
        "/v1/notifications",
        json={"topics": ["a", "b", "c", "d", "e", "f"], "fcm_topic": True, "body": "x"},
        headers=acme.send,
    )
    six_in_condition = await pushgate.http.post(
        "/v1/notifications",
        json={
            "condition": " || ".join(f"'{t}' in topics" for t in "abcdef"),
            "fcm_topic": True,
            "body": "x",
        },
        headers=acme.send,
    )

    # Then each is a 422 naming the field, and nothing was accepted
    assert refusal(with_users) == "fcm_topic"
    assert refusal(six_topics) == "topics"
    assert "at most 5 topics" in six_topics.json()["error"]["message"]
    assert refusal(six_in_condition) == "condition"
    listed = await pushgate.http.get("/v1/notifications", headers=acme.send)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
