"""The Web Push test page (/web/webpush.html) in Debian's Chromium, offline: it registers its
service worker, fetches the app's VAPID key, subscribes and registers the subscription as a
device, which then receives a notification through the fake push service.

Offline, Chromium cannot subscribe for real (its push service is Google's, out of reach here),
so `PushManager.subscribe` answers with a subscription of the fake push service, as a browser
would; the test checks that the page asked for it with the app's VAPID key."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.browser import Tab, browser, screenshot, tab
from tests.acceptance.dashboard_site import ThreadedFake, env
from tests.acceptance.test_client import make_key
from tests.acceptance.test_serve_cli import Server, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
__all__ = ["browser", "tab"]

# Stands in for the browser's push service; records what the page asked for.
SUBSCRIBE = """
window.__subscribeOptions = null;
PushManager.prototype.getSubscription = async function () { return null; };
PushManager.prototype.subscribe = async function (options) {
  const key = options.applicationServerKey;
  window.__subscribeOptions = {
    userVisibleOnly: options.userVisibleOnly,
    applicationServerKey: Array.from(key instanceof ArrayBuffer ? new Uint8Array(key) : key),
  };
  const subscription = %s;
  return { endpoint: subscription.endpoint, toJSON: () => subscription };
};
"""


@pytest.fixture
def pushing(tmp_path: Path) -> Iterator[tuple[ThreadedFake, Server]]:
    with ThreadedFake() as push, serving(tmp_path, env(push.fake)) as server:
        yield push, server


def test_webpush_page_registers_its_worker_and_this_browser(
    tab: Tab, pushing: tuple[ThreadedFake, Server]
) -> None:
    push, server = pushing
    subscription = push.call(push.fake.new_subscription)
    key = make_key(server, "subscribe")
    answers: dict[str, int] = {}
    tab.page.on("response", lambda r: answers.__setitem__(f"{r.request.method} {r.url}", r.status))
    tab.context.grant_permissions(["notifications"], origin=server.url)
    tab.context.add_init_script(SUBSCRIBE % json.dumps(subscription))

    # When a person opens the page with a subscribe key and subscribes
    response = tab.page.goto(f"{server.url}/web/webpush.html")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tab.page.fill("#key", key)
    tab.page.fill("#topics", "news")
    tab.page.click("#subscribe")
    # (a function, not an expression: the page's CSP refuses eval, which an expression needs)
    tab.page.wait_for_function(
        "() => /device|Failed|blocked|support/.test(document.getElementById('log').textContent)"
    )
    log = tab.page.inner_text("#log")
    screenshot(tab.page, "webpush-page")

    # Then its service worker is registered
    worker = tab.page.evaluate(
        "navigator.serviceWorker.ready.then(r => (r.active || r.waiting || r.installing).scriptURL)"
    )
    assert worker == f"{server.url}/web/sw.js"
    # and its API calls succeeded: the VAPID key, then the device
    assert answers[f"GET {server.url}/v1/webpush/vapid-public-key"] == 200
    assert answers[f"POST {server.url}/v1/devices"] == 201
    assert "Registered as device" in log, log
    # it subscribed with the app's VAPID key, for visible notifications
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    vapid = httpx.get(f"{server.url}/v1/webpush/vapid-public-key", headers=admin).json()
    asked = tab.page.evaluate("window.__subscribeOptions")
    assert asked["userVisibleOnly"] is True
    assert bytes(asked["applicationServerKey"]) == base64.urlsafe_b64decode(
        vapid["public_key"] + "=="
    )
    assert tab.csp_violations() == []
    assert tab.blocked == []

    # And the device it registered gets what is sent to it
    device_id = log.split("Registered as device ", 1)[1].split(" ", 1)[0]
    sent = httpx.post(
        f"{server.url}/v1/notifications",
        headers=admin,
        json={"device_ids": [device_id], "title": "Hello", "body": "From the test page"},
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 30
    while not push.call(lambda: push.fake.received_for(subscription)):
        assert time.monotonic() < deadline, "the registered device got nothing"
        time.sleep(0.2)
    received = push.call(lambda: push.fake.received_for(subscription))
    assert received[0].payload["title"] == "Hello"
