"""Dead letters through /v1/dead-letters on both profiles: a delivery the fake push service kept
failing is recorded with its last answer, filtered, replayed (and then delivered), and purged;
a poison push.queue message belongs to the default app; one app never sees, replays or purges
another's letters; bulk operations need a filter or `all`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pushgate.broker import base as broker_base
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory
from tests.integration.test_pipeline_outcomes import eventually


async def letters(
    pushgate: Pushgate, keys: TenantKeys, query: dict[str, Any] | None = None
) -> list[Any]:
    response = await pushgate.http.get("/v1/dead-letters", params=query, headers=keys.admin)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def failed_delivery(
    pushgate: Pushgate, keys: TenantKeys, fake_push: FakeWebPushService, user: str = "u1"
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A notification whose one delivery failed for good (500 at every attempt), and its
    recorded dead letter: (notification id, delivery, letter)."""
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(keys.subscribe, subscription, user_id=user)
    fake_push.script(500, subscription=subscription, times=None, body=b"upstream broke")
    notification = await pushgate.send(keys.send, {"user_ids": [user], "title": "Hi"})
    assert (await pushgate.finished(keys.send, notification))["status"] == "failed"
    [delivery] = await pushgate.deliveries(keys.send, notification)

    async def recorded() -> Any:
        found = [x for x in await letters(pushgate, keys) if x["delivery_id"] == delivery["id"]]
        return found[0] if found else None

    return notification, delivery, await eventually(recorded, what="recorded dead letter")


