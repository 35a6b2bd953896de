"""TLS client contexts for the providers, built on first use.

Building one loads the CA store (~25 ms here). A process that never sends (the API, CLI
commands, most tests) builds three providers and would pay that three times for nothing; a
`LazyContext` pays it once, at the first connection. Verification is always on: there is
deliberately no way to turn it off.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence

# Seconds a closing connection may take for its TLS close exchange before it is aborted.
CLOSE_PATIENCE_SECONDS = 1.0


class LazyContext:
    """A verifying client context (system trust store, or `cafile`) with `alpn` protocols,
    made the first time `get()` is called.

    Args:
        cafile: a PEM bundle to trust instead of the system store.
        alpn: the protocols to offer (e.g. ["h2"] for APNs, ["http/1.1"]).
        context: an existing context to use as is (tests), instead of building one.
    """

    def __init__(
        self,
        *,
        cafile: str | os.PathLike[str] | None = None,
        alpn: Sequence[str] = (),
        context: ssl.SSLContext | None = None,
    ) -> None:
        self._cafile = os.fspath(cafile) if cafile else None
        self._alpn = list(alpn)
        self._context = context
        if context is not None and self._alpn:
            context.set_alpn_protocols(self._alpn)

    def get(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context(cafile=self._cafile)
            if self._alpn:
                context.set_alpn_protocols(self._alpn)
            self._context = context
        return self._context


async def wait_closed(
    transport: asyncio.BaseTransport | None,
    lost: asyncio.Future[None],
    patience: float = CLOSE_PATIENCE_SECONDS,
) -> None:
    """Wait until a closing transport is gone (`lost` is set by the protocol's
    connection_lost), aborting it after `patience` seconds. The TLS close_notify exchange takes
    a round trip, and a loop must not end with a transport still open: uvloop's refuses to
    close then."""
    if transport is None:
        return
    try:
        async with asyncio.timeout(patience):
            await asyncio.shield(lost)
    except TimeoutError:
        transport.abort()  # type: ignore[attr-defined]  # every stream transport has abort()
