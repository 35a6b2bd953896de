"""RabbitMQBroker: the Broker port on RabbitMQ (aio-pika): the connection, publishing with
confirms, and the dead-letter queue. The names and queue arguments are in `rabbitmq_topology`,
the consumers in `rabbitmq_consumer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence

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
    check_headers,
    check_queue,
    public_headers,
)
from pushgate.broker.rabbitmq_consumer import RabbitMQConsumer
from pushgate.broker.rabbitmq_topology import (
    DEFAULT_DELAY_LEVELS,
    ORIGIN,
    Outgoing,
    Topology,
    check_levels,
    dead_letter_headers,
    delay_level,
    letter_info,
    parse_attempts,
    persistent_message,
)
from pushgate.logs import get_logger

# Confirms awaited together: one at a time gives ~1,200 messages/s, 100+ in flight ~5,000/s.
PUBLISH_WINDOW = 1000
log = get_logger(__name__)


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
        ingress_queue: the push queue's name instead of `push.queue` (behind `prefix`).
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
        ingress_queue: str | None = None,
    ) -> None:
        self.topology = Topology(
            prefix, check_levels(delay_levels), quorum_queues, ingress_queue=ingress_queue
        )
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
        await self._send([self._route(queue, persistent_message(b, plain), delay) for b in bodies])

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
        extra = dead_letter_headers(queue, reason, attempts)
        await self._send(
            [Outgoing(FAILED, persistent_message(b, {**plain, **extra})) for b in bodies]
        )

    def _route(self, queue: str, message: aio_pika.Message, delay: float) -> Outgoing:
        level = delay_level(delay, self.topology.levels)
        if level is None:
            return Outgoing(queue, message)
        return Outgoing(self.topology.delay_queue(queue, level), message, via_default=True)

    async def _send(self, outgoing: Sequence[Outgoing]) -> None:
        """Publish with confirms, many in flight; a lost connection is waited out and the
        unconfirmed part sent again (a duplicate is possible, a loss is not)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        pending = list(outgoing)
        while pending:
            failed: list[Outgoing] = []
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

    async def _publish_one(self, item: Outgoing) -> None:
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
        check_queue(queue, QUEUES)
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


def _dead_letter_view(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    info = letter_info(headers)
    return DeadLetter(
        id=message.message_id or "",
        queue=info.origin,
        body=message.body,
        headers=public_headers(headers),
        attempts=parse_attempts(headers),
        reason=info.reason,
        failed_at=info.failed_at,
    )


def _requeued(message: AbstractIncomingMessage) -> Outgoing:
    origin = str((message.headers or {}).get(ORIGIN, ""))
    if origin not in WORK_QUEUES:
        raise ValueError(f"dead letter {message.message_id} names no known queue: {origin!r}")
    headers = public_headers(message.headers)
    return Outgoing(
        origin, persistent_message(message.body, headers, message_id=message.message_id)
    )
