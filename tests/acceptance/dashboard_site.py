"""A `pushgate serve` with something to show: Web Push devices registered against the fake push
service (run in a thread of this process, so a test can script its answers), and notifications
sent to them with mixed outcomes (sent, token invalid, rejected, and one that runs out of
attempts into the dead-letter queue); a template, and a webhook on a closed loopback port whose
attempts fail. Shared by the browser tests of one module."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.acceptance.test_observability_cli import webpush_env
from tests.acceptance.test_serve_cli import Server, free_port, serving
from tests.fakes.webpush_server import FakeWebPushService

T = TypeVar("T")
FINAL = {"completed", "partially_failed", "failed", "canceled", "expired"}
MAX_ATTEMPTS = 2


class ThreadedFake:
    """The fake push service on an event loop of its own thread: the tests are synchronous
    (Playwright's sync API) and must not stop it from answering while they wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.fake = FakeWebPushService()

    def call(self, action: Callable[[], T]) -> T:
        """Run `action` on the fake's loop (its state belongs to that thread)."""

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def __enter__(self) -> ThreadedFake:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Site:
    server: Server
    push: ThreadedFake
    http: httpx.Client
    # Notification ids: "mixed" (sent, invalid, rejected), "single" (sent), "dead" (dead-lettered).
    notifications: dict[str, str] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_key(self) -> str:
        return self.server.admin_key

    def register(self, name: str) -> str:
        subscription = self.push.call(self.push.fake.new_subscription)
        answer = self.http.post(
            "/v1/devices",
            json={"platform": "webpush", "subscription": subscription, "user_id": name},
        )
        assert answer.status_code == 201, answer.text
        self.subscriptions[name] = subscription
        self.devices[name] = answer.json()["id"]
        return str(self.devices[name])

    def send(self, key: str, names: list[str], **fields: Any) -> str:
        body = {"device_ids": [self.devices[n] for n in names], "title": "Hello", **fields}
        answer = self.http.post("/v1/notifications", json=body)
        assert answer.status_code == 202, answer.text
        self.notifications[key] = answer.json()["id"]
        return str(self.notifications[key])

    def final(self, notification_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 40
        while True:
            notification: dict[str, Any] = self.http.get(
                f"/v1/notifications/{notification_id}"
            ).json()
            if notification["status"] in FINAL:
                return notification
            if time.monotonic() > deadline:
                pytest.fail(f"notification did not finish: {notification}")
            time.sleep(0.2)

    def deliveries(self, notification_id: str) -> list[dict[str, Any]]:
        page = self.http.get(f"/v1/notifications/{notification_id}/deliveries").json()
        items: list[dict[str, Any]] = page["items"]
        return items


def env(fake: FakeWebPushService) -> dict[str, str]:
    return webpush_env(fake) | {
        # A delivery the push service keeps failing is dead-lettered after two quick tries.
        "PUSHGATE_DELIVERY__MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PUSHGATE_DELIVERY__BACKOFF_BASE_SECONDS": "0.2",
        "PUSHGATE_DELIVERY__BACKOFF_MAX_SECONDS": "0.5",
        # The webhook's receiver is on 127.0.0.1 (nothing listens there: its attempts fail).
        "PUSHGATE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
    }


def produce(site: Site) -> None:
    """The data the tests look for, each notification finished before the next is sent (the
    push service's 500s hold its whole origin for a while)."""
    fake = site.push.fake
    made = site.http.post(
        "/v1/templates",
        json={
            "code": "order_shipped",
            "default_locale": "en",
            "variants": {
                "en": {"title": "Order {{ order }} shipped", "body": "It arrives {{ day }}."},
                "fr": {"title": "Commande {{ order }} expédiée", "body": "Elle arrive {{ day }}."},
            },
        },
    )
    assert made.status_code == 201, made.text
    hooked = site.http.post(
        "/v1/webhooks",
        json={"url": f"https://127.0.0.1:{free_port()}/hooks", "events": ["device.registered"]},
    )
    assert hooked.status_code == 201, hooked.text
    site.webhook = hooked.json()
    for name in ("alice", "bob", "carol", "gone", "picky", "later"):
        site.register(name)
    site.push.call(lambda: fake.script(410, subscription=site.subscriptions["gone"], times=None))
    site.push.call(
        lambda: fake.script(
            400,
            subscription=site.subscriptions["picky"],
            times=None,
            body=b'{"reason": "payload not accepted"}',
        )
    )
    site.final(site.send("mixed", ["alice", "bob", "carol", "gone", "picky"], category="news"))
    site.final(site.send("single", ["alice"], category="promo"))
    # Fails every try it gets, then (its script used up) is accepted when replayed.
    site.push.call(
        lambda: fake.script(500, subscription=site.subscriptions["later"], times=MAX_ATTEMPTS)
    )
    site.final(site.send("dead", ["later"], category="alerts"))


@contextlib.contextmanager
def running_site(tmp_path: Path) -> Iterator[Site]:
    with ThreadedFake() as push, serving(tmp_path, env(push.fake)) as server:
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            site = Site(server, push, http)
            produce(site)
            yield site
