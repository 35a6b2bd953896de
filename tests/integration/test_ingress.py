"""The `push.queue` ingress: other services publish the API's JSON (plus `app`, `request_id`,
`user_id`, `priority`, `metadata`); good messages are delivered, poison ones are dead-lettered
with their reason while the good ones around them flow, and a repeated `request_id` sends once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from pushgate.broker import base as broker_base
from pushgate.domain.dead_letters import LetterFilter
from pushgate.store import dead_letters as stored_letters
from pushgate.store import notifications
from pushgate.store.tables import DeadLetterRecord
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate


async def until(check: Callable[[], bool], *, within: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.02)


async def publish(pushgate: Pushgate, *messages: dict[str, Any] | bytes) -> None:
    bodies = [m if isinstance(m, bytes) else orjson.dumps(m) for m in messages]
    await pushgate.runtime.broker.publish(broker_base.PUSH, bodies)


async def recorded_letters(pushgate: Pushgate) -> list[DeadLetterRecord]:
    """Every app's dead letters, as the worker's recorder moved them out of `failed`."""
    async with pushgate.runtime.sessions() as session:
        return await stored_letters.page(
            session=session, app_id=stored_letters.EVERY_APP, chosen=LetterFilter(), limit=1000
        )


async def dead_letters(
    pushgate: Pushgate, count: int, within: float = 15
) -> list[DeadLetterRecord]:
    deadline = time.monotonic() + within
    while True:
        letters = await recorded_letters(pushgate)
        if len(letters) >= count:
            return letters
        assert time.monotonic() < deadline, f"{len(letters)} dead letters, not {count}"
        await asyncio.sleep(0.05)


async def stored(pushgate: Pushgate, acme: TenantKeys, request_id: str) -> dict[str, Any]:
    async with pushgate.runtime.sessions() as session:
        row = await notifications.get_by_idempotency_key(
            session=session, app_id=acme.app_id, key=request_id
        )
    return {"id": str(row.id), "status": row.status, "metadata": row.meta}


async def test_message_from_another_service_is_delivered(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a user's browser subscribed
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u-7")

    # When a backend publishes on push.queue the shape older systems send
    await publish(
        pushgate,
        {
            "app": "acme",
            "request_id": "order-7-shipped",
            "user_id": "u-7",
            "priority": "high",
            "title": "Shipped",
            "body": "Order 7 is on its way",
            "metadata": {"source": "orders"},
        },
    )

    # Then the browser gets it, urgent, and the notification is stored with its metadata
    await until(lambda: len(fake_push.received_for(browser)) == 1, what="the delivery")
    [arrived] = fake_push.received_for(browser)
    assert arrived.payload == {"title": "Shipped", "body": "Order 7 is on its way"}
    assert arrived.headers["urgency"] == "high"
    row = await stored(pushgate, acme, "order-7-shipped")
    assert row["metadata"] == {"source": "orders"}
    status = await pushgate.finished(acme.send, row["id"])
    assert status["status"] == "completed"


async def test_poison_messages_are_dead_lettered_while_good_ones_flow(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscribed user
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u-1")
    good = {"app": "acme", "user_id": "u-1", "body": "fine"}

    # When good messages arrive with every kind of bad one between them
    await publish(
        pushgate,
        {**good, "title": "first"},
        b"{not json",
        b'["an", "array"]',
        {**good, "app": "no-such-app"},
        {**good, "ttl": -5},
        {**good, "user_id": None, "user_ids": None},
        {**good, "body": None, "template_code": "welcome", "variables": {"name": "Ada"}},
        {**good, "title": "second"},
    )

    # Then the good ones are delivered
    await until(lambda: len(fake_push.received_for(browser)) == 2, what="both good messages")
    assert sorted(r.payload["title"] for r in fake_push.received_for(browser)) == [
        "first",
        "second",
    ]
    # And each bad one is in the dead-letter queue with a reason a person can act on
    letters = await dead_letters(pushgate, 6)
    assert len(letters) == 6
    assert {letter.queue for letter in letters} == {"push"}
    reasons = sorted(letter.reason for letter in letters)
    assert any(r.startswith("not JSON") for r in reasons), reasons
    assert any("must be a JSON object" in r for r in reasons), reasons
    assert any("app_not_found" in r or "no such app" in r.lower() for r in reasons), reasons
    assert any(r.startswith("invalid_input: ttl") for r in reasons), reasons
    assert any("exactly one target" in r for r in reasons), reasons
    assert any(r.startswith("unknown_template: no template 'welcome'") for r in reasons), reasons
    # And the letter keeps the original body, so it can be fixed and requeued
    assert b"{not json" in [letter.body for letter in letters]


async def test_same_request_id_twice_delivers_once(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscribed user and a message with a request id
    browser, other = fake_push.new_subscription(), fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u-1")
    await pushgate.subscribe(acme.subscribe, other, user_id="u-2")
    message = {"app": str(acme.app_id), "request_id": "r-1", "user_id": "u-1", "title": "Once"}

    # When it is published twice at once (a publisher's retry), and again once delivered
    await publish(pushgate, message, message)
    await until(lambda: len(fake_push.received_for(browser)) == 1, what="the first delivery")
    row = await stored(pushgate, acme, "r-1")
    await pushgate.finished(acme.send, row["id"])
    await publish(pushgate, message)
    # A later message, held back past the 1 s after which an in-progress copy is retried, so
    # when it arrives every copy has been handled.
    later = orjson.dumps({"app": "acme", "user_id": "u-2", "title": "Later"})
    await pushgate.runtime.broker.publish(broker_base.PUSH, [later], delay=2.0)
    await until(lambda: len(fake_push.received_for(other)) == 1, what="the later message")

    # Then the user got it once, and no copy was dead-lettered
    assert len(fake_push.received_for(browser)) == 1
    assert await recorded_letters(pushgate) == []
    assert await pushgate.runtime.broker.dead_letters() == []


async def test_a_message_neither_database_can_store_is_dead_lettered_without_holding_back_its_batch(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscribed user
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u-1")
    good = {"app": "acme", "user_id": "u-1"}

    # When invalid messages (a NUL character, which PostgreSQL refuses and SQLite would store;
    # a send time in the year 9999, which no expiry fits after) arrive between good ones
    await publish(
        pushgate,
        {**good, "title": "first"},
        {**good, "title": "nul", "metadata": {"note": "a\u0000b"}},
        {**good, "title": "far", "send_at": "9999-01-01T00:00:00Z"},
        {**good, "title": "second"},
    )

    # Then the good ones are delivered
    await until(lambda: len(fake_push.received_for(browser)) >= 2, what="the good messages")
    titles = sorted(r.payload["title"] for r in fake_push.received_for(browser))
    assert titles == ["first", "second"]
    # And on both databases the invalid ones are dead-lettered at once (not retried as a
    # temporary failure first), each with its reason
    letters = await dead_letters(pushgate, 2, within=5)
    assert [letter.attempts for letter in letters] == [1, 1], letters
    reasons = sorted(letter.reason for letter in letters)
    assert reasons[0].startswith("invalid_input: metadata: note: a string must not contain a NUL")
    assert reasons[1].startswith("invalid_input: send_at: send_at must be at most 100 years")
