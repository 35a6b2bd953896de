"""What every fault case shares: pushgate's `api` and `worker` on the services profile with
PostgreSQL, RabbitMQ and Redis each behind a TCP proxy the test controls (`Rig`), a client that
keeps sending through the fault as the README tells clients to (`Sender`: a 503, a 409 or a
lost answer is tried again with the same idempotency key), and the closing checks
(`Rig.verify`): every 202 delivered at least once, duplicates within the README's bound
(its "Delivery guarantee"), statuses that agree with what the fake push service received,
every process up and serving, no 500 anywhere."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pushgate.store import db
from pushgate.store.tables import Delivery, Notification
from tests.fakes.tcp_proxy import TCPProxy
from tests.fakes.webpush_server import FakeWebPushService
from tests.faults.deployment import FINAL, Deployment, Process, until

# Every case: slow (seconds of outage and process starts), and on the three real servers.
MARKS = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis]

# The README's bound (Delivery guarantee): a fault repeats at most the deliveries one worker
# had claimed when it struck, and a worker claims at most this many times its concurrency.
CLAIMED_PER_CONCURRENCY = 3
# The answers the README tells a client to retry after `Retry-After`, with the same key: a
# backend down (503), the same key still being accepted (409, as after an API crash).
RETRY_LATER = {503, 409}


def tag_of(payload: Any) -> str | None:
    """The tag a test put in a notification's `data` (what the service worker would read)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    tag = data.get("tag") if isinstance(data, dict) else None
    return str(tag) if tag is not None else None


@dataclass
class Sent:
    """A notification the API accepted (202): its tag, and the subscriptions it targets."""

    id: str
    tag: str
    subscriptions: list[str]


@dataclass
class Sender:
    """A client sending one notification at a time to one subscription each (round robin),
    each tagged and with its tag as idempotency key; a 503 or 409 or a transport error (the
    API down, an answer lost) is tried again with the same key until it is a 202."""

    rig: Rig
    pause: float = 0.02
    answers: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    accepted: list[Sent] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, *, within: float = 30.0) -> None:
        """Stop after the send in hand is accepted (it is retried until it is)."""
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, within)

    async def sent_more(self, count: int, *, within: float) -> None:
        """Wait for `count` more 202s; raises what failed the client (an answer it must not
        get, such as a 500) as soon as it did."""
        target = len(self.accepted) + count

        def more() -> bool:
            if self._task is not None and self._task.done():
                self._task.result()
            return len(self.accepted) >= target

        await until(more, within=within, what=f"{count} sends")

    async def _run(self) -> None:
        subscriptions = list(self.rig.deployment.devices)
        seq = 0
        while not self._stop.is_set():
            subscription = subscriptions[seq % len(subscriptions)]
            tag = f"s{seq}-{uuid.uuid4().hex[:8]}"
            self.accepted.append(Sent(await self._send(subscription, tag), tag, [subscription]))
            seq += 1
            await asyncio.sleep(self.pause)

    async def _send(self, subscription: str, tag: str) -> str:
        deployment = self.rig.deployment
        body = self.rig.body(subscription, tag)
        headers = {**deployment.send_headers, "Idempotency-Key": tag}
        while True:
            try:
                response = await deployment.http().post(
                    "/v1/notifications", json=body, headers=headers, timeout=5
                )
            except httpx.TransportError:
                self.transport_errors += 1
            else:
                self.answers[response.status_code] += 1
                if response.status_code == 202:
                    return str(response.json()["id"])
                assert response.status_code in RETRY_LATER, response.text
                assert response.headers.get("retry-after"), response.headers
            await asyncio.sleep(0.1)


