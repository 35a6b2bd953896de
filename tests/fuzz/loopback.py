"""A process-wide guard that keeps a test on loopback: while armed, every TCP/UDP connection to
an address outside 127.0.0.0/8 and ::1, and every DNS lookup of a name other than `localhost`,
fails at once with an OSError, as an unreachable network would, and is recorded.

The fuzzer makes up URLs (webhook URLs, Web Push endpoints, JWKS URLs, FCM token URIs) and
devices at the real push services' hosts; pushgate's SSRF guard refuses the private ones but lets
public names through to DNS, and `send-immediate` delivers from the API process itself. This
guard is what makes sure none of that leaves the machine, whatever the fuzzer draws, and keeps
the answers deterministic (no DNS answer from outside decides what pushgate says).

Built on audit hooks (PEP 578), which the socket module raises before it acts: they see the
asyncio loop's connections and the resolver's threads alike. A hook cannot be removed, so it is
installed once per process and does nothing while disarmed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", b"localhost", b"localhost."})


class _Guard:
    def __init__(self) -> None:
        # What the armed block refused; None while disarmed.
        self.refused: list[str] | None = None
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        with self._lock:
            if not self._installed:
                sys.addaudithook(self._hook)
                self._installed = True

    def _refuse(self, what: str, error: OSError) -> None:
        refused = self.refused
        if refused is not None:
            refused.append(what)
        raise error

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.refused is None:
            return
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[-1]
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
                self._refuse(
                    f"connect {address[0]}:{address[1]}",
                    ConnectionRefusedError(f"loopback guard: {address[0]} is off limits"),
                )
        elif event in _LOOKUPS:
            host = args[0]
            if host is not None and host not in _LOOPBACK_NAMES and not _is_literal(host):
                self._refuse(
                    f"resolve {host!r}",
                    socket.gaierror(socket.EAI_NONAME, f"loopback guard: no DNS for {host!r}"),
                )


_LOOKUPS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyname_ex",
        "socket.gethostbyaddr",
    }
)


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _is_literal(host: Any) -> bool:
    # An IP literal needs no DNS; the connection to it is checked by the connect hook.
    return _address(host) is not None


def _is_loopback(host: Any) -> bool:
    address = _address(host)
    return address is not None and address.is_loopback


GUARD = _Guard()


@contextlib.contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Arm the guard for the block; yields the list of what it refuses meanwhile."""
    GUARD.install()
    if GUARD.refused is not None:
        raise RuntimeError("the loopback guard is armed already")
    refused: list[str] = []
    GUARD.refused = refused
    try:
        yield refused
    finally:
        GUARD.refused = None
