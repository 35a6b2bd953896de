"""End to end through the real CLI: `pushgate serve` as a subprocess, keys made with the CLI,
one device per platform registered over HTTP and read back."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pushgate.settings import ServerSettings

PUSHGATE = [sys.executable, "-m", "pushgate"]
START_TIMEOUT = 30.0
KEY_CACHE_SECONDS = ServerSettings().key_cache_seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
    for name in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "SERVICE_PORT"):
        env.pop(name, None)
    env["PUSHGATE_DATA_DIR"] = str(data_dir)
    # No worker metrics page on the default port: workers of tests running side by side
    # would compete for it (a test that wants the page names a port).
    env["PUSHGATE_METRICS__WORKER_PORT"] = "0"
    return env


def run_cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PUSHGATE, *args],
        env=cli_env(data_dir) | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Server:
    url: str
    admin_key: str
    data_dir: Path
    output: Path
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as started:
        yield started


@contextlib.contextmanager
def serving(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`pushgate serve` on embedded defaults in `tmp_path`, plus `env`; stopped on exit."""
    data_dir = tmp_path / "data"
    port = free_port()
    output = tmp_path / "serve.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [*PUSHGATE, "serve", "--port", str(port)],
            env=cli_env(data_dir) | (env or {}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_started(url, process, output)
        keys = [line for line in output.read_text().splitlines() if line.startswith("pgk_")]
        assert len(keys) == 1, output.read_text()
        yield Server(url, keys[0], data_dir, output, env or {})
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_started(url: str, process: subprocess.Popen[bytes], output: Path) -> None:
    """Wait until the process at `url` answers /health; fail with its output if it stops or
    takes longer than START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    # One client for every look: httpx.get makes a client (and its TLS context) each
    # call, ~25 ms of CPU taken from the starting server at every poll.
    with httpx.Client(timeout=1) as http:
        while True:
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pushgate did not start:\n{output.read_text()}")
            time.sleep(0.1)


def browser_subscription(endpoint: str) -> dict[str, object]:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))},
    }


def test_first_start_prints_admin_key_once(server: Server, tmp_path: Path) -> None:
    # Given a server that created the default app on its first start
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    # Then the printed key works
    response = httpx.get(f"{server.url}/v1/webpush/vapid-public-key", headers=headers)
    assert response.status_code == 200
    assert len(base64.urlsafe_b64decode(response.json()["public_key"] + "==")) == 65
    # And the CLI sees the default app
    listed = run_cli(server.data_dir, "apps", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in json.loads(listed.stdout)["apps"]] == ["default"]


def test_register_one_device_per_platform_and_read_back(server: Server) -> None:
    # Given a subscribe key made with the CLI, as a browser page would hold
    made = run_cli(
        server.data_dir, "keys", "create", "--app", "default", "--scope", "subscribe", "--json"
    )
    assert made.returncode == 0, made.stderr
    subscribe = {"X-API-Key": json.loads(made.stdout)["key"]}
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    bodies = [
        {"platform": "fcm", "token": "fcm-token:APA91b" + "x" * 100, "user_id": "u1"},
        {"platform": "apns", "token": "ab" * 32, "user_id": "u1", "topics": ["news"]},
        {
            "platform": "webpush",
            "user_id": "u1",
            "subscription": browser_subscription("https://fcm.googleapis.com/fcm/send/e1:APA91b"),
        },
    ]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        # When each device registers
        ids = []
        for body in bodies:
            response = http.post("/v1/devices", json=body, headers=subscribe)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        # Then an admin reads them back, one per platform
        listed = http.get("/v1/users/u1/devices", headers=admin)
        assert listed.status_code == 200, listed.text
        assert sorted(d["platform"] for d in listed.json()["items"]) == ["apns", "fcm", "webpush"]
        assert sorted(d["id"] for d in listed.json()["items"]) == sorted(ids)
        # And the subscribe key may not list devices
        assert http.get("/v1/devices", headers=subscribe).status_code == 403


def test_revoked_key_is_refused(server: Server) -> None:
    # Given a key the running server has used (so it holds it in its key cache)
    made = run_cli(
        server.data_dir, "keys", "create", "--app", "default", "--scope", "send", "--json"
    )
    key = json.loads(made.stdout)
    headers = {"Authorization": f"Bearer {key['key']}"}
    url = f"{server.url}/v1/webpush/vapid-public-key"
    assert httpx.get(url, headers=headers).status_code == 200

    # When the CLI revokes it (another process: the server's cache does not hear of it)
    revoked = run_cli(server.data_dir, "keys", "revoke", key["prefix"])
    assert revoked.returncode == 0, revoked.stderr

    # Then the server refuses it once its cache lets go (server.key_cache_seconds), or soon
    # after under a loaded machine
    deadline = time.monotonic() + KEY_CACHE_SECONDS + 10
    with httpx.Client() as http:  # one client for every look (see `server`)
        response = http.get(url, headers=headers)
        while response.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = http.get(url, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_bad_setting_stops_start_with_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {"SERVICE_PORT": "not-a-port"}
    result = subprocess.run(
        [*PUSHGATE, "serve"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "SERVICE_PORT" in result.stderr