@dataclass
class Rig:
    """pushgate (`api` + `worker`) with its three backends behind proxies."""

    deployment: Deployment
    fake: FakeWebPushService
    postgres: TCPProxy
    rabbitmq: TCPProxy
    redis: TCPProxy
    concurrency: int
    # SIGKILLs and cuts that may each repeat what one worker had claimed (the README's bound).
    faults: int = 0
    api: Process | None = None
    worker: Process | None = None

    def sender(self, *, pause: float = 0.02) -> Sender:
        return Sender(self, pause=pause)

    async def start(self) -> tuple[Process, Process]:
        """The API and a worker, started side by side (each takes seconds to import)."""
        api, worker = await asyncio.gather(
            self.deployment.start_api(), self.deployment.start_worker()
        )
        assert api is not None
        return api, worker

    async def under_way(
        self, *, answer_in: float = 0.0, pause: float = 0.02
    ) -> tuple[Sent, Sender]:
        """pushgate started (`self.api`, `self.worker`), a broadcast to every subscription, a
        fifth of it delivered, and a client sending.

        Args:
            answer_in: seconds the fake push service takes to answer each send.
            pause: seconds between the client's sends.
        """
        if answer_in:
            self.fake.script(None, times=None, delay=answer_in)
        self.api, self.worker = await self.start()
        broadcast = await self.broadcast("run")
        sender = self.sender(pause=pause)
        sender.start()
        total = len(self.deployment.devices)
        await until(
            lambda: len(self.fake.received) >= total // 5, within=30, what="a fifth delivered"
        )
        return broadcast, sender

    async def broadcast(self, tag: str) -> Sent:
        deployment = self.deployment
        notification = await deployment.send(
            {"broadcast": True, "title": "Fault", "data": {"tag": tag}}
        )
        return Sent(notification, tag, list(deployment.devices))

    def body(self, subscription: str, tag: str) -> dict[str, Any]:
        """A notification to one subscription's device, tagged in its data."""
        device = str(self.deployment.devices[subscription])
        return {"device_ids": [device], "title": "Fault", "data": {"tag": tag}}

    async def send_to(self, subscription: str, tag: str) -> Sent:
        return Sent(await self.deployment.send(self.body(subscription, tag)), tag, [subscription])

    async def verify(
        self, sent: list[Sent], *, within: float, killed: int = 0
    ) -> Counter[tuple[str, str | None]]:
        """The closing checks of every case; returns the arrivals per (subscription, tag).

        Args:
            sent: every notification the API accepted (answered 202).
            within: seconds for the last of them to be final.
            killed: processes the test SIGKILLed (the only ones allowed to be dead).
        """
        deployment = self.deployment
        ids = [uuid.UUID(s.id) for s in sent]
        # Recovered by itself: a notification sent now is delivered, through everything the
        # fault touched, after all that was sent before it.
        probe = await self.send_to(next(iter(deployment.devices)), f"probe-{uuid.uuid4().hex[:8]}")
        await self._final([*ids, uuid.UUID(probe.id)], within=within)
        sent = [*sent, probe]

        arrived = Counter((r.subscription_id, tag_of(r.payload)) for r in self.fake.received)
        known = {(sub, s.tag) for s in sent for sub in s.subscriptions}
        missing = [k for k in known if arrived[k] == 0]
        assert not missing, (
            f"{len(missing)} of {len(known)} deliveries never arrived: {missing[:5]}"
        )
        strangers = [k for k in arrived if k not in known]
        assert not strangers, f"arrivals of nothing accepted: {strangers[:5]}"
        duplicates = sum(n - 1 for n in arrived.values())
        bound = CLAIMED_PER_CONCURRENCY * self.concurrency * self.faults
        assert duplicates <= bound, f"{duplicates} duplicates, more than the bound {bound}"

        # Statuses agree with what arrived: the API's and each delivery's.
        for item in sent:
            status = await deployment.status(item.id)
            assert status["status"] == "completed", status
            assert status["counts"]["sent"] == len(item.subscriptions), status
        by_device = {d: s for s, d in deployment.devices.items()}
        tags = {uuid.UUID(s.id): s.tag for s in sent}
        for notification_id, device_id, state in await self._deliveries(list(tags)):
            assert state == "sent", (notification_id, device_id, state)
            assert device_id is not None
            assert arrived[(by_device[device_id], tags[notification_id])] >= 1
        await self._assert_serving(killed=killed)
        return arrived

    async def _final(self, ids: list[uuid.UUID], *, within: float) -> None:
        engine = db.create_engine(self.deployment.database_url)
        deadline = time.monotonic() + within
        try:
            while True:
                async with engine.connect() as connection:
                    query = select(func.count()).where(
                        Notification.id.in_(ids), Notification.status.not_in(FINAL)
                    )
                    pending = int((await connection.execute(query)).scalar_one())
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(await self._stuck(engine, ids, within))
                await asyncio.sleep(0.2)
        finally:
            await engine.dispose()

    async def _stuck(self, engine: Any, ids: list[uuid.UUID], within: float) -> str:
        """What the notifications not final are waiting for, and the processes' last words."""
        async with engine.connect() as connection:
            query = (
                select(Notification.id, Notification.status, Delivery.status, func.count())
                .join(Delivery, Delivery.notification_id == Notification.id, isouter=True)
                .where(Notification.id.in_(ids), Notification.status.not_in(FINAL))
                .group_by(Notification.id, Notification.status, Delivery.status)
            )
            rows = [tuple(map(str, row)) for row in await connection.execute(query)]
        logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.deployment.processes)
        return f"not final within {within}s: {rows}\n{logs}"

    async def _deliveries(
        self, ids: list[uuid.UUID]
    ) -> list[tuple[uuid.UUID, uuid.UUID | None, str]]:
        engine = db.create_engine(self.deployment.database_url)
        try:
            async with engine.connect() as connection:
                query = select(Delivery.notification_id, Delivery.device_id, Delivery.status).where(
                    Delivery.notification_id.in_(ids)
                )
                return [(n, d, str(s)) for n, d, s in await connection.execute(query)]
        finally:
            await engine.dispose()

    async def _assert_serving(self, *, killed: int) -> None:
        """Every process alive but those the test killed, the API ready (every backend
        reachable), and no 500 answered by any API process."""
        deployment = self.deployment
        dead = [p for p in deployment.processes if p.proc.returncode is not None]
        assert len(dead) == killed, [(p.name, p.output()[-2000:]) for p in dead]
        response = await deployment.http().get("/health/ready")
        assert response.status_code == 200, response.text
        for process in deployment.processes:
            # What the API logs when it answers a 500 (api/errors.py).
            output = process.output()
            assert "unhandled error" not in output, output[-3000:]
