"""Where a batch's paced deliveries fall on their credential's schedule, and what happens when
the key-value store that holds the schedules is out of reach."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from pushgate.domain.rates import Rate
from pushgate.kv.base import SlotRequest, Slots
from pushgate.kv.memory import MemoryKeyValueStore
from pushgate.sending.pacing import Granted, Pacer
from pushgate.settings import load_settings

NOW = 1_800_000_000.0


def test_granted_slots_follow_each_other_and_the_rest_follow_the_schedule() -> None:
    # Given 2 of 4 slots granted, from NOW, a second apart; the schedule next free at NOW + 2
    granted = Granted(granted=2, first=NOW, next_free=NOW + 2, interval=1.0, count=4)

    # Then the batch's own slots come first, the deferred ones where the schedule will be
    assert [granted.at(n) for n in range(4)] == [NOW, NOW + 1, NOW + 2, NOW + 3]
    assert granted.last == NOW + 3


class Unreachable(MemoryKeyValueStore):
    async def reserve(
        self, requests: Sequence[SlotRequest], *, now: float, horizon: float
    ) -> list[Slots]:
        raise RedisConnectionError("Connection refused")


def pacer(kv: Any, **pacing: Any) -> Pacer:
    runtime = SimpleNamespace(
        settings=load_settings(pacing=pacing), kv=kv, providers={"fcm": None, "apns": None}
    )
    return Pacer(runtime, clock=lambda: NOW)  # type: ignore[arg-type]


async def test_without_the_key_value_store_deliveries_go_unpaced() -> None:
    slots = await pacer(Unreachable()).reserve({"fcm:p": (Rate(1, 60.0), 3)})

    assert slots["fcm:p"].granted == 3
    assert slots["fcm:p"].last == NOW


async def test_a_bug_is_not_taken_for_an_outage() -> None:
    class Broken(MemoryKeyValueStore):
        async def reserve(self, *args: Any, **kwargs: Any) -> list[Slots]:
            raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await pacer(Broken()).reserve({"fcm:p": (Rate(1, 60.0), 1)})


def test_only_platforms_with_a_rate_somewhere_are_looked_at() -> None:
    assert pacer(MemoryKeyValueStore()).platforms == {"fcm"}
    assert pacer(MemoryKeyValueStore(), per_provider={"fcm": "off"}).platforms == set()
    assert pacer(
        MemoryKeyValueStore(), per_provider={"fcm": "off"}, per_credential={"apns:T": "1/s"}
    ).platforms == {"apns"}
