"""Notifications published on `push.queue` honour users' preferences as the API's do (dispatch
is shared): opted-out and muted users are skipped, `transactional` and `ignore_quiet_hours`
on a queue message work. The running worker's own clock: the quiet hours set hold now."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

from pushgate.errors import NotFoundError
from pushgate.store.tables import utcnow
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate
from tests.integration.test_ingress import publish, stored, until


async def planned(pushgate: Pushgate, acme: TenantKeys, request_id: str) -> list[Any]:
    """The deliveries of the notification published with `request_id`, once it has some."""
    deadline = time.monotonic() + 15
    while True:
        with contextlib.suppress(NotFoundError):
            row = await stored(pushgate, acme, request_id)
            found = await pushgate.deliveries(acme.send, row["id"])
            if found:
                return found
        assert time.monotonic() < deadline, f"{request_id} was not dispatched"
        await asyncio.sleep(0.05)


async def test_queue_messages_honour_preferences_transactional_and_ignore_quiet_hours(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given three users: in quiet hours now, out of `promo`, and muted
    browsers: dict[str, dict[str, Any]] = {}
    now = utcnow()
    quiet = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=2)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    wishes: dict[str, dict[str, Any]] = {
        "owl": {"quiet_hours": quiet},
        "thrifty": {"categories": {"promo": False}},
        "hermit": {"muted": True},
    }
    for user, wish in wishes.items():
        browsers[user] = fake_push.new_subscription()
        await pushgate.subscribe(acme.subscribe, browsers[user], user_id=user)
        put = await pushgate.http.put(f"/v1/users/{user}/preferences", json=wish, headers=acme.send)
        assert put.status_code == 200, put.text

    # When other services publish to each of them on push.queue
    common = {"app": "acme", "body": "..."}
    await publish(
        pushgate,
        {**common, "request_id": "later", "user_id": "owl", "title": "Later"},
        {
            **common,
            "request_id": "now",
            "user_id": "owl",
            "title": "Now",
            "ignore_quiet_hours": True,
        },
        {
            **common,
            "request_id": "sale",
            "user_id": "thrifty",
            "category": "promo",
            "title": "Sale",
        },
        {
            **common,
            "request_id": "receipt",
            "user_id": "thrifty",
            "category": "promo",
            "transactional": True,
            "title": "Receipt",
        },
        {
            **common,
            "request_id": "code",
            "user_id": "hermit",
            "transactional": True,
            "title": "Code",
        },
    )

    # Then only what ignores the quiet hours and the transactional receipt arrive
    await until(lambda: len(fake_push.received) == 2, what="two deliveries")
    assert [r.payload["title"] for r in fake_push.received_for(browsers["owl"])] == ["Now"]
    assert [r.payload["title"] for r in fake_push.received_for(browsers["thrifty"])] == ["Receipt"]
    assert fake_push.received_for(browsers["hermit"]) == []
    # And the others are skipped with their reason, or deferred to the end of the quiet hours
    for request_id, reason in (("sale", "category_opted_out:promo"), ("code", "muted")):
        status = await pushgate.finished(
            acme.send, (await stored(pushgate, acme, request_id))["id"]
        )
        assert status["status"] == "completed"
        assert status["counts"]["skipped"] == 1
        [delivery] = await pushgate.deliveries(acme.send, status["id"])
        assert (delivery["status"], delivery["skip_reason"]) == ("skipped", reason)
    [delivery] = await planned(pushgate, acme, "later")
    assert delivery["status"] == "deferred"
    assert delivery["deferred_until"].startswith(
        (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    )
