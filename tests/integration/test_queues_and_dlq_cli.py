"""`GET /v1/queues` and `pushgate queues` with a running worker, `GET /v1/circuits` after the
push service kept failing, and `pushgate dlq list|show|replay|purge` on the letters the API
shows, on both profiles."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from pushgate import cli
from pushgate.broker import base as broker_base
from pushgate.cli import dlq, queues
from pushgate.settings import Settings
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import PushgateFactory
from tests.integration.test_dead_letters import failed_delivery, letters
from tests.integration.test_pipeline_outcomes import eventually


async def run_cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str) -> Any:
    """Run a `pushgate` command with `--json` against this test's pushgate; its JSON output.
    In a thread: the command runs its own event loop, as it does from a shell."""
    for module in (dlq, queues):
        monkeypatch.setattr(module, "settings_from", lambda config, **overrides: settings)
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


async def test_queues_show_depth_and_the_running_workers_consumers_and_rate(
    make_pushgate: PushgateFactory,
    fake_push: FakeWebPushService,
    monkeypatch: pytest.MonkeyPatch,
    profile: str,
) -> None:
    # Given a running worker that has sent a notification
    pushgate = await make_pushgate()
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    notification = await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})
    await pushgate.finished(acme.send, notification)

    # When the queues are asked for (once the worker's heartbeat counted the sends)
    async def counted() -> Any:
        response = await pushgate.http.get("/v1/queues", headers=acme.admin)
        assert response.status_code == 200, response.text
        found = {q["name"]: q for q in response.json()["queues"]}
        return found if found["deliver"]["rate_per_second"] > 0 else None

    found = await eventually(counted, within=20, what="a deliver rate")

    # Then every queue is there, each with the worker's consumer, nothing in flight
    assert sorted(found) == ["deliver", "dispatch", "failed", "push"]
    for queue in found.values():
        assert queue["consumers"] == 1, queue
        assert queue["in_flight"] == 0, queue
        assert queue["depth"] == 0, queue
    assert found["dispatch"]["rate_per_second"] > 0
    # And a send key may not see them
    response = await pushgate.http.get("/v1/queues", headers=acme.send)
    assert response.status_code == 403

    # And `pushgate queues`, another process, sees the same queues; the consumers only where
    # the heartbeats are in Redis (the embedded profile keeps them in the worker's memory)
    shown = await run_cli(monkeypatch, pushgate.settings, "queues")
    by_name = {q["name"]: q for q in shown["queues"]}
    assert sorted(by_name) == ["deliver", "dispatch", "failed", "push"]
    expected = 0 if profile == "embedded" else 1
    assert {q["consumers"] for q in by_name.values()} == {expected}


async def test_circuits_show_the_apps_open_circuit(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a push service that keeps answering 500, past the circuit's threshold
    pushgate = await make_pushgate(max_attempts=2, circuit_breaker={"threshold": 2, "timeout": 600})
    acme = await pushgate.tenant()
    other = await pushgate.tenant("other")
    await failed_delivery(pushgate, acme, fake_push)

    # When the app's circuits are asked for
    response = await pushgate.http.get("/v1/circuits", headers=acme.admin)

    # Then its Web Push circuit for the push service's origin is open, with a wait
    assert response.status_code == 200, response.text
    [circuit] = response.json()["circuits"]
    assert (circuit["provider"], circuit["origin"]) == ("webpush", fake_push.origin)
    assert circuit["state"] == "open"
    assert circuit["retry_in"] > 0
    # And another app has none
    response = await pushgate.http.get("/v1/circuits", headers=other.admin)
    assert response.json() == {"circuits": []}


async def test_dlq_commands_list_show_replay_and_purge(
    make_pushgate: PushgateFactory,
    fake_push: FakeWebPushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given acme's failed delivery and a poison message of the default app
    pushgate = await make_pushgate(max_attempts=1)
    default = await pushgate.tenant("default")
    acme = await pushgate.tenant("acme")
    notification, _, letter = await failed_delivery(pushgate, acme, fake_push)
    await pushgate.runtime.broker.publish(broker_base.PUSH, [b"{not json"])

    async def poison() -> Any:
        return await letters(pushgate, default)

    [poisoned] = await eventually(poison, what="the poison letter")
    settings = pushgate.settings

    # When listed: every app's without --app, one app's with it, filtered
    listed = (await run_cli(monkeypatch, settings, "dlq", "list"))["dead_letters"]
    assert sorted(x["id"] for x in listed) == sorted([letter["id"], poisoned["id"]])
    only = await run_cli(monkeypatch, settings, "dlq", "list", "--app", "acme")
    assert [x["id"] for x in only["dead_letters"]] == [letter["id"]]
    pushed = await run_cli(monkeypatch, settings, "dlq", "list", "--queue", "push")
    assert [x["reason_code"] for x in pushed["dead_letters"]] == ["bad_job"]

    # And shown, with the last answer
    shown = await run_cli(monkeypatch, settings, "dlq", "show", letter["id"])
    assert shown["last_answer"]["status_code"] == 500

    # And a replay with no filter is refused; by reason it puts the delivery back
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["dlq", "replay"])
    assert result.exit_code == 2
    fake_push.clear_script()
    replayed = await run_cli(
        monkeypatch, settings, "dlq", "replay", "--reason", "retry_later", "--app", "acme"
    )
    assert replayed == {"replayed": 1}

    async def sent() -> Any:
        [row] = await pushgate.deliveries(acme.send, notification)
        return row["status"] == "sent"

    await eventually(sent, what="the replayed delivery sent")

    # And purge --all deletes every letter, the replayed one too
    assert await run_cli(monkeypatch, settings, "dlq", "purge", "--all") == {"purged": 2}
    assert await letters(pushgate, default) == []
    assert await letters(pushgate, acme, {"replayed": "true"}) == []
