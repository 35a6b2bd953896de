"""The API's accept path on both backend profiles: concurrent POSTs stored by the group commit
(all committed, all published, in fewer flushes than requests), a flush the database refuses
in part or cannot reach, and the fast lane answering as the FastAPI route does."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from pushgate.api.app import create_app
from pushgate.broker import base as broker_base
from pushgate.domain.request import NotificationCreate
from pushgate.errors import UnavailableError
from pushgate.runtime import Runtime
from pushgate.sending import accept
from pushgate.settings import Settings
from pushgate.store import db
from pushgate.store.held import PING_AFTER_IDLE_SECONDS, HeldConnection
from pushgate.store.tables import Notification
from tests.conftest import TenantKeys
from tests.integration.test_sweeper import Jobs

HELLO = {"broadcast": True, "title": "Hello"}


@pytest.fixture
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
    """The app inside its lifespan (its group commit is open)."""
    application = create_app(settings, runtime=runtime)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pushgate.test") as client:
        yield client


@pytest.fixture
async def dispatch_jobs(runtime: Runtime) -> AsyncIterator[Jobs]:
    """The dispatch jobs published while the test runs, taken by a real consumer (no worker
    runs here, so nothing else takes them)."""
    jobs = Jobs()
    consumer = await runtime.broker.consume(broker_base.DISPATCH, jobs.handle, max_wait=0.01)
    yield jobs
    await consumer.stop()


async def stored(runtime: Runtime, app_id: uuid.UUID) -> set[uuid.UUID]:
    async with runtime.sessions() as session:
        query = select(Notification.id).where(Notification.app_id == app_id)
        return set((await session.execute(query)).scalars())


# --- the group commit through the API --------------------------------------------------------


async def test_concurrent_posts_are_all_committed_and_published_in_fewer_flushes(
    http: httpx.AsyncClient,
    app: FastAPI,
    runtime: Runtime,
    tenant: TenantKeys,
    dispatch_jobs: Jobs,
) -> None:
    # Given many requests at once
    count = 60

    # When they arrive together
    answers = await asyncio.gather(
        *(http.post("/v1/notifications", json=HELLO, headers=tenant.send) for _ in range(count))
    )

    # Then each is answered 202 with its own notification, committed
    assert [a.status_code for a in answers] == [202] * count, answers[0].text
    ids = {uuid.UUID(a.json()["id"]) for a in answers}
    assert len(ids) == count
    assert await stored(runtime, tenant.app_id) == ids
    # ...and handed to dispatch, each once
    await dispatch_jobs.wait_for(lambda: len(dispatch_jobs.bodies), count)
    assert sorted(dispatch_jobs.notification_ids()) == sorted(ids)
    # ...by flushes that each carried several requests
    assert app.state.accepts.flushes < count


async def test_the_group_keeps_scheduled_ones_unpublished_and_replays_keys(
    http: httpx.AsyncClient, runtime: Runtime, tenant: TenantKeys, dispatch_jobs: Jobs
) -> None:
    # Given, at once: a due one, a scheduled one, and two requests with their own keys
    later = {**HELLO, "send_at": "2099-01-01T00:00:00Z"}
    keyed = [{**HELLO, "title": f"keyed {i}"} for i in range(2)]
    answers = await asyncio.gather(
        http.post("/v1/notifications", json=HELLO, headers=tenant.send),
        http.post("/v1/notifications", json=later, headers=tenant.send),
        *(
            http.post(
                "/v1/notifications", json=body, headers={**tenant.send, "Idempotency-Key": f"k{i}"}
            )
            for i, body in enumerate(keyed)
        ),
    )
    assert [a.status_code for a in answers] == [202] * 4
    assert [a.json()["status"] for a in answers] == ["accepted", "scheduled"] + ["accepted"] * 2

    # When the keyed ones are sent again
    again = await asyncio.gather(
        *(
            http.post(
                "/v1/notifications", json=body, headers={**tenant.send, "Idempotency-Key": f"k{i}"}
            )
            for i, body in enumerate(keyed)
        )
    )

    # Then they replay their first answers, and only the three due ones were published
    assert [a.json() for a in again] == [a.json() for a in answers[2:]]
    assert [a.headers.get("Idempotency-Replay") for a in again] == ["true", "true"]
    due = {uuid.UUID(answers[i].json()["id"]) for i in (0, 2, 3)}
    await dispatch_jobs.wait_for(lambda: len(dispatch_jobs.bodies), 3)
    await asyncio.sleep(0.2)  # nothing more is on its way
    assert set(dispatch_jobs.notification_ids()) == due
    assert len(dispatch_jobs.bodies) == 3


# --- failed flushes --------------------------------------------------------------------------


def due_request(title: str) -> NotificationCreate:
    return NotificationCreate(broadcast=True, title=title)


async def test_a_flush_the_database_refuses_in_part_loses_none_of_the_good_rows(
    runtime: Runtime, tenant: TenantKeys, dispatch_jobs: Jobs
) -> None:
    # Given a group, and concurrent accepts of which one names an app that does not exist
    # (its row breaks a foreign key: the database refuses the whole INSERT it is in)
    group = accept.group(runtime)
    nowhere = uuid.uuid4()
    good = [
        accept.accept_many(
            runtime, app_id=tenant.app_id, requests=[due_request(f"good {i}")], group=group
        )
        for i in range(6)
    ]
    bad = accept.accept_many(runtime, app_id=nowhere, requests=[due_request("bad")], group=group)

    # When they are flushed together
    outcomes = await asyncio.gather(*good[:3], bad, *good[3:], return_exceptions=True)
    await group.close()

    # Then the bad one fails with the database's refusal, every other is accepted, stored
    # and published: the group tried them again without it
    assert isinstance(outcomes[3], IntegrityError)
    accepted = [o for i, o in enumerate(outcomes) if i != 3]
    ids = set()
    for outcome in accepted:
        assert isinstance(outcome, list)
        [result] = outcome
        assert isinstance(result, accept.Accepted)
        ids.add(result.notification.id)
    assert await stored(runtime, tenant.app_id) == ids
    assert await stored(runtime, nowhere) == set()
    await dispatch_jobs.wait_for(lambda: len(dispatch_jobs.bodies), len(ids))
    assert set(dispatch_jobs.notification_ids()) == ids
    assert group.flushes > 1


@pytest.fixture
def unreachable_database(settings: Settings, tmp_path: Path) -> str:
    """A database URL of the profile's kind that cannot be reached."""
    if settings.database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'pushgate.db'}"
    return "postgresql+asyncpg://postgres@127.0.0.1:9/pushgate"  # nothing listens on 9


