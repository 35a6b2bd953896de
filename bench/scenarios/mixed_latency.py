"""mixed_latency: one worker process against an upstream that takes 50 ms per request (the test
suite's Python fake, which also verifies VAPID and decrypts every payload): deliveries/s at the
concurrency settings. Run at the default settings and with the per-host connection limit raised
to the send concurrency, since a real push service is one host for all its subscriptions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import cleanup, flow, seed
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

DEFAULT_N = 10_000
DELAY = 0.05
BATCH = 250
REPO = Path(__file__).resolve().parents[2]
VARIANTS: list[tuple[str, dict[str, str]]] = [
    ("defaults", {}),
    (
        "per_host=200",
        {
            "PUSHGATE_WEBPUSH__CONNECTIONS_PER_HOST": "200",
            "PUSHGATE_WEBPUSH__CONNECTION_LIMIT": "200",
            "PUSHGATE_WORKER__CONCURRENCY": "200",
        },
    ),
]


def run(ctx: Context) -> list[Result]:
    return [_one(ctx, label, settings) for label, settings in VARIANTS]


def _start_fake(directory: Path, count: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "fake.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.sinks.fake"),
            *("--count", str(count), "--delay", str(DELAY), "--dir", str(directory)),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _undo[process.pid] = cleanup.register("the fake push service", lambda: _stop_fake(process))
    log.close()
    ready = directory / "subscriptions.json"
    deadline = time.monotonic() + 60 + count / 500
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_fake(process)
            raise ScenarioError(f"the fake did not start: {(directory / 'fake.log').read_text()}")
        time.sleep(0.1)
    return process, json.loads(ready.read_text())


# The fakes running, by pid: their entries in bench.cleanup.
_undo: dict[int, int] = {}


def _stop_fake(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    cleanup.forget(_undo.pop(process.pid, None))


def _one(ctx: Context, label: str, settings: dict[str, str]) -> Result:
    n = ctx.size(DEFAULT_N)
    name = f"mixed_latency-{ctx.profile}-{label.replace('=', '')}"
    workdir = ctx.workdir / name
    fake, ready = _start_fake(workdir / "fake", n)
    deployment = Deployment(
        ctx.profile, workdir / "pushgate", ca=Path(ready["ca"]), settings=dict(settings)
    )
    try:
        deployment.prepare()
        assert deployment.app_id is not None
        subs = [
            seed.Subscription(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"])
            for s in ready["subscriptions"]
        ]
        ids = seed.insert_devices(deployment.database_url, deployment.app_id, subs)
        deployment.start(workers=1)
        bodies = [
            {
                "device_ids": [str(i) for i in ids[start : start + BATCH]],
                "title": "bench",
                "body": "mixed_latency",
            }
            for start in range(0, n, BATCH)
        ]
        quiet = wait_quiet(ctx)
        load_start = load1()
        pids = deployment.pids() | {"fake": fake.pid}
        busiest = deployment.pids().get("worker1") or deployment.pids()["serve"]
        with Sampler(pids) as sampler, flow.Profiler(ctx.spy(name), busiest):
            posted = flow.post_notifications(deployment.url, deployment.send_key, bodies)
            flow.wait_done(
                deployment.database_url,
                notifications=len(bodies),
                total=n,
                timeout=ctx.timeout(n) + n * DELAY / 10,
            )
        load_end = load1()
        stored = flow.summary(deployment.database_url)
        deployment.stop()
        _stop_fake(fake)
        summary = json.loads((workdir / "fake" / "summary.json").read_text())
        counts: dict[str, int] = summary["counts"]
        wanted = {s.endpoint.rsplit("/", 1)[-1] for s in subs}
        missing = len(wanted - counts.keys())
        duplicates = sum(c - 1 for c in counts.values() if c > 1)
        statuses = stored["statuses"]
        ok = (
            missing == 0
            and summary["unreadable_payloads"] == 0
            and statuses == {"sent": n}
            and set(summary["statuses"]) == {"201"}
        )
        check = (
            f"{len(wanted) - missing}/{n} arrived decrypted, {duplicates} duplicate(s), "
            f"{summary['unreadable_payloads']} unreadable, fake statuses {summary['statuses']}, "
            f"database {statuses}"
        )
        first = min(posted)
        recorded = stored["last_recorded"].timestamp()
        figures = {
            "deliveries_per_s": n / (recorded - first),
            "duplicates": float(duplicates),
            "connections": float(summary["connections"]),
            "retries": float(stored["extra_attempts"]),
        }
        cpu = sampler.cpu_seconds()
        figures |= cpu_ms_per_item(cpu, list(deployment.pids_seen), n)
        return Result(
            scenario="mixed_latency",
            profile=ctx.profile,
            params={"n": n, "upstream_ms": round(DELAY * 1000), "settings": label, "workers": 1},
            figures=figures,
            headline="deliveries_per_s",
            unit="/s",
            target=">= 2000/s (one worker)",
            met=figures["deliveries_per_s"] >= 2000 if ctx.profile == "services" else None,
            correct=ok,
            check=check,
            load=(load_start, load_end),
            quiet=quiet,
            cpu_seconds=cpu,
            peak_rss_mb=sampler.peak_rss_mb(),
        )
    finally:
        deployment.cleanup()
        _stop_fake(fake)
