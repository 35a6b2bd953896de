"""`pushgate send` as a subprocess beside a live `pushgate serve` that delivers (Web Push, to the
fake push service): --wait prints each device's outcome; refusals are one line and exit 2."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.acceptance.test_client import FakeWebPush
from tests.acceptance.test_serve_cli import Server, run_cli


def register(server: Server, subscription: dict[str, object]) -> str:
    response = httpx.post(
        f"{server.url}/v1/devices",
        json={"platform": "webpush", "user_id": "alice", "subscription": subscription},
        headers={"Authorization": f"Bearer {server.admin_key}"},
    )
    assert response.status_code == 201, response.text
    device_id: str = response.json()["id"]
    return device_id


def test_send_wait_prints_each_devices_outcome(live: Server, fake_webpush: FakeWebPush) -> None:
    # Given alice with a browser the push service knows, and one it has forgotten
    known = register(live, fake_webpush.subscription())
    gone = fake_webpush.subscription() | {
        "endpoint": f"{fake_webpush.origin}/push/{uuid.uuid4().hex}"
    }
    forgotten = register(live, gone)

    # When an operator sends to alice and waits, for a script
    sent = run_cli(
        live.data_dir,
        *("send", "--app", "default", "--user", "alice", "--title", "Hi", "--body", "there"),
        *("--data", "order=42", "--wait", "--timeout", "60", "--json"),
        env=live.env,
    )

    # Then each device's outcome is printed, as the running server delivered it
    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    assert result["status"] in {"completed", "partially_failed"}
    outcomes = {d["device_id"]: d for d in result["deliveries"]}
    assert outcomes[known]["status"] == "sent"
    assert outcomes[known]["platform"] == "webpush"
    assert outcomes[forgotten]["status"] != "sent"
    assert outcomes[forgotten]["error"]

    # And for people: one row per device
    again = run_cli(
        live.data_dir,
        *("send", "--app", "default", "--user", "alice", "--title", "Hi", "--wait"),
        env=live.env,
    )
    assert again.returncode == 0, again.stderr
    assert f"{known}  webpush  sent" in again.stdout.splitlines()
    assert "deliveries:" in again.stdout


def test_send_refusals_are_one_line_exit_2(live: Server) -> None:
    no_target = run_cli(live.data_dir, "send", "--app", "default", "--title", "Hi", env=live.env)
    assert no_target.returncode == 2
    assert len(no_target.stderr.strip().splitlines()) == 1
    assert "target" in no_target.stderr
    bad_var = run_cli(
        live.data_dir, "send", "--app", "default", "--user", "a", "--var", "x", env=live.env
    )
    assert bad_var.returncode == 2
    assert "--var takes KEY=VALUE" in bad_var.stderr
    unknown = run_cli(
        live.data_dir, "send", "--app", "default", "--user", "a", "--template", "nope", env=live.env
    )
    assert unknown.returncode == 2
    assert "unknown_template" in unknown.stderr


def test_send_template_vars_parse_as_json(live: Server) -> None:
    # Given a template reading a number and a string
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin_key}"})
    with http:
        made = http.post(
            "/v1/templates",
            json={
                "code": "order",
                "default_locale": "en",
                "variants": {"en": {"title": "{{ n + 1 }} for {{ who }}"}},
            },
        )
        assert made.status_code == 201, made.text
        sent = run_cli(
            live.data_dir,
            *("send", "--app", "default", "--user", "a", "--template", "order"),
            *("--var", "n=41", "--var", "who=bob", "--json"),
            env=live.env,
        )
        assert sent.returncode == 0, sent.stderr
        row = http.get(f"/v1/notifications/{json.loads(sent.stdout)['id']}").json()
    # Then the number stayed a number: the title renders 41 + 1
    assert row["template"]["code"] == "order"
    assert row["message"]["title"] == "42 for bob"
