"""Request limits across processes, through the real CLI: a key made with `pushgate keys create
--rate-limit`, shown by `keys list`, and two `pushgate api` processes on the services profile
(PostgreSQL, RabbitMQ, Redis) that share its bucket through Redis."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_serve_cli import PUSHGATE, cli_env, free_port, wait_started
from tests.conftest import (
    TEST_SECRETS_KEY,
    delete_rabbitmq_topology,
    run_in_thread,
    truncate_all,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.rabbitmq]

READ = "/v1/webpush/vapid-public-key"


@pytest.fixture
def services_env(
    request: pytest.FixtureRequest, tmp_path: Path, unique_prefix: str
) -> Iterator[dict[str, str]]:
    """The environment of `pushgate` processes on the test's own database, Redis prefix and
    RabbitMQ prefix."""
    database = request.getfixturevalue("postgres_database")
    redis = request.getfixturevalue("redis_url")
    rabbitmq = request.getfixturevalue("rabbitmq_url")

    async def empty() -> None:
        await truncate_all(database)

    run_in_thread(empty)
    env = cli_env(tmp_path / "data")
    env.update(
        PUSHGATE_DATABASE__URL=database,
        PUSHGATE_REDIS__URL=redis,
        PUSHGATE_REDIS__PREFIX=unique_prefix,
        PUSHGATE_BROKER__URL=rabbitmq,
        PUSHGATE_BROKER__PREFIX=unique_prefix,
        PUSHGATE_SECRETS__KEY=TEST_SECRETS_KEY,
        PUSHGATE_LOG__LEVEL="WARNING",
    )
    yield env

    async def clean() -> None:
        await delete_rabbitmq_topology(rabbitmq, unique_prefix)

    run_in_thread(clean)


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [*PUSHGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def two_apis(services_env: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    """Two `pushgate api` processes on the same backends; their base URLs."""
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for n in range(2):
            port = free_port()
            log_path = tmp_path / f"api-{n}.log"
            with log_path.open("w") as log:
                processes.append(
                    subprocess.Popen(
                        [*PUSHGATE, "api", "--port", str(port)],
                        env=services_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for n, (url, process) in enumerate(zip(urls, processes, strict=True)):
            wait_started(url, process, tmp_path / f"api-{n}.log")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_two_api_processes_share_a_keys_limit_through_redis(
    services_env: dict[str, str], two_apis: list[str]
) -> None:
    # Given a key made with its own limit of 4 requests an hour
    cli(services_env, "apps", "create", "shop")
    created = json.loads(
        cli(
            services_env,
            "keys",
            "create",
            "--app",
            "shop",
            "--scope",
            "send",
            "--rate-limit",
            "4/hour",
            "--json",
        )
    )
    headers = {"Authorization": f"Bearer {created['key']}"}
    # And `keys list` shows it
    listed = json.loads(cli(services_env, "keys", "list", "--app", "shop", "--json"))
    assert [k["rate_limit"] for k in listed["keys"]] == ["4/hour"]

    # When it reads through both processes in turn
    with httpx.Client(timeout=10) as http:
        answers = [http.get(f"{two_apis[n % 2]}{READ}", headers=headers) for n in range(5)]

    # Then one bucket counted the requests of both: four went through, counting down, and the
    # fifth was refused (each process alone would have let it through)
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "2", "1", "0", "0"]
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"4"}
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 800  # one token of 4/hour: ~900 s
