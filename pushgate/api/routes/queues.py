"""The work queues and the circuit breakers, for operators and the dashboard: each queue's
depth, consumers, messages in flight and rate (queue_stats.py), and the app's circuits.
Admin keys only."""

from __future__ import annotations

from fastapi import APIRouter

from pushgate import queue_stats
from pushgate.api.deps import Admin, RuntimeDep
from pushgate.api.schemas import queues as schemas
from pushgate.domain.circuit import State
from pushgate.runtime import Runtime

router = APIRouter(tags=["queues"])


@router.get("/v1/queues", summary="Every queue's depth, consumers, in-flight messages and rate")
async def list_queues(caller: Admin, runtime: RuntimeDep) -> schemas.QueuesPublic:
    # The queues are the installation's, shared by every app: any app's admin key sees them.
    stats = await queue_stats.read(runtime.kv, runtime.broker)
    return schemas.QueuesPublic(
        queues=[
            schemas.QueuePublic(
                name=s.name,
                depth=s.depth,
                consumers=s.consumers,
                in_flight=s.in_flight,
                rate_per_second=s.rate_per_second,
            )
            for s in stats
        ]
    )


@router.get("/v1/circuits", summary="The app's circuit breakers and their states")
async def list_circuits(caller: Admin, runtime: RuntimeDep) -> schemas.CircuitsPublic:
    return schemas.CircuitsPublic(circuits=await circuits_of(runtime, str(caller.app_id)))


async def circuits_of(runtime: Runtime, app_id: str) -> list[schemas.CircuitPublic]:
    """The app's circuits that are not closed, from every worker (shared through the key-value
    store), and the closed ones this process's breakers know (in `serve`, the worker's)."""
    found = {
        (r.provider, r.origin): schemas.CircuitPublic(
            provider=r.provider, origin=r.origin, state=r.state.value, retry_in=r.retry_in
        )
        for r in await runtime.open_circuits()
        if r.app_id == app_id
    }
    for (owner, provider, origin), breaker in list(runtime.circuits.breakers.items()):
        if owner == app_id and breaker.state is State.CLOSED:
            found.setdefault(
                (provider, origin),
                schemas.CircuitPublic(
                    provider=provider, origin=origin, state="closed", retry_in=0.0
                ),
            )
    return [found[key] for key in sorted(found)]
