"""HTTP1Pool against a scripted HTTP/1.1 server over real TLS on loopback: keep-alive reuse,
limits, servers that close, chunked and unbounded bodies, interim answers, timeouts,
cancellation, request splitting and certificate checks."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme
import uvloop

from pushgate.providers import http1
from pushgate.providers.tls import LazyContext

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str, bytes], Awaitable[bool]]
"""Answers one request (path, body); returns whether to keep the connection open."""


@dataclass
class Server:
    """A TLS HTTP/1.1 server whose answer per path is a script."""

    ca: trustme.CA
    port: int = 0
    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                headers = dict(h.split(": ", 1) for h in lines if h)
                body = await reader.readexactly(int(headers.get("Content-Length", "0")))
                path = line.split(" ")[1]
                self.requests.append((path, headers, body))
                script = self.scripts.get(path, created)
                if not await script(reader, writer, path, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def created(_r: asyncio.StreamReader, w: asyncio.StreamWriter, path: str, _b: bytes) -> bool:
    w.write(
        b"HTTP/1.1 201 Created\r\nLocation: https://push.example/m"
        + path.encode()
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    await w.drain()
    return True


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    state = Server(ca)
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=context)
    state.port = listener.sockets[0].getsockname()[1]
    yield state
    for writer in state.writers:
        writer.close()
    listener.close()


@pytest.fixture
async def make_pool(server: Server) -> AsyncIterator[Callable[..., http1.HTTP1Pool]]:
    pools: list[http1.HTTP1Pool] = []

    def make(*, trusted: bool = True, timeout: float = 5.0, **kwargs: object) -> http1.HTTP1Pool:
        context = ssl.create_default_context()
        if trusted:
            server.ca.configure_trust(context)
        tls = LazyContext(alpn=["http/1.1"], context=context)
        pool = http1.HTTP1Pool(tls=tls, request_timeout=timeout, **kwargs)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


async def post(pool: http1.HTTP1Pool, server: Server, path: str = "/p") -> http1.Response:
    return await pool.request("POST", server.url(path), headers={"TTL": "60"}, body=b"hello")


async def test_requests_reuse_one_keep_alive_connection(server, make_pool):
    pool = make_pool()

    answers = [await post(pool, server, f"/p/{i}") for i in range(30)]

    assert [a.status for a in answers] == [201] * 30
    assert answers[7].headers["location"] == "https://push.example/m/p/7"
    assert server.connections == 1
    path, headers, body = server.requests[0]
    assert (path, body) == ("/p/0", b"hello")
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["TTL"] == "60"


async def test_concurrent_requests_open_at_most_limit_per_host(server, make_pool):
    async def slow(r, w, path, body):
        await asyncio.sleep(0.05)
        return await created(r, w, path, body)

    server.scripts["/slow"] = slow
    pool = make_pool(limit_per_host=3)

    answers = await asyncio.gather(*(post(pool, server, "/slow") for _ in range(12)))

    assert {a.status for a in answers} == {201}
    assert server.connections == 3


async def test_the_total_limit_frees_an_idle_connection_of_another_host(server, make_pool):
    pool = make_pool(limit=1)
    first = await post(pool, server)
    # The same server by another name is another pool key: it must take the only slot.
    second = await pool.request("POST", f"https://localhost:{server.port}/p", headers={})

    assert (first.status, second.status) == (201, 201)
    assert server.connections == 2


async def test_a_request_held_by_the_total_limit_goes_when_another_host_finishes(server, make_pool):
    async def slow(r, w, path, body):
        await asyncio.sleep(0.2)
        return await created(r, w, path, body)

    server.scripts["/slow"] = slow
    pool = make_pool(limit=1)
    first = asyncio.create_task(post(pool, server, "/slow"))
    await asyncio.sleep(0.05)
    # Another host (by name), waiting for the only connection, which goes idle, not closed.
    second = pool.request("POST", f"https://localhost:{server.port}/p", headers={})

    answers = await asyncio.wait_for(asyncio.gather(first, second), 2)

    assert [a.status for a in answers] == [201, 201]


async def test_connection_close_is_honoured_and_the_next_request_reconnects(server, make_pool):
    async def closing(_r, w, _path, _body):
        w.write(b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        return False

    server.scripts["/close"] = closing
    pool = make_pool()

    assert (await post(pool, server, "/close")).status == 201
    assert (await post(pool, server)).status == 201
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_not_reused(server, make_pool):
    pool = make_pool()
    await post(pool, server)
    server.writers[0].close()
    await asyncio.sleep(0.1)

    assert (await post(pool, server)).status == 201
    assert server.connections == 2


async def test_a_chunked_body_is_reassembled(server, make_pool):
    async def chunked(_r, w, _path, _body):
        w.write(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await w.drain()
        return True

    server.scripts["/chunked"] = chunked
    pool = make_pool()

    answer = await post(pool, server, "/chunked")

    assert (answer.status, answer.body, answer.truncated) == (400, b"hello world", False)
    assert (await post(pool, server)).status == 201
    assert server.connections == 1


async def test_a_body_over_the_bound_is_truncated_and_the_connection_dropped(server, make_pool):
    async def huge(_r, w, _path, _body):
        w.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100_000)
        await w.drain()
        return True

    server.scripts["/huge"] = huge
    pool = make_pool(max_body=1000)

    answer = await post(pool, server, "/huge")

    assert (answer.status, len(answer.body), answer.truncated) == (500, 1000, True)
    assert (await post(pool, server)).status == 201
    assert server.connections == 2


async def test_a_body_delimited_by_the_end_of_the_connection_is_whole(server, make_pool):
    async def until_close(_r, w, _path, _body):
        w.write(b"HTTP/1.1 410 Gone\r\nConnection: close\r\n\r\nsubscription expired")
        await w.drain()
        return False

    server.scripts["/eof"] = until_close
    pool = make_pool()

    answer = await post(pool, server, "/eof")

    assert (answer.status, answer.body) == (410, b"subscription expired")


async def test_interim_answers_are_skipped(server, make_pool):
    async def interim(r, w, path, body):
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await created(r, w, path, body)

    server.scripts["/interim"] = interim
    pool = make_pool()

    assert (await post(pool, server, "/interim")).status == 201


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped(server, make_pool):
    async def silent(r, _w, _path, _body):
        await r.read()  # until the client gives up and closes
        return False

    server.scripts["/silent"] = silent
    pool = make_pool(timeout=0.3)

    with pytest.raises(TimeoutError):
        await post(pool, server, "/silent")
    assert (await post(pool, server)).status == 201
    assert server.connections == 2


async def test_a_connection_broken_mid_request_is_a_protocol_error(server, make_pool):
    async def hang_up(_r, w, _path, _body):
        w.write(b"HTTP/1.1 201 Cre")
        await w.drain()
        return False

    server.scripts["/hangup"] = hang_up
    pool = make_pool()

    with pytest.raises(http1.ProtocolError):
        await post(pool, server, "/hangup")
    assert (await post(pool, server)).status == 201


async def test_garbage_is_a_protocol_error(server, make_pool):
    async def garbage(_r, w, _path, _body):
        w.write(b"SMTP ready\r\n\r\n")
        await w.drain()
        return True

    server.scripts["/garbage"] = garbage
    pool = make_pool()

    with pytest.raises(http1.ProtocolError):
        await post(pool, server, "/garbage")


async def test_a_cancelled_waiter_does_not_stall_the_queue(server, make_pool):
    async def slow(r, w, path, body):
        await asyncio.sleep(0.2)
        return await created(r, w, path, body)

    server.scripts["/slow"] = slow
    pool = make_pool(limit_per_host=1)
    first = asyncio.create_task(post(pool, server, "/slow"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(post(pool, server))
    third = asyncio.create_task(post(pool, server))
    await asyncio.sleep(0.01)
    second.cancel()

    assert (await first).status == 201
    assert (await asyncio.wait_for(third, 2)).status == 201
    assert second.cancelled()


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("https://127.0.0.1/p", {"X-Evil": "a\r\nInjected: yes"}),
        ("https://127.0.0.1/p", {"Bad Name": "x"}),
        ("https://127.0.0.1/p q", {}),
        ("https://127.0.0.1/p\r\nInjected: yes", {}),
        ("ftp://127.0.0.1/p", {}),
        ("https:///nohost", {}),
    ],
)
async def test_requests_that_would_split_or_cannot_be_sent_are_refused(make_pool, url, headers):
    pool = make_pool()

    with pytest.raises(http1.InvalidRequestError):
        await pool.request("POST", url, headers=headers)
    assert pool.connections_made == 0


async def test_an_untrusted_certificate_is_a_connect_error(server, make_pool):
    pool = make_pool(trusted=False)

    with pytest.raises(http1.ConnectError) as raised:
        await post(pool, server)

    assert isinstance(raised.value.os_error, ssl.SSLCertVerificationError)


async def test_the_address_check_runs_before_connecting(server, make_pool):
    pool = make_pool(address_allowed=lambda ip: not ip.is_loopback)

    with pytest.raises(http1.ConnectError) as raised:
        await post(pool, server)

    assert "127.0.0.1" in str(raised.value.os_error)
    assert server.connections == 0


async def test_a_closed_pool_refuses_requests(server, make_pool):
    pool = make_pool()
    await post(pool, server)
    await pool.close()

    with pytest.raises(http1.ClosedError):
        await post(pool, server)


async def test_requests_work_on_uvloop_as_in_the_worker(server):
    # The worker runs on uvloop, whose transports are not asyncio's classes.
    context = ssl.create_default_context()
    server.ca.configure_trust(context)

    async def two_requests() -> list[int]:
        pool = http1.HTTP1Pool(tls=LazyContext(context=context), request_timeout=5.0)
        try:
            return [(await post(pool, server)).status for _ in range(2)]
        finally:
            await pool.close()

    assert await asyncio.to_thread(uvloop.run, two_requests()) == [201, 201]
    assert server.connections == 1
