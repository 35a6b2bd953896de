"""What the end-to-end scenarios (`webpush_e2e`, `fcm_e2e`, `apns_e2e`) share: N devices of one
platform, notifications of `BATCH` device ids each accepted through the API, until the database
has recorded the last delivery. Deliveries/s and end-to-end p50/p99 (POST -> arrival at the
sink). Correct when every device's delivery arrived at the sink exactly once, the sink found
nothing wrong with any request, and the database says every delivery is `sent`. On the services
profile each runs with one worker process and again with two.

A scenario is a `Spec`: its name, its default size, the sink that answers like its provider (and
knows the devices and settings pointing pushgate at it), and its target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench import flow, seed
from bench.deploy import Deployment
from bench.harness import Context, Result, Sampler, cpu_ms_per_item, load1, percentile, wait_quiet
from bench.sinks.nginx import Arrivals
from bench.sinks.tls import TLSFiles

BATCH = 100


class ProviderSink(Protocol):
    """An nginx sink answering as one provider (bench/sinks/webpush.py, fcm.py, apns.py)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def worker_pids(self) -> list[int]: ...

    def arrivals(self) -> Arrivals: ...

    def settings(self) -> dict[str, str]:
        """The PUSHGATE_* settings that make pushgate send to this sink."""
        ...

    def addresses(self, tag: str, n: int) -> tuple[list[seed.Address], list[str]]:
        """N devices to register, and the key each one's delivery arrives under."""
        ...


@dataclass(frozen=True)
class Goal:
    """The issue's target for the services profile with one worker."""

    rate: float
    baseline: str | None = None  # the baseline rows (their profile) it is compared with
    ratio: float | None = None  # the multiple of the fastest of those rows it must reach

    def describe(self) -> str:
        text = f">= {self.rate:g}/s"
        return text + (f" and >= {self.ratio:g}x baseline" if self.ratio else "")


@dataclass(frozen=True)
class Spec:
    scenario: str
    default_n: int
    sink: Callable[[Path, TLSFiles], ProviderSink]
    goal: Goal


def run(ctx: Context, spec: Spec) -> list[Result]:
    counts = [1, 2] if ctx.profile == "services" else [1]
    if ctx.workers > 1:
        counts = [ctx.workers]
    return [_one(ctx, spec, workers) for workers in counts]


def _one(ctx: Context, spec: Spec, workers: int) -> Result:
    n = ctx.size(spec.default_n)
    name = f"{spec.scenario}-{ctx.profile}-{workers}w"
    workdir = ctx.workdir / name
    sink = spec.sink(workdir / "nginx", ctx.ca)
    deployment = Deployment(
        ctx.profile, workdir / "pushgate", ca=ctx.ca.ca, settings=sink.settings()
    )
    try:
        sink.start()
        deployment.prepare()
        assert deployment.app_id is not None
        addresses, keys = sink.addresses(deployment.tag, n)
        began = time.monotonic()
        ids = seed.insert_addresses(deployment.database_url, deployment.app_id, addresses)
        ctx.say(f"{name}: {n} devices seeded in {time.monotonic() - began:.1f} s")
        deployment.start(workers=workers)
        bodies = [
            {
                "device_ids": [str(i) for i in ids[start : start + BATCH]],
                "title": "bench",
                "body": spec.scenario,
                "data": {"n": str(start)},
            }
            for start in range(0, n, BATCH)
        ]
        quiet = wait_quiet(ctx)
        load_start = load1()
        pids = deployment.pids() | {f"nginx{i}": p for i, p in enumerate(sink.worker_pids())}
        busiest = deployment.pids().get("worker1") or deployment.pids()["serve"]
        with Sampler(pids) as sampler, flow.Profiler(ctx.spy(name), busiest):
            posted = flow.post_notifications(deployment.url, deployment.send_key, bodies)
            flow.wait_done(
                deployment.database_url,
                notifications=len(bodies),
                total=n,
                timeout=ctx.timeout(n),
            )
        load_end = load1()
        stored = flow.summary(deployment.database_url)
        deployment.stop()
        sink.stop()
        arrivals = sink.arrivals()
        ok, verdict, figures = _verdict(arrivals, keys, stored, posted)
        cpu = sampler.cpu_seconds()
        figures |= cpu_ms_per_item(cpu, list(deployment.pids_seen), n)
        return Result(
            scenario=spec.scenario,
            profile=ctx.profile,
            params={"n": n, "per_notification": BATCH, "workers": workers},
            figures=figures,
            headline="deliveries_per_s",
            unit="/s",
            target=spec.goal.describe() if ctx.profile == "services" else ">= 50% services",
            met=None,
            correct=ok,
            check=verdict,
            load=(load_start, load_end),
            quiet=quiet,
            cpu_seconds=cpu,
            peak_rss_mb=sampler.peak_rss_mb(),
        )
    finally:
        deployment.cleanup()
        sink.stop()


def _verdict(
    arrivals: Arrivals, keys: list[str], stored: dict[str, Any], posted: list[float]
) -> tuple[bool, str, dict[str, float]]:
    """(correct, the check's one line, the row's figures) from what the sink logged and what
    the database recorded."""
    n = len(keys)
    ok, verdict, duplicates = arrivals.check(keys)
    statuses = stored["statuses"]
    if statuses != {"sent": n}:
        ok = False
        verdict += f"; database: {statuses} ({'; '.join(stored['errors'])})"
    latencies = flow.latencies_ms(arrivals, keys, posted, BATCH)
    first = min(posted)
    recorded = stored["last_recorded"].timestamp()
    figures = {
        "deliveries_per_s": n / (recorded - first),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "sink_arrivals_per_s": n / (arrivals.last_at - first) if arrivals.last_at else 0.0,
        "duplicates": float(duplicates),
        "retries": float(stored["extra_attempts"]),
        "connections": float(len(arrivals.connections)),
    }
    return ok, verdict, figures | arrivals.figures
