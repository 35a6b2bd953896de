"""Recording one round of deliveries: what each outcome means for its delivery (sent, retried
with a delay, failed and dead-lettered, expired), for its circuit breaker, and the batched
writes that follow (deliveries, devices, notification progress, the broker's retries and
dead letters, circuit states shared through the key-value store)."""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pushgate.broker import base as broker_base
from pushgate.domain import circuit
from pushgate.domain.circuit import CircuitBreaker
from pushgate.domain.notification import DeliveryStatus
from pushgate.domain.outcome import HoldScope, Outcome, OutcomeKind
from pushgate.domain.webhooks import EventType
from pushgate.logs import get_logger
from pushgate.metrics.registry import status_class
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.store import (
    deliveries,
    device_expiry,
    devices,
    notification_progress,
    rollups,
    webhooks,
)
from pushgate.store.deliveries import Claimed

log = get_logger(__name__)

# While a circuit is not closed, its state is re-shared at most this often (it heals an update
# lost to a concurrent writer); every change of state is shared at once.
SHARE_EVERY_SECONDS = 1.0
SHARED_TTL_SECONDS = 24 * 3600.0

OUTCOME_STATUS = {
    OutcomeKind.SENT: DeliveryStatus.SENT,
    OutcomeKind.TOKEN_INVALID: DeliveryStatus.INVALID,
    OutcomeKind.REJECTED: DeliveryStatus.REJECTED,
}

BreakerKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery in this round (for send-immediate and tests)."""

    delivery_id: int
    device_id: uuid.UUID | None
    platform: str
    status: DeliveryStatus
    outcome: Outcome | None


@dataclass
class Round:
    """The writes one batch produces, applied together at the end."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    invalid_devices: dict[uuid.UUID, str] = field(default_factory=dict)
    finished: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    retries: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    dead: dict[tuple[str, int], list[bytes]] = field(default_factory=lambda: defaultdict(list))
    results: list[Result] = field(default_factory=list)
    breakers: set[BreakerKey] = field(default_factory=set)
    last_error: dict[BreakerKey, str] = field(default_factory=dict)
    # Webhook events of this round (rare outcomes only: a sent delivery makes none).
    events: list[webhooks.Event] = field(default_factory=list)
    # For analytics: each notification's category and when it was due (a sent delivery's
    # latency counts from then), a local-time delivery's own due time, and the final outcomes
    # counted per rollup key (store/rollups.py).
    about: dict[uuid.UUID, tuple[str | None, datetime]] = field(default_factory=dict)
    local: dict[int, datetime] = field(default_factory=dict)
    tally: rollups.DeliveryTally = field(default_factory=rollups.DeliveryTally)


