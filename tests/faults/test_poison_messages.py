"""Poison on `push.queue` (bytes that are not JSON, JSON that is not a notification) among good
messages: each poison message is dead-lettered with its reason (listed at /v1/dead-letters), the
good ones beside and after it are delivered, the consumer goes on."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest

from pushgate.broker import base as broker_base
from pushgate.broker.rabbitmq import RabbitMQBroker
from tests.conftest import RABBITMQ_URL
from tests.faults.conftest import RigFactory
from tests.faults.deployment import until
from tests.faults.rig import MARKS, Rig, Sent

pytestmark = MARKS

POISON = [
    b"\xff\xfe\x00 not even text",
    b'{"title": "cut short',
    b"[1, 2, 3]",
    b'"a string"',
    b'{"title": "no target at all"}',
    b'{"device_ids": "not a list", "title": "x"}',
    b'{"broadcast": true, "ttl": -5, "title": "x"}',
    b'{"app": "no-such-app", "broadcast": true, "title": "x"}',
]


@pytest.mark.timeout(90)
async def test_poison_on_push_queue_is_dead_lettered_and_the_rest_delivered(
    make_rig: RigFactory,
) -> None:
    # Given pushgate running, and another service's messages for push.queue: good ones with
    # poison between them
    rig = await make_rig(subscriptions=10)
    await rig.start()
    deployment = rig.deployment
    subscriptions = list(deployment.devices)
    good: dict[str, tuple[str, str]] = {}  # idempotency key -> subscription, tag
    bodies = []
    for index in range(40):
        subscription, tag = subscriptions[index % len(subscriptions)], f"q{index}"
        key = f"{tag}-{uuid.uuid4().hex[:8]}"
        good[key] = (subscription, tag)
        body = {
            "app": "default",
            "request_id": key,
            "device_ids": [str(deployment.devices[subscription])],
            "title": "From the queue",
            "data": {"tag": tag},
        }
        bodies.append(orjson.dumps(body))
        if index % 5 == 0:
            bodies.append(POISON[index // 5])

    # When they are published (straight to RabbitMQ, as the other service would)
    broker = RabbitMQBroker(RABBITMQ_URL, prefix=deployment.env["PUSHGATE_BROKER__PREFIX"])
    await broker.start()
    try:
        await broker.publish(broker_base.PUSH, bodies)
    finally:
        await broker.close()

    # Then each poison message is a dead letter of push.queue with its reason
    letters = await _dead_letters(rig, len(POISON))
    assert len(letters) == len(POISON), letters
    assert {letter["queue"] for letter in letters} == {"push"}, letters
    assert all(letter["reason"] for letter in letters), letters
    # ... and every good one, before and after them, is delivered
    await until(lambda: len(rig.fake.received) >= len(good), within=30, what="the good ones")
    sent = [await _accepted(rig, key, *good[key]) for key in good]
    await rig.verify(sent, within=30)


async def _dead_letters(rig: Rig, count: int) -> list[dict[str, Any]]:
    """The app's dead letters, once there are `count` of them (the recorder is a moment
    behind the consumer)."""
    deadline = time.monotonic() + 30
    while True:
        response = await rig.deployment.http().get(
            "/v1/dead-letters", params={"limit": 100}, headers=rig.deployment.admin_headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.2)


async def _accepted(rig: Rig, key: str, subscription: str, tag: str) -> Sent:
    response = await rig.deployment.http().get(
        f"/v1/notifications/by-idempotency-key/{key}", headers=rig.deployment.send_headers
    )
    assert response.status_code == 200, response.text
    return Sent(str(response.json()["id"]), tag, [subscription])
