"""`worker.queues` (`pushgate worker --queues`): a worker consumes only the queues it is given,
so a dispatch-only worker beside sender workers fans a broadcast out in a process of its own;
on both backend profiles."""

from __future__ import annotations

import asyncio

from pushgate.runtime import open_runtime
from pushgate.worker import Worker
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import PushgateFactory


async def test_senders_without_dispatch_leave_it_to_a_dispatch_only_worker(
    make_pushgate: PushgateFactory, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given pushgate whose only worker consumes everything but `dispatch`
    pushgate = await make_pushgate(
        worker={"queues": ["push", "deliver", "failed"], "dispatch_page_size": 2}
    )
    assert {c.queue for c in pushgate.worker._consumers} == {"push", "deliver", "failed"}
    subscriptions = [fake_push.new_subscription() for _ in range(5)]
    for subscription in subscriptions:
        await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")

    # When a broadcast is accepted
    notification = await pushgate.send(acme.send, {"broadcast": True, "title": "Hi"})

    # Then nothing fans it out: its dispatch job waits for a worker that takes `dispatch`
    await asyncio.sleep(1.0)
    status = (
        await pushgate.http.get(f"/v1/notifications/{notification}", headers=acme.send)
    ).json()
    assert status["status"] == "accepted"
    assert fake_push.received == []

    # When a dispatch-only worker starts beside it
    settings = pushgate.settings.model_copy(
        update={"worker": pushgate.settings.worker.model_copy(update={"queues": ["dispatch"]})}
    )
    runtime = await open_runtime(settings)
    dispatcher = Worker(runtime)
    try:
        await dispatcher.start()
        assert [c.queue for c in dispatcher._consumers] == ["dispatch"]

        # Then it expands the audience (three pages of two) and the senders send every one
        done = await pushgate.finished(acme.send, notification)
    finally:
        await dispatcher.stop()
        await runtime.close()
    assert done["status"] == "completed"
    assert done["counts"]["sent"] == 5
    for subscription in subscriptions:
        assert len(fake_push.received_for(subscription)) == 1
