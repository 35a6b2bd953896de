"""Logs, metrics and error reports of the real processes: `pushgate migrate` and `pushgate
serve` print nothing but JSON lines with `log.format = json`, and a whole DEBUG run shows no
secret in full; `pushgate worker` serves its own metrics page beside `pushgate api`'s; an
unhandled error reaches a (fake) Sentry with its secrets masked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pushgate.domain import apikeys
from tests.acceptance.profiles import services_profile
from tests.acceptance.test_serve_cli import (
    PUSHGATE,
    cli_env,
    free_port,
    run_cli,
    serving,
    wait_started,
)
from tests.fakes.sentry_server import FakeSentry
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.webpush_server import FakeWebPushService

JSON_LOGS = {"PUSHGATE_LOG__FORMAT": "json"}


@pytest.fixture
async def fake_push() -> AsyncIterator[FakeWebPushService]:
    async with FakeWebPushService() as fake:
        yield fake


@pytest.fixture
async def receiver() -> AsyncIterator[FakeWebhookReceiver]:
    async with FakeWebhookReceiver() as fake:
        yield fake


def webpush_env(fake: FakeWebPushService) -> dict[str, str]:
    return {
        "PUSHGATE_WEBPUSH__EXTRA_HOSTS": "127.0.0.1",
        "PUSHGATE_WEBPUSH__ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_WEBPUSH__CA_BUNDLE": str(fake.ca_pem_path),
        "PUSHGATE_WEBPUSH__VAPID_SUBJECT": "mailto:ops@pushgate.example.com",
        "PUSHGATE_WORKER__SWEEP_INTERVAL": "0.2",
    }


def json_lines(text: str, *, except_lines: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every line of `text` as JSON (failing on the first that is not), but `except_lines`."""
    parsed = []
    for line in text.splitlines():
        if not line.strip() or line in except_lines:
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n--- all of it ---\n{text}")
    return parsed


async def until(check: Callable[[], Any], within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


def test_migrate_prints_only_json_lines(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "data", "migrate", env=JSON_LOGS)

    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stdout) + json_lines(done.stderr)
    assert any(line.get("logger", "").startswith("alembic") for line in lines), lines
    assert any(line["event"].startswith("database at revision") for line in lines)


@pytest.mark.timeout(180)
async def test_a_debug_run_prints_json_only_and_no_secret_in_full(
    tmp_path: Path, fake_push: FakeWebPushService, receiver: FakeWebhookReceiver
) -> None:
    env = {
        **JSON_LOGS,
        **webpush_env(fake_push),
        "PUSHGATE_LOG__LEVEL": "DEBUG",
        "PUSHGATE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
        "PUSHGATE_WEBHOOKS__CA_BUNDLE": str(receiver.ca_pem_path),
        "PUSHGATE_WEBHOOKS__POLL_SECONDS": "0.2",
    }
    subscriptions = [fake_push.new_subscription() for _ in range(2)]
    fake_push.script(410, subscription=subscriptions[0])
    fcm_token = "fcm-" + "Qw3rTy" * 20
    apns_token = "a1b2c3d4" * 8
    unknown_key = apikeys.generate().secret
    with serving(tmp_path, env) as server:
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            hook = await http.post(
                "/v1/webhooks",
                json={"url": receiver.url(), "events": ["device.invalidated"]},
                headers=admin,
            )
            assert hook.status_code == 201, hook.text
            for subscription in subscriptions:
                made = await http.post(
                    "/v1/devices",
                    json={"platform": "webpush", "subscription": subscription, "user_id": "u1"},
                    headers={"X-API-Key": server.admin_key},
                )
                assert made.status_code == 201, made.text
            for platform, token in (("fcm", fcm_token), ("apns", apns_token)):
                made = await http.post(
                    "/v1/devices",
                    json={"platform": platform, "token": token, "user_id": "u1"},
                    headers=admin,
                )
                assert made.status_code == 201, made.text
            refused = await http.get(
                "/v1/devices", headers={"Authorization": f"Bearer {unknown_key}"}
            )
            assert refused.status_code == 401
            sent = await http.post(
                "/v1/notifications", json={"user_ids": ["u1"], "title": "Hi"}, headers=admin
            )
            assert sent.status_code == 202, sent.text

            async def finished() -> bool:
                answer = await http.get(sent.headers["location"], headers=admin)
                return answer.json()["status"] not in ("accepted", "dispatching", "sending")

            await until(finished)
            await until(lambda: _received(receiver))
    output = server.output.read_text()

    lines = json_lines(output, except_lines=(server.admin_key,))
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)
    assert any("delivery_id" in line and "notification_id" in line for line in lines)
    secrets = {
        "admin key": server.admin_key,
        "unknown key": unknown_key,
        "webhook secret": hook.json()["secret"],
        "fcm token": fcm_token,
        "apns token": apns_token,
        **{f"p256dh {i}": s["keys"]["p256dh"] for i, s in enumerate(subscriptions)},
        **{f"auth {i}": s["keys"]["auth"] for i, s in enumerate(subscriptions)},
    }
    logged = output.replace(f"\n{server.admin_key}\n", "\n")
    shown = [name for name, secret in secrets.items() if secret in logged]
    assert shown == [], f"in the logs in full: {shown}"


