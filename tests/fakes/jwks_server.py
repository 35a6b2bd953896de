"""A fake JWKS host on 127.0.0.1 over TLS: serves `document` at any path, counts fetches."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.hosting import Scope, Send, TLSServer


class FakeJWKS(TLSServer):
    def __init__(self) -> None:
        super().__init__(name="fake-jwks")
        self.document: dict[str, Any] = {"keys": []}
        self.fetches = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def _http(self, scope: Scope, body: bytes, send: Send) -> None:
        self.fetches += 1
        payload = json.dumps(self.document).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
