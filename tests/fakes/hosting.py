"""What the HTTP fakes share: hypercorn over TLS (HTTP/2 and HTTP/1.1 by ALPN) on a socket bound
before serving, a certificate authority of their own, and a count of TLS handshakes."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Self, cast

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config, Sockets

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class CountingContext(ssl.SSLContext):
    """Counts server-side TLS sessions: asyncio wraps one BIO pair per accepted connection."""

    on_session: Callable[[], None]

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.on_session()
        return super().wrap_bio(*args, **kwargs)


class _Config(Config):
    """Hypercorn on a socket we bound ourselves (port 0 -> a free port known before serving)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self._sock = sock
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_sockets(self) -> Sockets:
        return Sockets([self._sock], [], [])

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._context


class TLSServer:
    """A fake's server half. Subclasses implement `_http`; use as an async context
    manager, or `start()` / `stop()`.

    Args:
        host: address to listen on.
        port: 0 picks a free port.
        keep_alive_timeout: seconds an idle connection stays open.
        name: for the temporary directory holding the CA file.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_alive_timeout: float = 75.0,
        name: str = "fake",
    ) -> None:
        self.host = host
        self._requested_port = port
        self.keep_alive_timeout = keep_alive_timeout
        self.tls_handshakes = 0
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{name}-")
        self.ca = trustme.CA()
        self.ca_pem_path = Path(self._tmp.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self._sock: socket.socket | None = None
        self._stopping: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def _http(self, scope: Scope, body: bytes, send: Send) -> None:
        """Answer one HTTP request whose whole body has been read."""
        raise NotImplementedError

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":
            await self._http(scope, await read_body(receive), send)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it (Linux). Without it, hypercorn's separate writes of head
        # and body meet the client's delayed ACK and every answer waits ~40 ms (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        # Listening before hypercorn takes over: a client connecting right after start()
        # waits in the backlog instead of being refused.
        sock.listen(1024)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = _Config(sock, self._ssl_context())
        config.keep_alive_timeout = self.keep_alive_timeout
        config.keep_alive_max_requests = 10**9
        config.graceful_timeout = 1.0
        config.loglevel = "WARNING"
        config.accesslog = None
        config.h2_max_concurrent_streams = 1000
        self._stopping = asyncio.Event()
        # The app is a plain ASGI callable; hypercorn's TypedDict event types add nothing here.
        app = cast(Any, self._app)
        self._task = asyncio.create_task(serve(app, config, shutdown_trigger=self._wait))

    async def stop(self) -> None:
        if self._stopping is not None and self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None
        self._tmp.cleanup()

    async def _wait(self) -> None:
        if self._stopping is not None:
            await self._stopping.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _ssl_context(self) -> ssl.SSLContext:
        context = CountingContext(ssl.PROTOCOL_TLS_SERVER)
        context.on_session = self._count_session
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_COMPRESSION
        context.set_alpn_protocols(["h2", "http/1.1"])
        self.ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client-side context that trusts the fake's CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    def _count_session(self) -> None:
        self.tls_handshakes += 1


async def read_body(receive: Receive) -> bytes:
    """The whole request body of an ASGI request."""
    chunks: list[bytes] = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            break
        chunks.append(event.get("body", b""))
        if not event.get("more_body"):
            break
    return b"".join(chunks)