class Recorder:
    """Turns outcomes into a `Round` and writes it, with the runtime's circuit breakers and
    retry policy."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float]) -> None:
        self.runtime = runtime
        self.board = runtime.circuits
        self.policy = runtime.retry_policy
        self._clock = clock
        self._shared_at = -SHARE_EVERY_SECONDS

    def judge(
        self,
        work: Round,
        breaker: CircuitBreaker,
        key: BreakerKey,
        delivery: Claimed,
        outcome: Outcome,
        *,
        reached: bool,
    ) -> None:
        """Tell the delivery's breaker what the upstream's answer says about its health."""
        kind = outcome.kind
        if not reached or (outcome.status_code is None and kind is not OutcomeKind.RETRY_LATER):
            # Refused before sending (no credentials, payload too large, SSRF guard): says
            # nothing about the upstream, and must not use up a half-open probe.
            breaker.release()
        elif kind is OutcomeKind.CREDENTIAL_ALARM:
            breaker.trip()
            work.last_error[key] = outcome.error
        elif kind is OutcomeKind.RETRY_LATER and outcome.status_code == 429:
            # Alive, but asking us to slow down: not a failure (a rate limit must not open the
            # circuit), not a success (it says nothing about 5xx). Its Retry-After holds what
            # the answer is about: one device token, or the whole origin or project.
            breaker.release()
            if outcome.retry_after:
                seconds = min(outcome.retry_after, self.policy.cap)
                if outcome.hold is HoldScope.DEVICE:
                    app_id, provider, _ = key
                    self.board.hold_device(app_id, provider, delivery.token, seconds)
                else:
                    breaker.hold(seconds)
        elif kind is OutcomeKind.RETRY_LATER:
            # 5xx, timeouts and refused connections: the upstream is failing.
            breaker.record_failure()
            work.last_error[key] = outcome.error
        else:
            breaker.record_success()

    def apply(
        self,
        work: Round,
        delivery: Claimed,
        outcome: Outcome,
        now: datetime,
        *,
        expires_at: datetime,
    ) -> None:
        """Record an answered delivery: final, retried, or failed for good.

        Args:
            expires_at: when its notification may no longer be sent (a retry after that
                would come too late: the delivery expires now instead).
        """
        status = OUTCOME_STATUS.get(outcome.kind)
        if status is not None:
            if status is DeliveryStatus.INVALID and delivery.device_id is not None:
                reason = outcome.error or "token invalid"
                log.info(
                    "device token invalid: device deactivated",
                    notification_id=delivery.notification_id,
                    delivery_id=delivery.id,
                    provider=delivery.platform,
                    device_id=delivery.device_id,
                    reason=reason,
                )
                if delivery.device_id not in work.invalid_devices:  # one event per device
                    work.events.append(
                        _event(EventType.DEVICE_INVALIDATED, delivery, outcome, reason=reason)
                    )
                work.invalid_devices[delivery.device_id] = reason
            self.finish(work, delivery, status, outcome, now)
            return
        if self.policy.exhausted(delivery.attempts):
            self.finish(work, delivery, DeliveryStatus.FAILED, outcome, now)
            reason = (
                f"{outcome.kind.value}: {outcome.error}" if outcome.error else outcome.kind.value
            )
            log.warning(
                "delivery failed: attempts exhausted, dead-lettered",
                notification_id=delivery.notification_id,
                delivery_id=delivery.id,
                provider=delivery.platform,
                attempts=delivery.attempts,
                reason=reason,
            )
            work.dead[reason, delivery.attempts].append(_dead_letter(delivery, outcome))
            work.events.append(_event(EventType.DELIVERY_FAILED, delivery, outcome, reason=reason))
            return
        floor = self.board.timeout if outcome.kind is OutcomeKind.CREDENTIAL_ALARM else 0.0
        seconds = self.policy.next_try(
            delivery.attempts,
            retry_after=outcome.retry_after,
            floor=floor,
            left=(expires_at - now).total_seconds(),
        )
        if seconds is None:
            # The next try would come too late to be sent: expired now, not after a wait.
            self.finish(work, delivery, DeliveryStatus.EXPIRED, outcome, now)
            return
        self.retry(work, delivery, seconds, now, outcome)

    def finish(
        self,
        work: Round,
        delivery: Claimed,
        status: DeliveryStatus,
        outcome: Outcome | None,
        now: datetime,
    ) -> None:
        change: dict[str, Any] = {
            "id": delivery.id,
            "status": status.value,
            "updated_at": now,
            "lease_until": None,
        }
        if outcome is None:
            # Nothing was sent this round: give the attempt back, keep the last answer.
            change["attempts"] = delivery.attempts - 1
        else:
            change["response_code"] = outcome.status_code
            change["error"] = outcome.error[:255] if outcome.error else None
            change["provider_message_id"] = outcome.message_id
            change["sent_at"] = now if status is DeliveryStatus.SENT else None
        work.changes.append(change)
        work.finished[delivery.notification_id] += 1
        about = work.about.get(delivery.notification_id)
        latency_ms = None
        if status is DeliveryStatus.SENT and about is not None:
            start = work.local.get(delivery.id, about[1])
            latency_ms = (now - start).total_seconds() * 1000.0
        work.tally.add(
            app_id=delivery.app_id,
            at=now,
            provider=delivery.platform,
            category=about[0] if about is not None else None,
            outcome=status.value,
            latency_ms=latency_ms,
        )
        work.results.append(
            Result(delivery.id, delivery.device_id, delivery.platform, status, outcome)
        )

    def retry(
        self,
        work: Round,
        delivery: Claimed,
        seconds: int,
        now: datetime,
        outcome: Outcome,
    ) -> None:
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

    def defer(self, work: Round, delivery: Claimed, wait: float, now: datetime) -> None:
        # An open circuit or a held origin: wait without spending an attempt (the claim
        # counted one), keeping the last answer.
        seconds = max(1, math.ceil(wait))
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

    async def write(self, work: Round, now: datetime) -> None:
        async with self.runtime.sessions() as session:
            await deliveries.record(session=session, changes=work.changes)
            # A device delivered to is seen (device expiry): folded into this write, and
            # each device written at most once a day (store/device_expiry.py `seen`).
            delivered = {
                r.device_id
                for r in work.results
                if r.status is DeliveryStatus.SENT and r.device_id is not None
            }
            await device_expiry.seen(session=session, device_ids=delivered, now=now)
            # Before the devices change: a device deactivated already is not announced again.
            events = await webhooks.wanted(session=session, events=work.events)
            gone: list[devices.Invalidated] = []
            if work.invalid_devices:
                gone = await devices.invalidate_many(
                    session=session, reasons=work.invalid_devices, now=now
                )
            if events:
                await webhooks.emit(session=session, events=events, now=now)
            if work.finished:
                await notification_progress.add_finished(session=session, finished=work.finished)
            # Last: the rollup rows are shared with other batches (see store/rollups.py).
            if work.tally:
                await rollups.add_deliveries(session=session, tally=work.tally)
            if gone:
                counts = rollups.device_counts()
                for device in gone:
                    counts[device.app_id, device.platform][
                        rollups.invalidation_kind(device.reason)
                    ] += 1
                await rollups.add_devices(session=session, at=now, counts=counts)
            await session.commit()
        self._tally(work)
        # The outcomes are committed: a publish that fails now must not fail the job (its
        # redelivery would find nothing to claim). The sweeper publishes retrying deliveries
        # whose time has passed, so a lost retry job only makes that retry late.
        broker = self.runtime.broker
        for seconds, ids in work.retries.items():
            try:
                await broker.publish(broker_base.DELIVER, [jobs.deliver_job(ids)], delay=seconds)
            except Exception:
                log.exception("cannot publish retries; the sweeper will", deliveries=len(ids))
        for (reason, attempts), bodies in work.dead.items():
            try:
                await broker.dead_letter(
                    broker_base.DELIVER, bodies, reason=reason, attempts=attempts
                )
            except Exception:
                # The deliveries are `failed` with their last answer in the database; only
                # the dead-letter copy is lost.
                log.exception("cannot dead-letter failed deliveries", deliveries=len(bodies))

    def _tally(self, work: Round) -> None:
        """Count the round's recorded results: one increment per label set, not per delivery."""
        counts: dict[tuple[str, str, str], int] = {}
        invalid: dict[str, int] = {}
        for result in work.results:
            outcome = result.outcome
            status = result.status.value
            if outcome is None:
                # Decided here: deferred (a circuit, a hold, pacing), or final before sending.
                reason = "not_sent"
                if result.status is DeliveryStatus.RETRYING:
                    status = "deferred"
            elif outcome.status_code is not None:
                reason = status_class(outcome.status_code)
            else:
                reason = "no_answer" if outcome.kind is OutcomeKind.RETRY_LATER else "local"
            key = (result.platform, status, reason)
            counts[key] = counts.get(key, 0) + 1
            if result.status is DeliveryStatus.INVALID:
                invalid[result.platform] = invalid.get(result.platform, 0) + 1
        metrics = self.runtime.metrics
        metrics.count_deliveries(counts)
        if invalid:
            metrics.count_invalidations(invalid)

    async def announce(self, work: Round) -> None:
        """Log each circuit that changed state (once, not per delivery), and share the
        not-closed ones with the API processes through the key-value store."""
        mine: dict[BreakerKey, circuit.CircuitReport | None] = {}
        changed = False
        for key in work.breakers:
            breaker = self.board.breakers[key]
            state = breaker.state
            if state is not breaker.noted:
                changed = True
                _log_transition(key, breaker.noted, state, work.last_error.get(key))
                self.runtime.metrics.circuit_state(*key, state.value)
                breaker.noted = state
            mine[key] = (
                None
                if state is circuit.State.CLOSED
                else circuit.CircuitReport(*key, state, breaker.retry_in())
            )
        clock = self._clock()
        if not mine or not (
            changed or (any(mine.values()) and clock - self._shared_at >= SHARE_EVERY_SECONDS)
        ):
            return
        self._shared_at = clock
        kv = self.runtime.kv
        try:
            raw = await kv.get(circuit.SHARED_KEY)
            merged = circuit.merge_shared(
                raw, mine, now=time.time(), linger=max(self.board.timeout, SHARE_EVERY_SECONDS)
            )
            await kv.set(circuit.SHARED_KEY, merged, ttl=SHARED_TTL_SECONDS)
        except Exception:  # readiness shows less; sending goes on
            log.warning("cannot share circuit states", exc_info=True)


