"""webpush_e2e: N Web Push devices (real P-256 keys: pushgate encrypts every message) against
nginx answering 201 as a push service; the shared end-to-end run of bench/e2e.py."""

from __future__ import annotations

from bench import e2e
from bench.harness import Context, Result
from bench.sinks.webpush import WebPushSink

SPEC = e2e.Spec(
    scenario="webpush_e2e",
    default_n=20_000,
    sink=WebPushSink,
    goal=e2e.Goal(rate=3000, baseline="pywebpush", ratio=4),
)


def run(ctx: Context) -> list[Result]:
    return e2e.run(ctx, SPEC)
