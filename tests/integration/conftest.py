"""Fixtures for the delivery pipeline: a fake Web Push service over TLS, and pushgate (API +
worker) running on the test's backend profile and trusting the fake's certificate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pushgate.api.app import create_app
from pushgate.domain.apikeys import Scope
from pushgate.runtime import Runtime, open_runtime
from pushgate.settings import Settings
from pushgate.store import api_keys, apps
from pushgate.worker import Worker
from tests.conftest import TEST_SECRETS_KEY, TenantKeys
from tests.fakes.webpush_server import FakeWebPushService

FINAL = {"completed", "partially_failed", "failed", "expired", "canceled"}


@pytest.fixture
async def fake_push() -> AsyncIterator[FakeWebPushService]:
    async with FakeWebPushService() as fake:
        yield fake


def pipeline_settings(
    settings: Settings,
    fake: FakeWebPushService,
    *,
    circuit_breaker: dict[str, Any] | None = None,
    webpush: dict[str, Any] | None = None,
    fcm: dict[str, Any] | None = None,
    apns: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    pacing: dict[str, Any] | None = None,
    webhooks: dict[str, Any] | None = None,
    **delivery: Any,
) -> Settings:
    """The profile's settings, opened to the fake on loopback and trusting its CA.

    `circuit_breaker`, `webpush`, `fcm`, `apns`, `worker` and `pacing` override fields of those
    sections (e.g.
    `circuit_breaker={"threshold": 2, "timeout": 1.5}`, `webpush={"vapid_subject": None}`,
    `worker={"dispatch_page_size": 50}`);
    other keyword arguments override delivery settings.
    """
    webpush_settings = settings.webpush.model_copy(
        update={
            "extra_hosts": ["127.0.0.1"],
            "allow_private_addresses": True,
            "ca_bundle": fake.ca_pem_path,
            "vapid_subject": "mailto:ops@pushgate.example.com",
            **(webpush or {}),
        }
    )
    worker_settings = settings.worker.model_copy(update={"sweep_interval": 0.2, **(worker or {})})
    return settings.model_copy(
        update={
            "webpush": webpush_settings,
            "worker": worker_settings,
            "delivery": settings.delivery.model_copy(
                update={"backoff_base_seconds": 0.2, **delivery}
            ),
            "circuit_breaker": settings.circuit_breaker.model_copy(update=circuit_breaker or {}),
            "fcm": settings.fcm.model_copy(update=fcm or {}),
            "apns": settings.apns.model_copy(update=apns or {}),
            "webhooks": settings.webhooks.model_copy(update=webhooks or {}),
            "pacing": settings.pacing.model_validate(
                {**settings.pacing.model_dump(), **(pacing or {})}
            ),
        }
    )


@dataclass
class Pushgate:
    """pushgate as `serve` runs it (API and worker in one process), plus helpers for tests."""

    settings: Settings
    runtime: Runtime
    http: httpx.AsyncClient
    worker: Worker

    async def subscribe(
        self, headers: dict[str, str], subscription: dict[str, Any], **fields: Any
    ) -> str:
        body = {"platform": "webpush", "subscription": subscription, **fields}
        response = await self.http.post("/v1/devices", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def send(self, headers: dict[str, str], body: dict[str, Any], **kw: Any) -> str:
        response = await self.http.post("/v1/notifications", json=body, headers=headers, **kw)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def finished(
        self, headers: dict[str, str], notification_id: str, within: float = 20.0
    ) -> dict[str, Any]:
        """The notification once its status is final."""
        deadline = time.monotonic() + within
        while True:
            response = await self.http.get(f"/v1/notifications/{notification_id}", headers=headers)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in FINAL:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"not final within {within}s: {body}")
            await asyncio.sleep(0.05)

    async def deliveries(self, headers: dict[str, str], notification_id: str) -> list[Any]:
        response = await self.http.get(
            f"/v1/notifications/{notification_id}/deliveries", headers=headers
        )
        assert response.status_code == 200, response.text
        items: list[Any] = response.json()["items"]
        return items

    async def tenant(self, name: str = "acme") -> TenantKeys:
        """A tenant with one key of each scope, in this pushgate's database."""
        async with self.runtime.sessions() as session:
            app = await apps.create(session=session, box=self.runtime.credentials.box(), name=name)
            keys = {
                s: await api_keys.create(session=session, app_id=app.id, scope=s) for s in Scope
            }
            await session.commit()
        return TenantKeys(
            app_id=app.id,
            app_name=name,
            **{s.value: {"Authorization": f"Bearer {k.secret}"} for s, k in keys.items()},
        )


