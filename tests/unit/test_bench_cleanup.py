"""The bench's cleanup registry: what a run started is undone once, newest first, even when
one undo fails or a stop signal arrives while it runs."""

from __future__ import annotations

import os
import signal

import pytest

from bench import cleanup


@pytest.fixture(autouse=True)
def _empty_registry() -> None:
    cleanup.undo_all()


def test_undo_all_undoes_what_is_left_newest_first_once() -> None:
    # Given three things started, one of which its owner already undid
    done: list[str] = []
    cleanup.register("database", lambda: done.append("database"))
    nginx = cleanup.register("nginx", lambda: done.append("nginx"))
    cleanup.register("worker", lambda: done.append("worker"))
    cleanup.forget(nginx)

    # When the run ends
    assert cleanup.undo_all() == []

    # Then the rest is undone, newest first, and never twice
    assert done == ["worker", "database"]
    assert cleanup.pending() == []
    assert cleanup.undo_all() == []
    assert done == ["worker", "database"]


def test_a_failing_undo_does_not_leave_the_rest_behind() -> None:
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("RabbitMQ is down")

    cleanup.register("database", lambda: done.append("database"))
    cleanup.register("queues", broken)

    assert cleanup.undo_all() == ["queues: RabbitMQ is down"]
    assert done == ["database"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_the_run_with_everything_undone(signum: int) -> None:
    # Given a run that started something and then waits
    done: list[str] = []
    seen_during_undo: list[int] = []

    def undo() -> None:
        # a second signal while cleaning up is ignored, not an interrupt of the cleanup
        os.kill(os.getpid(), signum)
        seen_during_undo.append(signum)
        done.append("worker")

    def body() -> int:
        cleanup.register("worker", undo)
        os.kill(os.getpid(), signum)  # the operator's Ctrl-C or `kill`
        raise AssertionError("the signal did not interrupt the run")

    before = {s: signal.getsignal(s) for s in cleanup.STOP_SIGNALS}
    try:
        # When the signal arrives, then the run ends with 130 and the worker is stopped
        assert cleanup.run(body) == 130
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert done == ["worker"]
    assert seen_during_undo == [signum]
