"""The notifications API contract on both backend profiles: accept and read back, idempotency,
payload limits, bulk, send-immediate, scheduling and cancel, tenant isolation and scopes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory
from tests.integration.test_pipeline_targets import other_tenant

HELLO = {"broadcast": True, "title": "Hello"}


async def eventually(check: Any, within: float = 10.0) -> Any:
    """Poll `check()` until it returns something truthy, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.05)


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# --- accept and read back ------------------------------------------------------------------


async def test_accepted_notification_reports_status_counts_and_each_device(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given three subscriptions, one of which the push service says is gone
    subs = [fake_push.new_subscription() for _ in range(3)]
    for subscription in subs:
        await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(410, subscription=subs[1])

    # When the user is sent a notification
    response = await pushgate.http.post(
        "/v1/notifications", json={"user_ids": ["u1"], "title": "Hi"}, headers=acme.send
    )

    # Then it is accepted with where to follow it
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted"
    assert accepted["status_url"] == f"/v1/notifications/{accepted['id']}"
    assert response.headers["location"] == accepted["status_url"]
    assert "idempotency-replay" not in response.headers

    # And its status counts outcomes overall and per platform
    status = await pushgate.finished(acme.send, accepted["id"])
    assert status["status"] == "partially_failed"
    assert status["counts"]["sent"] == 2
    assert status["counts"]["invalid"] == 1
    assert status["counts"]["total"] == 3
    assert status["platforms"] == {"webpush": {"sent": 2, "invalid": 1}}
    assert status["target"] == {"kind": "user_ids", "value": ["u1"]}
    assert status["completed_at"] is not None

    # And the deliveries page through each device's outcome
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await pushgate.http.get(
            f"/v1/notifications/{accepted['id']}/deliveries", params=params, headers=acme.send
        )
        assert page.status_code == 200, page.text
        seen.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3
    assert len({d["id"] for d in seen}) == 3
    assert sorted(d["status"] for d in seen) == ["invalid", "sent", "sent"]
    [gone] = [d for d in seen if d["status"] == "invalid"]
    assert gone["response_code"] == 410
    only_invalid = await pushgate.http.get(
        f"/v1/notifications/{accepted['id']}/deliveries",
        params={"status": "invalid"},
        headers=acme.send,
    )
    assert [d["id"] for d in only_invalid.json()["items"]] == [gone["id"]]


async def test_many_concurrent_requests_are_all_accepted(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given more requests at once than the database pool has connections
    later = {**HELLO, "send_at": "2099-01-01T00:00:00Z"}
    count = 4 * pushgate.settings.database.pool_size

    # When they all arrive together
    answers = await asyncio.wait_for(
        asyncio.gather(
            *(
                pushgate.http.post("/v1/notifications", json=later, headers=acme.send)
                for _ in range(count)
            )
        ),
        timeout=20,
    )

    # Then each is accepted (none waits forever on a connection another request holds)
    assert [a.status_code for a in answers] == [202] * count
    assert len({a.json()["id"] for a in answers}) == count


async def test_history_filters_by_status_category_and_dates_newest_first_in_pages(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given five notifications: promos and news, one of the promos canceled before its time
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ids = [
        await pushgate.send(acme.send, {**HELLO, "category": "promo"}),
        await pushgate.send(acme.send, {**HELLO, "category": "news"}),
        await pushgate.send(acme.send, {**HELLO, "category": "promo", "send_at": later}),
        await pushgate.send(acme.send, {**HELLO, "category": "news"}),
        await pushgate.send(acme.send, {**HELLO, "category": "promo"}),
    ]
    canceled = await pushgate.http.post(f"/v1/notifications/{ids[2]}/cancel", headers=acme.send)
    assert canceled.status_code == 200, canceled.text

    async def history(**params: Any) -> list[str]:
        response = await pushgate.http.get("/v1/notifications", params=params, headers=acme.send)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    # Then history is newest first
    assert await history() == ids[::-1]
    # And filters by category, status and creation time (since inclusive, until exclusive)
    assert await history(category="promo") == [ids[4], ids[2], ids[0]]
    assert await history(status="canceled") == [ids[2]]
    assert await history(status="canceled", category="news") == []
    created = [
        (await pushgate.http.get(f"/v1/notifications/{i}", headers=acme.send)).json()["created_at"]
        for i in ids
    ]
    assert await history(since=created[1], until=created[3]) == [ids[2], ids[1]]
    naive = datetime.fromisoformat(created[3]).astimezone(UTC).replace(tzinfo=None)
    assert await history(since=naive.isoformat()) == [ids[4], ids[3]]

    # And pages with a cursor until the last page says there is no next
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await pushgate.http.get("/v1/notifications", params=params, headers=acme.send)
        pages.append([item["id"] for item in response.json()["items"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    bad = await pushgate.http.get("/v1/notifications?cursor=zz", headers=acme.send)
    assert bad.status_code == 422
    assert error(bad)["details"]["field"] == "cursor"


# --- idempotency ---------------------------------------------------------------------------


async def test_same_key_and_body_replays_the_first_answer_and_delivers_once(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given two subscriptions
    subs = [fake_push.new_subscription() for _ in range(2)]
    for subscription in subs:
        await pushgate.subscribe(acme.subscribe, subscription)
    key = {"Idempotency-Key": "order-42-shipped"}

    # When the same request is sent three times with one key (header, then body)
    first = await pushgate.http.post("/v1/notifications", json=HELLO, headers=acme.send | key)
    await pushgate.finished(acme.send, first.json()["id"])
    again = await pushgate.http.post("/v1/notifications", json=HELLO, headers=acme.send | key)
    in_body = await pushgate.http.post(
        "/v1/notifications",
        json={"title": "Hello", "idempotency_key": "order-42-shipped", "broadcast": True},
        headers=acme.send,
    )

    # Then the repeats answer the first answer again, marked as a replay
    assert first.status_code == 202, first.text
    assert "idempotency-replay" not in first.headers
    for replay in (again, in_body):
        assert replay.status_code == 202, replay.text
        assert replay.headers["idempotency-replay"] == "true"
        assert replay.json() == first.json()
        assert replay.headers["location"] == first.headers["location"]
    # And every subscription received exactly one message
    for subscription in subs:
        assert len(fake_push.received_for(subscription)) == 1
    found = await pushgate.http.get(
        "/v1/notifications/by-idempotency-key/order-42-shipped", headers=acme.send
    )
    assert found.status_code == 200, found.text
    assert found.json()["id"] == first.json()["id"]
    assert found.json()["status"] == "completed"
    missing = await pushgate.http.get(
        "/v1/notifications/by-idempotency-key/never-used", headers=acme.send
    )
    assert missing.status_code == 404


async def test_concurrent_requests_with_one_key_deliver_once(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscription
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription)
    headers = acme.send | {"Idempotency-Key": "burst"}

    # When a client fires the same request five times at once
    answers = await asyncio.gather(
        *(pushgate.http.post("/v1/notifications", json=HELLO, headers=headers) for _ in range(5))
    )

    # Then each answer is the notification or "in progress, retry", never a second one
    assert {a.status_code for a in answers} <= {202, 409}
    assert len({a.json()["id"] for a in answers if a.status_code == 202}) == 1
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.headers["retry-after"] == "1"
    [notification] = {a.json()["id"] for a in answers if a.status_code == 202}
    await pushgate.finished(acme.send, notification)
    assert len(fake_push.received_for(subscription)) == 1


async def test_same_key_with_another_body_is_refused(pushgate: Pushgate, acme: TenantKeys) -> None:
    # Given an accepted request with a key
    headers = acme.send | {"Idempotency-Key": "k-1"}
    first = await pushgate.http.post("/v1/notifications", json=HELLO, headers=headers)
    assert first.status_code == 202

    # When the key comes back with a different body
    other = await pushgate.http.post(
        "/v1/notifications", json={**HELLO, "title": "Changed"}, headers=headers
    )

    # Then it is refused, naming the key
    assert other.status_code == 422, other.text
    assert error(other)["code"] == "idempotency_key_reused"
    assert error(other)["details"]["field"] == "idempotency_key"


async def test_a_key_still_in_progress_answers_409_retry_after(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given a first request holding its key, as accept holds it while storing
    await pushgate.runtime.kv.add(f"idem:{acme.app_id}:slow-1", b"1", ttl=30)
    headers = acme.send | {"Idempotency-Key": "slow-1"}

    # When the same key arrives meanwhile
    busy = await pushgate.http.post("/v1/notifications", json=HELLO, headers=headers)

    # Then the client is told to retry shortly
    assert busy.status_code == 409, busy.text
    assert busy.headers["retry-after"] == "1"
    assert error(busy)["code"] == "idempotency_in_progress"

    # And once the first request is done, the key is accepted
    await pushgate.runtime.kv.delete(f"idem:{acme.app_id}:slow-1")
    done = await pushgate.http.post("/v1/notifications", json=HELLO, headers=headers)
    assert done.status_code == 202, done.text


async def test_header_and_body_keys_that_differ_are_refused(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    response = await pushgate.http.post(
        "/v1/notifications",
        json={**HELLO, "idempotency_key": "body-key"},
        headers=acme.send | {"Idempotency-Key": "header-key"},
    )

    assert response.status_code == 422, response.text
    assert error(response)["details"]["field"] == "idempotency_key"


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_an_empty_or_overlong_key_header_is_refused(
    pushgate: Pushgate, acme: TenantKeys, key: str
) -> None:
    response = await pushgate.http.post(
        "/v1/notifications", json=HELLO, headers=acme.send | {"Idempotency-Key": key}
    )

    assert response.status_code == 422, response.text
    assert error(response)["details"]["field"] == "Idempotency-Key"


async def test_idempotency_keys_belong_to_one_app(pushgate: Pushgate, acme: TenantKeys) -> None:
    # Given app A used a key
    globex = await other_tenant(pushgate, "globex")
    key = {"Idempotency-Key": "shared-key"}
    mine = await pushgate.http.post("/v1/notifications", json=HELLO, headers=acme.send | key)

    # When app B uses the same key, with another body
    theirs = await pushgate.http.post(
        "/v1/notifications", json={**HELLO, "title": "B"}, headers=globex.send | key
    )

    # Then B gets its own notification, and each app finds only its own by the key
    assert theirs.status_code == 202, theirs.text
    assert "idempotency-replay" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    for tenant, expected in ((acme, mine), (globex, theirs)):
        found = await pushgate.http.get(
            "/v1/notifications/by-idempotency-key/shared-key", headers=tenant.send
        )
        assert found.json()["id"] == expected.json()["id"]


# --- payload limits and bad fields ---------------------------------------------------------


async def test_webpush_payload_over_3993_bytes_is_refused_at_accept(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given `{"title":"..."}` is 12 bytes of JSON around the title
    fits = {"broadcast": True, "title": "x" * (3993 - 12)}
    over = {"broadcast": True, "title": "x" * (3993 - 11)}
    data = {"broadcast": True, "title": "Hi", "data": {"blob": "y" * 4000}}

    # When each is sent
    ok = await pushgate.http.post("/v1/notifications", json=fits, headers=acme.send)
    too_big = await pushgate.http.post("/v1/notifications", json=over, headers=acme.send)
    big_data = await pushgate.http.post("/v1/notifications", json=data, headers=acme.send)

    # Then exactly 3993 bytes fit, and one more is a 413 naming the field to shorten
    assert ok.status_code == 202, ok.text
    assert too_big.status_code == 413, too_big.text
    assert error(too_big)["code"] == "payload_too_large"
    assert error(too_big)["details"] == {"field": "title", "size_bytes": 3994, "limit_bytes": 3993}
    assert big_data.status_code == 413
    assert error(big_data)["details"]["field"] == "data"
    history = await pushgate.http.get("/v1/notifications", headers=acme.send)
    assert [n["id"] for n in history.json()["items"]] == [ok.json()["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "x" * 4097}, "title"),
        ({"url": "https://e.example/" + "p" * 2048}, "url"),
        ({"ttl": 28 * 24 * 3600 + 1}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"priority": "urgent"}, "priority"),
        ({"broadcast": False, "topics": ["no spaces"]}, "topics.0"),
        ({"broadcast": False, "device_ids": ["not-a-uuid"]}, "device_ids.0"),
        ({"data": {"nested": {"a": 1}}}, "data.nested"),
        ({"broadcast": False, "condition": "'a' in topics &&"}, "condition"),
        ({"broadcast": False, "user_ids": ["u"] * 10_001}, "user_ids"),
        ({"broadcast": False}, "target"),
        ({"template_code": "welcome"}, "title"),
        ({"variables": {"name": "Ada"}}, "variables"),
        ({"collapse_key": "c" * 256}, "collapse_key"),
        ({"send_at": "tomorrow"}, "send_at"),
    ],
)
async def test_an_invalid_field_is_refused_naming_it(
    pushgate: Pushgate, acme: TenantKeys, change: dict[str, Any], field: str
) -> None:
    response = await pushgate.http.post(
        "/v1/notifications", json={**HELLO, **change}, headers=acme.send
    )

    assert response.status_code == 422, response.text
    assert error(response)["code"] == "invalid_input"
    assert error(response)["details"]["field"] == field


# --- bulk ----------------------------------------------------------------------------------


async def test_bulk_answers_each_item_and_a_bad_one_does_not_sink_the_others(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given one subscription
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription)

    # When 1000 notifications come in one request: three for now, the rest scheduled (so the
    # test does not wait for a thousand sends), four of them bad or repeated
    later = "2099-01-01T00:00:00Z"
    items: list[dict[str, Any]] = [
        {**HELLO, "title": f"n{i}"} | ({"send_at": later} if i >= 3 else {}) for i in range(1000)
    ]
    items[1] = {"title": "no target"}
    items[500] = {**HELLO, "title": "x" * 4000, "send_at": later}
    items[998] = {**HELLO, "idempotency_key": "dup", "title": "A", "send_at": later}
    items[999] = {**HELLO, "idempotency_key": "dup", "title": "B", "send_at": later}
    items[997] = {**HELLO, "idempotency_key": "dup", "title": "A", "send_at": later}
    response = await pushgate.http.post(
        "/v1/notifications/bulk", json={"notifications": items}, headers=acme.send
    )

    # Then every item has its own answer, in order
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["failed"]) == (997, 3)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(1000))
    assert results[1]["status_code"] == 422
    assert results[1]["error"]["details"]["field"] == "notifications.1.target"
    assert results[500]["status_code"] == 413
    assert results[500]["error"]["code"] == "payload_too_large"
    assert results[999]["status_code"] == 422
    assert results[999]["error"]["code"] == "idempotency_key_reused"
    # A key repeated with the same body inside the batch is the same notification
    assert results[998]["replayed"] is True
    assert results[998]["notification"]["id"] == results[997]["notification"]["id"]
    assert {results[i]["notification"]["status"] for i in (0, 2)} == {"accepted"}
    assert results[3]["notification"]["status"] == "scheduled"
    ids = {r["notification"]["id"] for r in results if r["status_code"] == 202}
    assert len(ids) == 996

    # And they are stored, and the due ones delivered
    stored: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        page = await pushgate.http.get("/v1/notifications", params=params, headers=acme.send)
        stored |= {n["id"] for n in page.json()["items"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert stored == ids
    for index in (0, 2):
        await pushgate.finished(acme.send, results[index]["notification"]["id"])
    assert sorted(r.payload["title"] for r in fake_push.received_for(subscription)) == [
        "n0",
        "n2",
    ]


async def test_bulk_over_1000_items_is_refused(pushgate: Pushgate, acme: TenantKeys) -> None:
    response = await pushgate.http.post(
        "/v1/notifications/bulk", json={"notifications": [HELLO] * 1001}, headers=acme.send
    )

    assert response.status_code == 422, response.text
    assert error(response)["details"]["field"] == "notifications"
    history = await pushgate.http.get("/v1/notifications", headers=acme.send)
    assert history.json()["items"] == []


# --- send-immediate ------------------------------------------------------------------------


async def test_send_immediate_reports_each_device_and_a_replay_sends_nothing(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given two subscriptions, the second gone from its push service
    live, gone = fake_push.new_subscription(), fake_push.new_subscription()
    ids = {
        "live": await pushgate.subscribe(acme.subscribe, live, user_id="u1"),
        "gone": await pushgate.subscribe(acme.subscribe, gone, user_id="u1"),
    }
    fake_push.script(410, subscription=gone)
    headers = acme.send | {"Idempotency-Key": "now-1"}
    body = {"user_ids": ["u1"], "title": "Now"}

    # When it is sent immediately
    response = await pushgate.http.post(
        "/v1/notifications/send-immediate", json=body, headers=headers
    )

    # Then the answer carries each device's outcome, already delivered
    assert response.status_code == 200, response.text
    result = response.json()
    outcomes = {d["device_id"]: d for d in result["deliveries"]}
    assert outcomes[ids["live"]]["status"] == "sent"
    assert outcomes[ids["live"]]["provider_message_id"]
    assert outcomes[ids["gone"]]["status"] == "invalid"
    assert outcomes[ids["gone"]]["response_code"] == 410
    assert result["status"] == "partially_failed"
    assert len(fake_push.received_for(live)) == 1

    # And the same request again reports the same outcomes without sending again
    again = await pushgate.http.post("/v1/notifications/send-immediate", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers["idempotency-replay"] == "true"
    assert again.json()["id"] == result["id"]
    assert {d["device_id"]: d["status"] for d in again.json()["deliveries"]} == {
        ids["live"]: "sent",
        ids["gone"]: "invalid",
    }
    assert len(fake_push.received_for(live)) == 1
    assert len(fake_push.received) == 1


async def test_send_immediate_refuses_an_audience_over_the_limit(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given send-immediate is limited to two devices, and a user has three
    pushgate = await make_pushgate(immediate_max_devices=2)
    acme = await other_tenant(pushgate, "acme")
    for _ in range(3):
        await pushgate.subscribe(acme.subscribe, fake_push.new_subscription(), user_id="u1")

    # When the user is sent one immediately
    response = await pushgate.http.post(
        "/v1/notifications/send-immediate",
        json={"user_ids": ["u1"], "title": "Now"},
        headers=acme.send,
    )

    # Then it is refused, nothing is sent and nothing is left behind
    assert response.status_code == 422, response.text
    assert error(response)["code"] == "audience_too_large"
    assert error(response)["details"]["field"] == "target"
    assert fake_push.received == []
    history = await pushgate.http.get("/v1/notifications", headers=acme.send)
    assert history.json()["items"] == []
    # And a scheduled send-immediate is a contradiction
    scheduled = await pushgate.http.post(
        "/v1/notifications/send-immediate",
        json={**HELLO, "send_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
        headers=acme.send,
    )
    assert scheduled.status_code == 422
    assert error(scheduled)["details"]["field"] == "send_at"


# --- scheduling and cancel -----------------------------------------------------------------


async def test_scheduled_notification_is_delivered_after_its_time_unless_canceled(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscription, and two notifications for two seconds from now
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription)
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    when = send_at.isoformat()
    kept = await pushgate.http.post(
        "/v1/notifications", json={**HELLO, "title": "kept", "send_at": when}, headers=acme.send
    )
    dropped = await pushgate.send(acme.send, {**HELLO, "title": "dropped", "send_at": when})

    # When one is canceled before its time
    canceled = await pushgate.http.post(f"/v1/notifications/{dropped}/cancel", headers=acme.send)

    # Then it was scheduled, the cancel took, and only the other arrives, after its time
    assert kept.status_code == 202, kept.text
    assert kept.json()["status"] == "scheduled"
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    status = await pushgate.finished(acme.send, kept.json()["id"], within=10)
    assert status["status"] == "completed"
    [arrived] = fake_push.received_for(subscription)
    assert arrived.payload["title"] == "kept"
    assert send_at.timestamp() <= arrived.received_at <= send_at.timestamp() + 2.0
    final = await pushgate.http.get(f"/v1/notifications/{dropped}", headers=acme.send)
    assert final.json()["status"] == "canceled"
    assert final.json()["counts"]["total"] == 0

    # And neither can be canceled any more
    for notification in (kept.json()["id"], dropped):
        late = await pushgate.http.post(
            f"/v1/notifications/{notification}/cancel", headers=acme.send
        )
        assert late.status_code == 409, late.text
        assert error(late)["code"] == "not_cancelable"


# --- tenant isolation and scopes -----------------------------------------------------------


async def test_an_app_cannot_see_or_touch_another_apps_notifications(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given app B sent a scheduled notification with a key
    globex = await other_tenant(pushgate, "globex")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    sent = await pushgate.http.post(
        "/v1/notifications",
        json={**HELLO, "send_at": later},
        headers=globex.send | {"Idempotency-Key": "b-1"},
    )
    assert sent.status_code == 202, sent.text
    theirs = sent.json()["id"]

    # When app A (even with its admin key) asks for it by every route
    for key in (acme.send, acme.admin):
        answers = [
            await pushgate.http.get(f"/v1/notifications/{theirs}", headers=key),
            await pushgate.http.get(f"/v1/notifications/{theirs}/deliveries", headers=key),
            await pushgate.http.post(f"/v1/notifications/{theirs}/cancel", headers=key),
            await pushgate.http.get("/v1/notifications/by-idempotency-key/b-1", headers=key),
        ]

        # Then it does not exist for A, and A's history does not show it
        assert [a.status_code for a in answers] == [404, 404, 404, 404]
        assert {error(a)["code"] for a in answers} == {"notification_not_found"}
        history = await pushgate.http.get("/v1/notifications", headers=key)
        assert history.json()["items"] == []
    # And B's notification is untouched
    mine = await pushgate.http.get(f"/v1/notifications/{theirs}", headers=globex.send)
    assert mine.json()["status"] == "scheduled"
    unknown = await pushgate.http.get(f"/v1/notifications/{uuid.uuid4()}", headers=globex.send)
    assert unknown.status_code == 404


async def test_a_subscribe_key_may_not_use_any_notifications_route(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given a notification of the app
    notification = await pushgate.send(acme.send, {**HELLO, "send_at": "2099-01-01T00:00:00Z"})

    # When the browser-side key tries every route
    http = pushgate.http
    key = acme.subscribe
    answers = [
        await http.post("/v1/notifications", json=HELLO, headers=key),
        await http.post("/v1/notifications/bulk", json={"notifications": [HELLO]}, headers=key),
        await http.post("/v1/notifications/send-immediate", json=HELLO, headers=key),
        await http.get("/v1/notifications", headers=key),
        await http.get(f"/v1/notifications/{notification}", headers=key),
        await http.get(f"/v1/notifications/{notification}/deliveries", headers=key),
        await http.get("/v1/notifications/by-idempotency-key/x", headers=key),
        await http.post(f"/v1/notifications/{notification}/cancel", headers=key),
    ]

    # Then each is forbidden, and nothing changed
    assert [a.status_code for a in answers] == [403] * len(answers)
    assert {error(a)["code"] for a in answers} == {"insufficient_scope"}
    history = await http.get("/v1/notifications", headers=acme.send)
    assert [(n["id"], n["status"]) for n in history.json()["items"]] == [
        (notification, "scheduled")
    ]
    anonymous = await http.get("/v1/notifications", headers={})
    assert anonymous.status_code == 401


async def test_a_send_key_may_send_read_and_cancel(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a subscription
    await pushgate.subscribe(acme.subscribe, fake_push.new_subscription())
    key = acme.send
    http = pushgate.http

    # When the backend's send key uses every route
    later = {**HELLO, "send_at": "2099-01-01T00:00:00Z"}
    created = await http.post("/v1/notifications", json=later, headers=key)
    bulk = await http.post("/v1/notifications/bulk", json={"notifications": [HELLO]}, headers=key)
    now = await http.post("/v1/notifications/send-immediate", json=HELLO, headers=key)
    notification = created.json()["id"]
    reads = [
        await http.get("/v1/notifications", headers=key),
        await http.get(f"/v1/notifications/{notification}", headers=key),
        await http.get(f"/v1/notifications/{notification}/deliveries", headers=key),
        await http.post(f"/v1/notifications/{notification}/cancel", headers=key),
    ]

    # Then all of it is allowed
    assert (created.status_code, bulk.status_code, now.status_code) == (202, 200, 200)
    assert bulk.json()["accepted"] == 1
    assert [d["status"] for d in now.json()["deliveries"]] == ["sent"]
    assert [r.status_code for r in reads] == [200, 200, 200, 200]
    assert len(reads[0].json()["items"]) == 3
