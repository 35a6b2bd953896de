"""The loopback guard the fuzz runs behind: armed, it refuses every connection and DNS lookup
that would leave the machine, before anything is sent; loopback still works; disarmed, it
does nothing. The refused targets are the unspecified address and a name under `.invalid`:
were the guard broken, neither would reach past this machine's own resolver and stack."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from tests.fuzz.loopback import loopback_only


def test_connections_off_loopback_are_refused_and_recorded() -> None:
    with loopback_only() as refused:
        with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
            sock.connect(("0.0.0.0", 9))
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("pushgate-fuzz.invalid", 443)

    assert refused == ["connect 0.0.0.0:9", "resolve 'pushgate-fuzz.invalid'"]


async def test_the_event_loop_and_its_resolver_are_refused_too() -> None:
    with loopback_only() as refused:
        with pytest.raises(socket.gaierror):
            await asyncio.open_connection("pushgate-fuzz.invalid", 443)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("0.0.0.0", 9)

    assert len(refused) == 2


async def test_loopback_still_answers() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with loopback_only() as refused:
            for host in ("127.0.0.1", "localhost"):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"ping\n")
                assert await reader.readline() == b"ping\n"
                writer.close()
                await writer.wait_closed()

    assert refused == []


def test_disarmed_it_does_nothing() -> None:
    with loopback_only():
        pass

    # The kernel answers (ECONNREFUSED, or 0 if something listens there): the guard raised not.
    with socket.socket() as sock:
        assert sock.connect_ex(("0.0.0.0", 9)) in (0, errno.ECONNREFUSED)


def test_it_is_armed_once_at_a_time() -> None:
    with pytest.raises(RuntimeError, match="armed already"), loopback_only(), loopback_only():
        pass
