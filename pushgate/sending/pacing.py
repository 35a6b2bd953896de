"""Outbound pacing: one schedule of send slots per provider credential (an FCM project, an APNs
team, a push service's origin per app: the provider names it, `DeliveryProvider.credential_key`),
shared by every worker through the key-value store, at the rate the `pacing` settings give it.

A batch reserves its slots in one key-value call for all its credentials. A delivery whose
slot is near (within `pacing.max_wait_seconds`) waits for it without holding a send slot, so
other credentials' deliveries go on; one whose slot is further off is not reserved at all, and
waits in the queue instead (deferred, the attempt given back), due back about when its slot
comes. Credentials that are not paced cost nothing: no key-value call, no wait.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pushgate import outages
from pushgate.domain.outcome import Outcome
from pushgate.domain.rates import Rate
from pushgate.kv.base import SlotRequest
from pushgate.logs import get_logger
from pushgate.providers.base import DeliveryProvider
from pushgate.runtime import Runtime
from pushgate.store.deliveries import Claimed

log = get_logger(__name__)

# Waits shorter than this are not worth a timer: the send goes at once.
MIN_WAIT_SECONDS = 0.001

# A delivery and its circuit's key (app, platform, origin).
Pacing = tuple[Claimed, tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class Granted:
    """The slots one schedule gave a batch (wall-clock seconds): the first `granted` are the
    batch's own, `interval` apart; the others are where the schedule will be by then (not
    reserved: defer them)."""

    granted: int
    first: float
    next_free: float
    interval: float
    count: int

    def at(self, n: int) -> float:
        """When the n-th delivery (from 0) may go."""
        if n < self.granted:
            return self.first + n * self.interval
        return self.next_free + (n - self.granted) * self.interval

    @property
    def last(self) -> float:
        return self.at(self.count - 1)


class Pacer:
    """The `pacing` settings and the schedules in the key-value store.

    Args:
        clock: wall-clock seconds, agreed on by every worker sharing the schedules.
        sleep: how a delivery waits for its slot.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = runtime.settings.pacing
        self.max_wait = self.settings.max_wait_seconds
        self._kv = runtime.kv
        self._clock = clock
        self._sleep = sleep
        # The platforms any credential of which may be paced: the others are never looked at.
        self.platforms = frozenset(name for name in runtime.providers if self._may_pace(name))

    def _may_pace(self, platform: str) -> bool:
        rate = self.settings.per_provider.get(platform)
        if rate is not None and not rate.unlimited:
            return True
        return any(
            key.startswith(f"{platform}:") and not rate.unlimited
            for key, rate in self.settings.per_credential.items()
        )

    def rate(self, platform: str, credential: str) -> Rate | None:
        return self.settings.rate(platform, credential)

    async def pace(
        self,
        batch: Sequence[Pacing],
        credentials: Mapping[tuple[uuid.UUID, str], Any],
        providers: Mapping[str, DeliveryProvider[Any]],
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Reserve the send slots of a batch's paced deliveries, in one key-value call.

        Args:
            batch: the deliveries about to be sent, with their circuit's key.
            credentials: each (app, platform)'s credentials, or an `Outcome` when it has none
                (those are not paced: they will not be sent).
            providers: by platform, to name each credential (`credential_key`).

        Returns:
            By delivery id: for those whose slot is ahead, when it comes (wall clock); for those
            to defer (their slot too far off), how many seconds to wait in the queue.
        """
        # (app, platform, origin) -> its schedule's deliveries, or None when not paced: the
        # provider is asked once for each.
        by_key: dict[tuple[str, str, str], list[Claimed] | None] = {}
        schedules: dict[str, tuple[Rate, list[Claimed]]] = {}
        for delivery, key in batch:
            if delivery.platform not in self.platforms:
                continue
            if key in by_key:
                group = by_key[key]
            else:
                group = by_key[key] = self._group(
                    key, credentials[delivery.app_id, delivery.platform], providers, schedules
                )
            if group is not None:
                group.append(delivery)
        if not schedules:
            return {}, {}
        found = await self.reserve({name: (rate, len(g)) for name, (rate, g) in schedules.items()})
        wall = self._clock()
        later: dict[int, float] = {}
        deferred: dict[int, float] = {}
        for name, (_, group) in schedules.items():
            slots = found[name]
            if slots.granted == len(group) and slots.last <= wall:
                continue  # every slot has come: the usual case below the rate
            for n, delivery in enumerate(group):
                at = slots.at(n)
                if n >= slots.granted:
                    # Back when its slot is within reach.
                    deferred[delivery.id] = at - wall - self.max_wait / 2
                elif at > wall:
                    later[delivery.id] = at
        return later, deferred

    def _group(
        self,
        key: tuple[str, str, str],
        own: Any,
        providers: Mapping[str, DeliveryProvider[Any]],
        schedules: dict[str, tuple[Rate, list[Claimed]]],
    ) -> list[Claimed] | None:
        """The list gathering the deliveries of `key`'s schedule, or None when its credential
        is not paced (or there is none: nothing will be sent)."""
        if isinstance(own, Outcome):
            return None
        platform = key[1]
        name = providers[platform].credential_key(key[0], key[2], own)
        rate = self.rate(platform, name)
        if rate is None:
            return None
        schedule = f"{platform}:{name}"
        if schedule not in schedules:
            schedules[schedule] = (rate, [])
        return schedules[schedule][1]

    async def reserve(self, wanted: dict[str, tuple[Rate, int]]) -> dict[str, Granted]:
        """Slots on each schedule named, for the number of deliveries given at its rate; one
        key-value call for them all.

        When the key-value store is out of reach every delivery goes at once: pacing is a
        courtesy to the vendors, not worth holding deliveries back for (a vendor that answers
        429 still holds what it names).
        """
        requests = [
            SlotRequest(
                key=f"pace:{name}",
                count=count,
                interval=rate.period / rate.count,
                burst=self.settings.burst_seconds,
            )
            for name, (rate, count) in wanted.items()
        ]
        now = self._clock()
        try:
            found = await self._kv.reserve(requests, now=now, horizon=self.max_wait)
        except Exception as exc:
            if outages.backend_of(exc) is None:
                raise
            log.warning("pacing unavailable; sending unpaced", error=repr(exc))
            return {
                name: Granted(r.count, now, now, 0.0, r.count)
                for name, r in zip(wanted, requests, strict=True)
            }
        return {
            name: Granted(slots.granted, slots.first, slots.next_free, r.interval, r.count)
            for name, r, slots in zip(wanted, requests, found, strict=True)
        }

    async def wait_for(self, at: float) -> None:
        """Return at `at` (wall clock), or at once if it has come."""
        delay = at - self._clock()
        if delay > MIN_WAIT_SECONDS:
            await self._sleep(delay)
