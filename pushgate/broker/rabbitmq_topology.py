"""The layout of pushgate on RabbitMQ, computed from the settings alone: exchange and queue names,
queue arguments, retry delay levels, the headers pushgate's messages carry, and how an outgoing
message is built and routed.

Names (each behind `prefix`): the durable direct exchange `notifications.direct`; the queues
`push.queue`, `dispatch.queue`, `deliver.queue` and `failed.queue`, bound with their logical name
as routing key; and per work queue one delay queue per backoff level (`deliver.retry.5s`), whose
queue-level TTL dead-letters the message back into the exchange with the work queue's key.
Per-message TTLs are never used: RabbitMQ expires only at the head of a queue, so one long delay
would hold back every shorter one queued behind it.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika

from pushgate.broker.base import PUSH, QUEUES, WORK_QUEUES, LetterInfo

EXCHANGE = "notifications.direct"
DEFAULT_DELAY_LEVELS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
ATTEMPTS = "x-pushgate-attempts"
REASON = "x-pushgate-reason"
ORIGIN = "x-pushgate-queue"
FAILED_AT = "x-pushgate-failed-at"


def check_levels(levels: Iterable[float]) -> tuple[float, ...]:
    """Delay levels sorted; each positive and a whole number of milliseconds (the TTL unit)."""
    result = tuple(sorted(set(levels)))
    if not result:
        raise ValueError("at least one delay level is needed")
    for level in result:
        if level <= 0 or not math.isclose(level * 1000, round(level * 1000)):
            raise ValueError(f"delay level {level!r} must be a positive whole number of ms")
    return result


def delay_level(delay: float, levels: Sequence[float]) -> float | None:
    """The level a delay waits in: the smallest level not shorter than the delay (never early),
    the longest level when the delay is longer than all, or None for no delay."""
    if delay <= 0:
        return None
    index = bisect.bisect_left(levels, delay)
    return levels[min(index, len(levels) - 1)]


def level_name(seconds: float) -> str:
    """`250ms`, `1s`, `2m`, `1h`: the largest unit that divides the level evenly."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_attempts(headers: Mapping[str, Any] | None) -> int:
    """The attempt number a message carries; 1 for messages other services publish."""
    value = (headers or {}).get(ATTEMPTS)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(1, int(value)) if value is not None else 1
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]
    # The key binding it to the exchange; delay queues are reached through the default exchange.
    routing_key: str | None


@dataclass(frozen=True)
class Topology:
    """Every name and queue argument, computed from the settings alone."""

    prefix: str = ""
    levels: tuple[float, ...] = DEFAULT_DELAY_LEVELS
    quorum: bool = False
    # `broker.ingress_queue`: the push queue's own name (still bound with the key `push`).
    ingress_queue: str | None = None

    @property
    def exchange(self) -> str:
        return f"{self.prefix}{EXCHANGE}"

    def queue(self, logical: str) -> str:
        if logical == PUSH and self.ingress_queue:
            return f"{self.prefix}{self.ingress_queue}"
        return f"{self.prefix}{logical}.queue"

    def delay_queue(self, logical: str, level: float) -> str:
        return f"{self.prefix}{logical}.retry.{level_name(level)}"

    def queues(self) -> list[QueueSpec]:
        kind: dict[str, Any] = {"x-queue-type": "quorum"} if self.quorum else {}
        specs = [QueueSpec(self.queue(q), dict(kind), q) for q in QUEUES]
        for logical in WORK_QUEUES:
            for level in self.levels:
                arguments = {
                    **kind,
                    "x-message-ttl": round(level * 1000),
                    "x-dead-letter-exchange": self.exchange,
                    "x-dead-letter-routing-key": logical,
                }
                if self.quorum:
                    # Quorum queues dead-letter at most once unless told otherwise.
                    arguments["x-dead-letter-strategy"] = "at-least-once"
                    arguments["x-overflow"] = "reject-publish"
                specs.append(QueueSpec(self.delay_queue(logical, level), arguments, None))
        return specs


# --- outgoing messages -----------------------------------------------------------------------


@dataclass
class Outgoing:
    """A message and where it goes: a routing key on the exchange, or a delay queue's name
    on the default exchange (`via_default`)."""

    routing_key: str
    message: aio_pika.Message
    via_default: bool = False


def persistent_message(
    body: bytes, headers: Mapping[str, Any], *, message_id: str | None = None
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=dict(headers),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id or uuid.uuid4().hex,
        timestamp=datetime.now(UTC),
    )


def letter_info(headers: Mapping[str, Any]) -> LetterInfo:
    """Where a message in `failed` came from, why and when, from the headers it was moved with."""
    failed_at = headers.get(FAILED_AT)
    return LetterInfo(
        origin=str(headers.get(ORIGIN, "")),
        reason=str(headers.get(REASON, "")),
        failed_at=datetime.fromisoformat(failed_at) if isinstance(failed_at, str) else None,
    )


def dead_letter_headers(origin: str, reason: str, attempts: int) -> dict[str, Any]:
    return {
        ORIGIN: origin,
        REASON: reason,
        ATTEMPTS: attempts,
        FAILED_AT: datetime.now(UTC).isoformat(),
    }
