"""Steps the sending scenarios share: post notifications through the API, wait until the
database says every delivery is recorded, and optionally profile a process meanwhile."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import seed
from bench.harness import ScenarioError
from bench.sinks.nginx import Arrivals
from pushgate.store import db

POST_CONCURRENCY = 8


async def _post_all(url: str, key: str, bodies: Sequence[dict[str, Any]]) -> list[float]:
    sent_at = [0.0] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(bodies)):
        queue.put_nowait(index)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=60)

    async def poster(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            sent_at[index] = time.time()
            async with http.post(
                f"{url}/v1/notifications", data=orjson.dumps(bodies[index]), headers=headers
            ) as response:
                text = await response.text()
                if response.status != 202:
                    raise ScenarioError(f"POST /v1/notifications: {response.status} {text[:300]}")

    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(poster(http) for _ in range(POST_CONCURRENCY)))
    return sent_at


def post_notifications(url: str, key: str, bodies: Sequence[dict[str, Any]]) -> list[float]:
    """POST each body (a few at a time); the wall-clock time each request was sent."""
    return asyncio.run(_post_all(url, key, bodies))


async def _wait(url: str, notifications: int, total: int, limit: float, poll: float) -> float:
    engine = db.create_engine(url, pool_size=1)
    deadline = time.monotonic() + limit
    try:
        while True:
            progress = await seed.read_progress(engine)
            if (
                progress.notifications >= notifications
                and progress.dispatched >= notifications
                and progress.total >= total
                and progress.finished >= progress.total
            ):
                return time.time()
            if time.monotonic() >= deadline:
                stored = await seed.delivery_summary(engine)
                raise ScenarioError(
                    f"not done after {limit:.0f} s: {progress}; deliveries"
                    f" {stored['statuses']} ({'; '.join(stored['errors']) or 'no errors'})"
                )
            await asyncio.sleep(poll)
    finally:
        await engine.dispose()


def wait_done(
    url: str, *, notifications: int, total: int, timeout: float, poll: float = 0.25
) -> float:
    """Poll the notifications table until every one is dispatched and every delivery has a
    final status; the wall-clock time it saw that. Raises ScenarioError after `timeout`."""
    return asyncio.run(_wait(url, notifications, total, timeout, poll))


def summary(url: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        engine = db.create_engine(url, pool_size=1)
        try:
            return await seed.delivery_summary(engine)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def latencies_ms(
    arrivals: Arrivals, keys: Sequence[str], started: Sequence[float], per: int
) -> list[float]:
    """Sorted end-to-end latencies: first arrival of device i's delivery (`keys[i]`) at the
    sink minus the time its notification (number i // per) was posted."""
    found = []
    for index, key in enumerate(keys):
        at = arrivals.first_at.get(key)
        if at is not None:
            found.append((at - started[index // per]) * 1000)
    return sorted(found)


class Profiler:
    """py-spy recording one process for the measured window (SIGINT makes it write)."""

    def __init__(self, output: Path | None, pid: int) -> None:
        self.output = output
        self.pid = pid
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.output is not None:
            binary = Path(sys.executable).with_name("py-spy")
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--output",
                    str(self.output),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
