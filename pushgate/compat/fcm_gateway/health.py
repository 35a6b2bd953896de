"""The old gateway's `GET /health` fields: its dependencies (`healthy` or `unhealthy` each)
and the worst circuit breaker state; healthy when every dependency is."""

from __future__ import annotations

from pushgate.compat.shapes import Backends, HealthReport
from pushgate.domain.circuit import State
from pushgate.runtime import Runtime

# The old names of pushgate's backend checks (`Runtime.health`).
DEPENDENCIES = {"database": "database", "broker": "broker", "cache": "kv"}
# Worst last: an open circuit sends nothing; a rate-limited one waits out the upstream's
# Retry-After; a half-open one lets a probe through.
SEVERITY = (State.CLOSED, State.HALF_OPEN, State.RATE_LIMITED, State.OPEN)


def report(_runtime: Runtime, backends: Backends) -> HealthReport:
    checks, circuits = backends.checks, backends.circuits
    dependencies = {
        name: "healthy" if checks.get(check) == "ok" else "unhealthy"
        for name, check in DEPENDENCIES.items()
    }
    breaker = max((c.state for c in circuits), key=SEVERITY.index, default=State.CLOSED)
    return HealthReport(
        all(state == "healthy" for state in dependencies.values()),
        {"dependencies": dependencies, "breaker_state": breaker.value},
    )
