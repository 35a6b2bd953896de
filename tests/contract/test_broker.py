"""The Broker contract: one suite for the embedded broker (SQLite, PostgreSQL) and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.broker.base import Broker, DeadLetter, IncomingMessage
from pushgate.broker.embedded import EmbeddedBroker
from pushgate.broker.rabbitmq import RabbitMQBroker
from pushgate.store import db
from tests.conftest import delete_rabbitmq_topology, migrated_sqlite, truncate_all

LEVELS = (0.2, 0.5, 1.0)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Backend:
    """Makes brokers on one backend; each broker is a separate client, as another process."""

    kind: str
    url: str
    prefix: str = ""
    brokers: list[Broker] = field(default_factory=list)
    engines: list[AsyncEngine] = field(default_factory=list)

    async def broker(self, *, lease: float = 2.0, quorum: bool = False) -> Broker:
        broker: Broker
        if self.kind == "rabbitmq":
            broker = RabbitMQBroker(
                self.url,
                prefix=self.prefix,
                quorum_queues=quorum,
                delay_levels=LEVELS,
                connection_name=f"pushgate-test-{uuid.uuid4().hex}",
                reconnect_interval=0.2,
            )
        else:
            engine = db.create_engine(self.url, pool_size=5)
            self.engines.append(engine)
            broker = EmbeddedBroker(engine, lease=lease, poll_interval=0.05)
        await broker.start()
        self.brokers.append(broker)
        return broker

    def child_config(self, count: int) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "prefix": self.prefix,
            "levels": LEVELS,
            "lease": 1.0,
            "count": count,
        }

    async def close(self) -> None:
        for broker in self.brokers:
            await broker.close()
        for engine in self.engines:
            await engine.dispose()
        if self.kind == "rabbitmq":
            await delete_topology(self.url, self.prefix)


async def delete_topology(url: str, prefix: str) -> None:
    await delete_rabbitmq_topology(url, prefix, LEVELS)


@pytest.fixture(
    params=[
        "embedded-sqlite",
        pytest.param("embedded-postgres", marks=pytest.mark.postgres),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "embedded-sqlite":
        made = Backend("embedded", await migrated_sqlite(tmp_path))
    elif request.param == "embedded-postgres":
        url: str = request.getfixturevalue("postgres_database")
        await truncate_all(url)
        made = Backend("embedded", url)
    else:
        made = Backend(
            "rabbitmq",
            request.getfixturevalue("rabbitmq_url"),
            request.getfixturevalue("unique_prefix"),
        )
    yield made
    await made.close()


async def eventually(check: Callable[[], bool], within: float = 4.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.02)


async def dead_lettered(broker: Broker, count: int, within: float = 4.0) -> list[DeadLetter]:
    """The dead letters once `count` are there: a handler's decisions are applied after it
    returns, so seeing the message in the handler does not mean it is in `failed` yet."""
    deadline = time.monotonic() + within
    while len(letters := await broker.dead_letters(limit=100)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} dead letters not there within the timeout")
        await asyncio.sleep(0.02)
    return letters


class Recorder:
    """A handler that notes every message and when it came, then applies `decide` (ack)."""

    def __init__(self, decide: Callable[[IncomingMessage], Awaitable[None] | None] | None = None):
        self.messages: list[IncomingMessage] = []
        self.times: list[float] = []
        self.batches = 0
        self.decide = decide

    async def __call__(self, batch: list[IncomingMessage]) -> None:
        self.batches += 1
        for message in batch:
            self.messages.append(message)
            self.times.append(time.monotonic())
            if self.decide is None:
                message.ack()
            else:
                result = self.decide(message)
                if result is not None:
                    await result

    def bodies(self) -> Counter[bytes]:
        return Counter(m.body for m in self.messages)


def bodies(count: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


async def test_published_batch_is_consumed_with_headers(backend: Backend) -> None:
    # Given
    broker = await backend.broker()
    recorder = Recorder()
    await broker.consume("dispatch", recorder, prefetch=50, max_batch=20, max_wait=0.05)

    # When
    await broker.publish("dispatch", bodies(10), headers={"notification": "n1"})

    # Then
    await eventually(lambda: len(recorder.messages) == 10)
    assert set(recorder.bodies()) == set(bodies(10))
    first = recorder.messages[0]
    assert first.headers == {"notification": "n1"}
    assert first.attempts == 1
    assert not first.redelivered
    assert first.queue == "dispatch"
    assert len({m.id for m in recorder.messages}) == 10


async def test_a_thousand_messages_arrive_exactly_once(backend: Backend) -> None:
    broker = await backend.broker()
    recorder = Recorder()
    await broker.publish("deliver", bodies(1000))
    await broker.consume("deliver", recorder, prefetch=500, max_batch=100, max_wait=0.02)

    await eventually(lambda: len(recorder.messages) >= 1000)
    await asyncio.sleep(0.3)  # room for a duplicate to show up

    assert len(recorder.messages) == 1000
    assert set(recorder.bodies()) == set(bodies(1000))
    assert recorder.batches < 1000  # handed over in batches, not one by one
    assert await broker.depth("deliver") == 0


async def test_retry_redelivers_after_the_delay_with_attempts_incremented(
    backend: Backend,
) -> None:
    # Given a handler that asks for a retry on the first attempt
    broker = await backend.broker()

    def decide(message: IncomingMessage) -> None:
        if message.attempts == 1:
            message.retry(0.4, "upstream 503")
        else:
            message.ack()

    recorder = Recorder(decide)
    await broker.consume("deliver", recorder, prefetch=10, max_batch=10, max_wait=0.01)

    # When
    await broker.publish("deliver", [b"job"], headers={"k": "v"})

    # Then it comes back once, no sooner than the delay, one attempt further, headers kept
    await eventually(lambda: len(recorder.messages) == 2)
    first, second = recorder.messages
    waited = recorder.times[1] - recorder.times[0]
    assert 0.38 <= waited < 2.5
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.id == first.id
    assert second.headers == {"k": "v"}
    assert second.body == b"job"


async def test_delayed_publish_is_not_delivered_before_the_delay(backend: Backend) -> None:
    broker = await backend.broker()
    recorder = Recorder()
    await broker.consume("dispatch", recorder, prefetch=10, max_batch=10, max_wait=0.01)

    published = time.monotonic()
    await broker.publish("dispatch", [b"later"], delay=0.4)

    await eventually(lambda: len(recorder.messages) == 1)
    assert recorder.times[0] - published >= 0.38


async def test_dead_letter_keeps_reason_body_headers_and_attempts_and_can_be_requeued(
    backend: Backend,
) -> None:
    # Given a message that fails twice
    broker = await backend.broker()

    def decide(message: IncomingMessage) -> None:
        if message.body != b"bad":
            message.ack()
        elif message.attempts == 1:
            message.retry(0, "timeout")
        else:
            message.dead_letter("token rejected")

    recorder = Recorder(decide)
    await broker.consume("deliver", recorder, prefetch=10, max_batch=10, max_wait=0.01)
    await broker.publish("deliver", [b"bad"], headers={"device": "d1"})

    # Then it is listed in failed, and listing does not remove it
    await eventually(lambda: len(recorder.messages) == 2)
    letters = await dead_lettered(broker, 1)
    assert await broker.dead_letters(limit=10) == letters
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.body, letter.queue, letter.reason) == (b"bad", "deliver", "token rejected")
    assert letter.headers == {"device": "d1"}
    assert letter.attempts == 2
    assert letter.id == recorder.messages[0].id
    assert await broker.depth("failed") == 1

    # When requeued it is delivered again from attempt 1, and failed is empty
    recorder.decide = None
    assert await broker.requeue_dead_letters([letter.id]) == 1
    await eventually(lambda: len(recorder.messages) == 3)
    assert recorder.messages[2].body == b"bad"
    assert recorder.messages[2].attempts == 1
    assert await broker.dead_letters() == []


async def test_failed_can_be_consumed_with_where_and_why_each_letter_failed(
    backend: Backend,
) -> None:
    # Given a message a handler dead-lettered, and one put straight into failed
    broker = await backend.broker()
    await broker.consume(
        "deliver",
        Recorder(lambda m: m.dead_letter("retry_later: HTTP 500")),
        prefetch=10,
        max_batch=10,
        max_wait=0.01,
    )
    await broker.publish("deliver", [b"job"], headers={"device": "d1"})
    await broker.dead_letter("push", [b"{not json"], reason="not JSON", attempts=3)

    # When failed is consumed (as the worker's dead-letter recorder does)
    letters = Recorder()
    await broker.consume("failed", letters, prefetch=10, max_batch=10, max_wait=0.01)
    await eventually(lambda: len(letters.messages) == 2)

    # Then each letter says the queue it failed on, why, and how many attempts it had
    seen = {m.body: m for m in letters.messages}
    job, poison = seen[b"job"], seen[b"{not json"]
    assert job.letter is not None
    assert poison.letter is not None
    assert (job.letter.origin, job.letter.reason) == ("deliver", "retry_later: HTTP 500")
    assert (poison.letter.origin, poison.letter.reason, poison.attempts) == ("push", "not JSON", 3)
    assert job.headers == {"device": "d1"}
    assert job.id
    # and neither is a redelivery (the recorder looks for duplicates only among those)
    assert not job.redelivered
    assert not poison.redelivered
    # and once acknowledged they are gone from failed
    deadline = time.monotonic() + 4.0
    while await broker.depth("failed") or await broker.dead_letters():
        assert time.monotonic() < deadline, "acknowledged letters still in failed"
        await asyncio.sleep(0.02)


async def test_requeue_moves_only_the_chosen_dead_letters(backend: Backend) -> None:
    broker = await backend.broker()
    await broker.dead_letter("dispatch", bodies(3, "dead"), reason="invalid", attempts=3)

    letters = await broker.dead_letters(limit=10)
    assert sorted(d.body for d in letters) == sorted(bodies(3, "dead"))
    assert {(d.queue, d.reason, d.attempts) for d in letters} == {("dispatch", "invalid", 3)}
    chosen = next(d for d in letters if d.body == b"dead-1")

    assert await broker.requeue_dead_letters([chosen.id]) == 1
    assert sorted(d.body for d in await broker.dead_letters()) == [b"dead-0", b"dead-2"]
    assert await broker.depth("dispatch") == 1

    assert await broker.requeue_dead_letters() == 2
    assert await broker.dead_letters() == []
    recorder = Recorder()
    await broker.consume("dispatch", recorder, prefetch=10, max_batch=10, max_wait=0.01)
    await eventually(lambda: len(recorder.messages) == 3)
    assert {m.attempts for m in recorder.messages} == {1}


async def test_messages_of_a_handler_that_raises_come_back(backend: Backend) -> None:
    broker = await backend.broker()
    calls = 0
    recorder = Recorder()

    async def flaky(batch: list[IncomingMessage]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        await recorder(batch)

    await broker.publish("dispatch", bodies(5))
    await broker.consume("dispatch", flaky, prefetch=10, max_batch=10, max_wait=0.1)

    await eventually(lambda: len(recorder.messages) == 5)
    assert set(recorder.bodies()) == set(bodies(5))
    assert all(m.redelivered for m in recorder.messages)
    assert {m.attempts for m in recorder.messages} == {1}


async def test_two_consumers_share_the_work_and_never_get_the_same_message(
    backend: Backend,
) -> None:
    # Given two clients (as two worker processes) consuming one queue
    first, second = await backend.broker(), await backend.broker()

    def slow(message: IncomingMessage) -> Awaitable[None]:
        message.ack()
        return asyncio.sleep(0.002)

    one, two = Recorder(slow), Recorder(slow)
    await first.consume("deliver", one, prefetch=20, max_batch=10, max_wait=0.01)
    await second.consume("deliver", two, prefetch=20, max_batch=10, max_wait=0.01)

    # When
    await first.publish("deliver", bodies(300))

    # Then
    await eventually(lambda: len(one.messages) + len(two.messages) >= 300)
    await asyncio.sleep(0.3)
    assert one.messages
    assert two.messages
    assert not set(one.bodies()) & set(two.bodies())
    assert one.bodies() + two.bodies() == Counter(bodies(300))


CHILD = """
import asyncio, json, sys
from pushgate.broker.embedded import EmbeddedBroker
from pushgate.broker.rabbitmq import RabbitMQBroker
from pushgate.store import db

