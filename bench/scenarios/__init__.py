"""The scenarios, by name, in the order `--scenario all` runs them."""

from __future__ import annotations

from collections.abc import Callable

from bench.harness import Context, Result
from bench.scenarios import api_accept, baseline, broadcast, mixed_latency, webpush_e2e

Run = Callable[[Context], list[Result]]

# name -> (profiles it makes sense on, run). `fcm_e2e` / `apns_e2e` slot in here with their
# sinks once those providers exist.
SCENARIOS: dict[str, tuple[tuple[str, ...], Run]] = {
    "baseline": (("none",), baseline.run),
    "webpush_e2e": (("services", "embedded"), webpush_e2e.run),
    "api_accept": (("services", "embedded"), api_accept.run),
    "mixed_latency": (("services", "embedded"), mixed_latency.run),
    "broadcast": (("services", "embedded"), broadcast.run),
}
