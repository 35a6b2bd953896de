"""Deliver: claim a batch of deliveries, send them concurrently through their providers, and
record every outcome in a few batched writes (deliveries, devices, notification progress).

Retries go back through the broker with a delay; exhausted ones become `failed` and a record
with the last answer goes to the dead-letter queue. An open circuit defers a delivery without
counting an attempt.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson

from pushgate.broker import base as broker_base
from pushgate.domain.message import Message
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.outcome import Outcome, OutcomeKind
from pushgate.logs import get_logger
from pushgate.providers.base import Target
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.sending.credentials import MissingCredentialsError
from pushgate.store import deliveries, devices, notifications
from pushgate.store.tables import Delivery, Notification, utcnow

log = get_logger(__name__)

NOTIFICATION_CACHE_SECONDS = 2.0

OUTCOME_STATUS = {
    OutcomeKind.SENT: DeliveryStatus.SENT,
    OutcomeKind.TOKEN_INVALID: DeliveryStatus.INVALID,
    OutcomeKind.REJECTED: DeliveryStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery in this round (for send-immediate and tests)."""

    delivery_id: int
    device_id: uuid.UUID | None
    platform: str
    status: DeliveryStatus
    outcome: Outcome | None


@dataclass
class _Round:
    """The writes one batch produces, applied together at the end."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    invalid_devices: dict[uuid.UUID, str] = field(default_factory=dict)
    finished: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    retries: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    dead: list[tuple[bytes, str, int]] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Cached:
    status: str
    app_id: uuid.UUID
    expires_at: datetime
    message: Message
    loaded: float


class Deliverer:
    """Consumes `deliver` jobs, with the runtime's providers, credentials, circuit breakers and
    retry policy.

    Args:
        concurrency: sends in flight at once through this deliverer (default: the
            `worker.concurrency` setting).
        lease: seconds a claim holds a delivery before another worker may take it; longer than
            a send can take (the request timeout), so a live worker never loses its claim.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int | None = None,
        lease: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.providers = runtime.providers
        self.credentials = runtime.credentials
        self.board = runtime.circuits
        self.policy = runtime.retry_policy
        self.lease = lease or max(60.0, 3 * runtime.settings.delivery.request_timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency or runtime.settings.worker.concurrency)
        self._notifications: dict[uuid.UUID, _Cached] = {}
        self._clock = clock

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        ids: list[int] = []
        for message in batch:
            try:
                ids.extend(jobs.read_deliver_job(message.body))
            except jobs.BadJobError as exc:
                message.dead_letter(str(exc))
        if ids:
            await self.deliver(ids)
        for message in batch:
            if not message.settled:
                message.ack()

    async def deliver(self, ids: list[int]) -> list[Result]:
        now = utcnow()
        async with self.runtime.sessions() as session:
            claimed = await deliveries.claim(session=session, ids=ids, now=now, lease=self.lease)
            await session.commit()
        if not claimed:
            return []
        cached = await self._load_notifications({d.notification_id for d in claimed})
        work = _Round()
        sends: list[tuple[Delivery, asyncio.Task[Outcome]]] = []
        for delivery in claimed:
            info = cached.get(delivery.notification_id)
            final = DeliveryStatus.CANCELED if info is None else _unsendable(info, now)
            if info is None or final is not None:
                self._finish(work, delivery, final or DeliveryStatus.CANCELED, None, now)
                continue
            breaker = self.board.get(str(delivery.app_id), delivery.platform, _origin(delivery))
            if not breaker.allow():
                self._defer(work, delivery, breaker.retry_in(), now)
                continue
            sends.append((delivery, asyncio.create_task(self._send(delivery, info))))
        for delivery, task in sends:
            outcome = await task
            self._apply(work, delivery, outcome, now)
        await self._write(work, now)
        return work.results

    async def _send(self, delivery: Delivery, info: _Cached) -> Outcome:
        provider = self.providers.get(delivery.platform)
        if provider is None:
            return Outcome.rejected(f"no {delivery.platform} provider in this version")
        try:
            credentials = await self.credentials(delivery.app_id, delivery.platform)
        except MissingCredentialsError as exc:
            return Outcome.rejected(str(exc))
        target = Target(token=delivery.token, p256dh=delivery.p256dh, auth=delivery.auth)
        async with self._slots:
            try:
                return await provider.send(target, info.message, credentials)
            except Exception as exc:  # a provider bug must not lose the batch
                log.exception("provider raised", platform=delivery.platform)
                return Outcome.retry_later(f"provider error: {type(exc).__name__}")

    def _apply(self, work: _Round, delivery: Delivery, outcome: Outcome, now: datetime) -> None:
        breaker = self.board.get(str(delivery.app_id), delivery.platform, _origin(delivery))
        if outcome.kind is OutcomeKind.RETRY_LATER and outcome.status_code != 429:
            breaker.record_failure()
        elif outcome.kind is OutcomeKind.CREDENTIAL_ALARM:
            for _ in range(self.board.threshold):
                breaker.record_failure()
            log.error(
                "credential alarm: circuit opened",
                app_id=str(delivery.app_id),
                platform=delivery.platform,
                error=outcome.error,
            )
        else:
            breaker.record_success()
        status = OUTCOME_STATUS.get(outcome.kind)
        if status is not None:
            if status is DeliveryStatus.INVALID and delivery.device_id is not None:
                work.invalid_devices[delivery.device_id] = outcome.error or "token invalid"
            self._finish(work, delivery, status, outcome, now)
            return
        if self.policy.exhausted(delivery.attempts):
            self._finish(work, delivery, DeliveryStatus.FAILED, outcome, now)
            reason = (
                f"{outcome.kind.value}: {outcome.error}" if outcome.error else outcome.kind.value
            )
            work.dead.append((_dead_letter(delivery, outcome), reason, delivery.attempts))
            return
        floor = self.board.timeout if outcome.kind is OutcomeKind.CREDENTIAL_ALARM else 0.0
        delay = self.policy.delay(delivery.attempts, retry_after=outcome.retry_after, floor=floor)
        self._retry(work, delivery, delay, now, outcome)

    def _finish(
        self,
        work: _Round,
        delivery: Delivery,
        status: DeliveryStatus,
        outcome: Outcome | None,
        now: datetime,
    ) -> None:
        change: dict[str, Any] = {
            "id": delivery.id,
            "status": status.value,
            "updated_at": now,
            "lease_until": None,
            "response_code": outcome.status_code if outcome else None,
            "error": outcome.error[:255] if outcome and outcome.error else None,
            "provider_message_id": outcome.message_id if outcome else None,
            "sent_at": now if status is DeliveryStatus.SENT else None,
        }
        if outcome is None:
            change["attempts"] = delivery.attempts - 1  # nothing was sent
        work.changes.append(change)
        work.finished[delivery.notification_id] += 1
        work.results.append(
            Result(delivery.id, delivery.device_id, delivery.platform, status, outcome)
        )

    def _retry(
        self,
        work: _Round,
        delivery: Delivery,
        delay: float,
        now: datetime,
        outcome: Outcome,
    ) -> None:
        seconds = max(1, round(delay))
        work.changes.append(
            {
                "id": delivery.id,
                "status": DeliveryStatus.RETRYING.value,
                "updated_at": now,
                "lease_until": None,
                "next_attempt_at": now + timedelta(seconds=seconds),
                "response_code": outcome.status_code,
                "error": (outcome.error or None) and outcome.error[:255],
            }
        )
        work.retries[seconds].append(delivery.id)
        work.results.append(
            Result(
                delivery.id, delivery.device_id, delivery.platform, DeliveryStatus.RETRYING, outcome
            )
        )

    def _defer(self, work: _Round, delivery: Delivery, wait: float, now: datetime) -> None:
        # An open circuit: wait without spending an attempt.
        seconds = max(1, round(wait))
        work.changes.append(
            {
                "id": delivery.id,
                "status": DeliveryStatus.RETRYING.value,
                "updated_at": now,
                "lease_until": None,
                "attempts": delivery.attempts - 1,
                "next_attempt_at": now + timedelta(seconds=seconds),
            }
        )
        work.retries[seconds].append(delivery.id)
        work.results.append(
            Result(
                delivery.id, delivery.device_id, delivery.platform, DeliveryStatus.RETRYING, None
            )
        )

    async def _write(self, work: _Round, now: datetime) -> None:
        async with self.runtime.sessions() as session:
            await deliveries.record(session=session, changes=work.changes)
            if work.invalid_devices:
                await devices.invalidate_many(
                    session=session, reasons=work.invalid_devices, now=now
                )
            if work.finished:
                await notifications.add_finished(session=session, finished=work.finished)
            await session.commit()
        broker = self.runtime.broker
        for seconds, ids in work.retries.items():
            await broker.publish(broker_base.DELIVER, [jobs.deliver_job(ids)], delay=seconds)
        for body, reason, attempts in work.dead:
            await broker.dead_letter(broker_base.DELIVER, [body], reason=reason, attempts=attempts)

    async def _load_notifications(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, _Cached]:
        now = self._clock()
        fresh = {
            i: c
            for i in ids
            if (c := self._notifications.get(i)) and now - c.loaded < NOTIFICATION_CACHE_SECONDS
        }
        missing = ids - fresh.keys()
        if missing:
            async with self.runtime.sessions() as session:
                rows = await notifications.get_many(session=session, ids=missing)
            for row in rows:
                fresh[row.id] = self._notifications[row.id] = _cache(row, now)
        if len(self._notifications) > 10_000:
            self._notifications = dict(fresh)
        return fresh


def _unsendable(info: _Cached, now: datetime) -> DeliveryStatus | None:
    if info.status == NotificationStatus.CANCELED:
        return DeliveryStatus.CANCELED
    if now >= info.expires_at:
        return DeliveryStatus.EXPIRED  # never sent late
    return None


def _cache(row: Notification, loaded: float) -> _Cached:
    return _Cached(
        status=row.status,
        app_id=row.app_id,
        expires_at=row.expires_at,
        message=jobs.decode_message(row.message),
        loaded=loaded,
    )


def _origin(delivery: Delivery) -> str:
    if delivery.platform != "webpush":
        return delivery.platform
    parts = urlsplit(delivery.token)
    return f"{parts.scheme}://{parts.netloc}"


def _dead_letter(delivery: Delivery, outcome: Outcome) -> bytes:
    return orjson.dumps(
        {
            "kind": "delivery_failed",
            "delivery_id": delivery.id,
            "notification_id": str(delivery.notification_id),
            "app_id": str(delivery.app_id),
            "device_id": str(delivery.device_id) if delivery.device_id else None,
            "platform": delivery.platform,
            "attempts": delivery.attempts,
            "last_outcome": outcome.kind.value,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
        }
    )
