"""`/metrics` after real traffic through the pipeline (API, ingress queue, dispatch, deliver to
the fake Web Push service, a webhook), on both profiles: parsed with prometheus-client's
parser, its counts match what was sent, and no label carries a token, device, user or key."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pushgate.api.app import create_app
from pushgate.broker import base as broker_base
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from tests.conftest import TenantKeys
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import PushgateFactory

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(page: str) -> Samples:
    """Every sample of the page by (name, labels); raises on a page the parser refuses."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient, **kw: Any) -> tuple[str, Samples]:
    response = await http.get("/metrics", **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


async def eventually(check: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake


async def test_metrics_count_what_went_through_the_pipeline(
    make_pushgate: PushgateFactory,
    fake_push: FakeWebPushService,
    receiver: FakeWebhookReceiver,
) -> None:
    # Given pushgate with a webhook for invalidated devices, and three browsers of one user,
    # one of which the push service no longer knows
    pushgate = await make_pushgate(
        webhooks={
            "allow_private_addresses": True,
            "ca_bundle": receiver.ca_pem_path,
            "poll_seconds": 0.1,
        }
    )
    acme = await pushgate.tenant()
    made = await pushgate.http.post(
        "/v1/webhooks",
        json={"url": receiver.url(), "events": ["device.invalidated"]},
        headers=acme.admin,
    )
    assert made.status_code == 201, made.text
    subscriptions = [fake_push.new_subscription() for _ in range(3)]
    device_ids = [
        await pushgate.subscribe(acme.subscribe, s, user_id="user-42") for s in subscriptions
    ]
    fake_push.script(410, subscription=subscriptions[0])

    # When one notification comes through the API and one through push.queue
    sent = await pushgate.send(
        acme.send, {"user_ids": ["user-42"], "title": "Hi", "category": "promo"}
    )
    await pushgate.finished(acme.send, sent)
    await pushgate.runtime.broker.publish(
        broker_base.PUSH,
        [orjson.dumps({"app": "acme", "user_id": "user-42", "title": "Again"})],
    )

    async def queued_one_delivered() -> bool:
        _, samples = await scrape(pushgate.http)
        return value(samples, "pushgate_deliveries_total", **SENT) == 4

    await eventually(queued_one_delivered)

    async def webhook_posted() -> bool:
        _, samples = await scrape(pushgate.http)
        return value(samples, "pushgate_webhook_attempts_total", outcome="sent") == 1

    await eventually(webhook_posted)

    # Then the page counts each of them
    page, samples = await scrape(pushgate.http)
    assert (
        value(
            samples,
            "pushgate_notifications_accepted_total",
            app="acme",
            category="promo",
            source="api",
        )
        == 1
    )
    assert (
        value(
            samples,
            "pushgate_notifications_accepted_total",
            app="acme",
            category="",
            source="queue",
        )
        == 1
    )
    # 2 + 2 sent (the invalid device is not sent to again), 1 answered 410
    assert value(samples, "pushgate_deliveries_total", **SENT) == 4
    assert (
        value(
            samples,
            "pushgate_deliveries_total",
            provider="webpush",
            outcome="invalid",
            reason="4xx",
        )
        == 1
    )
    assert value(samples, "pushgate_token_invalidations_total", provider="webpush") == 1
    assert value(samples, "pushgate_provider_request_seconds_count", provider="webpush") == 5
    assert value(samples, "pushgate_delivery_latency_seconds_count", provider="webpush") == 5
    assert (
        value(samples, "pushgate_delivery_latency_seconds_bucket", provider="webpush", le="+Inf")
        == 5
    )
    assert value(samples, "pushgate_sends_in_flight") == 0
    assert (
        value(
            samples,
            "pushgate_http_requests_total",
            method="POST",
            route="/v1/devices",
            status="2xx",
        )
        == 3
    )
    assert (
        value(
            samples,
            "pushgate_http_requests_total",
            method="POST",
            route="/v1/notifications",
            status="2xx",
        )
        == 1
    )
    assert (
        value(
            samples,
            "pushgate_http_requests_total",
            method="GET",
            route="/v1/notifications/{notification_id}",
            status="2xx",
        )
        >= 1
    )
    # The worker runs in this process (as under `pushgate serve`): its consumers are here
    for queue in ("push", "dispatch", "deliver"):
        assert value(samples, "pushgate_queue_consumers", queue=queue) == 1
        assert ("pushgate_queue_depth", frozenset({("queue", queue)})) in samples

    # And no label value names a device, token, user, key or notification
    secrets = [
        *device_ids,
        sent,
        "user-42",
        *(s["keys"]["p256dh"] for s in subscriptions),
        *(s["keys"]["auth"] for s in subscriptions),
        *(s["endpoint"].rsplit("/", 1)[1] for s in subscriptions),
        *(h["Authorization"].split()[1] for h in (acme.admin, acme.send, acme.subscribe)),
        str(acme.app_id),
    ]
    for secret in secrets:
        assert secret not in page


SENT = {"provider": "webpush", "outcome": "sent", "reason": "2xx"}


async def test_an_open_circuit_shows_on_the_page(
    make_pushgate: PushgateFactory, fake_push: FakeWebPushService
) -> None:
    # Given a push service that fails, and a breaker that opens at the first failure
    pushgate = await make_pushgate(circuit_breaker={"threshold": 1, "timeout": 60})
    acme = await pushgate.tenant()
    subscription = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, subscription, user_id="u1")
    fake_push.script(503, times=None)

    # When a notification is sent
    await pushgate.send(acme.send, {"user_ids": ["u1"], "title": "Hi"})

    # Then the circuit of its origin reads open (2), and the 5xx is counted as a retry
    async def opened() -> bool:
        _, samples = await scrape(pushgate.http)
        states = {
            dict(labels)["origin"]: v
            for (name, labels), v in samples.items()
            if name == "pushgate_circuit_state" and dict(labels)["provider"] == "webpush"
        }
        return list(states.values()) == [2.0]

    await eventually(opened)
    _, samples = await scrape(pushgate.http)
    assert (
        value(
            samples,
            "pushgate_deliveries_total",
            provider="webpush",
            outcome="retrying",
            reason="5xx",
        )
        == 1
    )


async def test_rate_limit_refusals_are_counted_by_route_class(
    settings: Settings, runtime: Runtime, tenant: TenantKeys
) -> None:
    configured = settings.model_copy(
        update={"rate_limits": settings.rate_limits.model_validate({"key_read": "1/minute"})}
    )
    runtime.settings = configured
    app = create_app(configured, runtime=runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        answers = [
            (await http.get("/v1/devices", headers=tenant.admin)).status_code for _ in range(3)
        ]
        _, samples = await scrape(http)

    assert answers == [200, 429, 429]
    assert value(samples, "pushgate_rate_limit_refusals_total", route_class="read") == 2
    assert (
        value(
            samples, "pushgate_http_requests_total", method="GET", route="/v1/devices", status="429"
        )
        == 2
    )


@pytest.fixture
def metrics_app(settings: Settings, runtime: Runtime) -> Any:
    """An API client whose `metrics` settings are the arguments."""

    @contextlib.asynccontextmanager
    async def make(**metrics: Any) -> AsyncIterator[httpx.AsyncClient]:
        configured = settings.model_copy(
            update={"metrics": settings.metrics.model_validate(metrics)}
        )
        runtime.settings = configured
        app = create_app(configured, runtime=runtime)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
        ):
            yield http

    return make


@pytest.mark.parametrize("profile", ["embedded"], indirect=True)
async def test_a_metrics_token_is_required_when_set(metrics_app: Any) -> None:
    async with metrics_app(token="scrape-me-please") as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
        api_key_alone = await http.get("/metrics", headers={"X-API-Key": "scrape-me-please"})

    assert missing.status_code == wrong.status_code == api_key_alone.status_code == 401
    assert missing.json()["error"]["code"] == "metrics_unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200
    parse(right.text)


@pytest.mark.parametrize("profile", ["embedded"], indirect=True)
async def test_only_allowed_networks_may_scrape(metrics_app: Any) -> None:
    # httpx's ASGI transport calls from 127.0.0.1
    async with metrics_app(allow=["10.0.0.0/8", "192.168.0.0/16"]) as http:
        refused = await http.get("/metrics")
    async with metrics_app(allow="10.0.0.0/8,127.0.0.0/8") as http:
        allowed = await http.get("/metrics")
    async with metrics_app(enabled=False) as http:
        off = await http.get("/metrics")

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "metrics_forbidden"
    assert allowed.status_code == 200
    assert off.status_code == 404


@pytest.mark.parametrize("profile", ["embedded"], indirect=True)
async def test_metrics_need_no_api_key(client: httpx.AsyncClient) -> None:
    page, samples = await scrape(client)
    assert "# TYPE pushgate_deliveries_total counter" in page
    assert "# TYPE pushgate_provider_request_seconds histogram" in page
    assert value(samples, "pushgate_sends_in_flight") == 0
