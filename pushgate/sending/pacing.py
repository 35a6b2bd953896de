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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pushgate import outages
from pushgate.domain.rates import Rate
from pushgate.kv.base import SlotRequest
from pushgate.logs import get_logger
from pushgate.runtime import Runtime

log = get_logger(__name__)

# Waits shorter than this are not worth a timer: the send goes at once.
MIN_WAIT_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class Slot:
    """When one delivery may go (wall-clock seconds), and whether that slot is its own
    (reserved) or only where the schedule will be by then (not reserved: defer it)."""

    at: float
    reserved: bool


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

    def now(self) -> float:
        return self._clock()

    async def reserve(self, wanted: list[tuple[str, Rate]]) -> list[Slot]:
        """A slot for each (schedule, its rate) asked for, in order; one key-value call.

        When the key-value store is out of reach every delivery goes at once: pacing is a
        courtesy to the vendors, not worth holding deliveries back for (a vendor that answers
        429 still holds what it names).
        """
        counts: dict[str, tuple[Rate, int]] = {}
        for key, rate in wanted:
            counts[key] = (rate, counts.get(key, (rate, 0))[1] + 1)
        requests = [
            SlotRequest(
                key=f"pace:{key}",
                count=n,
                interval=rate.period / rate.count,
                burst=self.settings.burst_seconds,
            )
            for key, (rate, n) in counts.items()
        ]
        now = self._clock()
        try:
            found = await self._kv.reserve(requests, now=now, horizon=self.max_wait)
        except Exception as exc:
            if outages.backend_of(exc) is None:
                raise
            log.warning("pacing unavailable; sending unpaced", error=repr(exc))
            return [Slot(now, True)] * len(wanted)
        schedules = {
            key: (slots, request.interval)
            for key, slots, request in zip(counts, found, requests, strict=True)
        }
        taken = dict.fromkeys(counts, 0)
        given = []
        for key, _ in wanted:
            slots, interval = schedules[key]
            n = taken[key]
            taken[key] = n + 1
            if n < slots.granted:
                given.append(Slot(slots.first + n * interval, True))
            else:
                given.append(Slot(slots.next_free + (n - slots.granted) * interval, False))
        return given

    async def wait_for(self, at: float) -> None:
        """Return at `at` (wall clock), or at once if it has come."""
        delay = at - self._clock()
        if delay > MIN_WAIT_SECONDS:
            await self._sleep(delay)
