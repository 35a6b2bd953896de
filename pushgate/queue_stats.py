"""Queue statistics: what each worker knows of its consumers (how many, messages in flight,
messages settled per second), shared as a heartbeat in the key-value store, and the sum over
every live worker with each queue's depth from the broker (`GET /v1/queues`, `pushgate
queues`).

Why heartbeats and not the broker: the embedded broker has no server to ask, and RabbitMQ's
consumer counts say nothing of in-flight messages or rates. Each worker writes its own key
(`workers/<id>`) every few seconds with a time to live, so a worker that died drops out by
itself. Without Redis the key-value store is the process's memory: there only `pushgate
serve`, whose API and worker share the process, sees its consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from pushgate.broker import base as broker_base
from pushgate.kv.base import KeyValueStore
from pushgate.logs import get_logger

log = get_logger(__name__)

KEY_PREFIX = "workers/"
HEARTBEAT_SECONDS = 5.0
# Three beats missed and the worker no longer counts.
HEARTBEAT_TTL = 3 * HEARTBEAT_SECONDS
RATE_WINDOW = 60


@dataclass
class _Queue:
    consumers: int = 0
    in_flight: int = 0
    # Messages settled per whole second (monotonic), the last RATE_WINDOW seconds.
    settled: dict[int, int] = field(default_factory=dict)


class QueueCounters:
    """One worker's counts per queue, fed by wrapping its handlers (`track`)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker_id = uuid.uuid4().hex
        self._clock = clock
        self._started = clock()
        self._queues: dict[str, _Queue] = {}

    def consumer_started(self, queue: str) -> None:
        self._queues.setdefault(queue, _Queue()).consumers += 1

    def track(self, queue: str, handler: broker_base.Handler) -> broker_base.Handler:
        """`handler`, counting the messages it holds and those it settled."""
        counts = self._queues.setdefault(queue, _Queue())

        async def run(batch: list[broker_base.IncomingMessage]) -> None:
            counts.in_flight += len(batch)
            try:
                await handler(batch)
            finally:
                counts.in_flight -= len(batch)
                second = int(self._clock())
                counts.settled[second] = counts.settled.get(second, 0) + sum(
                    1 for m in batch if m.settled
                )

        return run

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per queue: consumers, in_flight and rate_per_second (settled over the last minute,
        or over the worker's life while it is younger)."""
        now = self._clock()
        oldest = int(now) - RATE_WINDOW
        window = max(1.0, min(float(RATE_WINDOW), now - self._started))
        result = {}
        for name, counts in self._queues.items():
            for second in [s for s in counts.settled if s <= oldest]:
                del counts.settled[second]
            result[name] = {
                "consumers": counts.consumers,
                "in_flight": counts.in_flight,
                "rate_per_second": sum(counts.settled.values()) / window,
            }
        return result

    async def beat(self, kv: KeyValueStore) -> None:
        await kv.set(KEY_PREFIX + self.worker_id, orjson.dumps(self.snapshot()), ttl=HEARTBEAT_TTL)

    async def run(self, kv: KeyValueStore, *, stop: asyncio.Event) -> None:
        """Beat until `stop`, then take this worker's key away."""
        while not stop.is_set():
            try:
                await self.beat(kv)
            except Exception:  # the queue statistics show less; work goes on
                log.warning("cannot publish the worker's heartbeat", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
        with contextlib.suppress(Exception):
            await kv.delete(KEY_PREFIX + self.worker_id)


@dataclass(frozen=True, slots=True)
class QueueStat:
    name: str
    depth: int
    consumers: int
    in_flight: int
    rate_per_second: float


async def read(kv: KeyValueStore, broker: broker_base.Broker) -> list[QueueStat]:
    """Every queue's depth, with the live workers' heartbeats summed. A key-value store out of
    reach gives zeros for what the workers know; the depths come from the broker."""
    try:
        beats = await kv.scan(KEY_PREFIX)
    except Exception:
        log.warning("cannot read the workers' heartbeats", exc_info=True)
        beats = {}
    totals: dict[str, dict[str, float]] = {}
    for raw in beats.values():
        try:
            queues = orjson.loads(raw)
            for name, values in queues.items():
                total = totals.setdefault(name, {})
                for what in ("consumers", "in_flight", "rate_per_second"):
                    total[what] = total.get(what, 0) + float(values.get(what, 0))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue  # another version's heartbeat: ignored
    depths = await asyncio.gather(*(broker.depth(q) for q in broker_base.QUEUES))
    result = []
    for name, depth in zip(broker_base.QUEUES, depths, strict=True):
        total = totals.get(name, {})
        result.append(
            QueueStat(
                name=name,
                depth=depth,
                consumers=int(total.get("consumers", 0)),
                in_flight=int(total.get("in_flight", 0)),
                rate_per_second=round(total.get("rate_per_second", 0.0), 3),
            )
        )
    return result
