"""The legacy queue consumers' health fields (pushgate/compat/queue_health.py): pybreaker's
one `breaker_state` from pushgate's many breakers, and the ingress queue's name."""

from __future__ import annotations

from pathlib import Path

from pushgate.compat.queue_health import ingress_queue, worst_state
from pushgate.domain.circuit import CircuitReport, State
from pushgate.settings import load_settings


def report(state: State) -> CircuitReport:
    return CircuitReport("app", "fcm", "fcm.googleapis.com", state, 1.0)


def test_breaker_state_is_the_worst_with_rate_limited_read_as_closed() -> None:
    assert worst_state([]) == "closed"
    assert worst_state([report(State.RATE_LIMITED)]) == "closed"
    assert worst_state([report(State.RATE_LIMITED), report(State.HALF_OPEN)]) == "half_open"
    states = [State.HALF_OPEN, State.OPEN, State.CLOSED, State.RATE_LIMITED]
    assert worst_state(report(s) for s in states) == "open"


def test_the_queue_is_push_queue_behind_the_broker_prefix(tmp_path: Path) -> None:
    assert ingress_queue(load_settings(data_dir=tmp_path)) == "push.queue"
    prefixed = load_settings(data_dir=tmp_path, broker={"prefix": "shop."})
    assert ingress_queue(prefixed) == "shop.push.queue"
    # RABBITMQ_QUEUE_NAME (broker.ingress_queue) renames it: the health answer says so.
    renamed = load_settings(data_dir=tmp_path, broker={"prefix": "shop.", "ingress_queue": "push"})
    assert ingress_queue(renamed) == "shop.push"
