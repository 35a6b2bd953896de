"""fcm_e2e: N FCM registration tokens against nginx answering as FCM HTTP v1 (and as the OAuth
token endpoint of the service account made for the run); the shared end-to-end run of
bench/e2e.py. Compared with the requests loop of `baseline` (profile `requests`)."""

from __future__ import annotations

from bench import e2e
from bench.harness import Context, Result
from bench.sinks.fcm import FCMSink

SPEC = e2e.Spec(
    scenario="fcm_e2e",
    default_n=20_000,
    sink=FCMSink,
    goal=e2e.Goal(rate=5000, baseline="requests", ratio=3.5),
)


def run(ctx: Context) -> list[Result]:
    return e2e.run(ctx, SPEC)
