"""The API while the database or Redis is out of reach or stalls: `503` with `Retry-After` and
the JSON error shape (never a `500`), idempotent sends that neither fail after storing nor store
after failing, and recovery as soon as the service is back.

The services are taken away through a TCP proxy (`tests.fakes.tcp_proxy`) between pushgate and
the shared PostgreSQL and Redis servers, which keep running. An outage of the embedded SQLite
file is not a network event, so these tests run on the services profile only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio
from sqlalchemy import func, select, text

from pushgate.api import app as app_module
from pushgate.api.app import create_app
from pushgate.domain.apikeys import Scope
from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime
from pushgate.sending import accept
from pushgate.settings import Settings
from pushgate.store import api_keys, apps, notifications
from pushgate.store.tables import Notification, utcnow
from tests.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    TEST_DELAY_LEVELS,
    TEST_SECRETS_KEY,
    TenantKeys,
    delete_rabbitmq_topology,
    truncate_all,
)
from tests.fakes.tcp_proxy import TCPProxy

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.rabbitmq]

HELLO = {"broadcast": True, "title": "Hello"}


@dataclass
class Outage:
    """pushgate's API on the services profile, its database and Redis behind proxies."""

    settings: Settings
    runtime: Runtime
    http: httpx.AsyncClient
    database: TCPProxy
    redis: TCPProxy
    tenant: TenantKeys

    async def stored(self, idempotency_key: str) -> int:
        """Notifications stored under `idempotency_key`, read around the proxies."""
        async with self.runtime.sessions() as session:
            query = select(func.count()).where(
                Notification.app_id == self.tenant.app_id,
                Notification.idempotency_key == idempotency_key,
            )
            return int((await session.execute(query)).scalar_one())


OutageFactory = Callable[..., Any]


@pytest.fixture
async def make_outage(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[OutageFactory]:
    """Start the API with its database and Redis behind proxies; keyword arguments override
    settings sections (e.g. `database={"timeout": 0.5}`)."""
    # The app owns its runtime here, as in production, but not the test process: no gc.freeze.
    monkeypatch.setattr(app_module, "_freeze_startup_objects", lambda: None)
    url = request.getfixturevalue("postgres_database")
    await truncate_all(url)
    redis_url = request.getfixturevalue("redis_url")
    rabbitmq = request.getfixturevalue("rabbitmq_url")
    started: list[tuple[TCPProxy, TCPProxy, httpx.AsyncClient, Any]] = []

    async def make(**sections: Any) -> Outage:
        database = await _started(TCPProxy.for_url(POSTGRES_URL, 5432))
        kv = await _started(TCPProxy.for_url(REDIS_URL, 6379))
        settings = make_settings(
            database={"url": database.url(url), **sections.pop("database", {})},
            redis={"url": kv.url(redis_url), "prefix": unique_prefix},
            broker={"url": rabbitmq, "prefix": unique_prefix, "delay_levels": TEST_DELAY_LEVELS},
            secrets={"key": TEST_SECRETS_KEY},
            **sections,
        )
        # As `pushgate api` runs it: the app opens (and closes) its own runtime.
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        runtime: Runtime = app.state.runtime
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
        )
        started.append((database, kv, http, lifespan))
        return Outage(settings, runtime, http, database, kv, await _tenant(runtime))

    yield make
    for database, kv, http, lifespan in reversed(started):
        database.restore()
        kv.restore()
        await http.aclose()
        await lifespan.__aexit__(None, None, None)
        await database.close()
        await kv.close()
    await delete_rabbitmq_topology(rabbitmq, unique_prefix)


async def _started(proxy: TCPProxy) -> TCPProxy:
    await proxy.start()
    return proxy


async def _tenant(runtime: Runtime) -> TenantKeys:
    async with runtime.sessions() as session:
        app = await apps.create(session=session, box=runtime.credentials.box(), name="acme")
        keys = {s: await api_keys.create(session=session, app_id=app.id, scope=s) for s in Scope}
        await session.commit()
    return TenantKeys(
        app_id=app.id,
        app_name="acme",
        **{s.value: {"Authorization": f"Bearer {k.secret}"} for s, k in keys.items()},
    )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"]


# --- the database ----------------------------------------------------------------------------


async def test_database_down_answers_503_to_a_key_not_in_the_cache(
    make_outage: OutageFactory,
) -> None:
    # Given: the database is down, and the key has not been seen (nothing cached)
    outage: Outage = await make_outage()
    outage.database.cut()

    # When: a send (answered by the fast lane) and a read (a FastAPI route)
    sent = await outage.http.post("/v1/notifications", json=HELLO, headers=outage.tenant.send)
    read = await outage.http.get("/v1/devices", headers=outage.tenant.admin)

    # Then
    assert_unavailable(sent)
    assert_unavailable(read)


async def test_database_stalled_answers_503_within_the_timeout(
    make_outage: OutageFactory,
) -> None:
    # Given: a short bound, and a database that accepts connections but answers nothing
    outage: Outage = await make_outage(database={"timeout": 0.5})
    outage.database.stall()

    # When
    sent = await outage.http.post("/v1/notifications", json=HELLO, headers=outage.tenant.send)
    read = await outage.http.get("/v1/devices", headers=outage.tenant.admin)

    # Then
    assert_unavailable(sent)
    assert_unavailable(read)


