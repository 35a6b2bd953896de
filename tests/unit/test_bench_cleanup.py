"""The bench's cleanup registry: what a run started is undone once, newest first, even when
one undo fails or a stop signal arrives while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cleanup

ROOT = Path(__file__).resolve().parents[2]


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


DRIVER = """
import sys, time
from bench import cleanup

def body() -> int:
    cleanup.register("worker", lambda: open(sys.argv[1], "w").write("stopped"))
    print("ready", flush=True)
    time.sleep(60)
    return 0

sys.exit(cleanup.run(body))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_run_cleans_up_when_its_parent_dies(tmp_path: Path) -> None:
    # Given the bench run by a parent (as `make bench` runs it) that then dies without passing
    # a signal on (what GNU make does with SIGTERM)
    marker = tmp_path / "stopped"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE);"
            " p.stdout.readline(); print(p.pid, flush=True); import time; time.sleep(60)",
            sys.executable,
            "-c",
            DRIVER,
            str(marker),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    bench = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    parent.stdout.close()

    # Then the bench undoes what it started and exits
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the bench did not clean up"
        time.sleep(0.05)
    assert marker.read_text() == "stopped"
    while Path(f"/proc/{bench}").exists() and "Z" not in _state(bench):
        assert time.monotonic() < deadline, "the bench did not exit"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
