"""Deliver: claim a batch of deliveries, send them concurrently through their providers, and
record every outcome in a few batched writes (deliveries, devices, notification progress).

Retries go back through the broker with a delay; exhausted ones become `failed` and a record
with the last answer goes to the dead-letter queue; one whose next try would come after its
notification expires becomes `expired`. An open circuit (or an origin, project or device
token held by a 429's Retry-After) defers a delivery without counting an attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.broker import base as broker_base
from pushgate.domain import circuit
from pushgate.domain import message as messages
from pushgate.domain import notification as notification_rules
from pushgate.domain.circuit import CircuitBreaker
from pushgate.domain.message import Message, check_webpush_payload
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.outcome import HoldScope, Outcome, OutcomeKind
from pushgate.errors import PushgateError
from pushgate.logs import get_logger
from pushgate.providers import apns
from pushgate.providers.apns import APNSProvider
from pushgate.providers.base import Target
from pushgate.providers.fcm import FCMProvider
from pushgate.runtime import Runtime
from pushgate.sending import jobs
from pushgate.sending.credentials import MissingCredentialsError
from pushgate.store import deliveries, devices, notification_progress
from pushgate.store.deliveries import Claimed
from pushgate.store.notification_progress import Sending
from pushgate.store.tables import utcnow

log = get_logger(__name__)

NOTIFICATION_CACHE_SECONDS = 2.0
# While a circuit is not closed, its state is re-shared at most this often (it heals an update
# lost to a concurrent writer); every change of state is shared at once.
SHARE_EVERY_SECONDS = 1.0
SHARED_TTL_SECONDS = 24 * 3600.0

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
    dead: dict[tuple[str, int], list[bytes]] = field(default_factory=lambda: defaultdict(list))
    results: list[Result] = field(default_factory=list)
    breakers: set[tuple[str, str, str]] = field(default_factory=set)
    last_error: dict[tuple[str, str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Cached:
    status: str
    app_id: uuid.UUID
    expires_at: datetime
    # When the message's own `ttl` runs out (send time + ttl). `expires_at` may be later: the
    # first attempt gets a minimum window (see domain.request), but a retry after the ttl
    # would show the message late, so retries stop here.
    lifetime_ends: datetime
    message: Message
    loaded: float
    # One message to an FCM topic or condition (`fcm_topic`): the delivery's token is FCM's
    # destination, not a registration token.
    fcm_topic: bool = False


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
        self._shared_at = -SHARE_EVERY_SECONDS

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        ids: list[int] = []
        requeued: list[int] = []
        for message in batch:
            try:
                ids.extend(jobs.read_deliver_job(message.body))
            except jobs.BadJobError as exc:
                try:
                    requeued.append(jobs.read_requeued_delivery(message.body))
                except jobs.BadJobError:
                    message.dead_letter(str(exc))
        if requeued:
            ids.extend(await self._reopen(requeued))
        if ids:
            await self.deliver(ids)
        for message in batch:
            if not message.settled:
                message.ack()

    async def _reopen(self, ids: list[int]) -> list[int]:
        """Make failed deliveries requeued from the dead-letter queue sendable again (see
        `deliveries.reopen_failed`); the ids reopened, to send in this batch."""
        now = utcnow()
        async with self.runtime.sessions() as session:
            reopened = await deliveries.reopen_failed(session=session, ids=ids, now=now)
            await session.commit()
        found = [i for d in reopened.values() for i in d]
        if len(found) < len(ids):
            # Sent or reopened already, or its notification was canceled or expired meanwhile.
            log.warning(
                "requeued deliveries not failed any more: left alone",
                ids=sorted(set(ids) - set(found)),
            )
        return found

    async def deliver(self, ids: list[int]) -> list[Result]:
        now = utcnow()
        async with self.runtime.sessions() as session:
            claimed = await deliveries.claim(session=session, ids=ids, now=now, lease=self.lease)
            # Read in the same transaction: one connection checkout for both.
            cached = await self._load_notifications(session, {d.notification_id for d in claimed})
            await session.commit()
        if not claimed:
            return []
        work = _Round()
        going: list[tuple[Claimed, _Cached, CircuitBreaker]] = []
        for delivery in claimed:
            info = cached.get(delivery.notification_id)
            final = DeliveryStatus.CANCELED if info is None else _unsendable(info, delivery, now)
            if info is None or final is not None:
                self._finish(work, delivery, final or DeliveryStatus.CANCELED, None, now)
                continue
            key = _breaker_key(delivery)
            if self.board.device_holds:
                held = self.board.device_wait(key[0], key[1], delivery.token)
                if held > 0:
                    self._defer(work, delivery, held, now)
                    continue
            breaker = self.board.get(*key)
            work.breakers.add(key)
            if not breaker.allow():
                self._defer(work, delivery, breaker.retry_in(), now)
                continue
            going.append((delivery, info, breaker))
        credentials = await self._credentials({(d.app_id, d.platform) for d, _, _ in going})
        registered = await self._registered_at(going)
        sent = await asyncio.gather(
            *(
                self._send(
                    delivery,
                    info,
                    credentials[delivery.app_id, delivery.platform],
                    registered.get(delivery.device_id) if delivery.device_id else None,
                )
                for delivery, info, _ in going
            )
        )
        # Retry times count from the answer, not from the claim: a slow answer must not eat
        # into a Retry-After.
        answered = utcnow()
        errors = [error for _, _, error in sent if error is not None]
        if errors:
            log.error("provider raised", count=len(errors), exc_info=errors[0])
        for (delivery, info, breaker), (outcome, reached, _) in zip(going, sent, strict=True):
            self._judge(work, breaker, delivery, outcome, reached=reached)
            self._apply(work, delivery, info, outcome, answered)
        await self._write(work, answered)
        await self._announce(work)
        return work.results

    async def _credentials(self, keys: set[tuple[uuid.UUID, str]]) -> dict[Any, Any]:
        """Each (app, platform)'s credentials, or the outcome for all its deliveries when there
        are none. Once per batch, before the sends: 250 concurrent cache misses would be 250
        database round trips for the same row."""
        found: dict[Any, Any] = {}
        for app_id, platform in keys:
            if platform not in self.providers:
                found[app_id, platform] = Outcome.rejected(
                    f"no {platform} provider in this version"
                )
                continue
            try:
                found[app_id, platform] = await self.credentials(app_id, platform)
            except MissingCredentialsError as exc:
                found[app_id, platform] = Outcome.rejected(str(exc))
            except Exception as exc:  # the database, most likely: nothing was sent, try later
                log.exception("cannot load credentials", app_id=str(app_id), platform=platform)
                found[app_id, platform] = Outcome.retry_later(
                    f"cannot load credentials: {type(exc).__name__}"
                )
        return found

    async def _registered_at(
        self, going: list[tuple[Claimed, _Cached, CircuitBreaker]]
    ) -> dict[uuid.UUID, datetime]:
        """When each APNs device of the batch last registered, in one query: APNs's 410
        carries the time it stopped accepting the token, and a device that registered again
        since must not be deactivated (PROTOCOLS.md, APNs table)."""
        ids = {d.device_id for d, _, _ in going if d.platform == "apns" and d.device_id}
        if not ids:
            return {}
        try:
            async with self.runtime.sessions() as session:
                return await devices.last_seen_many(session=session, device_ids=ids)
        except Exception:
            # Without it a 410 deactivates as if the device never re-registered: the safer
            # loss than holding up the whole batch.
            log.warning("cannot read device registration times", exc_info=True)
            return {}

    async def _send(
        self,
        delivery: Claimed,
        info: _Cached,
        credentials: Any,
        registered_at: datetime | None = None,
    ) -> tuple[Outcome, bool, Exception | None]:
        """The outcome, whether the provider answered it (False: decided here, nothing reached
        the upstream), and the exception a provider raised, if any."""
        if isinstance(credentials, Outcome):
            return credentials, False, None
        provider = self.providers[delivery.platform]
        target = Target(token=delivery.token, p256dh=delivery.p256dh, auth=delivery.auth)
        async with self._slots:
            # The provider keeps an undelivered message for `ttl` seconds: on a retry, only what
            # is left of it, so nothing is shown after the notification expired.
            message = info.message
            ttl = messages.attempt_ttl(
                message.ttl,
                first_attempt=delivery.attempts <= 1,
                seconds_left=(info.lifetime_ends - utcnow()).total_seconds(),
            )
            if ttl != message.ttl:
                message = dataclasses.replace(message, ttl=ttl)
            try:
                # FCM and APNs take arguments beyond the DeliveryProvider port (a dry run, the
                # device's registration time); each is called with its own signature.
                if info.fcm_topic and isinstance(provider, FCMProvider):
                    outcome = await _send_to_topic(provider, delivery, message, credentials)
                elif isinstance(provider, FCMProvider):
                    outcome = await provider.send(
                        target, message, credentials, validate_only=message.dry_run
                    )
                elif message.dry_run:
                    return _dry_run(delivery.platform, target, message, credentials), False, None
                elif isinstance(provider, APNSProvider):
                    outcome = await provider.send(
                        target, message, credentials, device_registered_at=registered_at
                    )
                else:
                    outcome = await provider.send(target, message, credentials)
            except Exception as exc:  # a provider bug must not lose the batch
                return Outcome.retry_later(f"provider error: {type(exc).__name__}"), False, exc
            return outcome, True, None

    def _judge(
        self,
        work: _Round,
        breaker: CircuitBreaker,
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
            work.last_error[_breaker_key(delivery)] = outcome.error
        elif kind is OutcomeKind.RETRY_LATER and outcome.status_code == 429:
            # Alive, but asking us to slow down: not a failure (a rate limit must not open the
            # circuit), not a success (it says nothing about 5xx). Its Retry-After holds what
            # the answer is about: one device token, or the whole origin or project.
            breaker.release()
            if outcome.retry_after:
                seconds = min(outcome.retry_after, self.policy.cap)
                if outcome.hold is HoldScope.DEVICE:
                    app_id, provider, _ = _breaker_key(delivery)
                    self.board.hold_device(app_id, provider, delivery.token, seconds)
                else:
                    breaker.hold(seconds)
        elif kind is OutcomeKind.RETRY_LATER:
            # 5xx, timeouts and refused connections: the upstream is failing.
            breaker.record_failure()
            work.last_error[_breaker_key(delivery)] = outcome.error
        else:
            breaker.record_success()

    def _apply(
        self, work: _Round, delivery: Claimed, info: _Cached, outcome: Outcome, now: datetime
    ) -> None:
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
            work.dead[reason, delivery.attempts].append(_dead_letter(delivery, outcome))
            return
        floor = self.board.timeout if outcome.kind is OutcomeKind.CREDENTIAL_ALARM else 0.0
        seconds = self.policy.next_try(
            delivery.attempts,
            retry_after=outcome.retry_after,
            floor=floor,
            left=(min(info.expires_at, info.lifetime_ends) - now).total_seconds(),
        )
        if seconds is None:
            # The next try would come too late to be sent: expired now, not after a wait.
            self._finish(work, delivery, DeliveryStatus.EXPIRED, outcome, now)
            return
        self._retry(work, delivery, seconds, now, outcome)

    def _finish(
        self,
        work: _Round,
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
        work.results.append(
            Result(delivery.id, delivery.device_id, delivery.platform, status, outcome)
        )

    def _retry(
        self,
        work: _Round,
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

    def _defer(self, work: _Round, delivery: Claimed, wait: float, now: datetime) -> None:
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

    async def _write(self, work: _Round, now: datetime) -> None:
        async with self.runtime.sessions() as session:
            await deliveries.record(session=session, changes=work.changes)
            if work.invalid_devices:
                await devices.invalidate_many(
                    session=session, reasons=work.invalid_devices, now=now
                )
            if work.finished:
                await notification_progress.add_finished(session=session, finished=work.finished)
            await session.commit()
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

    async def _announce(self, work: _Round) -> None:
        """Log each circuit that changed state (once, not per delivery), and share the
        not-closed ones with the API processes through the key-value store."""
        mine: dict[tuple[str, str, str], circuit.CircuitReport | None] = {}
        changed = False
        for key in work.breakers:
            breaker = self.board.breakers[key]
            state = breaker.state
            if state is not breaker.noted:
                changed = True
                _log_transition(key, breaker.noted, state, work.last_error.get(key))
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

    async def _load_notifications(
        self, session: AsyncSession, ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, _Cached]:
        now = self._clock()
        fresh = {
            i: c
            for i in ids
            if (c := self._notifications.get(i)) and now - c.loaded < NOTIFICATION_CACHE_SECONDS
        }
        missing = ids - fresh.keys()
        if missing:
            rows = await notification_progress.get_many(session=session, ids=missing)
            for row in rows:
                fresh[row.id] = self._notifications[row.id] = _cache(row, now)
        if len(self._notifications) > 10_000:
            self._notifications = dict(fresh)
        return fresh


DRY_RUN_MESSAGE_ID = "dry-run"


def _dry_run(platform: str, target: Target, message: Message, credentials: Any) -> Outcome:
    """A dry run where the provider has no validate mode (APNs, Web Push): build the request
    as a send would, contact no one, and report what the send would have been refused for."""
    try:
        if platform == "apns":
            apns.build_request(target, message, credentials)
        elif platform == "webpush":
            check_webpush_payload(message)
    except apns.InvalidDeviceTokenError as exc:
        return Outcome.rejected(f"dry run: {exc}")
    except PushgateError as exc:
        return Outcome.rejected(f"dry run: {exc.message}")
    return Outcome.sent(DRY_RUN_MESSAGE_ID)


async def _send_to_topic(
    provider: FCMProvider, delivery: Claimed, message: Message, credentials: Any
) -> Outcome:
    """Send an `fcm_topic` delivery with `send_to_topic`. There is no token to be invalid and
    no device to deactivate: an answer that would say so for a token only rejects the send."""
    try:
        destination = notification_rules.fcm_destination(delivery.token)
    except ValueError as exc:
        return Outcome.rejected(str(exc))
    outcome = await provider.send_to_topic(
        destination, message, credentials, validate_only=message.dry_run
    )
    if outcome.kind is OutcomeKind.TOKEN_INVALID:
        return Outcome.rejected(outcome.error, status_code=outcome.status_code)
    return outcome


def _unsendable(info: _Cached, delivery: Claimed, now: datetime) -> DeliveryStatus | None:
    if info.status == NotificationStatus.CANCELED:
        return DeliveryStatus.CANCELED
    if now >= info.expires_at:
        return DeliveryStatus.EXPIRED  # never sent late
    # `attempts` already counts this claim: above 1, an earlier attempt reached the provider.
    if delivery.attempts > 1 and now >= info.lifetime_ends:
        return DeliveryStatus.EXPIRED
    return None


def _cache(row: Sending, loaded: float) -> _Cached:
    return _Cached(
        status=row.status,
        app_id=row.app_id,
        expires_at=row.expires_at,
        lifetime_ends=max(row.send_at or row.created_at, row.created_at)
        + timedelta(seconds=int(row.message["ttl"])),
        message=jobs.decode_message(row.message),
        loaded=loaded,
        fcm_topic=notification_rules.is_fcm_topic(row.target),
    )


def _origin(delivery: Claimed) -> str:
    if delivery.platform != "webpush":
        return delivery.platform
    parts = urlsplit(delivery.token)
    return f"{parts.scheme}://{parts.netloc}"


def _breaker_key(delivery: Claimed) -> tuple[str, str, str]:
    return (str(delivery.app_id), delivery.platform, _origin(delivery))


def _log_transition(
    key: tuple[str, str, str], before: circuit.State, after: circuit.State, error: str | None
) -> None:
    app_id, provider, origin = key
    fields = {"app_id": app_id, "provider": provider, "origin": origin, "was": before.value}
    if after is circuit.State.OPEN:
        log.warning("circuit opened: deliveries wait", last_error=error, **fields)
    elif after is circuit.State.CLOSED:
        log.info("circuit closed: deliveries flow", **fields)
    else:
        log.info(f"circuit {after.value}", **fields)


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
