"""A lean HTTP/1.1 keep-alive client for the providers that POST one small request per message
(Web Push and FCM): asyncio protocols, httptools' C parser (llhttp, the one uvicorn uses), a
connection pool per host, TLS always verified.

Why not aiohttp, which this replaced: against the same local nginx TLS sink in one run, aiohttp
spent ~140 µs of CPU per POST (URL objects, header multidicts, tracing hooks, a timer and a
payload object per request) where this spends ~35 µs; at thousands of deliveries a second per
process that difference is most of a core. What it leaves out on purpose: redirects (push
services never redirect, and following one would bypass the SSRF check), cookies, proxies,
request streaming, compression, HTTP/2 (APNs uses h2 directly, see h2client.py).

Safety: every host's DNS answers pass `address_allowed` (all of them, or the host is refused)
before a connection is made, so a Web Push endpoint cannot be steered to a private address by
DNS after registration; IP-literal hosts are checked the same way. Headers and the request
target are checked for characters that would split the request.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from pushgate import netguard
from pushgate.providers import tls
from pushgate.providers.tls import LazyContext

DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True, slots=True)
class Response:
    """An answer: status, headers (names lower-cased; repeated ones joined by ", "), and the
    body's first `max_body` bytes (`truncated` when there was more)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False


class HTTPError(Exception):
    """A request that got no answer."""


class ConnectError(HTTPError):
    """No connection could be made to the host; `os_error` says why (refused, TLS certificate
    not trusted, `netguard.RefusedAddressError` for the SSRF check, ...)."""

    def __init__(self, host: str, os_error: OSError) -> None:
        super().__init__(f"cannot connect to {host}: {os_error}")
        self.host = host
        self.os_error = os_error


class ProtocolError(HTTPError):
    """The connection broke or the server answered something that is not HTTP/1.1."""


class ClosedError(HTTPError):
    """The pool is closed."""


class InvalidRequestError(ValueError):
    """A URL or header that cannot be sent as given (bad scheme, CR/LF in a header, ...)."""


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a URL's request goes: the pool key, the Host header and the request-target."""

    scheme: str
    host: str
    port: int
    host_header: str
    path: str


