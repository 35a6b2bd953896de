"""`pushgate dlq list` and `pushgate dlq requeue` on a delivery that failed for good: the
letter shows why it failed, and requeuing it sends it again (attempts from zero, its last
answer kept) and brings its notification from `failed` to `completed` without counting the
delivery twice. Both backend profiles, through the CLI's own commands, against the fake Web
Push service.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from pushgate import cli
from pushgate.broker import base
from pushgate.cli import dlq
from pushgate.sending import jobs
from pushgate.settings import Settings
from pushgate.store.tables import Notification
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory
from tests.integration.test_pipeline_outcomes import eventually


async def run_cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> Any:
    """Run a `pushgate` command with `--json` against this test's pushgate; its JSON output.
    In a thread: the command runs its own event loop, as it does from a shell."""
    monkeypatch.setattr(dlq, "settings_from", lambda config, **overrides: settings)
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


async def counters(pushgate: Pushgate, notification_id: str) -> tuple[int, int]:
    """The notification's stored (total, finished): what decides when it is final."""
    async with pushgate.runtime.sessions() as session:
        row = await session.get(Notification, uuid.UUID(notification_id))
        assert row is not None
        return row.total, row.finished


async def test_requeued_failed_delivery_is_sent_again(
    make_pushgate: PushgateFactory,
    fake_push: FakeWebPushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a delivery that failed for good: two attempts, both answered 500
    pushgate = await make_pushgate(max_attempts=2)
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(500, subscription=subscription, times=None, body=b"upstream broke")
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    assert (await pushgate.finished(acme.send, notification))["status"] == "failed"
    [failed] = await pushgate.deliveries(acme.send, notification)
    assert (failed["status"], failed["attempts"]) == ("failed", 2)

    # When `dlq list` shows it with its reason
    async def listed() -> Any:
        letters = (await run_cli(monkeypatch, pushgate.settings, "dlq", "list"))["dead_letters"]
        return [x for x in letters if x["delivery_id"] == failed["id"]]

    [letter] = await eventually(listed, what="dead letter")
    assert letter["queue"] == "deliver"
    assert "retry_later" in letter["reason"]
    assert "upstream broke" in letter["reason"]

    # and, once the push service recovered, `dlq requeue` puts it back
    fake_push.clear_script()
    requeued = await run_cli(monkeypatch, pushgate.settings, "dlq", "requeue", letter["id"])
    assert requeued == {"requeued": 1}

    # Then the delivery is sent, its attempts counted from zero again
    async def sent() -> Any:
        [delivery] = await pushgate.deliveries(acme.send, notification)
        return delivery if delivery["status"] == "sent" else None

    delivery = await eventually(sent, what="sent delivery")
    assert delivery["attempts"] == 1
    assert [r.payload["title"] for r in fake_push.received_for(subscription)] == ["Hi"]
    # and the notification is completed, the delivery counted once
    summary = await pushgate.finished(acme.send, notification)
    assert summary["status"] == "completed"
    assert (summary["counts"]["sent"], summary["counts"]["failed"]) == (1, 0)
    assert await counters(pushgate, notification) == (1, 1)
    # and it is no longer a dead letter: nothing was dead-lettered again
    assert await listed() == []


async def test_requeue_leaves_a_delivery_that_is_not_failed_alone(
    pushgate: Pushgate, fake_push: FakeWebPushService
) -> None:
    # Given a notification whose delivery was sent
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    assert (await pushgate.finished(acme.send, notification))["status"] == "completed"
    [delivery] = await pushgate.deliveries(acme.send, notification)

    # When a stale copy of a dead letter for it comes back on the deliver queue
    await pushgate.runtime.broker.publish(
        base.DELIVER, [jobs.dead_delivery(delivery_id=delivery["id"], attempts=2)]
    )

    # Then it is consumed (not dead-lettered as a bad job) and nothing is sent or counted again
    async def drained() -> bool:
        return await pushgate.runtime.broker.depth(base.DELIVER) == 0

    await eventually(drained, what="empty deliver queue")
    # A second, well-formed job behind it: once that is sent, the stale one was handled.
    marker = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "After"})
    await pushgate.finished(acme.send, marker)
    assert [r.payload["title"] for r in fake_push.received_for(subscription)] == ["Hi", "After"]
    assert await counters(pushgate, notification) == (1, 1)
    assert (await pushgate.finished(acme.send, notification))["status"] == "completed"
    assert await pushgate.runtime.broker.dead_letters() == []
