"""A TCP proxy on 127.0.0.1 in front of a real service (PostgreSQL, Redis, RabbitMQ), so a test
can take the service away from pushgate without touching the shared server.

Modes, switched while connections are open:

- `cut()`: every open connection is closed and new ones are refused at once (the service is
  down, or its host unreachable).
- `stall()`: connections stay open and new ones are accepted, but no byte moves either way
  (the network or the server hangs); what was sent waits in the buffers.
- `reset()`: every open connection is reset (as by a server restart, a failover or a
  firewall dropping its state), new ones are forwarded at once.
- `restore()`: bytes flow again; stalled connections carry on where they stopped. Connections
  that `cut()` closed stay closed, as after a real restart: the client must reconnect.

    async with TCPProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class TCPProxy:
    """Forwards each accepted connection to `upstream_host:upstream_port`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0  # connections accepted since start: what a test may read
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def for_url(cls, url: str, default_port: int) -> TCPProxy:
        """A proxy for the service a URL names (not started)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._close_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def cut(self) -> None:
        """Close every connection, and refuse (close at once) every new one."""
        self._refusing = True
        self._flowing.set()  # stalled pipes wake up to find their sockets closed
        self._close_connections()

    def reset(self) -> None:
        """Reset every open connection; keep forwarding new ones."""
        self._refusing = False
        self._flowing.set()
        self._close_connections()

    def stall(self) -> None:
        """Keep connections open but move no byte, in either direction."""
        self._refusing = False
        self._flowing.clear()

    def restore(self) -> None:
        """Forward again (new connections, and the stalled ones)."""
        self._refusing = False
        self._flowing.set()

    def _close_connections(self) -> None:
        for writer in list(self._writers):
            # abort(): a reset, not a polite FIN after the buffers drain, as a dead host does.
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        if self._refusing:  # cut while connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, (writer, up_writer)))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(_CHUNK)
                if not data:
                    break
                # Stalled while reading: hold the bytes until restored (or cut).
                await self._flowing.wait()
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            for side in pair:
                self._writers.discard(side)
                with contextlib.suppress(Exception):
                    side.transport.abort()
