"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pushgate import __version__
from pushgate.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Liveness:
    return Liveness(status="ok", version=__version__)


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Readiness: every configured backend is reachable",
    responses={503: {"model": Readiness, "description": "Some backend is not reachable"}},
)
async def ready(runtime: RuntimeDep) -> Readiness | JSONResponse:
    checks = await runtime.health()
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {
                "code": "backend_unavailable",
                "message": "not reachable: " + ", ".join(failing),
                "details": {name: checks[name] for name in failing},
            },
        }
        return JSONResponse(body, status_code=503)
    return Readiness(status="ok", checks=checks)
