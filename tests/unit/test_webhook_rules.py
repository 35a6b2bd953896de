"""The webhook rules without I/O: secrets, Standard Webhooks signatures (checked with the
reference library), the backoff, and the connect-time address check of the sender's client."""

from __future__ import annotations

import base64
import time

from standardwebhooks import Webhook as Verifier

from pushgate.domain import webhooks as rules
from pushgate.providers.webhook_client import WebhookClient
from pushgate.settings import WebhookSettings


def test_a_new_secret_is_whsec_and_at_least_24_random_bytes() -> None:
    one, two = rules.new_secret(), rules.new_secret()

    assert one.startswith("whsec_")
    assert len(base64.b64decode(one.removeprefix("whsec_"))) >= 24
    assert one != two


def test_each_secret_signs_and_the_library_verifies_with_either() -> None:
    old, new = rules.new_secret(), rules.new_secret()
    body = b'{"type":"device.registered"}'
    now = int(time.time())

    headers = rules.headers([new, old], "msg_7", now, body)

    assert headers["webhook-id"] == "msg_7"
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Verifier(new).verify(body, headers) == {"type": "device.registered"}
    assert Verifier(old).verify(body, headers) == {"type": "device.registered"}


def test_backoff_doubles_up_to_the_cap() -> None:
    waits = [rules.backoff(n, base=5, cap=60) for n in range(1, 7)]

    assert waits == [5, 10, 20, 40, 60, 60]


async def test_the_client_refuses_a_private_address_at_connect_time() -> None:
    # Nothing listens there, and nothing is tried: the address is refused before connecting.
    client = WebhookClient(WebhookSettings(timeout_seconds=2))
    try:
        status, error = await client.post("https://127.0.0.1:9/hook", {}, b"{}")
    finally:
        await client.close()

    assert status is None
    assert error is not None
    assert "refused address" in error  # not "connection refused": nothing was tried
