"""A fake Sentry ingestion endpoint on 127.0.0.1 (plain HTTP, as a DSN `http://key@host:port/1`
names it): keeps every envelope it is sent, so a test can read the events."""

from __future__ import annotations

import json
import socket
from types import TracebackType
from typing import Any, Self

from aiohttp import web


class FakeSentry:
    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def dsn(self) -> str:
        return f"http://public0key@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict[str, Any]]:
        """The error events received (an envelope's items of type `event`)."""
        found = []
        for envelope in self.envelopes:
            lines = envelope.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    async def _ingest(self, request: web.Request) -> web.Response:
        # aiohttp has undone a gzip or deflate Content-Encoding already.
        self.envelopes.append(await request.read())
        return web.json_response({"id": "0" * 32})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/api/{project}/envelope/", self._ingest)
        app.router.add_post("/api/{project}/store/", self._ingest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