def parse_url(url: str) -> _Target:
    """Split an http(s) URL into what a request needs.

    Raises:
        InvalidRequestError: not http/https, no host, or characters a request line cannot carry.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidRequestError(f"not an http(s) URL with a host: {url[:100]!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise InvalidRequestError(f"bad port in {url[:100]!r}") from None
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    # Printable ASCII only: a space, CR, LF or NUL would end or split the request line.
    if not path.isascii() or not path.isprintable() or " " in path:
        raise InvalidRequestError("the URL's path has characters a request line cannot carry")
    return _Target(scheme, host, port, host_header, path)


def _check_header(name: str, value: str) -> None:
    if not name.isascii() or not name.isprintable() or ":" in name or " " in name:
        raise InvalidRequestError(f"bad header name {name[:40]!r}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise InvalidRequestError(f"header {name} has a line break")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answered through a future."""

    def __init__(self, max_body: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._max_body = max_body
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[Response] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._interim = False
        self._headers_done = False
        self.keep_alive = False
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._lost.done():
            self._lost.set_result(None)
        if exc is None and self._headers_done and not self.keep_alive:
            # An answer with neither a length nor chunks ends with the connection (RFC 9112
            # section 6.3): what arrived is the whole body.
            self._complete(truncated=False)
            return
        self._fail(ProtocolError(f"connection closed before the answer ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step; never reuse it.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the server switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"not an HTTP/1.1 answer: {exc}"))
            self.close()

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        # 1xx (100 Continue, 103 Early Hints) precede the real answer: skip them.
        self._interim = 100 <= self._status < 200
        self._headers_done = not self._interim
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        room = self._max_body - self._size
        self._body.append(body[:room] if len(body) > room else body)
        self._size += len(body)
        if self._size > self._max_body:
            # Not trusting the server's size: answer with what fits and drop the connection.
            self._complete(truncated=True)
            self.close()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self._headers = {}
            return
        self._complete(truncated=False)

    # -- used by the pool ---------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and self._transport is not None and not self._transport.is_closing()

    def exchange(self, data: bytes) -> asyncio.Future[Response]:
        if self._transport is None or self._waiter is not None:
            raise ProtocolError("the connection is not ready for a request")
        self._waiter = asyncio.get_running_loop().create_future()
        self._status = 0
        self._headers = {}
        self._body = []
        self._size = 0
        self._headers_done = False
        self.keep_alive = False
        self._transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await tls.wait_closed(self._transport, self._lost)

    def _complete(self, *, truncated: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            body = b"".join(self._body)
            waiter.set_result(Response(self._status, self._headers, body, truncated))
        if truncated:
            self.keep_alive = False

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Host:
    """One host's connections: the idle ones (newest last), how many are open, and the
    requests waiting for one."""

    __slots__ = ("idle", "open", "waiters")

    def __init__(self) -> None:
        self.idle: collections.deque[_Connection] = collections.deque()
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()


class HTTP1Pool:
    """Keep-alive connections to many hosts, at most `limit` in all and `limit_per_host` each.

    Args:
        tls: the context that verifies servers (its ALPN must offer http/1.1 alone), built at
            the first connection.
        request_timeout: seconds a request may take in all.
        limit: open connections in total.
        limit_per_host: open connections per (host, port).
        address_allowed: the SSRF check every address connected to must pass; None: no check.
        resolve: DNS, (host, port) -> addresses; the loop's getaddrinfo by default.
        idle_timeout: an idle connection older than this is closed rather than reused (servers
            drop idle connections; reusing one they are closing costs a failed request).
        dns_ttl: seconds a DNS answer is reused.
        max_body: bytes of an answer's body kept (more closes the connection).
        user_agent: the User-Agent header.
    """

    def __init__(
        self,
        *,
        tls: LazyContext,
        request_timeout: float,
        limit: int = 200,
        limit_per_host: int = 200,
        address_allowed: netguard.AddressCheck | None = None,
        resolve: netguard.Resolver = netguard.system_resolve,
        idle_timeout: float = 60.0,
        dns_ttl: float = 60.0,
        max_body: int = 16_384,
        user_agent: str = "pushgate",
    ) -> None:
        self._tls = tls
        self.request_timeout = request_timeout
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._address_allowed = address_allowed
        self._resolve = resolve
        self._idle_timeout = idle_timeout
        self._dns_ttl = dns_ttl
        self._max_body = max_body
        self._user_agent = user_agent
        self._hosts: dict[tuple[str, int], _Host] = {}
        self._dns: dict[tuple[str, int], tuple[list[str], float]] = {}
        self._open = 0
        self._closed = False
        self.connections_made = 0

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> Response:
        """Send one request and read its answer, within the pool's `request_timeout` in all
        (waiting for a connection, connecting, sending and reading).

        Raises:
            InvalidRequestError: the URL or a header cannot be sent.
            ConnectError: no connection (refused, DNS, TLS, the address check).
            ProtocolError: the connection broke or the answer is not HTTP.
            TimeoutError: no complete answer in time.
            ClosedError: the pool is closed.
        """
        target = parse_url(url)
        data = self._encode(method, target, headers, body)
        if self._closed:
            raise ClosedError("the HTTP client is closed")
        key = (target.host.lower(), target.port)
        async with asyncio.timeout(self.request_timeout):
            connection = await self._acquire(key, target)
            reusable = False
            try:
                response = await connection.exchange(data)
                reusable = connection.keep_alive
                return response
            finally:
                self._release(key, connection, reusable=reusable)

    async def close(self) -> None:
        """Close every connection; requests after this raise ClosedError."""
        self._closed = True
        closing: list[_Connection] = []
        for host in self._hosts.values():
            while host.idle:
                closing.append(host.idle.pop())
            for waiter in host.waiters:
                if not waiter.done():
                    waiter.set_exception(ClosedError("the HTTP client is closed"))
        self._hosts.clear()
        for connection in closing:
            connection.close()
        await asyncio.gather(*(c.wait_closed() for c in closing))

    # -- internals ----------------------------------------------------------------------------

    def _encode(
        self, method: str, target: _Target, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        lines = [
            f"{method} {target.path} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {self._user_agent}",
            f"Content-Length: {len(body)}",
        ]
        for name, value in headers.items():
            _check_header(name, value)
            lines.append(f"{name}: {value}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + body

    async def _acquire(self, key: tuple[str, int], target: _Target) -> _Connection:
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        while True:
            if self._closed:
                raise ClosedError("the HTTP client is closed")
            now = time.monotonic()
            while host.idle:
                connection = host.idle.pop()
                if connection.usable and now - connection.idle_since < self._idle_timeout:
                    return connection
                self._discard(host, connection)
            if host.open < self._limit_per_host and (
                self._open < self._limit or self._close_one_idle()
            ):
                host.open += 1
                self._open += 1
                try:
                    return await self._connect(target)
                except BaseException:
                    host.open -= 1
                    self._open -= 1
                    self._wake(host)
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            host.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Woken, then cancelled before running: pass the turn on.
                    self._wake(host)
                waiter.cancel()
                raise

    def _release(self, key: tuple[str, int], connection: _Connection, *, reusable: bool) -> None:
        host = self._hosts.get(key)
        if host is None:  # the pool was closed meanwhile
            connection.close()
            return
        if reusable and connection.usable and not self._closed:
            connection.idle_since = time.monotonic()
            host.idle.append(connection)
        else:
            self._discard(host, connection)
        if not self._wake(host):
            # Nobody waits for this host: a request for another host held by the total limit
            # may now go (it closes this idle connection, or takes the freed slot).
            for other in self._hosts.values():
                if self._wake(other):
                    break

    def _discard(self, host: _Host, connection: _Connection) -> None:
        connection.close()
        host.open -= 1
        self._open -= 1

    def _close_one_idle(self) -> bool:
        """Make room under the total limit by closing another host's oldest idle connection."""
        for host in self._hosts.values():
            if host.idle:
                self._discard(host, host.idle.popleft())
                return True
        return False

    @staticmethod
    def _wake(host: _Host) -> bool:
        while host.waiters:
            waiter = host.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return True
        return False

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        addresses = await self._addresses(target)
        error: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._max_body),
                    address,
                    target.port,
                    ssl=self._tls.get() if target.scheme == "https" else None,
                    server_hostname=target.host if target.scheme == "https" else None,
                    ssl_handshake_timeout=self.request_timeout
                    if target.scheme == "https"
                    else None,
                )
            except OSError as exc:
                error = exc
                continue
            self.connections_made += 1
            return connection
        raise ConnectError(target.host, error or OSError("no address")) from error

    async def _addresses(self, target: _Target) -> list[str]:
        """The addresses to connect to, every one of them passing the address check; DNS
        answers (checked) are reused for `dns_ttl` seconds."""
        key = (target.host.lower(), target.port)
        now = time.monotonic()
        cached = self._dns.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            addresses = await netguard.resolve_allowed(
                target.host, target.port, self._address_allowed, self._resolve
            )
        except OSError as exc:  # RefusedAddressError included
            raise ConnectError(target.host, exc) from exc
        if len(self._dns) > 10_000:
            self._dns.clear()
        self._dns[key] = (addresses, now + self._dns_ttl)
        return addresses
