"""A bench run stopped with SIGTERM or Ctrl-C leaves nothing behind: the pushgate processes it
started are stopped, its database dropped, its queues and keys deleted, its data removed.

The run here is the bench's own deployment code (bench/deploy.py) under the bench's entry
point (`bench.cleanup.run`, which `python -m bench` runs in), interrupted once pushgate is up
and with no scenario code of its own to clean up: the cleanup registry does it all. (A whole
`python -m bench` also needs nginx and the bench's own packages, which the test suite has not.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aio_pika
import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
from redis import asyncio as aioredis

from bench import deploy
from pushgate.broker.rabbitmq_topology import Topology
from tests.conftest import POSTGRES_URL, RABBITMQ_URL, REDIS_URL, need_service

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0

DRIVER = """
import sys, time
from pathlib import Path
import certifi
from bench import cleanup
from bench.deploy import Deployment

def body() -> int:
    deployment = Deployment(sys.argv[1], Path(sys.argv[2]), ca=Path(certifi.where()))
    deployment.prepare()
    deployment.start(workers=1)
    print("started", deployment.tag, flush=True)
    time.sleep(600)  # a scenario sending; no finally of its own
    return 0

sys.exit(cleanup.run(body))
"""


def children(pid: int) -> list[int]:
    """Every process descended from `pid`."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            pending.extend(kids)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def leftovers(tag: str) -> list[str]:
    found = []
    conn = await asyncpg.connect(deploy.POSTGRES_ADMIN)
    try:
        name = f"pushgate_bench_{tag}"
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            found.append(f"database {name}")
    finally:
        await conn.close()
    connection = await aio_pika.connect(deploy.RABBITMQ_URL)
    try:
        for spec in Topology(f"bench-{tag}.").queues():
            channel = await connection.channel()
            try:
                await channel.declare_queue(spec.name, passive=True)
                found.append(f"queue {spec.name}")
            except aio_pika.exceptions.ChannelClosed:
                pass
    finally:
        await connection.close()
    client = aioredis.from_url(deploy.REDIS_URL)
    try:
        found.extend([f"key {k!r}" async for k in client.scan_iter(match=f"bench-{tag}:*")])
    finally:
        await client.aclose()
    return found


@pytest.mark.parametrize(
    ("profile", "signum"),
    [
        ("embedded", signal.SIGTERM),
        # SIGTERM on services too is covered by the unit tests of bench.cleanup; one run each
        # keeps the suite's time down (each starts real pushgate processes).
        pytest.param(
            "services",
            signal.SIGINT,
            marks=[pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis],
        ),
    ],
)
@pytest.mark.timeout(300)
def test_interrupted_bench_leaves_nothing_running_or_stored(
    tmp_path: Path, profile: str, signum: int
) -> None:
    if profile == "services":
        need_service("PostgreSQL", POSTGRES_URL, 5432)
        need_service("RabbitMQ", RABBITMQ_URL, 5672)
        need_service("Redis", REDIS_URL, 6379)
    # Given a bench run whose pushgate is up (api + worker, or serve)
    workdir = tmp_path / "pushgate"
    log = tmp_path / "bench.log"
    with log.open("w") as out:
        bench = subprocess.Popen(
            [sys.executable, "-c", DRIVER, profile, str(workdir)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "started" not in log.read_text():
            assert bench.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        tag = log.read_text().split("started", 1)[1].split()[0]
        started = children(bench.pid)
        assert started, "the bench started no process"
        assert profile == "services" or (workdir / "data").exists()

        # When it is stopped
        os.kill(bench.pid, signum)
        assert bench.wait(timeout=150) == 130, log.read_text()
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
            bench.wait()

    # Then nothing it started runs on, and nothing it stored stays behind
    assert [pid for pid in started if alive(pid)] == []
    assert not (workdir / "data").exists()
    if profile == "services":
        assert asyncio.run(leftovers(tag)) == []
