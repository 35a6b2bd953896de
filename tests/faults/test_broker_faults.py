"""RabbitMQ taken away from pushgate (through the proxy) for 10 seconds while it delivers a
broadcast and the API takes sends: nothing accepted is lost, every process carries on by itself
once it is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import MARKS

pytestmark = MARKS


@pytest.mark.timeout(150)
async def test_rabbitmq_cut_for_10s_mid_run_and_sends_during_it_lose_nothing(
    make_rig: RigFactory,
) -> None:
    # Given 10,000 subscriptions, a broadcast to them under way, and a client sending one
    # notification after another
    total = 10_000
    rig = await make_rig(subscriptions=total, concurrency=50)
    broadcast, sender = await rig.under_way(pause=0.1)

    # When RabbitMQ is cut off from every process for 10 seconds in the middle of the run
    rig.rabbitmq.cut()
    rig.faults += 1
    at_cut, sent_before = len(rig.fake.received), len(sender.accepted)
    ready = await rig.deployment.http().get("/health/ready")
    await asyncio.sleep(10)
    sent_during = len(sender.accepted) - sent_before
    assert len(rig.fake.received) < total, "the run ended during the cut: nothing was tested"
    rig.rabbitmq.restore()
    restored = time.monotonic()
    await sender.sent_more(5, within=15)
    await sender.stop()

    # Then the API said the broker is down but went on answering (202, or 503 with
    # Retry-After, never a 500), and every notification it accepted arrives: the broadcast
    # at every subscription, the sends of the outage too; the worker carried on by itself
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["broker"] != "ok", ready.text
    arrived = await rig.verify([broadcast, *sender.accepted], within=90)
    print(
        f"\nRabbitMQ cut at {at_cut}/{total} for 10 s; {sent_during} sends accepted during it, "
        f"answers {dict(sender.answers)}; duplicates {sum(arrived.values()) - len(arrived)}; "
        f"{time.monotonic() - restored:.1f}s from the restore to done"
    )