async def _received(receiver: FakeWebhookReceiver) -> bool:
    return bool(receiver.received)


# Five processes (migrate, apps, keys, api, worker) and a delivery: over a minute on a busy
# machine.
@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_worker_serves_its_own_metrics_page(
    tmp_path: Path, fake_push: FakeWebPushService
) -> None:
    async with services_profile() as services:
        worker_port = free_port()
        env = {
            **services,
            **webpush_env(fake_push),
            "PUSHGATE_METRICS__WORKER_PORT": str(worker_port),
            "PUSHGATE_METRICS__REFRESH_SECONDS": "1",
        }
        data = tmp_path / "data"
        assert run_cli(data, "migrate", env=env).returncode == 0
        assert run_cli(data, "apps", "create", "shop", env=env).returncode == 0
        made = run_cli(
            data, "keys", "create", "--app", "shop", "--scope", "admin", "--json", env=env
        )
        assert made.returncode == 0, made.stderr
        key = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
        api_port = free_port()
        url = f"http://127.0.0.1:{api_port}"
        logs = tmp_path / "processes.log"
        api = start(logs, [*PUSHGATE, "api", "--port", str(api_port)], cli_env(data) | env)
        worker = start(logs, [*PUSHGATE, "worker"], cli_env(data) | env)
        try:
            wait_started(url, api, logs)
            async with httpx.AsyncClient(timeout=10) as http:
                subscription = fake_push.new_subscription()
                made_device = await http.post(
                    f"{url}/v1/devices",
                    json={"platform": "webpush", "subscription": subscription, "user_id": "u1"},
                    headers=key,
                )
                assert made_device.status_code == 201, made_device.text
                sent = await http.post(
                    f"{url}/v1/notifications", json={"user_ids": ["u1"], "title": "Hi"}, headers=key
                )
                assert sent.status_code == 202, sent.text

                async def delivered() -> dict[str, float] | None:
                    try:
                        page = await http.get(f"http://127.0.0.1:{worker_port}/metrics")
                    except httpx.TransportError:
                        return None
                    samples = _samples(page.text)
                    sent_count = samples.get(
                        'pushgate_deliveries_total{outcome="sent",provider="webpush",reason="2xx"}'
                    )
                    consumers = samples.get('pushgate_queue_consumers{queue="deliver"}')
                    return samples if sent_count == 1 and consumers == 1 else None

                worker_page = await until(delivered, within=30)
                api_page = _samples((await http.get(f"{url}/metrics")).text)
        finally:
            for process in (api, worker):
                process.terminate()
            for process in (api, worker):
                process.wait(timeout=30)

    # The worker's page has the deliveries and its consumers, the API's the accepted request
    assert worker_page['pushgate_provider_request_seconds_count{provider="webpush"}'] == 1
    assert (
        api_page['pushgate_notifications_accepted_total{app="shop",category="",source="api"}'] == 1
    )
    assert not any(name.startswith("pushgate_deliveries_total") for name in api_page)


def start(output: Path, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`command` in the background, its output appended to `output`."""
    with output.open("a") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _samples(page: str) -> dict[str, float]:
    """Samples as `name{label="value",...}` (labels sorted) -> value."""
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


SENTRY_SCRIPT = """
import asyncio, sys
import httpx, sentry_sdk
from pushgate import __version__, sentry_reports
from pushgate.api.app import create_app
from pushgate.settings import load_settings

SECRET = sys.argv[1]

async def main() -> None:
    settings = load_settings()
    assert sentry_reports.configure(settings.sentry, release=__version__)
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        authorization = f"Bearer {SECRET}"
        raise RuntimeError(f"could not use token={SECRET} ({authorization})")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get(
                "/boom", headers={"Authorization": f"Bearer {SECRET}", "X-API-Key": SECRET}
            )
    print(answer.status_code, flush=True)
    sentry_sdk.flush(10)

asyncio.run(main())
"""


async def test_an_unhandled_error_reaches_sentry_without_secrets(tmp_path: Path) -> None:
    secret = apikeys.generate().secret
    data = tmp_path / "data"
    assert run_cli(data, "migrate").returncode == 0
    async with FakeSentry() as sentry:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SENTRY_SCRIPT,
            secret,
            env=cli_env(data) | {"PUSHGATE_SENTRY__DSN": sentry.dsn},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode()
        assert output.decode().splitlines()[-1] == "500", output.decode()
        events = sentry.events()

    assert len(events) == 1, sentry.envelopes
    [event] = events
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert "could not use token=" in exception["value"]
    received = b"\n".join(sentry.envelopes).decode()
    assert secret not in received
    assert secret[:8] in received  # masked to a prefix, not dropped
