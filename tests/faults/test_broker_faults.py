"""RabbitMQ taken away from pushgate (through the proxy) while it delivers and while the API
takes sends: nothing accepted is lost, every process carries on by itself once it is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.deployment import until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis]


@pytest.mark.timeout(150)
async def test_rabbitmq_cut_for_10s_mid_run_loses_nothing(make_rig: RigFactory) -> None:
    # Given 10,000 subscriptions and a broadcast to them under way
    total = 10_000
    rig = await make_rig(subscriptions=total, concurrency=50)
    await rig.start()
    broadcast = await rig.broadcast("run")
    await until(lambda: len(rig.fake.received) >= total // 5, within=30, what="a fifth delivered")

    # When RabbitMQ is cut off from every process for 10 seconds in the middle of the run
    rig.rabbitmq.cut()
    rig.faults += 1
    at_cut = len(rig.fake.received)
    await asyncio.sleep(10)
    assert len(rig.fake.received) < total, "the run ended during the cut: nothing was tested"
    rig.rabbitmq.restore()
    restored = time.monotonic()

    # Then every subscription gets it, and the worker carried on by itself
    arrived = await rig.verify([broadcast], within=90)
    print(
        f"\nRabbitMQ cut at {at_cut}/{total} for 10 s; duplicates "
        f"{sum(arrived.values()) - len(arrived)}; {time.monotonic() - restored:.1f}s from the "
        "restore to done"
    )


@pytest.mark.timeout(90)
async def test_api_answers_202_or_503_while_rabbitmq_is_down(make_rig: RigFactory) -> None:
    # Given pushgate running and a client sending one notification after another
    rig = await make_rig(subscriptions=20)
    await rig.start()
    sender = rig.sender()
    sender.start()
    await sender.sent_more(10, within=15)

    # When RabbitMQ is out of reach for a few seconds
    rig.rabbitmq.cut()
    rig.faults += 1
    during = len(sender.accepted)
    ready = await rig.deployment.http().get("/health/ready")
    await asyncio.sleep(3)
    during = len(sender.accepted) - during
    rig.rabbitmq.restore()
    await sender.sent_more(10, within=15)
    await sender.stop()

    # Then the API said the broker is down, never a 500, and each send it accepted arrives
    assert ready.status_code == 503, ready.text
    await rig.verify(sender.accepted, within=45)
    print(f"\n{during} sends accepted during the outage; answers {dict(sender.answers)}")
