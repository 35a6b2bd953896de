"""One HTTP/2 client connection on the `h2` library and asyncio (`H2Connection`, an
`asyncio.Protocol`): stream slots, flow control, PING, GOAWAY; with the errors and the
`Response` it gives. The pool that shares these connections is `h2client.py`'s.

Written for APNs, which needs HTTP/2 and answers tiny bodies to many small POSTs: driving `h2`
from an `asyncio.Protocol` did ~3,000 requests/s per process on this machine, httpx ~800.

RFC 9113 is cited by section. Error model: `StreamNotProcessedError` means the server promised
it did not act on the request (GOAWAY above `last_stream_id`, or REFUSED_STREAM, section 8.7),
so the pool re-sends it on another connection; any other `H2Error` or `OSError` means the
request may or may not have been processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack
from h2.connection import ConnectionInputs, ConnectionState
from h2.errors import ErrorCodes
from hpack.struct import HeaderWeaklyTyped

from pushgate.providers import tls

# Our own default cap on concurrent streams per connection, whatever the server allows: h2
# counts open streams by walking all of them on every new stream (`_open_streams`), so a send
# costs O(open streams); past a few hundred that walk dominates, and more connections are cheaper.
MAX_STREAMS_PER_CONNECTION = 1000


class H2Error(Exception):
    """The HTTP/2 exchange failed; the request may have been processed."""


class StreamNotProcessedError(H2Error):
    """The server did not process the request (RFC 9113 section 8.7): safe to send again."""


class _GracefulStateMachine(h2.connection.H2ConnectionStateMachine):
    """h2 closes a connection for all traffic as soon as a GOAWAY arrives, so the answers to
    streams at or below `last_stream_id`, which RFC 9113 section 6.8 says may still complete,
    raise ProtocolError instead (python-hyper/h2#1181). This lets them through; opening new
    streams stays forbidden."""

    _transitions = {  # noqa: RUF012 (replaces the base class's table, read-only)
        **h2.connection.H2ConnectionStateMachine._transitions,
        **{
            (ConnectionState.CLOSED, i): (None, ConnectionState.CLOSED)
            for i in (
                ConnectionInputs.RECV_HEADERS,
                ConnectionInputs.RECV_DATA,
                ConnectionInputs.RECV_WINDOW_UPDATE,
                ConnectionInputs.RECV_PING,
                ConnectionInputs.RECV_SETTINGS,
                ConnectionInputs.RECV_RST_STREAM,
                ConnectionInputs.RECV_PRIORITY,
                ConnectionInputs.SEND_DATA,
                ConnectionInputs.SEND_WINDOW_UPDATE,
                ConnectionInputs.SEND_RST_STREAM,
            )
        },
    }


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    connection: H2Connection


class _Stream:
    __slots__ = ("body", "future", "headers", "status", "window")

    def __init__(self, future: asyncio.Future[Response]) -> None:
        self.future = future
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.window: asyncio.Future[None] | None = None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding. hpack's Huffman encoder is pure Python, ~15% of an APNs
    send for the values that differ per request (path, apns-id, expiration), which cannot be
    indexed anyway; sending them as plain literals costs a few dozen bytes per request."""

    def encode(
        self,
        headers: Iterable[HeaderWeaklyTyped | tuple[bytes | str, bytes | str, bool | None]]
        | dict[bytes | str, bytes | str],
        huffman: bool = True,
    ) -> bytes:
        return super().encode(headers, huffman=False)


class H2Connection(asyncio.Protocol):
    """One client connection. The pool reserves a slot (`reserve`) before calling `request`.

    Args:
        accepted: given a response status, whether the request proved our credentials good;
            until one does, only one stream is used (APNs token auth requires it).
        on_change: called when capacity may have grown (a slot freed, settings changed,
            the connection verified or gone), so the pool can wake waiting requests.
    """

    def __init__(
        self,
        accepted: Callable[[int], bool],
        on_change: Callable[[], None],
        max_streams: int = MAX_STREAMS_PER_CONNECTION,
    ) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            # Our requests' headers are built by pushgate (lower-case names, pseudo-headers
            # first, nothing connection-specific): h2's per-request normalising and checking
            # of them cost ~10% of an APNs send. What the server sends is still checked.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.encoder = _PlainEncoder()
        self._h2.state_machine = _GracefulStateMachine()
        self._accepted = accepted
        self._on_change = on_change
        self._max_streams = max_streams
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._reserved = 0
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self.last_active = self._loop.time()
        self._flush_scheduled = False
        self.verified = False
        self.closed = False
        self.draining = False
        self.last_stream_id: int | None = None

    # --- state seen by the pool ---------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Accepts new streams: open, no GOAWAY received, not retired."""
        return not self.closed and not self.draining

    @property
    def stream_limit(self) -> int:
        if not self.verified:
            return 1
        remote = self._h2.remote_settings.max_concurrent_streams
        return min(remote, self._max_streams)

    @property
    def free_slots(self) -> int:
        return self.stream_limit - len(self._streams) - self._reserved if self.usable else 0

    @property
    def in_flight(self) -> int:
        return len(self._streams) + self._reserved

    @property
    def alpn_protocol(self) -> str | None:
        ssl_object = self._transport.get_extra_info("ssl_object") if self._transport else None
        return ssl_object.selected_alpn_protocol() if ssl_object is not None else None

    def reserve(self) -> None:
        self._reserved += 1

    def retire(self) -> None:
        """Open no new stream here (APNs `Shutdown`); close once the open ones finish."""
        self.draining = True
        self._close_when_drained()
        self._on_change()

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not necessarily an asyncio.Transport instance: uvloop's TLS
        # transport (the worker runs on uvloop) is not one, so no isinstance check here.
        self._transport = transport  # type: ignore[assignment]
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.last_active = self._loop.time()
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self._abort(H2Error(f"HTTP/2 protocol error from the server: {exc}"))
            return
        for event in events:
            self._handle(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)
        self._abort(
            H2Error(f"connection lost: {exc}" if exc else "connection closed by the server")
        )

    async def wait_closed(self) -> None:
        await tls.wait_closed(self._transport, self._lost)

    # --- requests -----------------------------------------------------------------------------

    async def request(self, headers: Sequence[HeaderWeaklyTyped], body: bytes) -> Response:
        """Send one request on a slot reserved with `reserve`; the slot is freed on return."""
        self._reserved -= 1
        if not self.usable:
            self._on_change()
            raise StreamNotProcessedError("the connection closed before the request was sent")
        stream_id = self._h2.get_next_available_stream_id()
        stream = _Stream(self._loop.create_future())
        # Registered before the first await: an answer may arrive in the next data_received.
        self._streams[stream_id] = stream
        try:
            try:
                self._h2.send_headers(stream_id, headers, end_stream=not body)
            except h2.exceptions.TooManyStreamsError:
                # The server lowered MAX_CONCURRENT_STREAMS under us; nothing was sent.
                raise StreamNotProcessedError("the server lowered its stream limit") from None
            self._flush_soon()
            if body:
                await self._send_body(stream_id, stream, body)
            return await stream.future
        except asyncio.CancelledError:
            # A timeout: tell the server we gave up, so the stream stops counting against us.
            if not self.closed:
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)
                self._flush()
            raise
        except h2.exceptions.H2Error as exc:
            raise H2Error(f"HTTP/2 stream {stream_id}: {exc}") from exc
        finally:
            self._streams.pop(stream_id, None)
            self._close_when_drained()
            self._on_change()

    async def _send_body(self, stream_id: int, stream: _Stream, body: bytes) -> None:
        view = memoryview(body)
        offset = 0
        while offset < len(body):
            if stream.future.done():
                return  # answered (or failed) before the whole body went out
            # RFC 9113 section 5.2: never send more than both windows allow.
            window = self._h2.local_flow_control_window(stream_id)
            size = min(window, self._h2.max_outbound_frame_size, len(body) - offset)
            if size <= 0:
                stream.window = self._loop.create_future()
                waits: list[asyncio.Future[Any]] = [stream.window, stream.future]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                stream.window = None
                continue
            end = offset + size == len(body)
            self._h2.send_data(stream_id, view[offset : offset + size].tobytes(), end_stream=end)
            offset += size
            self._flush_soon()

    async def ping(self) -> None:
        """RFC 9113 section 6.7: an answered PING proves the connection is alive. Wait for it
        under `asyncio.timeout`: a dead link never answers.

        Raises:
            H2Error: the connection is closed.
        """
        if self.closed:
            raise H2Error("the connection is closed")
        opaque = os.urandom(8)
        future = self._pings[opaque] = self._loop.create_future()
        self._h2.ping(opaque)
        self._flush()
        try:
            await future
        finally:
            self._pings.pop(opaque, None)

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            with contextlib.suppress(h2.exceptions.H2Error):
                self._h2.close_connection()
            self._flush()
            self._transport.close()
        self._abort(H2Error("the connection was closed by pushgate"))

    # --- internals ----------------------------------------------------------------------------

    def _handle(self, event: h2.events.Event) -> None:  # noqa: C901 (one branch per event type)
        if isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    stream.headers[_text(name)] = _text(value)
                stream.status = int(stream.headers.get(":status", "0"))
                if not self.verified and self._accepted(stream.status):
                    self.verified = True
                    self._on_change()
        elif isinstance(event, h2.events.DataReceived):
            # Answers are small; give the window back at once so the server never stalls.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body.append(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None and not stream.future.done():
                stream.future.set_result(
                    Response(stream.status, stream.headers, b"".join(stream.body), self)
                )
        elif isinstance(event, h2.events.StreamReset):
            self._reset(event.stream_id, event.error_code)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for stream in self._streams.values():
                if stream.window is not None and not stream.window.done():
                    stream.window.set_result(None)
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self._on_change()
        elif isinstance(event, h2.events.PingAckReceived):
            future = self._pings.get(event.ping_data)
            if future is not None and not future.done():
                future.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway(event.last_stream_id or 0, event.error_code)

    def _reset(self, stream_id: int, error_code: ErrorCodes | int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.future.done():
            return
        if error_code == ErrorCodes.REFUSED_STREAM:
            stream.future.set_exception(StreamNotProcessedError("the server refused the stream"))
        else:
            stream.future.set_exception(H2Error(f"the server reset the stream ({error_code!r})"))

    def _goaway(self, last_stream_id: int, error_code: ErrorCodes | int | None) -> None:
        # RFC 9113 section 6.8: streams above last_stream_id were not processed and may be
        # retried; those at or below may still be answered on this connection.
        self.draining = True
        self.last_stream_id = last_stream_id
        for stream_id, stream in self._streams.items():
            if stream_id > last_stream_id and not stream.future.done():
                stream.future.set_exception(
                    StreamNotProcessedError(f"GOAWAY ({error_code!r}) above stream {stream_id}")
                )
        self._close_when_drained()
        self._on_change()

    def _close_when_drained(self) -> None:
        if self.draining and not self._streams and not self._reserved and not self.closed:
            self.close()

    def _abort(self, error: H2Error) -> None:
        was_closed, self.closed = self.closed, True
        for stream_id, stream in self._streams.items():
            if not stream.future.done():
                unsent = self.last_stream_id is not None and stream_id > self.last_stream_id
                stream.future.set_exception(
                    StreamNotProcessedError(str(error)) if unsent else error
                )
        for future in self._pings.values():
            if not future.done():
                future.set_exception(error)
        if not was_closed:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.abort()
            self._on_change()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _flush_soon(self) -> None:
        # Sends started in the same loop iteration share one TLS record and one syscall
        # (a socket write cost ~0.3 ms here, more than encoding a request).
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()
