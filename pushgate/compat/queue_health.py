"""What the two legacy queue consumers (`template_consumer`, `flask_consumer`) reported on
their health routes, read from pushgate's own state: the name of the ingress queue they
consumed, and the worst state of the circuit breakers."""

from __future__ import annotations

from collections.abc import Iterable

from pushgate.broker import base as broker_base
from pushgate.broker.rabbitmq_topology import Topology
from pushgate.domain.circuit import CircuitReport, State
from pushgate.settings import Settings

# pybreaker's states, worst last. pushgate's `rate_limited` (the upstream asked it to slow
# down: nothing is failing) reads as closed; `/health/ready` lists it as it is.
_RANK = {State.CLOSED: 0, State.RATE_LIMITED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


def ingress_queue(settings: Settings) -> str:
    """The queue legacy producers publish on: `push.queue` (or `broker.ingress_queue`, the
    legacy `RABBITMQ_QUEUE_NAME`) behind the broker's prefix."""
    broker = settings.broker
    return Topology(broker.prefix, ingress_queue=broker.ingress_queue).queue(broker_base.PUSH)


def worst_state(reports: Iterable[CircuitReport]) -> str:
    """`closed`, `half_open` or `open`: the worst state of the breakers reported."""
    worst = max((r.state for r in reports), key=_RANK.__getitem__, default=State.CLOSED)
    return State.CLOSED.value if worst is State.RATE_LIMITED else worst.value
