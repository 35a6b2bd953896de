"""Outbound pacing per credential, on both profiles, against the fake FCM: two apps whose service
accounts belong to different Firebase projects, one of them paced slowly. The slow project's
deliveries go at its pace (waiting for near slots, deferred without spending an attempt when
their slot is far off) while the other project's flow at once; the pace is one schedule in the
key-value store, shared by every deliverer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pushgate.domain.notification import DeliveryStatus
from pushgate.runtime import Runtime
from pushgate.sending import dispatch
from pushgate.sending.deliver import Deliverer
from pushgate.sending.outcomes import Result
from pushgate.sending.pacing import Pacer
from pushgate.settings import Settings
from pushgate.store.tables import Delivery
from tests.conftest import TenantKeys
from tests.fakes.apns_server import FakeAPNs
from tests.fakes.fcm_server import FakeFCMService
from tests.integration.conftest import Pushgate, provider_settings
from tests.integration.test_pipeline_fcm_apns import settled

SLOW, FAST = "slow-project", "fast-project"
T0 = 1_800_000_000.0


def paced(settings: Settings, **pacing: Any) -> Settings:
    return settings.model_copy(
        update={"pacing": settings.pacing.model_validate({"burst_seconds": 0, **pacing})}
    )


@pytest.fixture
def settings(settings: Settings, fake_fcm: FakeFCMService, fake_apns: FakeAPNs) -> Settings:
    # One send a second for the slow project; the fast one keeps FCM's default.
    return paced(
        provider_settings(settings, fake_fcm, fake_apns),
        per_credential={f"fcm:{SLOW}": "60/minute"},
        max_wait_seconds=2.0,
    )


class Clock:
    """Wall-clock time the test moves; `sleep` moves it, and records when each sleeper woke."""

    def __init__(self) -> None:
        self.now = T0
        self.woke: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.woke.append(self.now)
        await asyncio.sleep(0)


async def app_on_project(
    http: httpx.AsyncClient, tenant: TenantKeys, fake_fcm: FakeFCMService, project: str, n: int
) -> list[str]:
    """Give the app a service account of `project` and `n` FCM devices; their tokens."""
    response = await http.put(
        "/v1/apps/current/credentials/fcm",
        json={"service_account": fake_fcm.service_account(project)},
        headers=tenant.admin,
    )
    assert response.status_code == 200, response.text
    tokens = [fake_fcm.new_token() for _ in range(n)]
    for token in tokens:
        response = await http.post(
            "/v1/devices",
            json={"platform": "fcm", "token": token, "user_id": "u1"},
            headers=tenant.subscribe,
        )
        assert response.status_code == 201, response.text
    return tokens


async def dispatched(http: httpx.AsyncClient, runtime: Runtime, tenant: TenantKeys) -> list[int]:
    """A notification to user u1, accepted through the API and expanded; its delivery ids."""
    response = await http.post(
        "/v1/notifications",
        json={"user_ids": ["u1"], "title": "t", "body": "b"},
        headers=tenant.send,
    )
    assert response.status_code == 202, response.text
    notification = uuid.UUID(response.json()["id"])
    return await dispatch.Dispatcher(runtime).dispatch(notification, publish=False)


def by_status(results: list[Result], ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        if result.delivery_id in ids:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
    return counts


def received(fake_fcm: FakeFCMService, project: str) -> int:
    return sum(1 for r in fake_fcm.received if r.project_id == project)


async def test_a_slow_project_goes_at_its_pace_while_another_flows(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant_factory: Any,
    fake_fcm: FakeFCMService,
) -> None:
    # Given two apps, one on a project paced at one send a second, one on another project
    slow, fast = await tenant_factory("slow"), await tenant_factory("fast")
    await app_on_project(client, slow, fake_fcm, SLOW, 5)
    await app_on_project(client, fast, fake_fcm, FAST, 5)
    slow_ids = await dispatched(client, runtime, slow)
    fast_ids = await dispatched(client, runtime, fast)

    # When one worker's deliverer sends both notifications in one batch
    clock = Clock()
    deliverer = Deliverer(runtime, pacer=Pacer(runtime, clock=clock, sleep=clock.sleep))
    results = await deliverer.deliver(slow_ids + fast_ids)

    # Then the fast project's five went at once, without waiting
    assert by_status(results, fast_ids) == {"sent": 5}
    assert received(fake_fcm, FAST) == 5
    # And the slow project's first three went at their slots (now, +1 s, +2 s: two waited
    # for theirs), the other two, too far off, were deferred, their attempt given back
    assert by_status(results, slow_ids) == {"sent": 3, "retrying": 2}
    assert received(fake_fcm, SLOW) == 3
    assert sorted(clock.woke) == [T0 + 1, T0 + 2]
    deferred = [r.delivery_id for r in results if r.status is DeliveryStatus.RETRYING]
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Delivery).where(Delivery.id.in_(deferred)))).all()
    assert {(row.Delivery.status, row.Delivery.attempts) for row in rows} == {("retrying", 0)}

    # When another worker (its own deliverer, the same key-value store) sends to the slow
    # project a moment later
    other = Deliverer(runtime, pacer=Pacer(runtime, clock=clock, sleep=clock.sleep))
    await app_on_project(client, slow, fake_fcm, SLOW, 0)
    more = await dispatched(client, runtime, slow)
    clock.woke.clear()
    await other.deliver(more[:1])

    # Then its slot follows the first worker's last one: the schedule is shared
    assert clock.woke == [T0 + 3]


async def test_credentials_not_paced_make_no_reservation(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: TenantKeys,
    fake_fcm: FakeFCMService,
) -> None:
    # Given FCM unpaced for this deployment
    runtime.settings = paced(runtime.settings, per_provider={"fcm": "off"})
    await app_on_project(client, tenant, fake_fcm, FAST, 3)
    ids = await dispatched(client, runtime, tenant)

    # When its deliveries are sent
    deliverer = Deliverer(runtime)
    calls: list[Any] = []
    reserve = runtime.kv.reserve

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await reserve(*args, **kwargs)

    runtime.kv.reserve = counted  # type: ignore[method-assign]
    results = await deliverer.deliver(ids)

    # Then they all went, and no schedule was asked for
    assert by_status(results, ids) == {"sent": 3}
    assert deliverer.pacer.platforms == frozenset()
    assert calls == []


async def test_through_the_worker_a_paced_project_waits_in_the_queue_and_others_flow(
    make_pushgate: Any, fake_fcm: FakeFCMService
) -> None:
    # Given pushgate (API and worker) with a project paced at two sends an hour: the first
    # goes, the next slot is half an hour away
    pushgate: Pushgate = await make_pushgate(
        pacing={"per_credential": {f"fcm:{SLOW}": "2/hour"}, "max_wait_seconds": 1.0}
    )
    slow, fast = await pushgate.tenant("slow"), await pushgate.tenant("fast")
    await app_on_project(pushgate.http, slow, fake_fcm, SLOW, 4)
    await app_on_project(pushgate.http, fast, fake_fcm, FAST, 4)

    # When both apps send to their four devices
    held = await pushgate.send(slow.send, {"user_ids": ["u1"], "title": "t", "body": "b"})
    flowing = await pushgate.send(fast.send, {"user_ids": ["u1"], "title": "t", "body": "b"})

    # Then the other project's notification completes
    assert (await pushgate.finished(fast.send, flowing))["status"] == "completed"
    # And the paced one sent one, the others wait their turn, not failed, no attempt spent
    found = await settled(
        pushgate,
        slow,
        held,
        until=lambda ds: sorted(d["status"] for d in ds) == ["retrying"] * 3 + ["sent"],
    )
    assert sorted(d["attempts"] for d in found) == [0, 0, 0, 1]
    assert received(fake_fcm, SLOW) == 1
