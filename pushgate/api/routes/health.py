"""Liveness and readiness probes.

Readiness answers 503 only when a backend of our own (database, broker, key-value store) is
unreachable: that is when a load balancer should stop sending requests here. An open circuit
to a push service is reported (`status` "degraded", and the `circuits` list) but keeps the
answer 200: one failing upstream is not a reason to take the API out of rotation, since it can
still accept, store and queue notifications for every other upstream, and the waiting
deliveries go out when the circuit closes.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pushgate import __version__
from pushgate.api.deps import RuntimeDep
from pushgate.compat import install as compat

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str
    version: str


class CircuitPublic(BaseModel):
    """A circuit breaker that is not closed: deliveries to that upstream wait."""

    app_id: str
    provider: str
    origin: str
    state: str = Field(description="open, half_open (one probe let through) or rate_limited")
    retry_in: float = Field(description="seconds until deliveries may be tried again")


class Readiness(BaseModel):
    status: str = Field(description="ok, degraded (some circuit is not closed) or unavailable")
    checks: dict[str, str]
    circuits: list[CircuitPublic] = Field(default_factory=list)


@router.get(
    "/health",
    response_model=Liveness,
    summary="Liveness: the process answers",
    description="With a legacy shape that answered `/health` enabled (`compat.enabled`), the"
    " answer is in that shape (`status` healthy or unhealthy, its fields, and `version`), 503"
    " when unhealthy; `/health/ready` keeps this API's shape.",
)
async def health(runtime: RuntimeDep) -> Liveness | JSONResponse:
    if compat.answers_health(runtime.settings):
        status, body = await compat.health(runtime)
        return JSONResponse(body, status_code=status)
    return Liveness(status="ok", version=__version__)


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Readiness: every configured backend is reachable",
    description="Open circuits to push services are listed but do not make this fail.",
    responses={503: {"model": Readiness, "description": "Some backend is not reachable"}},
)
async def ready(runtime: RuntimeDep) -> Readiness | JSONResponse:
    checks, reports = await asyncio.gather(runtime.health(), runtime.open_circuits())
    circuits = [
        CircuitPublic(
            app_id=r.app_id,
            provider=r.provider,
            origin=r.origin,
            state=r.state.value,
            retry_in=r.retry_in,
        )
        for r in reports
    ]
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        body = {
            "status": "unavailable",
            "checks": checks,
            "circuits": [c.model_dump() for c in circuits],
            "error": {
                "code": "backend_unavailable",
                "message": "not reachable: " + ", ".join(failing),
                "details": {name: checks[name] for name in failing},
            },
        }
        return JSONResponse(body, status_code=503)
    return Readiness(status="degraded" if circuits else "ok", checks=checks, circuits=circuits)
