"""webpush_e2e: N Web Push devices, notifications of `BATCH` device ids each accepted through the
API, until the last delivery is recorded. Deliveries/s and end-to-end p50/p99 (post -> arrival
at the sink). On the services profile it runs with one worker process and again with two."""

from __future__ import annotations

import time

from bench import flow, seed
from bench.deploy import Deployment
from bench.harness import Context, Result, Sampler, cpu_ms_per_item, load1, percentile, wait_quiet
from bench.sinks.nginx import NginxSink

DEFAULT_N = 20_000
BATCH = 100


def run(ctx: Context) -> list[Result]:
    counts = [1, 2] if ctx.profile == "services" else [1]
    if ctx.workers > 1:
        counts = [ctx.workers]
    return [_one(ctx, workers) for workers in counts]


def _one(ctx: Context, workers: int) -> Result:
    n = ctx.size(DEFAULT_N)
    name = f"webpush_e2e-{ctx.profile}-{workers}w"
    workdir = ctx.workdir / name
    sink = NginxSink(workdir / "nginx", ctx.ca)
    deployment = Deployment(ctx.profile, workdir / "pushgate", ca=ctx.ca.ca)
    try:
        sink.start()
        deployment.prepare()
        assert deployment.app_id is not None
        names = [f"{deployment.tag}-{i:07d}" for i in range(n)]
        subs = seed.subscriptions([sink.endpoint(x) for x in names])
        began = time.monotonic()
        ids = seed.insert_devices(deployment.database_url, deployment.app_id, subs)
        ctx.say(f"{name}: {n} devices seeded in {time.monotonic() - began:.1f} s")
        deployment.start(workers=workers)
        bodies = [
            {
                "device_ids": [str(i) for i in ids[start : start + BATCH]],
                "title": "bench",
                "body": "webpush_e2e",
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
        paths = [sink.path(x) for x in names]
        ok, verdict, duplicates = arrivals.check(paths)
        statuses = stored["statuses"]
        if statuses != {"sent": n}:
            ok = False
            verdict += f"; database: {statuses}"
        latencies = flow.latencies_ms(arrivals, paths, posted, BATCH)
        first = min(posted)
        recorded = stored["last_recorded"].timestamp()
        figures = {
            "deliveries_per_s": n / (recorded - first),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "sink_arrivals_per_s": n / (arrivals.last_at - first),
            "duplicates": float(duplicates),
            "retries": float(stored["extra_attempts"]),
            "connections": float(len(arrivals.connections)),
        }
        cpu = sampler.cpu_seconds()
        figures |= cpu_ms_per_item(cpu, list(deployment.pids_seen), n)
        target = ">= 3000/s and >= 4x baseline" if ctx.profile == "services" else ">= 50% services"
        return Result(
            scenario="webpush_e2e",
            profile=ctx.profile,
            params={"n": n, "per_notification": BATCH, "workers": workers},
            figures=figures,
            headline="deliveries_per_s",
            unit="/s",
            target=target,
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
