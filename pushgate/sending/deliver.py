"""Deliver: claim a batch of deliveries, send them concurrently through their providers, and
hand every outcome to `outcomes.Recorder`, which records them in a few batched writes.

Retries go back through the broker with a delay; exhausted ones become `failed` and a record
with the last answer goes to the dead-letter queue; one whose next try would come after its
notification expires becomes `expired`. An open circuit (or an origin, project or device
token held by a 429's Retry-After) defers a delivery without counting an attempt; so does a
paced credential whose next send slot is far off (`pacing.py`), and one whose slot is near waits
for it before taking a send slot.

Providers are seen only through `DeliveryProvider`: what each can do (its `Capabilities`) is
read once, when the deliverer is made, not per delivery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.broker import base as broker_base
from pushgate.domain import message as messages
from pushgate.domain import notification as notification_rules
from pushgate.domain.circuit import CircuitBreaker
from pushgate.domain.message import Message
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.outcome import Outcome, OutcomeKind
from pushgate.domain.request import MIN_DELIVERY_WINDOW_SECONDS
from pushgate.logs import get_logger
from pushgate.providers.base import DeliveryProvider, Target
from pushgate.runtime import Runtime
from pushgate.sending import jobs, timing
from pushgate.sending.credentials import MissingCredentialsError
from pushgate.sending.outcomes import BreakerKey, Recorder, Result, Round
from pushgate.sending.pacing import Pacer
from pushgate.store import deliveries, devices, notification_progress
from pushgate.store.deliveries import Claimed
from pushgate.store.notification_progress import Sending
from pushgate.store.tables import utcnow

log = get_logger(__name__)

NOTIFICATION_CACHE_SECONDS = 2.0
DRY_RUN_MESSAGE_ID = "dry-run"


@dataclass(frozen=True, slots=True)
class _Route:
    """What sending needs of one platform's provider, read once."""

    # None: one origin for the whole provider (its name), so no call per delivery.
    origin: Callable[[str], str] | None
    dry_run: bool
    topics: bool

    @classmethod
    def of(cls, provider: DeliveryProvider[Any]) -> _Route:
        per_token = type(provider).origin is not DeliveryProvider.origin
        caps = provider.capabilities
        return cls(
            origin=provider.origin if per_token else None, dry_run=caps.dry_run, topics=caps.topics
        )


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
    # A template's other variants by locale (`Notification.renders`), decoded once.
    renders: dict[str, Message] | None = None
    # One message to an FCM topic or condition (`fcm_topic`): the delivery's token is FCM's
    # destination, not a registration token.
    fcm_topic: bool = False
    # `send_at_local`'s wall-clock time: each delivery's lifetime counts from its own local
    # time (see `own`), not from the notification's first zone's.
    local: datetime | None = None
    category: str | None = None

    @property
    def due(self) -> datetime:
        """When it was due (accepted, or its `send_at`): a sent delivery's latency counts from
        then."""
        return self.lifetime_ends - timedelta(seconds=self.message.ttl)

    def own(self, at: datetime | None) -> _Cached:
        """The notification as one local-time delivery due `at` sees it: its TTL counts from
        then (or from the notification's start, for a time already past when it was sent),
        and it expires within the notification's lifetime, which covers every zone."""
        ttl = self.message.ttl
        start = self.lifetime_ends - timedelta(seconds=ttl)
        if at is not None and at > start:
            start = at
        window = timedelta(seconds=max(ttl, MIN_DELIVERY_WINDOW_SECONDS))
        return dataclasses.replace(
            self,
            expires_at=min(self.expires_at, start + window),
            lifetime_ends=start + timedelta(seconds=ttl),
        )


# (delivery, its notification, its breaker and breaker key, its provider's route or None)
_Going = tuple[Claimed, _Cached, CircuitBreaker, BreakerKey, _Route | None]