async def test_database_back_serves_the_next_request(make_outage: OutageFactory) -> None:
    # Given: requests answered 503 while the database was down
    outage: Outage = await make_outage()
    outage.database.cut()
    assert_unavailable(
        await outage.http.post("/v1/notifications", json=HELLO, headers=outage.tenant.send)
    )

    # When: it is back
    outage.database.restore()
    sent = await outage.http.post("/v1/notifications", json=HELLO, headers=outage.tenant.send)

    # Then
    assert sent.status_code == 202, sent.text


# --- Redis -----------------------------------------------------------------------------------


async def test_redis_down_an_idempotent_send_is_stored_once_and_replayed(
    make_outage: OutageFactory,
) -> None:
    # Given: Redis is down
    outage: Outage = await make_outage()
    outage.redis.cut()
    key = f"order-{uuid.uuid4()}"
    headers = {**outage.tenant.send, "Idempotency-Key": key}

    # When: the same send twice
    first = await outage.http.post("/v1/notifications", json=HELLO, headers=headers)
    again = await outage.http.post("/v1/notifications", json=HELLO, headers=headers)

    # Then: accepted on the database alone, stored once, and the repeat is the replay
    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotency-replay"] == "true"
    assert await outage.stored(key) == 1


async def test_redis_down_concurrent_idempotent_sends_store_one_notification(
    make_outage: OutageFactory,
) -> None:
    # Given
    outage: Outage = await make_outage()
    outage.redis.cut()
    key = f"order-{uuid.uuid4()}"
    headers = {**outage.tenant.send, "Idempotency-Key": key}

    # When
    answers = await asyncio.gather(
        *(outage.http.post("/v1/notifications", json=HELLO, headers=headers) for _ in range(5))
    )

    # Then
    assert [a.status_code for a in answers] == [202] * 5, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await outage.stored(key) == 1


async def test_redis_back_the_next_request_succeeds_at_once(make_outage: OutageFactory) -> None:
    # Given: pooled Redis connections, then a Redis restart (every connection broken)
    outage: Outage = await make_outage(server={"rate_limit_per_minute": 1000})
    answers = await asyncio.gather(
        *(
            outage.http.post(
                "/v1/notifications",
                json=HELLO,
                headers={**outage.tenant.send, "Idempotency-Key": f"first-{n}"},
            )
            for n in range(3)
        )
    )
    assert {a.status_code for a in answers} == {202}
    outage.redis.cut()
    outage.redis.restore()

    # When: the next requests, each on a connection Redis has closed
    key = f"order-{uuid.uuid4()}"
    after = [
        await outage.http.post(
            "/v1/notifications", json=HELLO, headers={**outage.tenant.send, "Idempotency-Key": key}
        )
        for _ in range(3)
    ]

    # Then
    assert [a.status_code for a in after] == [202] * 3, [a.text for a in after]
    assert await outage.stored(key) == 1


async def test_lock_release_failing_after_the_commit_still_answers_202(
    make_outage: OutageFactory, unique_prefix: str
) -> None:
    # Given: the database stalls (the key is cached, so only the store waits on it)
    outage: Outage = await make_outage(database={"timeout": 30})
    warm = await outage.http.post("/v1/notifications", json=HELLO, headers=outage.tenant.send)
    assert warm.status_code == 202, warm.text
    key = f"order-{uuid.uuid4()}"
    lock = f"{unique_prefix}idem:{outage.tenant.app_id}:{key}"
    outage.database.stall()
    sending = asyncio.create_task(
        outage.http.post(
            "/v1/notifications", json=HELLO, headers={**outage.tenant.send, "Idempotency-Key": key}
        )
    )

    # When: Redis goes away once the request holds its lock and waits for the commit
    direct = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await _until(lambda: _exists(direct, lock))
    finally:
        await direct.aclose()
    outage.redis.cut()
    outage.database.restore()
    answer = await sending

    # Then: committed, so accepted
    assert answer.status_code == 202, answer.text
    assert await outage.stored(key) == 1


async def test_redis_down_a_key_stored_meanwhile_by_another_process_is_replayed(
    make_outage: OutageFactory,
) -> None:
    # Given: Redis is down, and another API process has inserted a notification with the key
    # after this one looked for it (its transaction still open, so this one's INSERT waits)
    outage: Outage = await make_outage()
    outage.redis.cut()
    key = f"order-{uuid.uuid4()}"
    request = NotificationCreate.model_validate({**HELLO, "idempotency_key": key})
    item = accept._new(outage.tenant.app_id, request, request.message(), utcnow())
    async with outage.runtime.sessions() as other:
        [winner] = await notifications.create_many(session=other, items=[item])
        assert isinstance(winner, notifications.Created)
        sending = asyncio.create_task(
            outage.http.post(
                "/v1/notifications",
                json=HELLO,
                headers={**outage.tenant.send, "Idempotency-Key": key},
            )
        )
        await _until(lambda: _an_insert_waits_for_a_lock(outage.runtime))

        # When: the other process commits
        await other.commit()
    answer = await sending

    # Then: this request answers the other's notification, as a replay
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == str(winner.id)
    assert answer.headers["idempotency-replay"] == "true"
    assert await outage.stored(key) == 1


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    """Return once `check` is true (the test's own timeout bounds the wait)."""
    while True:
        if await check():
            return
        await asyncio.sleep(0.01)


async def _exists(client: redis.asyncio.Redis, key: str) -> bool:
    return bool(await client.exists(key))


async def _an_insert_waits_for_a_lock(runtime: Runtime) -> bool:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO notifications%'"
    )
    async with runtime.sessions() as session:
        return bool((await session.execute(query)).scalar_one())
