"""The worker: consumers for the ingress, dispatch and deliver queues, the dead-letter recorder
on `failed`, the sweeper loop, the lifecycle job (retention and device expiry), and the
heartbeat with its queue counts.
Runs alone (`pushgate worker`) or inside `pushgate serve`; stops gracefully, finishing the work
in flight and recording its outcomes before the process exits."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from pushgate import queue_stats, sentry_reports
from pushgate.broker import base as broker_base
from pushgate.logs import get_logger
from pushgate.metrics import page as metrics_page
from pushgate.providers.webhook_client import WebhookClient
from pushgate.runtime import Runtime, running
from pushgate.sending import dead_letters, deliver, dispatch, ingress, lifecycle, sweeper, webhooks
from pushgate.settings import Settings

log = get_logger(__name__)

# Deliver jobs carry `worker.deliver_job_size` ids each: a few in flight keep `concurrency`
# sends busy while the previous batch's outcomes are written.
DELIVER_JOBS_IN_FLIGHT_FACTOR = 3


class Worker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Which queues this worker consumes (`worker.queues`, `pushgate worker --queues`).
        self.queues = frozenset(runtime.settings.worker.queues)
        self._consumers: list[broker_base.Consumer] = []
        self._stop = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._webhooks: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None
        self._webhook_client: WebhookClient | None = None
        self._running: set[asyncio.Task[object]] = set()
        self.counters = queue_stats.QueueCounters()
        self._heartbeat: asyncio.Task[None] | None = None
        self._lifecycle: asyncio.Task[None] | None = None

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
        # A paced delivery may also wait for its send slot first.
        pacing_wait = self.runtime.settings.pacing.max_wait_seconds
        lease = max(settings.claim_lease_seconds, (rounds + 1) * request_timeout + pacing_wait)
        if broker_base.DELIVER in self.queues:
            await self._consume(
                broker_base.DELIVER,
                deliver.Deliverer(self.runtime, lease=lease).handle,
                prefetch=jobs_in_flight,
                max_batch=max(1, jobs_in_flight // 3),
                max_wait=0.01,
            )
        if broker_base.DISPATCH in self.queues:
            dispatcher = dispatch.Dispatcher(
                self.runtime, page_size=settings.dispatch_page_size, job_size=job_size
            )
            await self._consume(
                broker_base.DISPATCH, dispatcher.handle, prefetch=4, max_batch=1, max_wait=0.01
            )
        if broker_base.PUSH in self.queues:
            await self._consume(
                broker_base.PUSH,
                ingress.Ingress(self.runtime).handle,
                prefetch=settings.prefetch_count,
                max_batch=100,
                max_wait=0.05,
            )
        # Letters stay in `failed` only until recorded in `dead_letters`, where they are listed
        # and replayed per app (sending/dead_letters.py).
        if broker_base.FAILED in self.queues:
            await self._consume(
                broker_base.FAILED,
                dead_letters.Recorder(self.runtime).handle,
                prefetch=100,
                max_batch=50,
                max_wait=0.05,
            )
        self._sweeper = asyncio.create_task(
            sweeper.run(
                self.runtime,
                interval=settings.sweep_interval,
                stop=self._stop,
                job_size=job_size,
                grace=settings.stale_grace_seconds,
            ),
            name="pushgate-sweeper",
        )
        self._webhook_client = WebhookClient(self.runtime.settings.webhooks)
        self._webhooks = asyncio.create_task(
            webhooks.run(
                webhooks.WebhookSender(self.runtime, self._webhook_client), stop=self._stop
            ),
            name="pushgate-webhooks",
        )
        for consumer in self._consumers:
            self.counters.consumer_started(consumer.queue)
        self._heartbeat = asyncio.create_task(
            self.counters.run(self.runtime.kv, stop=self._stop), name="pushgate-heartbeat"
        )
        self._gauges = asyncio.create_task(
            metrics_page.refresh_queues(
                broker,
                self.runtime.metrics,
                lambda: [c.queue for c in self._consumers],
                interval=self.runtime.settings.metrics.refresh_seconds,
                stop=self._stop,
            ),
            name="pushgate-metrics",
        )
        # Retention and device expiry: one worker of the deployment per interval.
        self._lifecycle = asyncio.create_task(
            lifecycle.run(self.runtime, stop=self._stop), name="pushgate-lifecycle"
        )
        log.info("worker started", queues=[c.queue for c in self._consumers], lease=lease)

    async def stop(self) -> None:
        """Take no new work, let the handlers in flight finish and settle, stop the sweeper.

        Bounded by `worker.shutdown_grace_seconds`: a handler still running then (a statement
        blocked on a lock, a send that will not end) is cancelled, its jobs left unsettled, so
        the broker hands them out again (RabbitMQ when the channel closes, the embedded queue
        when their lease ends) and their deliveries' claims lapse with their leases.
        """
        self._stop.set()
        grace = self.runtime.settings.worker.shutdown_grace_seconds
        stopping = asyncio.ensure_future(self._stop_all())
        # Waited for, not cancelled, at the grace: the consumers' stop must run to its end
        # (their jobs released, their leases no longer renewed).
        done, _ = await asyncio.wait({stopping}, timeout=grace)
        if not done:
            log.warning(
                "work in flight did not finish within the shutdown grace; abandoning it",
                grace=grace,
                handlers=len(self._running),
            )
            for task in (
                *self._running,
                self._sweeper,
                self._webhooks,
                self._gauges,
                self._heartbeat,
                self._lifecycle,
            ):
                if task is not None:
                    task.cancel()
        await stopping
        log.info("worker stopped")

    async def _stop_all(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
        if self._sweeper is not None:
            # A cancelled sweep (see `stop`) ends with CancelledError: gathered, not raised.
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._webhooks is not None:
            await asyncio.gather(self._webhooks, return_exceptions=True)
            self._webhooks = None
        if self._gauges is not None:
            await asyncio.gather(self._gauges, return_exceptions=True)
            self._gauges = None
        if self._heartbeat is not None:
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        if self._lifecycle is not None:
            # Stops between batches; a batch in flight is cancelled with the others (see
            # `stop`) and its transaction rolled back.
            await asyncio.gather(self._lifecycle, return_exceptions=True)
            self._lifecycle = None
        if self._webhook_client is not None:
            await self._webhook_client.close()
            self._webhook_client = None

    async def _consume(
        self,
        queue: str,
        handler: broker_base.Handler,
        *,
        prefetch: int,
        max_batch: int,
        max_wait: float,
    ) -> None:
        consumer = await self.runtime.broker.consume(
            queue,
            self._tracked(queue, handler),
            prefetch=prefetch,
            max_batch=max_batch,
            max_wait=max_wait,
        )
        self._consumers.append(consumer)

    def _tracked(self, queue: str, handler: broker_base.Handler) -> broker_base.Handler:
        """`handler`, with the task running each batch known to `stop`, which may cancel it,
        and its messages counted for the queue statistics."""
        handler = self.counters.track(queue, handler)

        async def run(batch: list[broker_base.IncomingMessage]) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await handler(batch)
            finally:
                self._running.discard(task)

        return run


async def run(settings: Settings) -> None:
    """`pushgate worker`: run until SIGTERM or SIGINT, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    sentry_reports.watch_tasks()
    async with running(settings) as runtime:
        # The worker's own metrics page (`pushgate serve` shows them on the API's instead).
        page = await metrics_page.serve_worker_page(settings.metrics, runtime.metrics)
        worker = Worker(runtime)
        await worker.start()
        await stop.wait()
        log.info("stopping: finishing the work in flight")
        await worker.stop()
        if page is not None:
            await page.cleanup()
