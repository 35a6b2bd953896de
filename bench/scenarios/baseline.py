"""baseline: what a plain script does, a synchronous loop calling pywebpush's `webpush()` once per
subscription against the same nginx sink, in the same run: once opening a connection per call,
once through a keep-alive `requests.Session`. The fastest is what pushgate is compared with."""

from __future__ import annotations

import os
import time
import uuid

import requests  # type: ignore[import-untyped,unused-ignore]
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped,unused-ignore]
from pywebpush import webpush  # type: ignore[import-untyped,unused-ignore]

from bench import seed
from bench.harness import Context, Result, Sampler, load1, wait_quiet
from bench.sinks.nginx import NginxSink

DEFAULT_N = 3000
TIME_LIMIT = 60.0
PAYLOAD = '{"title": "bench", "body": "baseline"}'


def run(ctx: Context) -> list[Result]:
    n = min(ctx.size(DEFAULT_N), DEFAULT_N)
    vapid = Vapid(private_key=ec.generate_private_key(ec.SECP256R1()))
    results = []
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(ctx.ca.ca)
    try:
        for mode in ("per_call", "keep_alive"):
            sink = NginxSink(ctx.workdir / "baseline" / mode, ctx.ca)
            try:
                sink.start()
                results.append(_loop(ctx, sink, vapid, mode, n))
            finally:
                sink.stop()
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
    return results


def _loop(ctx: Context, sink: NginxSink, vapid: Vapid, mode: str, n: int) -> Result:
    tag = uuid.uuid4().hex[:8]
    names = [f"{tag}-{i:07d}" for i in range(n)]
    subs = seed.subscriptions([sink.endpoint(x) for x in names])
    session = requests.Session() if mode == "keep_alive" else None
    if session is not None:
        session.verify = str(ctx.ca.ca)
    quiet = wait_quiet(ctx)
    load_start = load1()
    sent = 0
    failed = 0
    with Sampler({f"nginx{i}": p for i, p in enumerate(sink.worker_pids())}) as sampler:
        began = time.perf_counter()
        for sub in subs:
            response = webpush(
                {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                data=PAYLOAD,
                vapid_private_key=vapid,
                vapid_claims={"sub": "mailto:bench@pushgate.example.com"},
                ttl=60,
                requests_session=session,
            )
            sent += 1
            failed += response.status_code != 201
            if time.perf_counter() - began > TIME_LIMIT:
                break
        elapsed = time.perf_counter() - began
    load_end = load1()
    if session is not None:
        session.close()
    sink.stop()
    arrivals = sink.arrivals()
    _, _, duplicates = arrivals.check([sink.path(x) for x in names[:sent]])
    missing = sum(1 for x in names[:sent] if sink.path(x) not in arrivals.counts)
    ok = missing == 0 and failed == 0 and len(arrivals.counts) == sent
    return Result(
        scenario="baseline",
        profile="pywebpush",
        params={"n": sent, "mode": mode},
        figures={"deliveries_per_s": sent / elapsed, "duplicates": float(duplicates)},
        headline="deliveries_per_s",
        unit="/s",
        target="-",
        met=None,
        correct=ok,
        check=f"{sent - missing}/{sent} arrived, {failed} non-201, {duplicates} duplicate(s)",
        load=(load_start, load_end),
        quiet=quiet,
        cpu_seconds=sampler.cpu_seconds(),
    )
