"""Pure rules of the brokers: delay levels, queue names and header bookkeeping."""

from __future__ import annotations

import pytest

from pushgate.broker.base import IncomingMessage, check_headers, public_headers
from pushgate.broker.rabbitmq_topology import (
    DEFAULT_DELAY_LEVELS,
    Topology,
    check_levels,
    delay_level,
    level_name,
    parse_attempts,
)


@pytest.mark.parametrize(
    ("delay", "level"),
    [
        (0.0, None),
        (-1.0, None),
        (0.001, 1.0),
        (1.0, 1.0),
        (1.01, 5.0),
        (29.9, 30.0),
        (31, 120.0),
        (3600, 3600.0),
        (86_400, 3600.0),
    ],
)
def test_a_delay_is_rounded_up_to_the_next_level(delay: float, level: float | None) -> None:
    assert delay_level(delay, DEFAULT_DELAY_LEVELS) == level


def test_a_delay_never_lands_on_a_shorter_level() -> None:
    levels = check_levels([0.2, 1, 0.5])
    for tenth in range(1, 11):
        chosen = delay_level(tenth / 10, levels)
        assert chosen is not None
        assert chosen >= tenth / 10


def test_levels_are_sorted_deduplicated_and_validated() -> None:
    assert check_levels([5, 1, 5, 0.25]) == (0.25, 1, 5)
    with pytest.raises(ValueError, match="at least one"):
        check_levels([])
    with pytest.raises(ValueError, match="positive"):
        check_levels([0])
    with pytest.raises(ValueError, match="whole number of ms"):
        check_levels([0.0005])


@pytest.mark.parametrize(
    ("seconds", "name"),
    [
        (0.2, "200ms"),
        (1, "1s"),
        (1.5, "1500ms"),
        (30, "30s"),
        (120, "2m"),
        (90, "90s"),
        (3600, "1h"),
    ],
)
def test_level_names(seconds: float, name: str) -> None:
    assert level_name(seconds) == name


def test_topology_names_follow_the_design_and_carry_the_prefix() -> None:
    plain = Topology()
    assert plain.exchange == "notifications.direct"
    assert plain.queue("push") == "push.queue"
    assert plain.queue("failed") == "failed.queue"

    prefixed = Topology("t1.", (0.2, 1.0))
    specs = {s.name: s for s in prefixed.queues()}
    assert specs["t1.push.queue"].routing_key == "push"
    assert specs["t1.failed.queue"].routing_key == "failed"
    retry = specs["t1.deliver.retry.200ms"]
    assert retry.routing_key is None
    assert retry.arguments == {
        "x-message-ttl": 200,
        "x-dead-letter-exchange": "t1.notifications.direct",
        "x-dead-letter-routing-key": "deliver",
    }
    # one delay queue per work queue and level, none for the dead-letter queue
    assert len(specs) == 4 + 3 * 2
    assert not any(name.startswith("t1.failed.retry") for name in specs)


def test_quorum_topology_dead_letters_at_least_once() -> None:
    specs = {s.name: s for s in Topology("", (1.0,), quorum=True).queues()}
    assert specs["deliver.queue"].arguments == {"x-queue-type": "quorum"}
    retry = specs["deliver.retry.1s"].arguments
    assert retry["x-queue-type"] == "quorum"
    assert retry["x-dead-letter-strategy"] == "at-least-once"
    assert retry["x-overflow"] == "reject-publish"


@pytest.mark.parametrize(
    ("headers", "attempts"),
    [
        (None, 1),
        ({}, 1),
        ({"x-pushgate-attempts": 3}, 3),
        ({"x-pushgate-attempts": "4"}, 4),
        ({"x-pushgate-attempts": b"5"}, 5),
        ({"x-pushgate-attempts": "junk"}, 1),
        ({"x-pushgate-attempts": 0}, 1),
    ],
)
def test_attempts_from_headers(headers: dict[str, object] | None, attempts: int) -> None:
    assert parse_attempts(headers) == attempts


def test_public_headers_hide_broker_bookkeeping() -> None:
    raw = {
        "trace": "abc",
        "count": 3,
        "raw": b"bytes",
        "x-pushgate-attempts": 2,
        "x-death": [{"count": 1}],
        "x-first-death-queue": "q",
        "x-custom": "kept",
    }
    assert public_headers(raw) == {"trace": "abc", "count": "3", "raw": "bytes", "x-custom": "kept"}


def test_callers_cannot_set_reserved_headers() -> None:
    assert check_headers({"a": "b"}) == {"a": "b"}
    with pytest.raises(ValueError, match="reserved"):
        check_headers({"X-Pushgate-Reason": "forged"})


def test_a_message_is_settled_once() -> None:
    message = IncomingMessage(
        id="1", queue="deliver", body=b"", headers={}, attempts=1, redelivered=False, receipt=None
    )
    message.retry(2.5, "503")
    assert (message.settled, message.delay, message.reason) == (True, 2.5, "503")
    with pytest.raises(RuntimeError, match="already settled"):
        message.ack()
    with pytest.raises(ValueError, match=">= 0"):
        IncomingMessage(
            id="2",
            queue="deliver",
            body=b"",
            headers={},
            attempts=1,
            redelivered=False,
            receipt=None,
        ).retry(-1)
