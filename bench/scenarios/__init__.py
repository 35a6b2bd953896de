"""The scenarios, by name, in the order `--scenario all` runs them."""

from __future__ import annotations

from collections.abc import Callable

from bench.e2e import Spec
from bench.harness import Context, Result
from bench.scenarios import (
    api_accept,
    apns_e2e,
    baseline,
    broadcast,
    fcm_e2e,
    mixed_latency,
    webpush_e2e,
)

Run = Callable[[Context], list[Result]]

# name -> (profiles it makes sense on, run).
SCENARIOS: dict[str, tuple[tuple[str, ...], Run]] = {
    "baseline": (("none",), baseline.run),
    "webpush_e2e": (("services", "embedded"), webpush_e2e.run),
    "fcm_e2e": (("services", "embedded"), fcm_e2e.run),
    "apns_e2e": (("services", "embedded"), apns_e2e.run),
    "api_accept": (("services", "embedded"), api_accept.run),
    "mixed_latency": (("services", "embedded"), mixed_latency.run),
    "broadcast": (("services", "embedded"), broadcast.run),
}

# The end-to-end scenarios by name: their targets are judged across rows (bench/__main__.py).
E2E: dict[str, Spec] = {
    spec.scenario: spec for spec in (webpush_e2e.SPEC, fcm_e2e.SPEC, apns_e2e.SPEC)
}