class Deliverer:
    """Consumes `deliver` jobs, with the runtime's providers, credentials, circuit breakers and
    retry policy.

    Args:
        concurrency: sends in flight at once through this deliverer (default: the
            `worker.concurrency` setting).
        lease: seconds a claim holds a delivery before another worker may take it; longer than
            a send can take (the request timeout), so a live worker never loses its claim.
        pacer: the send slots of paced credentials (default: on the wall clock).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int | None = None,
        lease: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        self.runtime = runtime
        self.pacer = pacer or Pacer(runtime)
        self.providers = runtime.providers
        self.credentials = runtime.credentials
        self.board = runtime.circuits
        self.recorder = Recorder(runtime, clock)
        self.lease = lease or max(60.0, 3 * runtime.settings.delivery.request_timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency or runtime.settings.worker.concurrency)
        self._notifications: dict[uuid.UUID, _Cached] = {}
        self._clock = clock
        self._routes = {name: _Route.of(p) for name, p in runtime.providers.items()}
        self._registration_time = {
            name for name, p in runtime.providers.items() if p.capabilities.registration_time
        }

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
            local = await _local_starts(session, claimed, cached)
            await session.commit()
        if not claimed:
            return []
        work = Round(about={i: (c.category, c.due) for i, c in cached.items()})
        recorder = self.recorder
        routes = self._routes
        going: list[_Going] = []
        for delivery in claimed:
            info = cached.get(delivery.notification_id)
            if local and info is not None and info.local is not None:
                info = info.own(local.get(delivery.id))
                work.local[delivery.id] = info.due
            final = DeliveryStatus.CANCELED if info is None else _unsendable(info, delivery, now)
            if info is None or final is not None:
                recorder.finish(work, delivery, final or DeliveryStatus.CANCELED, None, now)
                continue
            platform = delivery.platform
            route = routes.get(platform)
            origin = route.origin if route is not None else None
            key = (
                str(delivery.app_id),
                platform,
                platform if origin is None else origin(delivery.token),
            )
            if self.board.device_holds:
                held = self.board.device_wait(key[0], key[1], delivery.token)
                if held > 0:
                    recorder.defer(work, delivery, held, now)
                    continue
            breaker = self.board.get(*key)
            work.breakers.add(key)
            if not breaker.allow():
                recorder.defer(work, delivery, breaker.retry_in(), now)
                continue
            going.append((delivery, info, breaker, key, route))
        credentials = await self._credentials({(g[0].app_id, g[0].platform) for g in going})
        slots: dict[int, float] = {}
        if self.pacer.platforms:
            going, slots = await self._pace(work, going, credentials, now)
        registered = await self._registered_at(going)
        sent = await asyncio.gather(
            *(
                self._send(
                    delivery,
                    info,
                    route,
                    credentials[delivery.app_id, delivery.platform],
                    registered.get(delivery.device_id) if delivery.device_id else None,
                    slots.get(delivery.id),
                )
                for delivery, info, _, _, route in going
            )
        )
        # Retry times count from the answer, not from the claim: a slow answer must not eat
        # into a Retry-After.
        answered = utcnow()
        raised = [(g[0], error) for g, (_, _, error) in zip(going, sent, strict=True) if error]
        if raised:
            first, error = raised[0]
            log.error(
                "provider raised",
                count=len(raised),
                notification_id=first.notification_id,
                delivery_id=first.id,
                provider=first.platform,
                exc_info=error,
            )
        self._observe(going, sent, answered)
        for (delivery, info, breaker, key, _), (outcome, reached, _) in zip(
            going, sent, strict=True
        ):
            recorder.judge(work, breaker, key, delivery, outcome, reached=reached)
            recorder.apply(
                work,
                delivery,
                outcome,
                answered,
                expires_at=min(info.expires_at, info.lifetime_ends),
            )
        await recorder.write(work, answered)
        await recorder.announce(work)
        return work.results

    def _observe(
        self,
        going: list[_Going],
        sent: list[tuple[Outcome, bool, Exception | None]],
        answered: datetime,
    ) -> None:
        """Each answered delivery's latency, from when it was due (accepted, or its send
        time) to the answer; a debug line per delivery when debug lines are on."""
        metrics = self.runtime.metrics
        at = answered.timestamp()
        debug = log.is_enabled_for(logging.DEBUG)
        for (delivery, info, *_), (outcome, reached, _) in zip(going, sent, strict=True):
            if reached:
                due = info.lifetime_ends.timestamp() - info.message.ttl
                metrics.delivered_after(delivery.platform, at - due)
            if debug:
                log.debug(
                    "delivery answered",
                    notification_id=delivery.notification_id,
                    delivery_id=delivery.id,
                    provider=delivery.platform,
                    outcome=outcome.kind.value,
                    status_code=outcome.status_code,
                    error=outcome.error or None,
                )

    async def _credentials(self, keys: set[tuple[uuid.UUID, str]]) -> dict[Any, Any]:
        """Each (app, platform)'s credentials, or the outcome for all its deliveries when there
        are none. Once per batch, before the sends: 250 concurrent cache misses would be 250
        database round trips for the same row."""
        found: dict[Any, Any] = {}
        for app_id, platform in keys:
            if platform not in self._routes:
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

    async def _pace(
        self, work: Round, going: list[_Going], credentials: dict[Any, Any], now: datetime
    ) -> tuple[list[_Going], dict[int, float]]:
        """The deliveries that go now, and when each of those whose pace puts its send slot
        ahead may go (`Pacer.pace`); the others are deferred until about when their slot
        comes, their attempt given back."""
        later, deferred = await self.pacer.pace(
            [(g[0], g[3]) for g in going], credentials, self.providers
        )
        if not deferred:
            return going, later
        kept = []
        for entry in going:
            wait = deferred.get(entry[0].id)
            if wait is None:
                kept.append(entry)
                continue
            entry[2].release()  # a half-open probe not sent: let another go
            self.recorder.defer(work, entry[0], wait, now)
        return kept, later

    async def _registered_at(self, going: list[_Going]) -> dict[uuid.UUID, datetime]:
        """When each device of the batch whose provider asks for it (APNs) last registered, in
        one query: APNs's 410 carries the time it stopped accepting the token, and a device
        that registered again since must not be deactivated (docs/protocols.md#apns-errors)."""
        wanted = self._registration_time
        ids = {g[0].device_id for g in going if g[0].platform in wanted and g[0].device_id}
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
        route: _Route | None,
        credentials: Any,
        registered_at: datetime | None = None,
        slot: float | None = None,
    ) -> tuple[Outcome, bool, Exception | None]:
        """The outcome, whether the provider answered it (False: decided here, nothing reached
        the upstream), and the exception a provider raised, if any. `slot`: the wall-clock time
        of its paced credential's send slot, waited for before taking a send slot."""
        if isinstance(credentials, Outcome) or route is None:
            # No route means no provider, and `_credentials` said so with an outcome.
            return credentials, False, None
        if slot is not None:
            await self.pacer.wait_for(slot)
        # Looked up per send, as the runtime holds it (a test may swap one in).
        provider = self.providers[delivery.platform]
        target = Target(
            token=delivery.token,
            p256dh=delivery.p256dh,
            auth=delivery.auth,
            registered_at=registered_at,
        )
        async with self._slots:
            # The provider keeps an undelivered message for `ttl` seconds: on a retry, only what
            # is left of it, so nothing is shown after the notification expired.
            message = info.message
            if delivery.locale is not None and info.renders is not None:
                # An unknown variant cannot come from planning; the default is the safe answer.
                message = info.renders.get(delivery.locale, message)
            ttl = messages.attempt_ttl(
                message.ttl,
                first_attempt=delivery.attempts <= 1,
                seconds_left=(info.lifetime_ends - utcnow()).total_seconds(),
            )
            if ttl != message.ttl:
                message = dataclasses.replace(message, ttl=ttl)
            if message.dry_run and not route.dry_run and not (info.fcm_topic and route.topics):
                return _dry_run(provider, target, message, credentials), False, None
            metrics = self.runtime.metrics
            metrics.in_flight += 1
            started = time.perf_counter()
            try:
                if info.fcm_topic and route.topics:
                    outcome = await _send_to_topic(provider, delivery, message, credentials)
                else:
                    # A provider with `capabilities.dry_run` reads `message.dry_run` itself.
                    outcome = await provider.send(target, message, credentials)
            except Exception as exc:  # a provider bug must not lose the batch
                return Outcome.retry_later(f"provider error: {type(exc).__name__}"), False, exc
            finally:
                metrics.in_flight -= 1
            metrics.provider_answered(delivery.platform, time.perf_counter() - started)
            return outcome, True, None

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