async def test_when_the_database_is_out_of_reach_every_waiting_accept_is_told_to_retry(
    runtime: Runtime, tenant: TenantKeys, unreachable_database: str
) -> None:
    # Given a group whose database cannot be reached
    engine = create_async_engine(unreachable_database)
    cut_off = dataclasses.replace(runtime, engine=engine)
    group = accept.group(cut_off)

    # When several accepts wait on it
    outcomes = await asyncio.gather(
        *(
            accept.accept_many(
                cut_off, app_id=tenant.app_id, requests=[due_request(f"n{i}")], group=group
            )
            for i in range(4)
        ),
        return_exceptions=True,
    )
    await group.close()
    await engine.dispose()

    # Then each is answered 503 `store_unavailable` with Retry-After, and nothing was stored
    for outcome in outcomes:
        assert isinstance(outcome, UnavailableError), outcome
        assert outcome.code == "store_unavailable"
        assert outcome.headers == {"Retry-After": "1"}
    assert await stored(runtime, tenant.app_id) == set()


# --- the fast lane ---------------------------------------------------------------------------


def shape(response: httpx.Response) -> dict[str, Any]:
    """What a client sees of an answer, less what differs between two notifications."""
    body = response.json()
    if "id" in body:
        body["id"] = "<id>"
        body["status_url"] = "<url>"
    if body.get("idempotency_key"):
        body["idempotency_key"] = "<key>"
    return {
        "status": response.status_code,
        "content-type": response.headers["content-type"],
        "location": "Location" in response.headers,
        "replay": response.headers.get("Idempotency-Replay"),
        "body": body,
    }


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({}, HELLO, id="accepted"),
        pytest.param({"Idempotency-Key": "same"}, HELLO, id="accepted-with-key"),
        pytest.param({"Authorization": "Bearer pgk_not_a_key_at_all_xxxxxxxx"}, HELLO, id="401"),
        pytest.param({}, {**HELLO, "data": {"x": "y" * 5000}}, id="413-payload"),
    ],
)
async def test_the_fast_lane_answers_as_the_fastapi_route_does(
    http: httpx.AsyncClient, tenant: TenantKeys, headers: dict[str, str], body: Any
) -> None:
    # Given the same request sent the fast lane's way (application/json) and FastAPI's (a
    # +json media type the fast lane leaves to FastAPI)
    async def send(content_type: str, key: str) -> httpx.Response:
        sent = {**tenant.send, **headers, "Content-Type": content_type}
        if "Idempotency-Key" in sent:
            sent["Idempotency-Key"] = key
        return await http.post("/v1/notifications", content=orjson.dumps(body), headers=sent)

    # When
    fast = await send("application/json", "fast")
    framework = await send("application/vnd.pushgate+json", "framework")

    # Then a client cannot tell them apart
    assert shape(fast) == shape(framework)


