"""RabbitMQBroker: the Broker port on RabbitMQ (aio-pika), with the topology of DESIGN.md.

Names (each behind `prefix`): the durable direct exchange `notifications.direct`; the queues
`push.queue`, `dispatch.queue`, `deliver.queue` and `failed.queue`, bound with their logical name
as routing key; and per work queue one delay queue per backoff level (`deliver.retry.5s`), whose
queue-level TTL dead-letters the message back into the exchange with the work queue's key.
Per-message TTLs are never used: RabbitMQ expires only at the head of a queue, so one long delay
would hold back every shorter one queued behind it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from pushgate.broker.base import (
    FAILED,
    QUEUES,
    WORK_QUEUES,
    Broker,
    Consumer,
    DeadLetter,
    Handler,
    IncomingMessage,
    Settlement,
    check_headers,
    check_queue,
    public_headers,
)
from pushgate.logs import get_logger

EXCHANGE = "notifications.direct"
DEFAULT_DELAY_LEVELS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
ATTEMPTS = "x-pushgate-attempts"
REASON = "x-pushgate-reason"
ORIGIN = "x-pushgate-queue"
FAILED_AT = "x-pushgate-failed-at"
# Confirms awaited together: one at a time gives ~1,200 messages/s, 100+ in flight ~5,000/s.
PUBLISH_WINDOW = 1000
log = get_logger(__name__)


# --- pure topology rules ---------------------------------------------------------------------


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

    @property
    def exchange(self) -> str:
        return f"{self.prefix}{EXCHANGE}"

    def queue(self, logical: str) -> str:
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


# --- the broker ------------------------------------------------------------------------------


@dataclass
class _Outgoing:
    routing_key: str
    message: aio_pika.Message
    via_default: bool = False


def _message(
    body: bytes, headers: Mapping[str, Any], *, message_id: str | None = None
) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=dict(headers),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id or uuid.uuid4().hex,
        timestamp=datetime.now(UTC),
    )


class RabbitMQBroker(Broker):
    """Jobs on RabbitMQ; survives broker restarts (robust connection re-declares everything).

    Args:
        url: amqp:// URL.
        prefix: put before every exchange and queue name (tests isolate themselves with it).
        quorum_queues: declare quorum queues instead of classic ones.
        delay_levels: the fixed retry delays in seconds; a delay is rounded up to one.
        connection_name: shown in the management UI and `rabbitmqctl list_connections`.
        reconnect_interval: seconds between reconnection attempts.
        publish_timeout: how long `publish` keeps retrying through a lost connection.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        quorum_queues: bool = False,
        delay_levels: Iterable[float] = DEFAULT_DELAY_LEVELS,
        connection_name: str = "pushgate",
        reconnect_interval: float = 1.0,
        publish_timeout: float = 30.0,
    ) -> None:
        self.topology = Topology(prefix, check_levels(delay_levels), quorum_queues)
        self._url = url
        self._connection_name = connection_name
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: set[RabbitMQConsumer] = set()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url,
            client_properties={"connection_name": self._connection_name},
            reconnect_interval=self._reconnect_interval,
        )
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await self._channel.declare_exchange(
            self.topology.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        for spec in self.topology.queues():
            await self._declare(self._channel, spec.name)

    async def _declare(self, channel: AbstractRobustChannel, name: str) -> AbstractQueue:
        spec = next(s for s in self.topology.queues() if s.name == name)
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        if spec.routing_key is not None:
            await queue.bind(self.topology.exchange, spec.routing_key)
        return queue

    async def close(self) -> None:
        await asyncio.gather(*(c.stop() for c in list(self._consumers)))
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None or self._connection.is_closed:
            raise RuntimeError("the RabbitMQ broker is not started")
        return self._connection

    async def ping(self) -> None:
        channel = await self.connection.channel()
        try:
            await channel.declare_queue(self.topology.queue(FAILED), passive=True, robust=False)
        finally:
            await channel.close()

    async def publish(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        check_queue(queue)
        plain = check_headers(headers)
        await self._send([self._route(queue, _message(b, plain), delay) for b in bodies])

    async def dead_letter(
        self,
        queue: str,
        bodies: Sequence[bytes],
        *,
        reason: str,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        check_queue(queue)
        plain = check_headers(headers)
        extra = _dead_headers(queue, reason, attempts)
        await self._send([_Outgoing(FAILED, _message(b, {**plain, **extra})) for b in bodies])

    def _route(self, queue: str, message: aio_pika.Message, delay: float) -> _Outgoing:
        level = delay_level(delay, self.topology.levels)
        if level is None:
            return _Outgoing(queue, message)
        return _Outgoing(self.topology.delay_queue(queue, level), message, via_default=True)

    async def _send(self, outgoing: Sequence[_Outgoing]) -> None:
        """Publish with confirms, many in flight; a lost connection is waited out and the
        unconfirmed part sent again (a duplicate is possible, a loss is not)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        pending = list(outgoing)
        while pending:
            failed: list[_Outgoing] = []
            error: BaseException | None = None
            for start in range(0, len(pending), PUBLISH_WINDOW):
                window = pending[start : start + PUBLISH_WINDOW]
                try:
                    results = await asyncio.gather(
                        *(self._publish_one(o) for o in window), return_exceptions=True
                    )
                except Exception as exc:  # the channel is gone before anything was sent
                    results = [exc] * len(window)
                for item, result in zip(window, results, strict=True):
                    if isinstance(result, aiormq.exceptions.DeliveryError | ValueError):
                        raise result  # refused by the broker: trying again will not help
                    if isinstance(result, BaseException):
                        failed.append(item)
                        error = result
            pending = failed
            if pending:
                if loop.time() > deadline:
                    raise ConnectionError(f"publish failed: {error!r}") from error
                log.warning(
                    "publish interrupted; retrying", pending=len(pending), error=repr(error)
                )
                await asyncio.sleep(0.2)

    async def _publish_one(self, item: _Outgoing) -> None:
        if self._channel is None or self._exchange is None:
            raise RuntimeError("the RabbitMQ broker is not started")
        exchange = self._channel.default_exchange if item.via_default else self._exchange
        await exchange.publish(item.message, routing_key=item.routing_key)

    async def consume(
        self,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 200,
        max_batch: int = 100,
        max_wait: float = 0.05,
    ) -> Consumer:
        check_queue(queue)
        if prefetch < 1 or max_batch < 1:
            raise ValueError("prefetch and max_batch must be >= 1")
        consumer = RabbitMQConsumer(
            self, queue, handler, prefetch=prefetch, max_batch=max_batch, max_wait=max_wait
        )
        await consumer.start()
        self._consumers.add(consumer)
        return consumer

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        # RabbitMQ cannot peek: take the messages unacknowledged, then let closing the channel
        # put them back where they were.
        result: list[DeadLetter] = []
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(
                self.topology.queue(FAILED), passive=True, robust=False
            )
            for _ in range(limit):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                result.append(_dead_letter_view(message))
        finally:
            await channel.close()
        return result

    async def requeue_dead_letters(self, ids: Collection[str] | None = None) -> int:
        wanted = None if ids is None else set(ids)
        moved = 0
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(
                self.topology.queue(FAILED), passive=True, robust=False
            )
            # Bounded by the depth seen now, so letters dead again meanwhile are not looped on.
            remaining = queue.declaration_result.message_count or 0
            while remaining > 0:
                batch: list[AbstractIncomingMessage] = []
                while remaining > 0 and len(batch) < PUBLISH_WINDOW:
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        remaining = 0
                        break
                    remaining -= 1
                    if wanted is None or message.message_id in wanted:
                        batch.append(message)
                await self._send([_requeued(m) for m in batch])
                for message in batch:
                    await message.ack()
                moved += len(batch)
        finally:
            # Letters not asked for were held unacknowledged; closing returns them.
            await channel.close()
        return moved

    async def depth(self, queue: str) -> int:
        check_queue(queue, QUEUES)
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(
                self.topology.queue(queue), passive=True, robust=False
            )
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    def _forget(self, consumer: RabbitMQConsumer) -> None:
        self._consumers.discard(consumer)


def _dead_headers(origin: str, reason: str, attempts: int) -> dict[str, Any]:
    return {
        ORIGIN: origin,
        REASON: reason,
        ATTEMPTS: attempts,
        FAILED_AT: datetime.now(UTC).isoformat(),
    }


def _dead_letter_view(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    failed_at = headers.get(FAILED_AT)
    return DeadLetter(
        id=message.message_id or "",
        queue=str(headers.get(ORIGIN, "")),
        body=message.body,
        headers=public_headers(headers),
        attempts=parse_attempts(headers),
        reason=str(headers.get(REASON, "")),
        failed_at=datetime.fromisoformat(failed_at) if isinstance(failed_at, str) else None,
    )


def _requeued(message: AbstractIncomingMessage) -> _Outgoing:
    origin = str((message.headers or {}).get(ORIGIN, ""))
    if origin not in WORK_QUEUES:
        raise ValueError(f"dead letter {message.message_id} names no known queue: {origin!r}")
    headers = public_headers(message.headers)
    return _Outgoing(origin, _message(message.body, headers, message_id=message.message_id))


# --- consuming -------------------------------------------------------------------------------


class _Acks:
    """The unsettled delivery tags of one channel, so that a run of settled ones is acked with
    one `multiple` frame. Tags past a gap (an older batch still in its handler) are acked one by
    one rather than held, so a slow batch does not eat the prefetch of the fast ones."""

    OPEN, ACK, SENT = 0, 1, 2

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self.order: deque[int] = deque()
        self.state: dict[int, int] = {}
        # Frames must leave in the order computed: a `multiple` ack overtaking a single ack of
        # a lower tag would make the server close the channel (unknown delivery tag).
        self.lock = asyncio.Lock()

    def add(self, tag: int) -> None:
        if self.order and tag < self.order[-1]:
            self.order.insert(bisect.bisect_left(self.order, tag), tag)
        else:
            self.order.append(tag)
        self.state[tag] = self.OPEN

    async def settle(self, acks: Sequence[int], nacks: Sequence[int]) -> None:
        async with self.lock:
            for tag in nacks:
                self.state[tag] = self.SENT
                await self.channel.basic_nack(tag, requeue=True)
            for tag in acks:
                self.state[tag] = self.ACK
            upto = None
            while self.order and self.state[self.order[0]] != self.OPEN:
                tag = self.order.popleft()
                if self.state.pop(tag) == self.ACK:
                    upto = tag
            if upto is not None:
                await self.channel.basic_ack(upto, multiple=True)
            for tag in acks:
                if self.state.get(tag) == self.ACK:
                    self.state[tag] = self.SENT
                    await self.channel.basic_ack(tag)


class RabbitMQConsumer(Consumer):
    """A channel with its own prefetch, a batching loop, and the handler tasks in flight."""

    def __init__(
        self,
        broker: RabbitMQBroker,
        queue: str,
        handler: Handler,
        *,
        prefetch: int,
        max_batch: int,
        max_wait: float,
    ) -> None:
        self.broker, self.logical, self.handler = broker, queue, handler
        self.prefetch, self.max_batch, self.max_wait = prefetch, max_batch, max_wait
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()
        self._acks: dict[int, _Acks] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def queue(self) -> str:
        return self.logical

    async def start(self) -> None:
        # A channel of its own: prefetch is per channel, and closing it returns what it held.
        channel = await self.broker.connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        self._channel = channel
        self._queue = await self.broker._declare(channel, self.broker.topology.queue(self.logical))
        self._batcher = asyncio.create_task(self._batch_loop(), name=f"rabbitmq-{self.logical}")
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if not _has_channel(message):
            return  # its channel is already gone: the server redelivers it
        channel = message.channel
        acks = self._acks.get(id(channel))
        if acks is None or acks.channel is not channel:
            # A new underlying channel after a reconnect: the old tags died with the old one.
            self._acks = {k: a for k, a in self._acks.items() if not a.channel.is_closed}
            acks = self._acks[id(channel)] = _Acks(channel)
        assert message.delivery_tag is not None  # noqa: S101 (consumed with no_ack=False)
        acks.add(message.delivery_tag)
        self._buffer.append(message)
        self._arrived.set()

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._buffer:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self._take(self.max_batch)
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch and (remaining := deadline - loop.time()) > 0:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                batch.extend(self._take(self.max_batch - len(batch)))
            if batch:
                task = asyncio.create_task(self._handle(batch))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    def _take(self, count: int) -> list[IncomingMessage]:
        taken: list[IncomingMessage] = []
        while self._buffer and len(taken) < count:
            raw = self._buffer.popleft()
            if not _has_channel(raw):
                continue  # delivered on a channel since lost: the server redelivers it
            headers = raw.headers or {}
            taken.append(
                IncomingMessage(
                    id=raw.message_id or "",
                    queue=self.logical,
                    body=raw.body,
                    headers=public_headers(headers),
                    attempts=parse_attempts(headers),
                    redelivered=bool(raw.redelivered),
                    receipt=raw,
                )
            )
        return taken

    async def _handle(self, messages: list[IncomingMessage]) -> None:
        try:
            await self.handler(messages)
        except Exception:
            log.exception("handler failed; unsettled messages will be redelivered")
        try:
            await self._settle(messages)
        except Exception:
            log.exception("rabbitmq: settling failed; the server redelivers", queue=self.logical)

    async def _settle(self, messages: list[IncomingMessage]) -> None:
        outgoing: list[_Outgoing] = []
        done: list[IncomingMessage] = []
        undone: list[IncomingMessage] = []
        for m in messages:
            raw = cast(AbstractIncomingMessage, m.receipt)
            user = public_headers(raw.headers)
            if m.settlement is Settlement.RETRY:
                message = _message(m.body, {**user, ATTEMPTS: m.attempts + 1, REASON: m.reason})
                message.message_id = m.id or message.message_id
                outgoing.append(self.broker._route(self.logical, message, m.delay))
            elif m.settlement is Settlement.DEAD_LETTER:
                extra = _dead_headers(self.logical, m.reason, m.attempts)
                message = _message(m.body, {**user, **extra}, message_id=m.id or None)
                outgoing.append(_Outgoing(FAILED, message))
            (done if m.settled else undone).append(m)
        if undone:
            log.warning("requeueing unsettled messages", queue=self.logical, count=len(undone))
        if outgoing:
            try:
                await self.broker._send(outgoing)
            except Exception:
                # Not safely stored elsewhere, so the originals must stay.
                log.exception("rabbitmq: could not move retried/dead messages", queue=self.logical)
                undone += [m for m in done if m.settlement is not Settlement.ACK]
                done = [m for m in done if m.settlement is Settlement.ACK]
        by_channel: dict[int, tuple[list[int], list[int]]] = {}
        for group, position in ((done, 0), (undone, 1)):
            for m in group:
                raw = cast(AbstractIncomingMessage, m.receipt)
                key = id(raw.channel) if _has_channel(raw) else -1
                by_channel.setdefault(key, ([], []))[position].append(cast(int, raw.delivery_tag))
        for key, (acks, nacks) in by_channel.items():
            tracker = self._acks.get(key)
            if tracker is None or tracker.channel.is_closed:
                continue  # the channel died: the server already put these back
            await tracker.settle(acks, nacks)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._tag)
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        while self._handlers:
            await asyncio.gather(*list(self._handlers), return_exceptions=True)
        if self._channel is not None:
            # Whatever was fetched but never handed over goes back to the queue with the channel.
            with contextlib.suppress(Exception):
                await self._channel.close()
        self._buffer.clear()
        self.broker._forget(self)


def _has_channel(message: AbstractIncomingMessage) -> bool:
    try:
        message.channel  # noqa: B018 (the property raises once the channel is closed)
    except aio_pika.exceptions.ChannelInvalidStateError:
        return False
    return True