async def test_failed_delivery_is_listed_with_its_answer_replayed_and_delivered(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a delivery the push service answered 500 twice, its attempts used up
    pushgate = await make_pushgate(max_attempts=2)
    acme = await pushgate.tenant()
    notification, delivery, letter = await failed_delivery(pushgate, acme, fake_push)

    # Then it is listed for the app, with what failed, where and how often
    assert letter["queue"] == "deliver"
    assert letter["reason_code"] == "retry_later"
    assert "upstream broke" in letter["reason"]
    assert letter["provider"] == "webpush"
    assert letter["notification_id"] == notification
    assert (letter["attempts"], letter["replays"], letter["last_replayed_at"]) == (2, 0, None)
    # and read alone, it has the push service's last answer and its body
    response = await pushgate.http.get(f"/v1/dead-letters/{letter['id']}", headers=acme.admin)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["last_answer"]["status_code"] == 500
    assert "upstream broke" in detail["last_answer"]["error"]
    assert detail["body"]["delivery_id"] == delivery["id"]

    # And the filters select it or not
    assert len(await letters(pushgate, acme, {"reason": "retry_later"})) == 1
    assert len(await letters(pushgate, acme, {"provider": "webpush", "queue": "deliver"})) == 1
    assert await letters(pushgate, acme, {"reason": "bad_job"}) == []
    assert await letters(pushgate, acme, {"provider": "fcm"}) == []
    assert await letters(pushgate, acme, {"queue": "push"}) == []
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await letters(pushgate, acme, {"since": later}) == []
    assert len(await letters(pushgate, acme, {"until": later})) == 1

    # When the push service recovered and the letter is replayed
    fake_push.clear_script()
    response = await pushgate.http.post(
        f"/v1/dead-letters/{letter['id']}/replay", headers=acme.admin
    )
    assert (response.status_code, response.json()) == (202, {"replayed": 1})

    # Then the delivery is sent, its attempts counted from zero, its notification completed
    async def sent() -> Any:
        [row] = await pushgate.deliveries(acme.send, notification)
        return row if row["status"] == "sent" else None

    assert (await eventually(sent, what="sent delivery"))["attempts"] == 1
    assert (await pushgate.finished(acme.send, notification))["status"] == "completed"
    # and the letter left the list, kept among the replayed ones
    assert await letters(pushgate, acme) == []
    [replayed] = await letters(pushgate, acme, {"replayed": "true"})
    assert replayed["id"] == letter["id"]
    assert replayed["replays"] == 1
    assert replayed["last_replayed_at"] is not None


async def test_poison_message_goes_to_the_default_app_and_apps_see_only_their_own(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given the default app, and acme with a delivery that failed for good
    pushgate = await make_pushgate(max_attempts=1)
    default = await pushgate.tenant("default")
    acme = await pushgate.tenant("acme")
    _, _, acme_letter = await failed_delivery(pushgate, acme, fake_push)

    # When a message nobody can read arrives on push.queue
    await pushgate.runtime.broker.publish(broker_base.PUSH, [b"{not json"])

    # Then the default app has it, as a bad job from push
    async def poison() -> Any:
        found = await letters(pushgate, default)
        return found[0] if found else None

    letter = await eventually(poison, what="the poison letter")
    assert (letter["queue"], letter["reason_code"]) == ("push", "bad_job")
    response = await pushgate.http.get(f"/v1/dead-letters/{letter['id']}", headers=default.admin)
    assert response.json()["body"] == "{not json"
    # And acme sees only its own, and cannot read, replay or purge the default app's
    assert [x["id"] for x in await letters(pushgate, acme)] == [acme_letter["id"]]
    for method, path in (
        ("GET", f"/v1/dead-letters/{letter['id']}"),
        ("POST", f"/v1/dead-letters/{letter['id']}/replay"),
    ):
        response = await pushgate.http.request(method, path, headers=acme.admin)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "dead_letter_not_found"
    response = await pushgate.http.delete(
        "/v1/dead-letters", params={"all": "true"}, headers=acme.admin
    )
    assert response.json() == {"purged": 1}
    assert await letters(pushgate, acme) == []
    assert [x["id"] for x in await letters(pushgate, default)] == [letter["id"]]


async def test_bulk_replay_and_purge_need_a_filter_or_all(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given two failed deliveries and a poison message, all acme's
    pushgate = await make_pushgate(max_attempts=1)
    acme = await pushgate.tenant()
    await failed_delivery(pushgate, acme, fake_push, user="u1")
    await failed_delivery(pushgate, acme, fake_push, user="u2")
    poison = orjson.dumps({"app": "acme", "title": "no audience"})
    await pushgate.runtime.broker.publish(broker_base.PUSH, [poison])

    async def three() -> Any:
        return len(await letters(pushgate, acme)) == 3

    await eventually(three, what="three letters")

    # When a bulk replay or purge names no filter, it is refused, and nothing changes
    response = await pushgate.http.post("/v1/dead-letters/replay", json={}, headers=acme.admin)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "filter_required"
    response = await pushgate.http.delete("/v1/dead-letters", headers=acme.admin)
    assert response.status_code == 400, response.text
    # and a send key may not touch dead letters at all
    response = await pushgate.http.get("/v1/dead-letters", headers=acme.send)
    assert response.status_code == 403, response.text
    assert len(await letters(pushgate, acme)) == 3

    # When the push letter is purged by its queue, and the rest replayed by reason
    response = await pushgate.http.delete(
        "/v1/dead-letters", params={"queue": "push"}, headers=acme.admin
    )
    assert response.json() == {"purged": 1}
    fake_push.clear_script()
    response = await pushgate.http.post(
        "/v1/dead-letters/replay", json={"reason": "retry_later"}, headers=acme.admin
    )

    # Then both deliveries go out, and nothing is left to list
    assert (response.status_code, response.json()) == (202, {"replayed": 2})
    assert await letters(pushgate, acme) == []

    async def delivered() -> Any:
        return len(fake_push.received) == 2

    await eventually(delivered, what="two deliveries")
    assert sorted(r.payload["title"] for r in fake_push.received) == ["Hi", "Hi"]
    response = await pushgate.http.post(
        "/v1/dead-letters/replay", json={"all": True}, headers=acme.admin
    )
    assert response.json() == {"replayed": 0}


async def test_a_bad_filter_is_a_json_error(pushgate: Pushgate, acme: TenantKeys) -> None:
    for query in ({"cursor": "nonsense"}, {"since": "yesterday"}, {"queue": "nowhere"}):
        response = await pushgate.http.get("/v1/dead-letters", params=query, headers=acme.admin)
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
    response = await pushgate.http.get(
        "/v1/dead-letters/00000000-0000-0000-0000-000000000000", headers=acme.admin
    )
    assert response.status_code == 404


async def test_a_replayed_letter_that_fails_again_is_a_new_letter(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given a poison message's letter
    await pushgate.runtime.broker.publish(
        broker_base.PUSH, [orjson.dumps({"app": "acme", "title": "no target"})]
    )

    async def listed() -> Any:
        return await letters(pushgate, acme)

    [first] = await eventually(listed, what="the first letter")
    assert first["reason_code"] == "invalid_input"

    # When it is replayed, and fails the same way
    response = await pushgate.http.post(
        f"/v1/dead-letters/{first['id']}/replay", headers=acme.admin
    )
    assert response.json() == {"replayed": 1}

    # Then it is listed again, as a new letter, and the first is among the replayed ones
    async def again() -> Any:
        found = await letters(pushgate, acme)
        return found if found and found[0]["id"] != first["id"] else None

    [second] = await eventually(again, what="the letter of the replay")
    assert (second["reason_code"], second["replays"]) == ("invalid_input", 0)
    [replayed] = await letters(pushgate, acme, {"replayed": "true"})
    assert (replayed["id"], replayed["replays"]) == (first["id"], 1)
