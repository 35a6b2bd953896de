"""A delivery provider for the tests, registered only through its entry point: it POSTs each
message as JSON to the device's token, an http(s) URL. The example of a provider plugin."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from pushgate.domain.message import Message
from pushgate.domain.outcome import Outcome
from pushgate.errors import InvalidInputError
from pushgate.providers.base import Capabilities, DeliveryProvider, Target
from pushgate.settings import Settings


def build(settings: Settings) -> WebhookProvider:
    """The entry point's factory: pushgate calls it once per process with its settings."""
    return WebhookProvider(timeout=settings.delivery.request_timeout_seconds)


class WebhookProvider(DeliveryProvider[None]):
    """POSTs `{"title", "body", "url", "data"}` to the device's URL; needs no credentials, has
    no dry-run mode of its own (pushgate's generic one applies), one breaker per host."""

    name: ClassVar[str] = "webhook"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, *, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def address(self, token: str) -> str:
        parts = urlsplit(token)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(
                "a webhook token is an http(s) URL", field="token", code="invalid_token"
            )
        return token

    def origin(self, token: str) -> str:
        parts = urlsplit(token)
        return f"{parts.scheme}://{parts.netloc}"

    async def send(self, target: Target, message: Message, credentials: None) -> Outcome:
        if self._session is None:  # made in the event loop, on first use
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body: dict[str, Any] = {
            "title": message.title,
            "body": message.body,
            "url": message.url,
            "data": dict(message.data),
        }
        try:
            async with self._session.post(target.token, json=body) as response:
                status = response.status
                message_id = response.headers.get("X-Message-Id")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome.retry_later(f"webhook unreachable: {type(exc).__name__}")
        if 200 <= status < 300:
            return Outcome.sent(message_id, status_code=status)
        if status in (404, 410):
            return Outcome.token_invalid(f"webhook gone ({status})", status_code=status)
        if status == 429 or status >= 500:
            return Outcome.retry_later(f"webhook answered {status}", status_code=status)
        return Outcome.rejected(f"webhook refused ({status})", status_code=status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
