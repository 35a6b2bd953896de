"""api_accept: `POST /v1/notifications` from wrk (another process, one thread): the most requests
a second the API accepts, and the latency at a fixed ~1,000 requests a second (wrk paced by a
Lua `delay()`, randomised so the connections do not march in step).

Services profile: `pushgate api` alone (the dispatch jobs it publishes wait in RabbitMQ and are
deleted with the queues), so the API has the machine to itself. Embedded: `pushgate serve`, whose
worker dispatches each notification as it would in production (to a device that does not exist:
no sends). Correct when every answer was 202 and the database holds a notification for each.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import orjson
from sqlalchemy import func, select

from bench.deploy import Deployment
from bench.harness import (
    Context,
    Result,
    Sampler,
    ScenarioError,
    cpu_ms_per_item,
    load1,
    wait_quiet,
)
from pushgate.store import db
from pushgate.store.tables import Notification

DURATION = 10
WARMUP = 3
# More concurrent requests than the database pool has connections (10 embedded, 10 + 10
# overflow on PostgreSQL) stall the API: each request holds two connections (the API-key
# lookup's session and accept's own), so beyond that every request waits for one held by
# another until the 30 s pool timeout. Kept below it; see bench/README.md.
MAX_CONNECTIONS = 8
RATE = 1000
RATE_CONNECTIONS = 8
P99_TARGET_MS = 25.0

SCRIPT = """\
wrk.method = "POST"
wrk.path = "/v1/notifications"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.body = '{body}'
{delay}
"""
DELAY = """\
function delay()
  return math.random({low}, {high})
end
"""


def run(ctx: Context) -> list[Result]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise ScenarioError("wrk is not installed (make bench installs it)")
    workdir = ctx.workdir / f"api_accept-{ctx.profile}"
    deployment = Deployment(ctx.profile, workdir / "pushgate", ca=ctx.ca.ca)
    try:
        deployment.prepare()
        deployment.start_api_only()
        body = orjson.dumps(
            {"device_ids": [str(uuid.uuid4())], "title": "bench", "body": "api_accept"}
        ).decode()
        plain = workdir / "post.lua"
        plain.write_text(SCRIPT.format(key=deployment.send_key, body=body, delay=""))
        _wrk(wrk, deployment.url, plain, MAX_CONNECTIONS, WARMUP)  # warm caches and pools
        results = []
        quiet = wait_quiet(ctx)
        load_start = load1()
        before = _count(deployment.database_url)
        with Sampler(deployment.pids()) as sampler:
            out = _wrk(wrk, deployment.url, plain, MAX_CONNECTIONS, DURATION)
        results.append(
            _result(ctx, deployment, "max", out, before, quiet, (load_start, load1()), sampler)
        )
        # Paced: each connection waits ~connections/rate seconds (less the answer time)
        # between requests.
        gap_ms = 1000 * RATE_CONNECTIONS / RATE
        latency_ms = max(0.0, out.p50_ms)
        mean = max(1, round(gap_ms - min(latency_ms, gap_ms / 4)))
        paced = workdir / "paced.lua"
        paced.write_text(
            SCRIPT.format(
                key=deployment.send_key,
                body=body,
                delay=DELAY.format(low=max(0, mean // 2), high=mean + mean // 2),
            )
        )
        quiet = wait_quiet(ctx)
        load_start = load1()
        before = _count(deployment.database_url)
        with Sampler(deployment.pids()) as sampler:
            out = _wrk(wrk, deployment.url, paced, RATE_CONNECTIONS, DURATION)
        results.append(
            _result(ctx, deployment, "rate", out, before, quiet, (load_start, load1()), sampler)
        )
        return results
    finally:
        deployment.cleanup()


class WrkOutput:
    def __init__(self, text: str) -> None:
        self.text = text
        self.rps = _number(r"Requests/sec:\s+([\d.]+)", text)
        self.requests = int(_number(r"(\d+) requests in", text))
        self.non_2xx = int(_number(r"Non-2xx or 3xx responses:\s+(\d+)", text, default=0))
        self.errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
        self.p50_ms = _latency("50%", text)
        self.p99_ms = _latency("99%", text)


def _number(pattern: str, text: str, default: float | None = None) -> float:
    found = re.search(pattern, text)
    if found:
        return float(found.group(1))
    if default is None:
        raise ScenarioError(f"cannot read wrk's output: {text[-500:]}")
    return default


def _latency(label: str, text: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not found:
        raise ScenarioError(f"no {label} latency in wrk's output: {text[-500:]}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def _wrk(binary: str, url: str, script: Path, connections: int, seconds: int) -> WrkOutput:
    done = subprocess.run(
        [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    script.with_suffix(".out").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise ScenarioError(f"wrk failed: {done.stderr[-500:]}")
    return WrkOutput(done.stdout)


def _count(url: str) -> int:
    async def read() -> int:
        engine = db.create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                return int(
                    (
                        await connection.execute(select(func.count()).select_from(Notification))
                    ).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _result(
    ctx: Context,
    deployment: Deployment,
    mode: str,
    out: WrkOutput,
    before: int,
    quiet: bool,
    load: tuple[float, float],
    sampler: Sampler,
) -> Result:
    stored = _count(deployment.database_url) - before
    connections = MAX_CONNECTIONS if mode == "max" else RATE_CONNECTIONS
    # wrk stops with up to one request per connection unanswered: stored, not counted by it.
    ok = (
        out.non_2xx == 0
        and out.errors == 0
        and out.requests <= stored <= out.requests + connections
    )
    check = (
        f"{out.requests} answered, {out.non_2xx} non-2xx, {out.errors} socket errors, "
        f"{stored} stored"
    )
    figures = {"req_per_s": out.rps, "p50_ms": out.p50_ms, "p99_ms": out.p99_ms}
    cpu = sampler.cpu_seconds()
    figures |= cpu_ms_per_item(cpu, list(deployment.pids_seen), out.requests)
    if mode == "max":
        target, met = ">= 2500 req/s", out.rps >= 2500 if ctx.profile == "services" else None
    else:
        target = f"p99 < {P99_TARGET_MS:g} ms at ~{RATE}/s"
        met = out.p99_ms < P99_TARGET_MS if ctx.profile == "services" else None
    return Result(
        scenario="api_accept",
        profile=ctx.profile,
        params={"mode": mode, "connections": connections, "seconds": DURATION},
        figures=figures,
        headline="req_per_s" if mode == "max" else "p99_ms",
        unit="req/s" if mode == "max" else "ms",
        target=target,
        met=met,
        correct=ok,
        check=check,
        load=load,
        quiet=quiet,
        cpu_seconds=cpu,
        peak_rss_mb=sampler.peak_rss_mb(),
    )
