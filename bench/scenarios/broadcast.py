"""broadcast: one `"broadcast": true` notification to N registered devices (the target run is
1,000,000: `--broadcast-n 1000000`), the sends going to the nginx sink. Fan-out rate (deliveries
created per second, from accept to the end of dispatch), delivery rate, and the peak RSS of every
pushgate process. Correct when every device's endpoint got exactly its one message. On the
services profile a dispatch-only worker runs beside the senders; with `webpush_e2e` in the same
run, the delivery rate is also judged against its rate (at least 90%, see `__main__._judge`)."""

from __future__ import annotations

import time

from bench import flow, seed
from bench.deploy import Deployment
from bench.harness import Context, Result, Sampler, cpu_ms_per_item, load1, wait_quiet
from bench.sinks.webpush import WebPushSink

DEFAULT_N = 100_000
RSS_LIMIT_MB = 300.0


def run(ctx: Context) -> list[Result]:
    n = ctx.broadcast_n or ctx.size(DEFAULT_N)
    name = f"broadcast-{ctx.profile}"
    workdir = ctx.workdir / name
    sink = WebPushSink(workdir / "nginx", ctx.ca)
    deployment = Deployment(ctx.profile, workdir / "pushgate", ca=ctx.ca.ca)
    try:
        sink.start()
        deployment.prepare()
        assert deployment.app_id is not None
        names = [f"{deployment.tag}-{i:07d}" for i in range(n)]
        subs = seed.subscriptions([sink.endpoint(x) for x in names])
        began = time.monotonic()
        seed.insert_devices(
            deployment.database_url, deployment.app_id, subs, users=ctx.broadcast_users
        )
        del subs
        ctx.say(f"{name}: {n} devices seeded in {time.monotonic() - began:.1f} s")
        # Services: a dispatch-only worker beside the senders, as docs/operations.md advises
        # for broadcasts, so the fan-out does not wait its turn on the senders' event loop.
        dispatchers = 1 if ctx.profile == "services" else 0
        deployment.start(workers=ctx.workers, dispatchers=dispatchers)
        quiet = wait_quiet(ctx)
        load_start = load1()
        pids = deployment.pids() | {f"nginx{i}": p for i, p in enumerate(sink.worker_pids())}
        busiest = deployment.pids().get("worker1") or deployment.pids()["serve"]
        with Sampler(pids) as sampler, flow.Profiler(ctx.spy(name), busiest):
            posted = flow.post_notifications(
                deployment.url,
                deployment.send_key,
                [{"broadcast": True, "title": "bench", "body": "broadcast", "ttl": 86400}],
            )
            flow.wait_done(
                deployment.database_url,
                notifications=1,
                total=n,
                timeout=ctx.timeout(n),
                poll=1.0,
            )
        load_end = load1()
        stored = flow.summary(deployment.database_url)
        deployment.stop()
        sink.stop()
        arrivals = sink.arrivals()
        ok, verdict, duplicates = arrivals.check([sink.path(x) for x in names])
        statuses = stored["statuses"]
        if statuses != {"sent": n}:
            ok = False
            verdict += f"; database: {statuses}"
        first = posted[0]
        dispatched = stored["last_dispatched"].timestamp()
        recorded = stored["last_recorded"].timestamp()
        rss = sampler.peak_rss_mb()
        pushgate_rss = {k: v for k, v in rss.items() if not k.startswith("nginx")}
        figures = {
            "fanout_per_s": n / (dispatched - first),
            "deliveries_per_s": n / (recorded - first),
            "max_rss_mb": max(pushgate_rss.values(), default=0.0),
            "duplicates": float(duplicates),
            "retries": float(stored["extra_attempts"]),
        }
        cpu = sampler.cpu_seconds()
        figures |= cpu_ms_per_item(cpu, list(deployment.pids_seen), n)
        met = figures["fanout_per_s"] >= 20_000 and figures["max_rss_mb"] < RSS_LIMIT_MB
        row = Result(
            scenario="broadcast",
            profile=ctx.profile,
            params={
                "n": n,
                "workers": ctx.workers if ctx.profile == "services" else 1,
                "dispatchers": dispatchers,
                **({"users": 1} if ctx.broadcast_users else {}),
            },
            figures=figures,
            headline="fanout_per_s",
            unit="/s",
            target=f">= 20000/s, RSS < {RSS_LIMIT_MB:g} MB",
            met=met if ctx.profile == "services" else None,
            correct=ok,
            check=verdict,
            load=(load_start, load_end),
            quiet=quiet,
            cpu_seconds=cpu,
            peak_rss_mb=rss,
        )
        return [row]
    finally:
        deployment.cleanup()
        sink.stop()
