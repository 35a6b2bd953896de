"""`PushgateClient` and `AsyncPushgateClient`: an httpx client with the API key, and the
resources (`devices`, `notifications`, `templates`, `preferences`, `webhooks`) on one
runner."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx

from pushgate.client.calls import Retries
from pushgate.client.resources import (
    Devices,
    Notifications,
    PreferencesResource,
    Templates,
    WebhooksResource,
)
from pushgate.client.runners import AsyncRunner, Runner, SyncRunner

R = TypeVar("R", bound=Runner)

DEFAULT_TIMEOUT = 10.0


class _Client(Generic[R]):
    """What both clients take and have.

    Args:
        base_url: where pushgate answers, e.g. `http://127.0.0.1:8000`.
        api_key: a `pgk_...` key (its scope decides what it may call).
        timeout: seconds for each HTTP request.
        retries: resends after a 429 or 503 (after `Retry-After`) or, for calls safe to
            resend, a connection error; a `Retries` to set the backoff and the total wait too.
        transport: an httpx transport (sync or async, as the client), e.g. for proxies.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: Retries | int = 2,
        transport: Any = None,
    ) -> None:
        options = {
            "base_url": base_url.rstrip("/"),
            "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": "pushgate-client"},
            "timeout": timeout,
            "transport": transport,
        }
        policy = retries if isinstance(retries, Retries) else Retries(attempts=retries + 1)
        self._runner = runner = self._open(options, policy)
        self.devices = Devices(runner)
        self.notifications = Notifications(runner)
        self.templates = Templates(runner)
        self.preferences = PreferencesResource(runner)
        self.webhooks = WebhooksResource(runner)

    def _open(self, options: dict[str, Any], retries: Retries) -> R:
        raise NotImplementedError


class PushgateClient(_Client[SyncRunner]):
    """The API from synchronous code. Use as a context manager, or `close()` it."""

    def _open(self, options: dict[str, Any], retries: Retries) -> SyncRunner:
        self.http = httpx.Client(**options)
        return SyncRunner(self.http, retries)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PushgateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPushgateClient(_Client[AsyncRunner]):
    """The API from asyncio code; the same resources as `PushgateClient`, awaited."""

    def _open(self, options: dict[str, Any], retries: Retries) -> AsyncRunner:
        self.http = httpx.AsyncClient(**options)
        return AsyncRunner(self.http, retries)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncPushgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
