"""The worker: consumers for the ingress, dispatch and deliver queues, and the sweeper loop.
Runs alone (`pushgate worker`) or inside `pushgate serve`; stops gracefully, finishing the work
in flight and recording its outcomes before the process exits."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from pushgate.broker import base as broker_base
from pushgate.logs import get_logger
from pushgate.runtime import Runtime, running
from pushgate.sending import deliver, dispatch, ingress, sweeper
from pushgate.settings import Settings

log = get_logger(__name__)

# Deliver jobs carry `worker.deliver_job_size` ids each: a few in flight keep `concurrency`
# sends busy while the previous batch's outcomes are written.
DELIVER_JOBS_IN_FLIGHT_FACTOR = 3


class Worker:
    def __init__(self, runtime: Runtime, *, ingress_queue: bool = True) -> None:
        self.runtime = runtime
        self.ingress_queue = ingress_queue
        self._consumers: list[broker_base.Consumer] = []
        self._stop = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.runtime.settings.worker
        broker = self.runtime.broker
        # A claimed job's deliveries wait for a send slot, and their claim must outlast that
        # wait: jobs no larger than `concurrency` keep what one worker holds to a few rounds
        # of sends, and the lease covers those rounds at the request timeout.
        job_size = min(settings.deliver_job_size, settings.concurrency)
        jobs_in_flight = max(2, DELIVER_JOBS_IN_FLIGHT_FACTOR * settings.concurrency // job_size)
        rounds = -(-jobs_in_flight * job_size // settings.concurrency)
        request_timeout = self.runtime.settings.delivery.request_timeout_seconds
        lease = max(settings.claim_lease_seconds, (rounds + 1) * request_timeout)
        self._consumers.append(
            await broker.consume(
                broker_base.DELIVER,
                deliver.Deliverer(self.runtime, lease=lease).handle,
                prefetch=jobs_in_flight,
                max_batch=max(1, jobs_in_flight // 3),
                max_wait=0.01,
            )
        )
        self._consumers.append(
            await broker.consume(
                broker_base.DISPATCH,
                dispatch.Dispatcher(
                    self.runtime, page_size=settings.dispatch_page_size, job_size=job_size
                ).handle,
                prefetch=4,
                max_batch=1,
                max_wait=0.01,
            )
        )
        if self.ingress_queue:
            self._consumers.append(
                await broker.consume(
                    broker_base.PUSH,
                    ingress.Ingress(self.runtime).handle,
                    prefetch=settings.prefetch_count,
                    max_batch=100,
                    max_wait=0.05,
                )
            )
        self._sweeper = asyncio.create_task(
            sweeper.run(
                self.runtime, interval=settings.sweep_interval, stop=self._stop, job_size=job_size
            ),
            name="pushgate-sweeper",
        )
        log.info("worker started", queues=[c.queue for c in self._consumers], lease=lease)

    async def stop(self) -> None:
        """Take no new work, let the handlers in flight finish and settle, stop the sweeper."""
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
        self._stop.set()
        if self._sweeper is not None:
            await self._sweeper
            self._sweeper = None
        log.info("worker stopped")


async def run(settings: Settings) -> None:
    """`pushgate worker`: run until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with running(settings) as runtime:
        worker = Worker(runtime)
        await worker.start()
        await stop.wait()
        log.info("stopping: finishing the work in flight")
        await worker.stop()
