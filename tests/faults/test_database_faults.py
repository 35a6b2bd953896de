"""PostgreSQL and Redis taken away from pushgate (through the proxy) while it delivers and
takes sends: the API answers 503, never 500; nothing it accepted is lost; the worker carries
on by itself when they are back."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.rig import MARKS

pytestmark = [*MARKS, pytest.mark.timeout(120)]


async def test_postgres_connections_reset_then_stalled_lose_nothing(
    make_rig: RigFactory,
) -> None:
    # Given a broadcast to 600 subscriptions under way (3 s at least: 30 rounds of sends
    # answered in 0.1 s) and a client sending
    total = 600
    rig = await make_rig(subscriptions=total)
    broadcast, sender = await rig.under_way(answer_in=0.1)

    # When every PostgreSQL connection is reset, the run goes on a moment, and then the
    # database stops answering (connections open, no byte moving) for a few seconds
    rig.postgres.reset()
    rig.faults += 1
    await asyncio.sleep(0.5)
    rig.postgres.stall()
    rig.faults += 1
    at_stall = len(rig.fake.received)
    ready = await rig.deployment.http().get("/health/ready")
    await asyncio.sleep(3)
    rig.postgres.restore()
    await sender.sent_more(10, within=20)
    await sender.stop()

    # Then the API said the database is down, and everything accepted arrives
    assert ready.status_code == 503, ready.text
    assert at_stall < total, "the run ended before the stall: nothing was tested"
    arrived = await rig.verify([broadcast, *sender.accepted], within=60)
    print(
        f"\nPostgreSQL reset, stall at {at_stall}/{total}; answers {dict(sender.answers)}; "
        f"duplicates {sum(arrived.values()) - len(arrived)}"
    )


async def test_redis_cut_loses_nothing(make_rig: RigFactory) -> None:
    # Given a broadcast to 600 subscriptions under way and a client sending
    total = 600
    rig = await make_rig(subscriptions=total)
    broadcast, sender = await rig.under_way(answer_in=0.02)

    # When Redis is out of reach for a few seconds
    rig.redis.cut()
    rig.faults += 1
    at_cut = len(rig.fake.received)
    await asyncio.sleep(3)
    rig.redis.restore()
    await sender.sent_more(10, within=20)
    await sender.stop()

    # Then everything accepted arrives, and both processes carried on
    assert at_cut < total, "the run ended before the cut: nothing was tested"
    arrived = await rig.verify([broadcast, *sender.accepted], within=60)
    print(
        f"\nRedis cut at {at_cut}/{total}; answers {dict(sender.answers)}; "
        f"duplicates {sum(arrived.values()) - len(arrived)}"
    )
