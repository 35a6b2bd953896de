"""The health checks of the container files, run as written against real pushgate processes:
the image's HEALTHCHECK and the compose api's against `pushgate serve`, the compose worker's
against `pushgate worker`'s metrics page. Each passes once the process answers and fails while
nothing listens (a check that cannot fail would hide a dead container)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.test_serve_cli import PUSHGATE, Server, cli_env, free_port
from tests.container_files import read_compose, read_dockerfile

START_TIMEOUT = 30.0


def run_check(command: list[str], env: dict[str, str]) -> int:
    """Run a health check as Docker would, with this interpreter for the image's `python`."""
    argv = command[1:] if command[0] == "CMD" else list(command)
    assert argv[0] == "python"
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return result.returncode


def test_the_api_health_checks_pass_on_a_running_api_and_fail_without_one(
    server: Server, tmp_path: Path
) -> None:
    # Given the image's check and the compose api's, and pushgate serving on a port
    checks = [
        read_dockerfile().healthcheck()[1],
        read_compose()["services"]["api"]["healthcheck"]["test"],
    ]
    port = server.url.rsplit(":", 1)[1]
    env = cli_env(tmp_path) | {"PUSHGATE_SERVER__PORT": port}

    # When each runs against it (its port given by either name), and against a port where
    # nothing listens
    answered = [run_check(check, env) for check in checks]
    legacy = [run_check(check, cli_env(tmp_path) | {"SERVICE_PORT": port}) for check in checks]
    closed = [
        run_check(check, env | {"PUSHGATE_SERVER__PORT": str(free_port())}) for check in checks
    ]

    # Then they pass on the API and fail without it
    assert answered == [0, 0]
    assert legacy == [0, 0]
    assert all(code != 0 for code in closed)


@pytest.mark.parametrize(
    "closed",
    [{}, {"PUSHGATE_METRICS__TOKEN": "scrape-secret"}],
    ids=["open page", "page behind a token"],
)
def test_the_worker_health_check_passes_once_a_worker_serves_its_metrics(
    tmp_path: Path, closed: dict[str, str]
) -> None:
    # Given the compose worker's check and a worker about to start on its own metrics port
    # (its page open, or answering 401 without the scrape token: alive either way)
    check = read_compose()["services"]["worker"]["healthcheck"]["test"]
    env = cli_env(tmp_path / "data") | {
        "PUSHGATE_METRICS__WORKER_PORT": str(free_port()),
        "PUSHGATE_METRICS__WORKER_HOST": "127.0.0.1",
        **closed,
    }
    assert run_check(check, env) != 0

    # When `pushgate worker` runs (embedded backends in tmp_path)
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen(
            [*PUSHGATE, "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while run_check(check, env) != 0:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no metrics page:\n{log.read_text()}"
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    # Then the check passed while it ran, and the worker stopped cleanly on SIGTERM
    assert worker.returncode == 0, log.read_text()
