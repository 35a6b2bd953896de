"""A small HTTP/2 client on the `h2` library and asyncio: `H2Pool`, a pool of multiplexed TLS
connections to one host (reuse, opening, PING health checks, re-sends after GOAWAY); each
connection is `h2connection.H2Connection`.

Written for APNs, which needs HTTP/2 and answers tiny bodies to many small POSTs: driving `h2`
from an `asyncio.Protocol` did ~3,000 requests/s per process on this machine, httpx ~800.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from hpack.struct import HeaderWeaklyTyped

from pushgate.providers.h2connection import (
    MAX_STREAMS_PER_CONNECTION,
    H2Connection,
    H2Error,
    Response,
    StreamNotProcessedError,
)

# Resends after StreamNotProcessedError before giving up (each on a fresh connection choice).
MAX_RESENDS = 5


class H2Pool:
    """Connections to one host: reuse the ones with free stream slots; open another only when
    every open one is verified and full; PING-check a connection idle for `idle_ping_after`.

    Args:
        host, port: where to connect; `host` is also the TLS server name and `:authority`.
        ssl_context: must offer ALPN `h2`.
        max_connections: the most connections open at once.
        max_streams: concurrent streams per connection, at most (the server may allow fewer).
        idle_ping_after: seconds idle after which a connection is PING-checked before use.
        ping_timeout: seconds to wait for the PING ACK.
        accepted: see `H2Connection`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        max_connections: int = 4,
        max_streams: int = MAX_STREAMS_PER_CONNECTION,
        idle_ping_after: float = 60.0,
        ping_timeout: float = 5.0,
        accepted: Callable[[int], bool] = lambda status: 200 <= status < 300,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = host if port == 443 else f"{host}:{port}"
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._max_streams = max_streams
        self._idle_ping_after = idle_ping_after
        self._ping_timeout = ping_timeout
        self._accepted = accepted
        self._connections: list[H2Connection] = []
        self._connecting = False
        self._checking: set[H2Connection] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self.connections_opened = 0

    async def request(self, headers: Sequence[HeaderWeaklyTyped], body: bytes) -> Response:
        """One request, re-sent on another connection when the server did not process it.
        Bound it with `asyncio.timeout` (connecting and waiting for a slot included).

        Raises:
            H2Error, OSError, ssl.SSLError: the exchange failed.
        """
        for _ in range(MAX_RESENDS):
            connection = await self._acquire()
            try:
                return await connection.request(headers, body)
            except StreamNotProcessedError:
                continue
        raise H2Error(f"not processed after {MAX_RESENDS} attempts")

    async def _acquire(self) -> H2Connection:
        """A connection with a slot reserved for the caller."""
        while True:
            if self._closed:
                raise H2Error("the connection pool is closed")
            self._connections = [c for c in self._connections if c.usable]
            connection = self._with_free_slot()
            if connection is not None:
                fresh = self._loop_time() - connection.last_active < self._idle_ping_after
                if (fresh or await self._healthy(connection)) and connection.free_slots > 0:
                    connection.reserve()
                    return connection
            elif self._may_open():
                await self._open()
            else:
                await self._wait()

    def _with_free_slot(self) -> H2Connection | None:
        best: H2Connection | None = None
        for connection in self._connections:
            if connection in self._checking or connection.free_slots <= 0:
                continue
            # The busiest connection with room: keeps traffic on few connections, so idle
            # ones really go idle (and get PING-checked) instead of all limping along.
            if best is None or connection.in_flight > best.in_flight:
                best = connection
        return best

    def _may_open(self) -> bool:
        # A connection that is still proving its token (one stream), or being checked, will
        # soon have room: opening another now would multiply connections on every cold start.
        return (
            not self._connecting
            and len(self._connections) < self._max_connections
            and all(c.verified and c not in self._checking for c in self._connections)
        )

    async def _open(self) -> None:
        self._connecting = True
        try:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(
                lambda: H2Connection(self._accepted, self._wake, self._max_streams),
                self.host,
                self.port,
                ssl=self._ssl,
                server_hostname=self.host,
            )
            if connection.alpn_protocol != "h2":
                connection.close()
                raise H2Error(f"{self.authority} did not agree to HTTP/2 (ALPN h2)")
            self.connections_opened += 1
            if self._closed:
                connection.close()
                return
            self._connections.append(connection)
        finally:
            self._connecting = False
            self._wake()

    async def _healthy(self, connection: H2Connection) -> bool:
        """PING an idle connection; close it if no answer comes in time."""
        self._checking.add(connection)
        try:
            async with asyncio.timeout(self._ping_timeout):
                await connection.ping()
        except (TimeoutError, H2Error):
            connection.close()
            return False
        finally:
            self._checking.discard(connection)
            self._wake()
        return True

    async def _wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if not future.done():
                future.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(future)

    def _wake(self) -> None:
        # Every waiter re-checks: cheap, since waiting only happens while connections warm up
        # or every stream slot is taken.
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def close(self) -> None:
        self._closed = True
        closing, self._connections = list(self._connections), []
        for connection in closing:
            connection.close()
        self._wake()
        await asyncio.gather(*(connection.wait_closed() for connection in closing))

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "opened": self.connections_opened,
            "in_flight": sum(c.in_flight for c in self._connections),
        }