def _log_transition(
    key: BreakerKey, before: circuit.State, after: circuit.State, error: str | None
) -> None:
    app_id, provider, origin = key
    fields = {"app_id": app_id, "provider": provider, "origin": origin, "was": before.value}
    if after is circuit.State.OPEN:
        log.warning("circuit opened: deliveries wait", last_error=error, **fields)
    elif after is circuit.State.CLOSED:
        log.info("circuit closed: deliveries flow", **fields)
    else:
        log.info(f"circuit {after.value}", **fields)


def _event(kind: EventType, delivery: Claimed, outcome: Outcome, *, reason: str) -> webhooks.Event:
    """A webhook event about a delivery, ordered with the other events of its device."""
    device = str(delivery.device_id) if delivery.device_id is not None else None
    return webhooks.Event(
        app_id=delivery.app_id,
        type=kind.value,
        key=device or f"delivery:{delivery.id}",
        data={
            "device_id": device,
            "platform": delivery.platform,
            "notification_id": str(delivery.notification_id),
            "delivery_id": delivery.id,
            "reason": reason,
            "status_code": outcome.status_code,
            "attempts": delivery.attempts,
        },
    )


def _dead_letter(delivery: Claimed, outcome: Outcome) -> bytes:
    return jobs.dead_delivery(
        delivery_id=delivery.id,
        notification_id=str(delivery.notification_id),
        app_id=str(delivery.app_id),
        device_id=str(delivery.device_id) if delivery.device_id else None,
        platform=delivery.platform,
        attempts=delivery.attempts,
        last_outcome=outcome.kind.value,
        last_status_code=outcome.status_code,
        last_error=outcome.error,
    )
