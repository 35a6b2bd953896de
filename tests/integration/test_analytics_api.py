"""Analytics through the whole pipeline on both profiles: sends with mixed outcomes across
two providers and categories, then what /v1/analytics/... answers (counts, success rates,
latency percentiles, hour and day buckets, filters), other tenants seeing nothing, bad input
answered with stable codes, and the answers unchanged once the raw rows are deleted."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from pushgate.domain import latency
from pushgate.settings import Settings
from pushgate.store.tables import Delivery, Notification
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate, PushgateFactory, provider_settings
from tests.integration.test_pipeline_fcm_apns import register, set_credentials

ZERO = dict.fromkeys(("sent", "failed", "invalid", "expired", "rejected", "skipped", "canceled"), 0)


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    return provider_settings(settings, fake_fcm, fake_apns)


@dataclass
class Scenario:
    pushgate: Pushgate
    tenant: TenantKeys
    started: datetime
    alive_fcm: str


@pytest.fixture
async def scenario(
    make_pushgate: PushgateFactory,
    fake_fcm: FakeFCMService,
    fake_apns: FakeAPNs,
    fake_push: FakeWebPushService,
) -> Scenario:
    """Two notifications: `news` to u1 (web push sent, web push gone as expired, FCM sent, FCM
    unregistered) and one without a category to u2 (web push failing until its attempts run
    out, FCM sent)."""
    started = datetime.now(UTC)
    pushgate = await make_pushgate(max_attempts=2)
    tenant = await pushgate.tenant("acme")
    await set_credentials(pushgate, tenant, fake_fcm, fake_apns)
    # u1
    await pushgate.subscribe(tenant.subscribe, fake_push.new_subscription(), user_id="u1")
    expired = fake_push.new_subscription()
    await pushgate.subscribe(tenant.subscribe, expired, user_id="u1")
    fake_push.script(410, subscription=expired, times=None, body=b"subscription expired")
    alive_fcm = fake_fcm.new_token()
    await register(pushgate, tenant, "fcm", alive_fcm)
    unregistered = fake_fcm.new_token()
    await register(pushgate, tenant, "fcm", unregistered)
    fake_fcm.unregister(unregistered)
    # u2
    failing = fake_push.new_subscription()
    await pushgate.subscribe(tenant.subscribe, failing, user_id="u2")
    fake_push.script(500, subscription=failing, times=None)
    response = await pushgate.http.post(
        "/v1/devices",
        json={"platform": "fcm", "token": fake_fcm.new_token(), "user_id": "u2"},
        headers=tenant.subscribe,
    )
    assert response.status_code == 201, response.text

    news = await pushgate.send(
        tenant.send,
        {"user_ids": ["u1"], "title": "hi", "body": "news", "category": "news"},
    )
    plain = await pushgate.send(tenant.send, {"user_ids": ["u2"], "title": "hi"})
    for notification in (news, plain):
        await pushgate.finished(tenant.send, notification, within=30)
    return Scenario(pushgate, tenant, started, alive_fcm)


async def get(pushgate: Pushgate, tenant: TenantKeys, path: str, **params: Any) -> Any:
    response = await pushgate.http.get(path, params=params, headers=tenant.send)
    assert response.status_code == 200, response.text
    return response.json()


def outcomes(**counts: int) -> dict[str, int]:
    return ZERO | counts


async def expected_latency(pushgate: Pushgate, **where: Any) -> dict[str, float | None]:
    """The percentiles of the sent deliveries' latencies, from the raw rows, bucketed as the
    rollups bucket them."""
    histogram = [0] * latency.BUCKETS
    async with pushgate.runtime.sessions() as session:
        query = (
            select(Delivery.sent_at, Notification.created_at)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(Delivery.status == "sent")
        )
        for column, value in where.items():
            query = query.where(getattr(Delivery, column) == value)
        for sent_at, created_at in await session.execute(query):
            assert sent_at is not None
            ms = (sent_at - created_at).total_seconds() * 1000.0
            histogram[latency.bucket_of(ms)] += 1
    return latency.percentiles(histogram)


def stats(body: dict[str, Any]) -> tuple[int, dict[str, int], float | None]:
    return body["total"], body["by_outcome"], body["success_rate"]


async def test_delivery_analytics_count_every_outcome(scenario: Scenario) -> None:
    # Given sends with mixed outcomes over two providers and two categories (`scenario`)
    pushgate, tenant = scenario.pushgate, scenario.tenant

    # When the hourly analytics are asked for (the default: the last 24 hours)
    body = await get(pushgate, tenant, "/v1/analytics/deliveries")

    # Then every final outcome is counted, in total, per provider and per category
    assert body["interval"] == "hour"
    assert stats(body["totals"]) == (6, outcomes(sent=3, invalid=2, failed=1), 0.5)
    assert [(p["provider"], *stats(p)) for p in body["by_provider"]] == [
        ("fcm", 3, outcomes(sent=2, invalid=1), round(2 / 3, 6)),
        ("webpush", 3, outcomes(sent=1, invalid=1, failed=1), round(1 / 3, 6)),
    ]
    assert [(c["category"], *stats(c)) for c in body["by_category"]] == [
        ("news", 4, outcomes(sent=2, invalid=2), 0.5),
        (None, 2, outcomes(sent=1, failed=1), 0.5),
    ]
    # and the latency percentiles are those of the sent deliveries' own times
    assert body["totals"]["latency_ms"] == await expected_latency(pushgate)
    assert body["totals"]["latency_ms"]["p50"] is not None
    fcm = next(p for p in body["by_provider"] if p["provider"] == "fcm")
    assert fcm["latency_ms"] == await expected_latency(pushgate, platform="fcm")
    # and the series has every hour of the range, zeros included, oldest first, summing up
    series = body["series"]
    times = [datetime.fromisoformat(s["time"]) for s in series]
    assert times == sorted(times)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))
    assert len(series) in (24, 25)
    assert datetime.fromisoformat(body["since"]) == times[0]
    assert sum(s["total"] for s in series) == 6
    assert sum(s["by_outcome"]["sent"] for s in series) == 3
    busy = [t for t, s in zip(times, series, strict=True) if s["total"]]
    hour = scenario.started.replace(minute=0, second=0, microsecond=0)
    assert all(hour <= t <= datetime.now(UTC) for t in busy)
    quiet = next(s for s in series if not s["total"])
    assert quiet["success_rate"] is None
    assert quiet["latency_ms"] == {"p50": None, "p95": None, "p99": None}

    # When asked by the day, and filtered by provider and by category
    daily = await get(pushgate, tenant, "/v1/analytics/deliveries", interval="day")
    fcm_only = await get(pushgate, tenant, "/v1/analytics/deliveries", provider="fcm")
    news = await get(pushgate, tenant, "/v1/analytics/deliveries", category="news")

    # Then the day buckets hold the same counts, and the filters keep only their deliveries
    assert daily["interval"] == "day"
    assert len(daily["series"]) in (30, 31)
    assert all(
        datetime.fromisoformat(s["time"]).time() == datetime.min.time() for s in daily["series"]
    )
    assert sum(s["total"] for s in daily["series"]) == 6
    assert stats(daily["totals"]) == stats(body["totals"])
    assert stats(fcm_only["totals"]) == (3, outcomes(sent=2, invalid=1), round(2 / 3, 6))
    assert [p["provider"] for p in fcm_only["by_provider"]] == ["fcm"]
    assert stats(news["totals"]) == (4, outcomes(sent=2, invalid=2), 0.5)
    assert [c["category"] for c in news["by_category"]] == ["news"]

    # When another tenant asks
    other = await pushgate.tenant("globex")
    theirs = await get(pushgate, other, "/v1/analytics/deliveries")
    # Then it sees nothing of acme's
    assert stats(theirs["totals"]) == (0, ZERO, None)
    assert theirs["by_provider"] == theirs["by_category"] == []
    assert all(s["total"] == 0 for s in theirs["series"])

    # When the raw rows are deleted (as retention will)
    async with pushgate.runtime.sessions() as session:
        await session.execute(delete(Delivery))
        await session.execute(delete(Notification))
        await session.commit()
    # Then the answers stay the same
    again = await get(
        pushgate, tenant, "/v1/analytics/deliveries", since=body["since"], until=body["until"]
    )
    assert again == body


async def test_device_and_notification_analytics(scenario: Scenario) -> None:
    # Given the same sends (`scenario`), and then one live FCM device deleted by its app
    pushgate, tenant = scenario.pushgate, scenario.tenant
    listed = await pushgate.http.get(
        "/v1/devices", params={"platform": "fcm"}, headers=tenant.admin
    )
    assert listed.status_code == 200, listed.text
    doomed = next(d for d in listed.json()["items"] if d["token"] == scenario.alive_fcm)
    gone = await pushgate.http.delete(f"/v1/devices/{doomed['id']}", headers=tenant.admin)
    assert gone.status_code == 204, gone.text

    # When the device analytics are asked for
    body = await get(pushgate, tenant, "/v1/analytics/devices")

    # Then the live devices are counted now, and each day's new and gone ones per platform
    assert body["active"] == {"fcm": 1, "apns": 0, "webpush": 2}
    today = datetime.now(UTC).date().isoformat()
    days = {(d["day"], d["platform"]): d for d in body["days"] if d["day"] == today}
    assert {
        k: (d["new"], d["invalidated"], d["expired"], d["deleted"]) for k, d in days.items()
    } == {
        (today, "fcm"): (3, 1, 0, 1),
        (today, "apns"): (0, 0, 0, 0),
        (today, "webpush"): (3, 0, 1, 0),
    }
    assert len(body["days"]) in (3 * 30, 3 * 31)
    # When the deleted device registers again, Then it is live again, not new
    again = await pushgate.http.post(
        "/v1/devices",
        json={"platform": "fcm", "token": scenario.alive_fcm, "user_id": "u1"},
        headers=tenant.subscribe,
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "active"
    back = await get(pushgate, tenant, "/v1/analytics/devices")
    assert back["active"] == {"fcm": 2, "apns": 0, "webpush": 2}
    fcm_today = next(d for d in back["days"] if (d["day"], d["platform"]) == (today, "fcm"))
    assert fcm_today["new"] == 3
    # and a platform filter keeps that platform only
    webpush = await get(pushgate, tenant, "/v1/analytics/devices", platform="webpush")
    assert webpush["active"] == {"webpush": 2}
    assert {d["platform"] for d in webpush["days"]} == {"webpush"}

    # When the notification analytics are asked for
    notes = await get(pushgate, tenant, "/v1/analytics/notifications")

    # Then each category has its notifications and their deliveries
    assert [
        (c["category"], c["notifications"], c["deliveries"]["total"], c["success_rate"])
        for c in notes["by_category"]
    ] == [("news", 1, 4, 0.5), (None, 1, 2, 0.5)]
    assert notes["by_category"][0]["deliveries"]["by_outcome"] == outcomes(sent=2, invalid=2)
    assert sum(d["notifications"] for d in notes["series"]) == 2
    assert notes["series"][-1]["time"].startswith(today)

    # and another tenant sees none of it
    other = await pushgate.tenant("globex")
    theirs = await get(pushgate, other, "/v1/analytics/devices")
    assert theirs["active"] == {"fcm": 0, "apns": 0, "webpush": 0}
    assert all(d["new"] == d["deleted"] == 0 for d in theirs["days"])
    assert (await get(pushgate, other, "/v1/analytics/notifications"))["by_category"] == []


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        (
            "/v1/analytics/deliveries",
            {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            "invalid_range",
        ),
        (
            "/v1/analytics/deliveries",
            {"since": "2026-01-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            "range_too_long",
        ),
        ("/v1/analytics/deliveries", {"interval": "week"}, "invalid_input"),
        ("/v1/analytics/deliveries", {"since": "yesterday"}, "invalid_input"),
        ("/v1/analytics/devices", {"since": "2000-01-01T00:00:00Z"}, "range_too_long"),
        ("/v1/analytics/notifications", {"interval": "hour"}, "invalid_input"),
        # Found by the OpenAPI fuzz: an OverflowError, answered 500
        ("/v1/analytics/notifications", {"until": "0001-01-01T00:00:00Z"}, "invalid_range"),
        (
            "/v1/analytics/deliveries",
            {"since": "9999-12-31T23:30:00Z", "until": "9999-12-31T23:45:00Z"},
            "invalid_range",
        ),
    ],
)
async def test_bad_analytics_input_is_a_json_error(
    pushgate: Pushgate, acme: TenantKeys, path: str, params: dict[str, str], code: str
) -> None:
    response = await pushgate.http.get(path, params=params, headers=acme.send)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_analytics_need_a_key_that_reads_notifications(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    for path in ("deliveries", "devices", "notifications"):
        response = await pushgate.http.get(f"/v1/analytics/{path}", headers=acme.subscribe)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "insufficient_scope"
