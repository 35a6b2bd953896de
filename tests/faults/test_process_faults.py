"""pushgate's processes SIGKILLed under load (no cleanup of any kind, as the OOM killer or a
lost host) and started again, as an orchestrator would: a worker in the middle of sends, the
API in the middle of requests. Nothing accepted is lost; a killed API repeats nothing."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import RigFactory
from tests.faults.deployment import until
from tests.faults.rig import MARKS

pytestmark = MARKS


@pytest.mark.timeout(120)
async def test_worker_sigkilled_mid_flight_loses_nothing(make_rig: RigFactory) -> None:
    # Given a broadcast to 600 subscriptions under way and a client sending
    total = 600
    rig = await make_rig(subscriptions=total)
    broadcast, sender = await rig.under_way(answer_in=0.02)
    assert rig.worker is not None

    # When the worker is killed outright in the middle of its sends, and started again
    await rig.worker.kill()
    rig.faults += 1
    at_kill = len(rig.fake.received)
    claimed = await rig.deployment.deliveries_in("sending")
    restarted = time.monotonic()
    await rig.deployment.start_worker()
    await sender.sent_more(10, within=20)
    await sender.stop()

    # Then everything accepted arrives; only what the dead worker had claimed came twice
    assert at_kill < total, "the run ended before the kill: nothing was tested"
    arrived = await rig.verify([broadcast, *sender.accepted], within=60, killed=1)
    duplicates = sum(arrived.values()) - len(arrived)
    print(
        f"\nworker SIGKILL at {at_kill}/{total}, {claimed} claimed; duplicates {duplicates}; "
        f"{time.monotonic() - restarted:.1f}s from the restart to done"
    )
    assert duplicates <= claimed


@pytest.mark.timeout(90)
async def test_api_sigkilled_under_load_delivers_every_202_once(make_rig: RigFactory) -> None:
    # Given two clients sending as fast as the API answers
    rig = await make_rig(subscriptions=20)
    api, _ = await rig.start()
    senders = [rig.sender(pause=0), rig.sender(pause=0)]
    for sender in senders:
        sender.start()
    await until(lambda: sum(len(s.accepted) for s in senders) >= 50, within=20, what="50 sends")

    # When the API is killed outright mid-request, and started again on its address
    await api.kill()
    await rig.deployment.start_api()
    # ... the clients' retries are accepted within seconds (a key the dead process held is
    # free again after IN_PROGRESS_SECONDS, 5)
    for sender in senders:
        await sender.sent_more(10, within=15)
        await sender.stop()

    # Then every 202 it answered is delivered, and no send was stored twice: the clients'
    # retries of the answers the kill lost carried the same idempotency key
    accepted = [sent for sender in senders for sent in sender.accepted]
    arrived = await rig.verify(accepted, within=45, killed=1)
    lost = sum(s.transport_errors for s in senders)
    print(f"\nAPI SIGKILL: {len(accepted)} accepted, {lost} requests without an answer")
    assert lost > 0, "the kill hit no request: nothing was tested"
    assert set(arrived.values()) == {1}
