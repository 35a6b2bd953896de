"""Everything a bench run started (processes, nginx, databases, queues), undone however the run
ends: a scenario's own `finally` does it as it goes; an interrupt (Ctrl-C, SIGTERM, SIGHUP)
that cuts a scenario short, or lands in its cleanup, leaves the rest to `undo_all`.

Each thing is registered when it starts (`register`) and forgotten when its owner undid it
(`forget`), so `undo_all` only touches what is still there.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_lock = threading.Lock()
_pending: dict[int, tuple[str, Callable[[], None]]] = {}
_next = 0

# Signals that mean "stop the bench": each becomes a KeyboardInterrupt, so the scenario's
# `finally` blocks run instead of the process dying with its children and services left behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def register(name: str, undo: Callable[[], None]) -> int:
    """Remember how to undo something just started; the token to `forget` it with."""
    global _next
    with _lock:
        _next += 1
        _pending[_next] = (name, undo)
        return _next


def forget(token: int | None) -> None:
    """Its owner undid it (or it never started)."""
    if token is not None:
        with _lock:
            _pending.pop(token, None)


def pending() -> list[str]:
    with _lock:
        return [name for name, _ in _pending.values()]


def undo_all() -> list[str]:
    """Undo what is still registered, newest first, with the stop signals ignored (a second
    Ctrl-C must not cut this short). Returns what failed to undo, with the reason."""
    failures: list[str] = []
    with _ignoring_stop_signals():
        while True:
            with _lock:
                if not _pending:
                    break
                token = max(_pending)
                name, undo = _pending.pop(token)
            try:
                undo()
            except Exception as exc:  # one failure must not leave the rest behind
                failures.append(f"{name}: {exc}")
                print(f"bench: cannot clean up {name}: {exc}", file=sys.stderr, flush=True)
    return failures


def run(body: Callable[[], int]) -> int:
    """Run the bench (`body`, returning its exit status) so that however it ends, what it
    started is undone: a stop signal ends it with status 130 after the cleanup."""
    install()
    try:
        return body()
    except KeyboardInterrupt as exc:
        left = ", ".join(pending()) or "nothing left"
        print(f"\nbench: interrupted ({exc or 'SIGINT'}); cleaning up: {left}", file=sys.stderr)
        return 130
    finally:
        for failure in undo_all():
            print(f"bench: left behind: {failure}", file=sys.stderr, flush=True)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Make every stop signal interrupt the run (call from the main thread), and the death of
    the parent process one of them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    _stop_with_parent()


def _stop_with_parent() -> None:
    # GNU make stopped with SIGTERM exits without passing the signal on to the recipe it runs:
    # `make bench` would leave the bench, and all it started, running. Linux can send us a
    # signal when our parent dies (prctl PR_SET_PDEATHSIG); elsewhere only direct signals stop.
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


@contextmanager
def _ignoring_stop_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