PushgateFactory = Callable[..., Awaitable[Pushgate]]


@pytest.fixture
async def make_pushgate(
    settings: Settings, fake_push: FakeWebPushService
) -> AsyncIterator[PushgateFactory]:
    """Start pushgate (API + worker) on the profile; keyword arguments override delivery
    settings (e.g. `max_attempts=2`), and `circuit_breaker={...}` / `webpush={...}` those
    sections (see `pipeline_settings`). Start one per test: two would share the queues."""
    started: list[tuple[Runtime, Worker, httpx.AsyncClient, Any]] = []

    async def make(**overrides: Any) -> Pushgate:
        configured = pipeline_settings(settings, fake_push, **overrides)
        runtime = await open_runtime(configured)
        worker = Worker(runtime)
        await worker.start()
        app = create_app(configured, runtime=runtime)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pushgate.test"
        )
        started.append((runtime, worker, http, lifespan))
        return Pushgate(settings=configured, runtime=runtime, http=http, worker=worker)

    yield make
    for runtime, worker, http, lifespan in reversed(started):
        await http.aclose()
        await lifespan.__aexit__(None, None, None)
        await worker.stop()
        await runtime.close()


@pytest.fixture
async def pushgate(make_pushgate: PushgateFactory) -> Pushgate:
    return await make_pushgate()


@pytest.fixture
async def acme(settings: Settings) -> TenantKeys:
    """A tenant in the profile's database, made through a runtime of its own that runs no
    worker: the pushgate a test starts (`pushgate`, or its own `make_pushgate(...)` with other
    settings) is then the only one consuming its queues and sending its webhooks. (Made
    through the `pushgate` fixture, a test that also started its own had two workers: the
    default one took jobs and webhook events meant for the test's settings.)"""
    runtime = await open_runtime(settings)
    try:
        async with runtime.sessions() as session:
            app = await apps.create(session=session, box=runtime.credentials.box(), name="acme")
            keys = {
                s: await api_keys.create(session=session, app_id=app.id, scope=s) for s in Scope
            }
            await session.commit()
    finally:
        await runtime.close()
    return TenantKeys(
        app_id=app.id,
        app_name="acme",
        **{s.value: {"Authorization": f"Bearer {k.secret}"} for s, k in keys.items()},
    )


# --- fake FCM and APNs -----------------------------------------------------------------------


@pytest.fixture
async def fake_fcm() -> AsyncIterator[Any]:
    from tests.fakes.fcm_server import FakeFCMService

    async with FakeFCMService() as fake:
        yield fake


@pytest.fixture
async def fake_apns() -> AsyncIterator[Any]:
    from tests.fakes.apns_server import FakeAPNs

    async with FakeAPNs() as fake:
        yield fake


def provider_settings(settings: Settings, fake_fcm: Any, fake_apns: Any) -> Settings:
    """`settings` pointed at the fake FCM (its CA trusted, its OAuth endpoint allowed) and the
    fake APNs (both environments), with a secrets key when the database is not embedded."""
    from pydantic import SecretStr

    update: dict[str, Any] = {
        "fcm": settings.fcm.model_copy(
            update={
                "base_url": fake_fcm.origin,
                "ca_bundle": fake_fcm.ca_pem_path,
                "token_uris": [fake_fcm.token_uri],
            }
        ),
        "apns": settings.apns.model_copy(
            update={
                "production_url": fake_apns.url,
                "sandbox_url": fake_apns.url,
                "ca_bundle": fake_apns.ca_pem_path,
            }
        ),
    }
    if not settings.is_embedded_database:
        update["secrets"] = settings.secrets.model_copy(update={"key": SecretStr(TEST_SECRETS_KEY)})
    return settings.model_copy(update=update)
