"""The fault suite's fixture `make_rig`: a fake push service, and pushgate's processes on
the services profile (a database, queue prefix and Redis prefix of the test's own) behind TCP
proxies to the shared servers, which the tests never stop."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.acceptance.profiles import DATABASE_URL, services_profile
from tests.conftest import migrated_postgres_database
from tests.fakes.tcp_proxy import TCPProxy
from tests.fakes.webpush_server import FakeWebPushService
from tests.faults.deployment import Deployment, free_port, pushgate_env
from tests.faults.rig import Rig

# Recovery within about a second of a backend's return, not production's patience.
QUICK_RECOVERY = {
    # A statement of the API's waits at most this long for a stalled database: then 503.
    "PUSHGATE_DATABASE__TIMEOUT": "1",
    # Work the database says is unfinished is published again soon (a publish lost in an
    # outage), not after the production minute.
    "PUSHGATE_WORKER__STALE_GRACE_SECONDS": "2",
    # The claim lease is the request timeout's multiple (worker.py) plus this: kept short so a
    # killed worker's claims come back within seconds.
    "PUSHGATE_PACING__MAX_WAIT_SECONDS": "0",
    "PUSHGATE_DELIVERY__REQUEST_TIMEOUT_SECONDS": "2",
    "PUSHGATE_LOG__LEVEL": "INFO",
}

RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture(scope="session")
def faults_template() -> Iterator[str]:
    """A database migrated once per session, which each case's database copies (CREATE
    DATABASE ... TEMPLATE): `pushgate migrate` in each case took seconds. Nothing connects to
    it once migrated, as a template requires."""
    yield from migrated_postgres_database("faults_template")


@pytest.fixture
async def make_rig(tmp_path: Path, faults_template: str) -> AsyncIterator[RigFactory]:
    """`await make_rig(subscriptions=..., concurrency=...)`: migrated and seeded, not started."""
    async with AsyncExitStack() as stack:

        async def make(*, subscriptions: int, concurrency: int = 20, **env: str) -> Rig:
            fake = await stack.enter_async_context(FakeWebPushService())
            template = faults_template.rpartition("/")[2]
            services = await stack.enter_async_context(services_profile(template=template))
            proxies = {}
            for name, default_port in (
                (DATABASE_URL, 5432),
                ("PUSHGATE_BROKER__URL", 5672),
                ("PUSHGATE_REDIS__URL", 6379),
            ):
                proxy = TCPProxy.for_url(services[name], default_port)
                await stack.enter_async_context(proxy)
                stack.callback(proxy.restore)  # so the teardown's own connections get through
                proxies[name] = proxy
            environment = pushgate_env(os.environ, tmp_path / "data", fake, concurrency=concurrency)
            environment |= services | QUICK_RECOVERY | env
            for name, proxy in proxies.items():
                environment[name] = proxy.url(services[name])
            deployment = Deployment(
                "services",
                environment,
                services[DATABASE_URL],  # the test's own look goes around the proxy
                tmp_path,
                api_url=f"http://127.0.0.1:{free_port()}",
            )
            stack.push_async_callback(deployment.kill_all)
            await deployment.seed(fake, subscriptions, app="default")
            return Rig(
                deployment,
                fake,
                postgres=proxies[DATABASE_URL],
                rabbitmq=proxies["PUSHGATE_BROKER__URL"],
                redis=proxies["PUSHGATE_REDIS__URL"],
                concurrency=concurrency,
            )

        yield make
