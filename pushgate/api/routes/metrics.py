"""`/metrics`: this process's Prometheus metrics (every instrument of the runtime, the
worker's too under `pushgate serve`). No API key; `metrics.token` and `metrics.allow` may
restrict it (metrics/page.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from pushgate.api.deps import RuntimeDep
from pushgate.metrics import page

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    client = request.client.host if request.client is not None else None
    refused = page.refusal(runtime.settings.metrics, client, request.headers.get("authorization"))
    if refused is not None:
        raise refused
    return Response(runtime.metrics.render(), media_type=page.CONTENT_TYPE)
