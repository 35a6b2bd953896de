"""A fake webhook receiver over TLS on 127.0.0.1 (hypercorn, the fakes' own CA): records every
POST (headers and body) and answers 204, or `down_status` while `down` is set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.fakes.hosting import Scope, Send, TLSServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class FakeWebhookReceiver(TLSServer):
    def __init__(self) -> None:
        super().__init__(name="fake-webhooks")
        self.received: list[Received] = []
        self.down = False
        self.down_status = 503

    def url(self, path: str = "/hooks") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.answered < 300]

    async def _http(self, scope: Scope, body: bytes, send: Send) -> None:
        status = self.down_status if self.down else 204
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(scope["path"], headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