async def test_a_streamed_body_over_the_limit_is_413_on_the_fast_lane(
    http: httpx.AsyncClient, settings: Settings, tenant: TenantKeys
) -> None:
    # Given a well-formed JSON body, streamed without Content-Length, over the limit
    limit = settings.server.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"broadcast": true, "title": "'
        for _ in range(limit // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    # When
    response = await http.post(
        "/v1/notifications",
        content=chunks(),
        headers={**tenant.send, "Content-Type": "application/json"},
    )

    # Then
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_malformed_requests_still_get_fastapis_answers(
    http: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    post: Callable[..., Awaitable[httpx.Response]] = http.post
    not_json = await post(
        "/v1/notifications",
        content=b'{"title": ',
        headers={**tenant.send, "Content-Type": "application/json"},
    )
    no_target = await post("/v1/notifications", json={"title": "x"}, headers=tenant.send)
    long_key = await post(
        "/v1/notifications", json=HELLO, headers={**tenant.send, "Idempotency-Key": "k" * 256}
    )

    assert not_json.status_code == 422
    assert not_json.json()["error"]["details"]["field"] == "body"
    assert no_target.status_code == 422
    assert no_target.json()["error"]["details"]["field"] == "target"
    assert long_key.status_code == 422
    assert long_key.json()["error"]["details"]["field"] == "Idempotency-Key"


@pytest.mark.postgres
async def test_a_held_connection_the_database_closed_is_replaced_before_its_next_use(
    postgres_database: str,
) -> None:
    # Given the group's kind of connection on PostgreSQL (SQLite has no server to close it),
    # used once
    engine = db.create_engine(postgres_database)
    clock = Clock()
    held = HeldConnection(engine, autocommit=True, clock=clock)
    async with held.transaction() as connection:
        first = await connection.scalar(text("SELECT pg_backend_pid()"))

    # When the server closes it (as a restart does) while the API is quiet
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    clock.now += PING_AFTER_IDLE_SECONDS

    # Then its next use gets a new connection, not an error
    async with held.transaction() as connection:
        second = await connection.scalar(text("SELECT pg_backend_pid()"))
    await held.close()
    await engine.dispose()
    assert second != first


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
