"""The HTTP client of the webhook sender: the lean HTTP/1.1 pool of the providers
(providers/http1.py), TLS verified, and the SSRF guard applied to every address at connect
time (a webhook's name could resolve elsewhere after it was checked)."""

from __future__ import annotations

from collections.abc import Mapping

from pushgate import netguard
from pushgate.domain import endpoint
from pushgate.providers import http1
from pushgate.providers.tls import LazyContext
from pushgate.settings import WebhookSettings

MAX_ANSWER_BYTES = 1024


class WebhookClient:
    """POSTs an event; `post` answers (status, None) or (None, why there was no answer)."""

    def __init__(
        self, settings: WebhookSettings, *, resolve: netguard.Resolver = netguard.system_resolve
    ) -> None:
        cafile = str(settings.ca_bundle) if settings.ca_bundle else None
        self._http = http1.HTTP1Pool(
            tls=LazyContext(cafile=cafile, alpn=["http/1.1"]),
            request_timeout=settings.timeout_seconds,
            limit=100,
            limit_per_host=10,
            address_allowed=None
            if settings.allow_private_addresses
            else endpoint.is_public_address,
            resolve=resolve,
            max_body=MAX_ANSWER_BYTES,
            user_agent="pushgate-webhooks",
        )

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int | None, str | None]:
        try:
            response = await self._http.request("POST", url, headers=headers, body=body)
        except TimeoutError:
            return None, "timed out"
        except (http1.HTTPError, http1.InvalidRequestError) as exc:
            return None, str(exc)[:500]
        if 200 <= response.status < 300:
            return response.status, None
        answer = response.body.decode("utf-8", "replace")[:200]
        return response.status, f"HTTP {response.status}: {answer}".strip()

    async def close(self) -> None:
        await self._http.close()
