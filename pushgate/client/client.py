"""`PushgateClient` and `AsyncPushgateClient`: an httpx client with the API key, and the
resources (`devices`, `notifications`, `templates`, `preferences`) on one runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import httpx

from pushgate.client.calls import Retries
from pushgate.client.resources import Devices, Notifications, PreferencesResource, Templates
from pushgate.client.runners import AsyncRunner, Runner, SyncRunner

R = TypeVar("R", bound=Runner)

DEFAULT_TIMEOUT = 10.0


def _options(
    base_url: str, api_key: str, timeout: float, retries: Retries | int
) -> tuple[dict[str, Any], Retries]:
    http = {
        "base_url": base_url.rstrip("/"),
        "headers": {"Authorization": f"Bearer {api_key}", "User-Agent": "pushgate-client"},
        "timeout": timeout,
    }
    return http, retries if isinstance(retries, Retries) else Retries(attempts=retries + 1)


class _Client(Generic[R]):
    def __init__(self, runner: R) -> None:
        self._runner = runner
        self.devices = Devices(runner)
        self.notifications = Notifications(runner)
        self.templates = Templates(runner)
        self.preferences = PreferencesResource(runner)


class PushgateClient(_Client[SyncRunner]):
    """The API from synchronous code. Use as a context manager, or `close()` it.

    Args:
        base_url: where pushgate answers, e.g. `http://127.0.0.1:8000`.
        api_key: a `pgk_...` key (its scope decides what it may call).
        timeout: seconds for each HTTP request.
        retries: resends after a 429 or 503 (after `Retry-After`) or, for calls safe to
            resend, a connection error; a `Retries` to set the backoff and the total wait too.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: Retries | int = 2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        options, policy = _options(base_url, api_key, timeout, retries)
        self.http = httpx.Client(transport=transport, **options)
        runner = (
            SyncRunner(self.http, policy) if sleep is None else SyncRunner(self.http, policy, sleep)
        )
        super().__init__(runner)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PushgateClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPushgateClient(_Client[AsyncRunner]):
    """The API from asyncio code; the same resources as `PushgateClient`, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: Retries | int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        options, policy = _options(base_url, api_key, timeout, retries)
        self.http = httpx.AsyncClient(transport=transport, **options)
        runner = (
            AsyncRunner(self.http, policy)
            if sleep is None
            else AsyncRunner(self.http, policy, sleep)
        )
        super().__init__(runner)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncPushgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