async def main(config):
    if config["kind"] == "rabbitmq":
        broker = RabbitMQBroker(config["url"], prefix=config["prefix"],
                                delay_levels=config["levels"], connection_name="crashing-child")
    else:
        broker = EmbeddedBroker(db.create_engine(config["url"]), lease=config["lease"],
                                poll_interval=0.05)
    await broker.start()
    held = [0]

    async def hold_forever(batch):
        held[0] += len(batch)
        print(held[0], flush=True)
        await asyncio.Event().wait()

    count = config["count"]
    await broker.consume("deliver", hold_forever, prefetch=count, max_batch=count, max_wait=0.3)
    await asyncio.Event().wait()

asyncio.run(main(json.loads(sys.argv[1])))
"""


async def test_messages_held_by_a_consumer_that_dies_go_to_another(backend: Backend) -> None:
    # Given a worker process holding every message without settling any
    broker = await backend.broker()
    await broker.publish("deliver", bodies(20))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        json.dumps(backend.child_config(20)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        held = 0
        async with asyncio.timeout(8):
            while held < 20:
                line = await child.stdout.readline()
                assert line, "the child exited early"
                held = int(line)
    finally:
        # When it dies without a goodbye
        child.send_signal(signal.SIGKILL)
        await child.wait()

    # Then another consumer gets them all
    recorder = Recorder()
    await broker.consume("deliver", recorder, prefetch=50, max_batch=50, max_wait=0.01)
    await eventually(lambda: len(recorder.messages) >= 20, within=5)
    assert set(recorder.bodies()) == set(bodies(20))
    assert all(m.redelivered for m in recorder.messages)


async def test_close_waits_for_handlers_in_flight(backend: Backend) -> None:
    # Given a handler in the middle of a batch
    broker = await backend.broker()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(batch: list[IncomingMessage]) -> None:
        started.set()
        await release.wait()
        for message in batch:
            message.ack()

    await broker.consume("dispatch", slow, prefetch=10, max_batch=10, max_wait=0.05)
    await broker.publish("dispatch", bodies(3))
    await asyncio.wait_for(started.wait(), 4)

    # When
    closing = asyncio.create_task(broker.close())
    await asyncio.sleep(0.2)

    # Then close waits, and the batch's acks are applied before it returns
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, 4)
    other = await backend.broker()
    assert await other.depth("dispatch") == 0
    recorder = Recorder()
    await other.consume("dispatch", recorder, prefetch=10, max_batch=10, max_wait=0.01)
    await asyncio.sleep(0.3)
    assert recorder.messages == []


async def test_ping_depth_and_bad_names(backend: Backend) -> None:
    broker = await backend.broker()
    await broker.ping()
    await broker.publish("push", bodies(3))
    await broker.publish("push", bodies(2, "later"), delay=5)
    assert await broker.depth("push") == 3
    assert await broker.depth("failed") == 0
    with pytest.raises(ValueError, match="unknown queue"):
        await broker.publish("nowhere", [b"x"])
    with pytest.raises(ValueError, match="reserved"):
        await broker.publish("push", [b"x"], headers={"x-pushgate-attempts": "9"})


async def test_settling_twice_is_refused(backend: Backend) -> None:
    broker = await backend.broker()
    errors: list[Exception] = []

    def decide(message: IncomingMessage) -> None:
        message.ack()
        try:
            message.retry(1)
        except RuntimeError as exc:
            errors.append(exc)

    recorder = Recorder(decide)
    await broker.consume("deliver", recorder, prefetch=10, max_batch=10, max_wait=0.01)
    await broker.publish("deliver", [b"once"])
    await eventually(lambda: len(errors) == 1)
    await asyncio.sleep(0.3)
    assert len(recorder.messages) == 1


# --- RabbitMQ only -----------------------------------------------------------------------------


@pytest.fixture
async def rabbit(rabbitmq_url: str, unique_prefix: str) -> AsyncIterator[Backend]:
    made = Backend("rabbitmq", rabbitmq_url, unique_prefix)
    yield made
    await made.close()


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.rabbitmq
@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_rabbitmq_broker_keeps_working_after_its_connection_is_closed(
    rabbit: Backend,
) -> None:
    # Given a broker with a consumer
    broker = await rabbit.broker()
    assert isinstance(broker, RabbitMQBroker)
    recorder = Recorder()
    await broker.consume("deliver", recorder, prefetch=50, max_batch=50, max_wait=0.01)
    reconnected = asyncio.Event()
    broker.connection.reconnect_callbacks.add(lambda *_: reconnected.set())

    # When the server closes its connection (only this one: the server is shared)
    name = broker._connection_name
    listing = await rabbitmqctl(
        "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    pids = [line.split("\t")[0] for line in listing.splitlines() if name in line]
    assert len(pids) == 1
    await rabbitmqctl("close_connection", pids[0], "pushgate contract test")

    # Then publishing and consuming work again once it reconnected
    await broker.publish("deliver", bodies(50))
    await asyncio.wait_for(reconnected.wait(), 5)
    await eventually(lambda: len(recorder.messages) >= 50, within=5)
    assert set(recorder.bodies()) == set(bodies(50))


@pytest.mark.rabbitmq
async def test_rabbitmq_quorum_queues_round_trip_and_retry(rabbit: Backend) -> None:
    broker = await rabbit.broker(quorum=True)

    def decide(message: IncomingMessage) -> None:
        if message.attempts == 1:
            message.retry(0.1)
        else:
            message.ack()

    recorder = Recorder(decide)
    await broker.consume("deliver", recorder, prefetch=10, max_batch=10, max_wait=0.01)
    await broker.publish("deliver", [b"q"])
    await eventually(lambda: len(recorder.messages) == 2)
    assert recorder.times[1] - recorder.times[0] >= 0.18  # rounded up to the 0.2 s level
