"""apns_e2e: N APNs device tokens against nginx answering as APNs over HTTP/2 (token auth with
a .p8 key made for the run); the shared end-to-end run of bench/e2e.py."""

from __future__ import annotations

from bench import e2e
from bench.harness import Context, Result
from bench.sinks.apns import APNsSink

SPEC = e2e.Spec(
    scenario="apns_e2e",
    default_n=20_000,
    sink=APNsSink,
    goal=e2e.Goal(rate=2500),
)


def run(ctx: Context) -> list[Result]:
    return e2e.run(ctx, SPEC)
