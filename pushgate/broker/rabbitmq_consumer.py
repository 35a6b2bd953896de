"""RabbitMQConsumer: one consumer of a RabbitMQ queue, on a channel of its own (its prefetch),
with a batching loop, the handler tasks in flight, and the acks of settled messages grouped."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from pushgate.broker.base import (
    FAILED,
    Consumer,
    Handler,
    IncomingMessage,
    Settlement,
    public_headers,
)
from pushgate.broker.rabbitmq_topology import (
    ATTEMPTS,
    REASON,
    Outgoing,
    dead_letter_headers,
    letter_info,
    parse_attempts,
    persistent_message,
)
from pushgate.logs import get_logger

if TYPE_CHECKING:
    from pushgate.broker.rabbitmq import RabbitMQBroker

log = get_logger(__name__)


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
                    letter=letter_info(headers) if self.logical == FAILED else None,
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
        outgoing: list[Outgoing] = []
        done: list[IncomingMessage] = []
        undone: list[IncomingMessage] = []
        for m in messages:
            raw = cast(AbstractIncomingMessage, m.receipt)
            user = public_headers(raw.headers)
            if m.settlement is Settlement.RETRY:
                message = persistent_message(
                    m.body, {**user, ATTEMPTS: m.attempts + 1, REASON: m.reason}
                )
                message.message_id = m.id or message.message_id
                outgoing.append(self.broker._route(self.logical, message, m.delay))
            elif m.settlement is Settlement.DEAD_LETTER:
                extra = dead_letter_headers(self.logical, m.reason, m.attempts)
                message = persistent_message(m.body, {**user, **extra}, message_id=m.id or None)
                outgoing.append(Outgoing(FAILED, message))
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
