"""A provider plugin found by a fresh `pushgate serve` process through its entry point alone:
a device of its platform registered over HTTP receives a notification; a broken plugin stops
the start with one line naming it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_serve_cli import (  # `server`: the fixture, started with the plugin
    PUSHGATE,
    Server,
    cli_env,
    free_port,
    server,  # noqa: F401
)
from tests.fakes.webhook_server import FakeWebhooks
from tests.plugins import PLUGINS_DIR


def with_path(env: dict[str, str], directory: Path) -> dict[str, str]:
    """`env` with `directory` first on PYTHONPATH: the plugin is installed for that process."""
    path = [str(directory), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return env | {"PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture(autouse=True)
def _installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before `server` starts: the subprocess inherits the path, so the plugin is installed
    # for it and for nothing else.
    monkeypatch.setenv("PYTHONPATH", with_path(dict(os.environ), PLUGINS_DIR)["PYTHONPATH"])


def test_a_served_plugin_platform_receives_a_notification(server: Server) -> None:  # noqa: F811
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    with FakeWebhooks() as webhooks, httpx.Client(base_url=server.url, timeout=10) as http:
        # Given a device of the plugin's platform, registered over HTTP
        body = {"platform": "webhook", "token": webhooks.url("d1"), "user_id": "u1"}
        registered = http.post("/v1/devices", json=body, headers=admin)
        assert registered.status_code == 201, registered.text

        # When a notification is sent to its user
        sent = http.post(
            "/v1/notifications", json={"user_ids": ["u1"], "title": "Hello"}, headers=admin
        )
        assert sent.status_code == 202, sent.text

        # Then the webhook receives it and the notification completes
        deadline = time.monotonic() + 20
        status = http.get(f"/v1/notifications/{sent.json()['id']}", headers=admin).json()
        while status["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http.get(f"/v1/notifications/{sent.json()['id']}", headers=admin).json()
        assert status["status"] == "completed", status
        assert [m["title"] for m in webhooks.received["d1"]] == ["Hello"]


def test_a_broken_plugin_stops_the_start_with_one_line(tmp_path: Path) -> None:
    # Given an installed plugin whose entry point names a module that is not there
    site = tmp_path / "site"
    info = site / "pushgate_sms-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pushgate-sms\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pushgate.providers]\nsms = pushgate_sms:build\n")

    # When pushgate serve starts
    result = subprocess.run(
        [*PUSHGATE, "serve", "--port", str(free_port())],
        env=with_path(cli_env(tmp_path / "data"), site),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it stops at once, naming the plugin and why
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "'sms' = 'pushgate_sms:build' (from pushgate-sms 1.0)" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
