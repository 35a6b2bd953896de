"""`make run` listens where the settings say (PUSHGATE_SERVER__PORT, then SERVICE_PORT), and
`make run PORT=... HOST=...` on make's command line wins over both."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_serve_cli import START_TIMEOUT, cli_env, free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def serve_command(*make_args: str, **env: str) -> str:
    """The `pushgate serve` line `make run` would run."""
    result = subprocess.run(
        ["make", "-n", "-o", ".venv/.run-deps", "run", *make_args],
        cwd=ROOT,
        env={**cli_env(Path("/nonexistent")), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [line] = [line for line in result.stdout.splitlines() if "pushgate serve" in line]
    return " ".join(line.split())


def test_make_run_leaves_host_and_port_to_the_settings() -> None:
    assert serve_command().endswith("pushgate serve")
    # a HOST or PORT in the environment is the shell's, not an instruction to pushgate
    assert serve_command(PORT="7000", HOST="example").endswith("pushgate serve")


def test_make_run_port_and_host_on_the_command_line_win() -> None:
    line = serve_command("PORT=9001", "HOST=0.0.0.0", PUSHGATE_SERVER__PORT="9100")
    assert line.endswith("pushgate serve --host 0.0.0.0 --port 9001")


@pytest.mark.parametrize("variable", ["SERVICE_PORT", "PUSHGATE_SERVER__PORT"])
def test_make_run_listens_on_the_configured_port(tmp_path: Path, variable: str) -> None:
    # Given a port chosen by the documented setting
    port = free_port()
    env = {**cli_env(tmp_path / "data"), variable: str(port)}

    # When `make run` starts
    with (tmp_path / "run.log").open("w") as log:
        process = subprocess.Popen(
            # -o: run with the installed environment, never (re)install from inside a test
            ["make", "--no-print-directory", "-o", ".venv/.run-deps", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server it starts: one group to stop
        )
    try:
        # Then pushgate answers on that port
        deadline = time.monotonic() + START_TIMEOUT
        # One client for every look: httpx.get makes a client (and its TLS context) each
        # call, ~25 ms of CPU taken from the starting server at every poll.
        with httpx.Client(timeout=1) as http:
            while True:
                try:
                    response = http.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"make run did not listen on {port}:\n{(tmp_path / 'run.log').read_text()}"
                    )
                time.sleep(0.1)
        assert response.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
