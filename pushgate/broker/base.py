"""The Broker port: batches of opaque job bodies between named queues, settled message by message.

Callers see four logical queues: `push` (ingress from other services), `dispatch` and `deliver`
(internal work) and the dead-letter queue `failed`. Delivery is at least once: a message is
removed only when its handler settles it, and one whose consumer dies comes back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Protocol

PUSH = "push"
DISPATCH = "dispatch"
DELIVER = "deliver"
FAILED = "failed"
WORK_QUEUES = (PUSH, DISPATCH, DELIVER)
QUEUES = (*WORK_QUEUES, FAILED)


class AlreadySettledError(RuntimeError):
    """A message was acked, retried or dead-lettered twice."""


class Settlement(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class LetterInfo:
    """What the broker knows of a message consumed from `failed`: the queue it was dead-lettered
    from, why, and when (None when the broker did not keep the time)."""

    origin: str
    reason: str
    failed_at: datetime | None


@dataclass(eq=False, slots=True)
class IncomingMessage:
    """One job handed to a handler. Settling only records the decision: the consumer applies
    every decision of a batch together (one transaction, or one burst of acks) once the handler
    returns, which is what makes acking cheap.

    Attributes:
        id: stable for the life of the message (kept across retries and dead-lettering).
        queue: the logical queue it was consumed from.
        body: the bytes given to `publish`.
        headers: the caller's headers (never the broker's own bookkeeping).
        attempts: 1 on first delivery, plus one per `retry`. A redelivery after a crashed
            consumer does not count (see `redelivered`).
        redelivered: it was handed out before and not settled (a consumer died or raised).
        receipt: implementation-private handle for settling; callers never touch it.
        letter: for a message consumed from `failed`, where it came from and why.
    """

    id: str
    queue: str
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    redelivered: bool
    receipt: object = field(repr=False)
    settlement: Settlement | None = None
    delay: float = 0.0
    reason: str = ""
    letter: LetterInfo | None = None

    @property
    def settled(self) -> bool:
        return self.settlement is not None

    def ack(self) -> None:
        """Done: remove the message."""
        self._settle(Settlement.ACK, 0.0, "")

    def retry(self, delay: float, reason: str = "") -> None:
        """Deliver it again, to any consumer, no sooner than `delay` seconds from now, with
        `attempts` plus one. RabbitMQ rounds the delay up to its next delay level."""
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self._settle(Settlement.RETRY, delay, reason)

    def dead_letter(self, reason: str) -> None:
        """Move it to `failed` with the reason; body, headers and attempts are kept."""
        self._settle(Settlement.DEAD_LETTER, 0.0, reason)

    def _settle(self, settlement: Settlement, delay: float, reason: str) -> None:
        if self.settlement is not None:
            raise AlreadySettledError(f"message {self.id} is already settled: {self.settlement}")
        self.settlement, self.delay, self.reason = settlement, delay, reason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in `failed`, as listed for people (`pushgate dlq list`)."""

    id: str
    queue: str
    body: bytes
    headers: Mapping[str, str]
    attempts: int
    reason: str
    failed_at: datetime | None


Handler = Callable[[list[IncomingMessage]], Awaitable[None]]


class Consumer(Protocol):
    """A running subscription to one queue."""

    @property
    def queue(self) -> str: ...

    async def stop(self) -> None:
        """Take no new messages, wait for the handlers in flight and apply their decisions.
        Messages fetched but not yet handed to the handler go back to the queue."""
        ...


class Broker(Protocol):
    """Job transport. Every method may be called concurrently from many tasks."""

    async def start(self) -> None:
        """Connect and declare what the broker needs. Raises when the backend is unreachable."""
        ...

    async def close(self) -> None:
        """Stop every consumer (waiting for their handlers), then disconnect."""
        ...

    async def publish(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Enqueue a batch; returns once every message is durably stored.

        Args:
            queue: a work queue (`push`, `dispatch` or `deliver`).
            bodies: opaque payloads, one message each.
            delay: seconds before the messages may be delivered (RabbitMQ rounds up to a level).
            headers: string headers given to every message of the batch.

        Raises:
            ValueError: unknown queue.
        """
        ...

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 200,
        max_batch: int = 100,
        max_wait: float = 0.05,
    ) -> Consumer:
        """Start handing batches of messages to `handler` until the consumer is stopped.

        `failed` may be consumed too (the dead-letter recorder does): its messages carry
        `letter`, and their handler must `ack` them (retrying or dead-lettering a dead letter
        is not supported).

        The handler gets up to `max_batch` messages; a smaller batch is handed over once
        `max_wait` seconds passed since its first message (or at once, if nothing else is
        ready). Several batches may be in the handler at the same time, with at most
        `prefetch` messages unsettled in all. The handler must settle each message; those it
        leaves unsettled (it raised, or forgot) are released for redelivery.
        """
        ...

    async def dead_letter(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        reason: str,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        """Put messages straight into `failed`, as if consumed from `queue` and dead-lettered."""
        ...

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest messages in `failed`, without removing them."""
        ...

    async def requeue_dead_letters(self, ids: Collection[str] | None = None) -> int:
        """Move dead letters (those with `ids`, or all) back to their queue with `attempts`
        reset to 1. Returns how many moved."""
        ...

    async def depth(self, queue: str) -> int:
        """Messages ready for delivery now (not delayed, not held by a consumer)."""
        ...

    async def ping(self) -> None:
        """Raise when the backend is unreachable."""
        ...


# Header names the brokers keep for themselves; `publish` refuses them from callers.
RESERVED_HEADER_PREFIXES = (
    "x-pushgate-",
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
)


def check_queue(queue: str, allowed: Collection[str] = WORK_QUEUES) -> str:
    if queue not in allowed:
        raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(allowed)}")
    return queue


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    result = dict(headers or {})
    for key in result:
        if key.lower().startswith(RESERVED_HEADER_PREFIXES):
            raise ValueError(f"header {key!r} is reserved for the broker")
    return result


def public_headers(raw: Mapping[str, object] | None) -> dict[str, str]:
    """The caller's headers from what the backend stored: bookkeeping (ours, and RabbitMQ's
    `x-death` family) dropped, and values other publishers sent as numbers made strings."""
    if not raw:
        return {}
    result: dict[str, str] = {}
    for key, value in raw.items():
        if key.startswith(RESERVED_HEADER_PREFIXES) or value is None:
            continue
        result[key] = value.decode() if isinstance(value, bytes) else str(value)
    return result
