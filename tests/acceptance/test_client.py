"""`pushgate.client` against a live `pushgate serve` (embedded), its Web Push deliveries going to
the fake push service in a subprocess: every route the client covers, sync and async, one
scenario written once for both; its retries on 429; its error classes and codes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from pushgate.client import (
    AsyncPushgateClient,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PushgateClient,
    RateLimitedError,
    Retries,
    ValidationError,
)
from tests.acceptance.profiles import services_profile
from tests.acceptance.test_serve_cli import Server, free_port, run_cli, serving

T = TypeVar("T")
FINAL = {"completed", "partially_failed", "failed", "canceled", "expired"}


class FakeWebPush:
    """tests/fakes/webpush_server.py in a subprocess (the server under test is one too)."""

    def __init__(self, process: subprocess.Popen[str], origin: str, ca: str) -> None:
        self.process, self.origin, self.ca = process, origin, ca

    def subscription(self) -> dict[str, Any]:
        trust = ssl.create_default_context(cafile=self.ca)
        response = httpx.post(f"{self.origin}/_fake/subscriptions", verify=trust)
        response.raise_for_status()
        subscription: dict[str, Any] = response.json()
        return subscription

    def env(self) -> dict[str, str]:
        return {
            "PUSHGATE_WEBPUSH__EXTRA_HOSTS": "127.0.0.1",
            "PUSHGATE_WEBPUSH__ALLOW_PRIVATE_ADDRESSES": "true",
            "PUSHGATE_WEBPUSH__CA_BUNDLE": self.ca,
            "PUSHGATE_WEBPUSH__VAPID_SUBJECT": "mailto:ops@pushgate.example.com",
            "PUSHGATE_WORKER__SWEEP_INTERVAL": "0.2",
        }


@pytest.fixture
def fake_webpush() -> Iterator[FakeWebPush]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.webpush_server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake Web Push service on "), line
        origin, _, ca = line.removeprefix("fake Web Push service on ").partition("; CA: ")
        yield FakeWebPush(process, origin, ca.strip())
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(
    params=[
        "embedded",
        pytest.param(
            "services", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.rabbitmq]
        ),
    ]
)
async def live(
    request: pytest.FixtureRequest, tmp_path: Path, fake_webpush: FakeWebPush
) -> AsyncIterator[Server]:
    """A `pushgate serve` that delivers Web Push to the fake, on each profile."""
    async with contextlib.AsyncExitStack() as stack:
        # Webhooks on 127.0.0.1 (nothing listens there: the round trip needs no receiver).
        env = fake_webpush.env() | {"PUSHGATE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true"}
        if request.param == "services":
            env |= await stack.enter_async_context(services_profile())
            migrated = run_cli(tmp_path / "data", "migrate", env=env)
            assert migrated.returncode == 0, migrated.stderr
        with serving(tmp_path, env) as server:
            yield server


def make_key(server: Server, scope: str, *extra: str) -> str:
    made = run_cli(
        server.data_dir,
        *("keys", "create", "--app", "default", "--scope", scope, "--json", *extra),
        env=server.env,
    )
    assert made.returncode == 0, made.stderr
    key: str = json.loads(made.stdout)["key"]
    return key


async def done(value: Awaitable[T] | T) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


async def collect(items: Iterator[T] | AsyncIterator[T]) -> list[T]:
    if isinstance(items, AsyncIterator):
        return [item async for item in items]
    return list(items)


Client = PushgateClient | AsyncPushgateClient


async def final(client: Client, notification_id: uuid.UUID) -> str:
    deadline = time.monotonic() + 30
    while True:
        status = (await done(client.notifications.get(notification_id))).status
        if status in FINAL or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def round_trip(client: Client, fake: FakeWebPush) -> None:
    # Devices: register, get, update, topics, pages
    alice = await done(
        client.devices.register(
            {"platform": "webpush", "user_id": "alice", "subscription": fake.subscription()}
        )
    )
    assert alice.status == "active"
    bob = await done(
        client.devices.register({"platform": "apns", "token": "ab" * 32, "user_id": "bob"})
    )
    assert (await done(client.devices.get(alice.id))).user_id == "alice"
    updated = await done(client.devices.update(alice.id, {"locale": "fr_FR"}))
    assert updated.locale == "fr-FR"
    added = await done(client.devices.add_topics(alice.id, ["news", "sport"]))
    assert added.topics is not None
    assert "news" in added.topics
    await done(client.devices.remove_topic(alice.id, "sport"))
    assert (await done(client.devices.get(alice.id))).topics == ["news"]
    mine = await done(client.devices.list(user_id="alice"))
    assert [d.id for d in mine.items] == [alice.id]
    first = await done(client.devices.list(limit=1))
    assert len(first.items) == 1
    assert first.next_cursor is not None
    every = await collect(client.devices.iterate(limit=1))
    assert {d.id for d in every} == {alice.id, bob.id}

    # Templates: create, replace, get, versions, preview, list
    variants = {"en": {"title": "Hi {{ name }}", "body": "Welcome"}}
    made = await done(
        client.templates.create({"code": "welcome", "default_locale": "en", "variants": variants})
    )
    assert made.version == 1
    with pytest.raises(ConflictError) as taken:
        await done(
            client.templates.create(
                {"code": "welcome", "default_locale": "en", "variants": variants}
            )
        )
    assert taken.value.status == 409
    assert taken.value.code
    variants["en"]["title"] = "Hello {{ name }}"
    assert (
        await done(
            client.templates.replace("welcome", {"default_locale": "en", "variants": variants})
        )
    ).version == 2
    assert (await done(client.templates.get("welcome"))).version == 2
    versions = await done(client.templates.versions("welcome"))
    assert [v.version for v in versions.items] == [2, 1]
    preview = await done(client.templates.preview("welcome", {"name": "Alice"}))
    assert preview.variants["en"].title == "Hello Alice"
    assert [t.code for t in await collect(client.templates.iterate(limit=1))] == ["welcome"]
    assert [t.code for t in (await done(client.templates.list())).items] == ["welcome"]

    # Preferences: put, get, delete
    put = await done(client.preferences.put("bob", {"categories": {"marketing": False}}))
    assert put.categories == {"marketing": False}
    assert put.updated_at is not None
    assert (await done(client.preferences.get("bob"))).categories == {"marketing": False}
    await done(client.preferences.delete("bob"))
    assert (await done(client.preferences.get("bob"))).updated_at is None

    # Notifications: send (keyed), replay, status, deliveries, by key
    accepted = await done(
        client.notifications.send({"user_id": "alice", "title": "Hi", "body": "there"})
    )
    assert accepted.idempotency_key is not None
    uuid.UUID(accepted.idempotency_key)  # generated: a uuid4
    again = await done(
        client.notifications.send(
            {"user_id": "alice", "title": "Hi", "body": "there"},
            idempotency_key=accepted.idempotency_key,
        )
    )
    assert again.id == accepted.id
    assert await final(client, accepted.id) == "completed"
    deliveries = await done(client.notifications.deliveries(accepted.id))
    assert [(d.device_id, d.status) for d in deliveries.items] == [(alice.id, "sent")]
    assert [
        d.id for d in await collect(client.notifications.iterate_deliveries(accepted.id, limit=1))
    ] == [deliveries.items[0].id]
    found = await done(client.notifications.get_by_idempotency_key(accepted.idempotency_key))
    assert found.id == accepted.id

    # Templated send, bulk (one good, one refused), send-immediate, cancel
    templated = await done(
        client.notifications.send(
            {"user_id": "alice", "template_code": "welcome", "variables": {"name": "A"}}
        )
    )
    assert (await done(client.notifications.status(templated.id))).template is not None
    bulk = await done(
        client.notifications.send_bulk([{"user_id": "alice", "title": "a"}, {"title": "nobody"}])
    )
    assert (bulk.accepted, bulk.failed) == (1, 1)
    assert bulk.results[1].error is not None
    assert bulk.results[1].error["code"]
    now = await done(
        client.notifications.send_immediate({"device_ids": [alice.id], "title": "now"})
    )
    assert [(d.device_id, d.status) for d in now.deliveries] == [(alice.id, "sent")]
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = await done(
        client.notifications.send({"user_id": "bob", "title": "later", "send_at": later})
    )
    assert (await done(client.notifications.cancel(scheduled.id))).status == "canceled"
    history = await collect(client.notifications.history(limit=2))
    sent_ids = {accepted.id, templated.id, now.id, scheduled.id}
    assert sent_ids <= {n.id for n in history}
    newest = await done(client.notifications.list(limit=1))
    assert newest.items[0].id == history[0].id

    # Errors carry the API's status and code
    with pytest.raises(NotFoundError) as missing:
        await done(client.notifications.get(uuid.uuid4()))
    assert missing.value.status == 404
    assert missing.value.code
    with pytest.raises(ValidationError) as invalid:
        await done(client.devices.register({"platform": "fcm"}))
    assert invalid.value.status == 422
    assert invalid.value.code
    assert invalid.value.details

    # Delete: the device is deactivated
    await done(client.devices.delete(bob.id))
    assert (await done(client.devices.get(bob.id))).status == "deactivated"

    await webhooks_round_trip(client)


async def webhooks_round_trip(client: Client) -> None:
    # Create: the secret is shown this once, never in a read
    url = f"https://127.0.0.1:{free_port()}/hooks"
    hook = await done(client.webhooks.create({"url": url, "events": ["device.registered"]}))
    assert hook.secret.startswith("whsec_")
    assert hook.enabled
    read = await done(client.webhooks.get(hook.id))
    assert (read.url, read.events) == (url, ["device.registered"])
    assert "secret" not in read.model_dump()
    assert [w.id for w in (await done(client.webhooks.list())).items] == [hook.id]
    plain_http = {"url": "http://127.0.0.1/x", "events": ["device.registered"]}
    with pytest.raises(ValidationError) as plain:
        await done(client.webhooks.create(plain_http))
    assert (plain.value.status, plain.value.code) == (422, "invalid_webhook_url")

    # Deliveries: a device registered now is an event for the webhook
    carol = await done(client.devices.register({"platform": "apns", "token": "cd" * 32}))
    events = await done(client.webhooks.deliveries(hook.id, limit=10))
    assert [(e.type, e.payload["device_id"]) for e in events.items] == [
        ("device.registered", str(carol.id))
    ]

    # Update (PATCH), rotate the secret, delete
    moved = f"https://127.0.0.1:{free_port()}/other"
    changed = await done(
        client.webhooks.update(
            hook.id, {"url": moved, "events": ["delivery.failed"], "enabled": False}
        )
    )
    assert (changed.url, changed.events, changed.enabled) == (moved, ["delivery.failed"], False)
    rotated = await done(client.webhooks.rotate_secret(hook.id))
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != hook.secret
    assert rotated.previous_secret_until is not None
    await done(client.webhooks.delete(hook.id))
    assert (await done(client.webhooks.list())).items == []
    with pytest.raises(NotFoundError):
        await done(client.webhooks.get(hook.id))


def test_sync_client_round_trips_every_route(live: Server, fake_webpush: FakeWebPush) -> None:
    with PushgateClient(live.url, live.admin_key) as client:
        asyncio.run(round_trip(client, fake_webpush))


async def test_async_client_round_trips_every_route(
    live: Server, fake_webpush: FakeWebPush
) -> None:
    async with AsyncPushgateClient(live.url, live.admin_key) as client:
        await round_trip(client, fake_webpush)


def test_key_errors_raise_their_classes(server: Server) -> None:
    subscribe = make_key(server, "subscribe")
    with (
        PushgateClient(server.url, subscribe) as client,
        pytest.raises(PermissionDeniedError) as denied,
    ):
        client.devices.list()
    assert denied.value.status == 403
    assert denied.value.code
    with (
        PushgateClient(server.url, "pgk_unknown") as client,
        pytest.raises(AuthenticationError) as unknown,
    ):
        client.notifications.list()
    assert unknown.value.status == 401
    assert unknown.value.code == "invalid_api_key"


def test_rate_limited_call_waits_retry_after_then_raises(server: Server) -> None:
    # Given a key allowed 2 requests a minute, and a client that records its waits
    key = make_key(server, "send", "--rate-limit", "2/minute")
    waits: list[float] = []
    retries = Retries(attempts=2, max_wait=120, sleep=waits.append)
    with PushgateClient(server.url, key, retries=retries) as client:
        client.notifications.list()
        client.notifications.list()
        # When the third call is over the limit
        with pytest.raises(RateLimitedError) as limited:
            client.notifications.list()
    # Then it waited what Retry-After said, tried again, and raised the API's code
    assert limited.value.code == "rate_limited"
    assert limited.value.retry_after is not None
    assert limited.value.retry_after > 0
    assert len(waits) == 1
    assert 0 < waits[0] <= 60
    # And a client allowed less total wait than Retry-After raises at once, without waiting
    waits.clear()
    short = Retries(attempts=3, max_wait=0.5, sleep=waits.append)
    client = PushgateClient(server.url, key, retries=short)
    with client, pytest.raises(RateLimitedError):
        client.notifications.list()
    assert waits == []