def _dry_run(
    provider: DeliveryProvider[Any], target: Target, message: Message, credentials: Any
) -> Outcome:
    """A dry run where the provider has no validate mode (APNs, Web Push): build the request
    as a send would (`check`), contact no one, and report what the send would be refused for."""
    refusal = provider.check(target, message, credentials)
    if refusal is not None:
        return Outcome.rejected(f"dry run: {refusal}")
    return Outcome.sent(DRY_RUN_MESSAGE_ID)


async def _send_to_topic(
    provider: DeliveryProvider[Any], delivery: Claimed, message: Message, credentials: Any
) -> Outcome:
    """Send an `fcm_topic` delivery with `send_to_topic`. There is no token to be invalid and
    no device to deactivate: an answer that would say so for a token only rejects the send."""
    try:
        destination = notification_rules.fcm_destination(delivery.token)
    except ValueError as exc:
        return Outcome.rejected(str(exc))
    outcome = await provider.send_to_topic(destination, message, credentials)
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
        renders={k: jobs.decode_message(v) for k, v in row.renders.items()}
        if row.renders
        else None,
        fcm_topic=notification_rules.is_fcm_topic(row.target),
        local=_wall_time(row.options),
        category=row.category,
    )


def _wall_time(options: dict[str, Any] | None) -> datetime | None:
    wall = options.get("send_at_local") if options else None
    return None if wall is None else datetime.fromisoformat(wall)


async def _local_starts(
    session: AsyncSession, claimed: list[Claimed], cached: dict[uuid.UUID, _Cached]
) -> dict[int, datetime]:
    """When each claimed local-time delivery was due: its wall-clock time in its zone, found
    as dispatch found it. One lookup per local-time notification in the batch; none for others."""
    if all(info.local is None for info in cached.values()):
        return {}  # the usual batch: nothing per delivery
    by_notification: dict[tuple[uuid.UUID, datetime], list[Claimed]] = {}
    for delivery in claimed:
        info = cached.get(delivery.notification_id)
        if info is not None and info.local is not None:
            by_notification.setdefault((delivery.notification_id, info.local), []).append(delivery)
    due: dict[int, datetime] = {}
    for (_, wall), group in by_notification.items():
        starts, no_device = await timing.local_starts(
            session, wall, group[0].app_id, {d.device_id for d in group if d.device_id}
        )
        for delivery in group:
            due[delivery.id] = starts.get(delivery.device_id, no_device)  # type: ignore[arg-type]
    return due
