"""What every scenario shares: the run context, results, the quiet-machine gate, process CPU and
memory sampling, and the result table."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.sinks.tls import TLSFiles

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Context:
    """One bench run: where its files go, how big each scenario is, and the quiet gate."""

    workdir: Path
    profile: str
    n: int | None
    max_load: float
    quiet_wait: float
    workers: int = 1
    timeout_factor: float = 1.0
    broadcast_n: int | None = None
    # Each broadcast device has a user of its own: the dispatcher plans every page (reads the
    # users' preferences) instead of making it inside PostgreSQL.
    broadcast_users: bool = False
    tls: TLSFiles | None = None
    spy_dir: Path | None = None  # set: py-spy records the busiest pushgate process (raw stacks)
    log: list[str] = field(default_factory=list)

    def size(self, default: int) -> int:
        return self.n if self.n is not None else default

    @property
    def ca(self) -> TLSFiles:
        if self.tls is None:
            raise ScenarioError("no TLS files made for this run")
        return self.tls

    def timeout(self, n: int) -> float:
        return self.timeout_factor * (120 + n / 400)

    def spy(self, name: str) -> Path | None:
        return self.spy_dir / f"{name}.txt" if self.spy_dir else None

    def say(self, line: str) -> None:
        self.log.append(line)
        print(f"  {line}", flush=True)


@dataclass
class Result:
    """One row of the table. `figures` holds every number measured; `headline` names the one
    the row is judged on, `target` says what it should reach."""

    scenario: str
    profile: str
    params: dict[str, Any]
    figures: dict[str, float]
    headline: str
    unit: str
    target: str
    met: bool | None
    correct: bool
    check: str
    load: tuple[float, float]
    quiet: bool
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ScenarioError(RuntimeError):
    """A scenario could not run (a missing tool, a process that did not start)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load1() -> float:
    return os.getloadavg()[0]


def wait_quiet(ctx: Context) -> bool:
    """Wait (at most `quiet_wait` seconds) for the 1-minute load average to drop under
    `max_load`. Returns whether it did: a result measured on a busy machine is flagged."""
    deadline = time.monotonic() + ctx.quiet_wait
    announced = False
    while True:
        current = load1()
        if current < ctx.max_load:
            return True
        if time.monotonic() >= deadline:
            ctx.say(f"load {current:.2f} still >= {ctx.max_load}: measuring anyway, flagged busy")
            return False
        if not announced:
            ctx.say(f"waiting for load < {ctx.max_load} (now {current:.2f})")
            announced = True
        time.sleep(5)


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_total_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, utime+stime ticks, rss KiB) of a process, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[11]) + int(fields[12]), int(fields[21]) * PAGE_KIB


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


class Sampler:
    """Samples the RSS of named processes (peak) while running, and the CPU seconds every
    process on the machine used in the window, grouped by name: who was the bottleneck, and
    whether something else was running."""

    def __init__(self, named: dict[str, int], interval: float = 0.2) -> None:
        self.named = dict(named)
        self.interval = interval
        self.peak_kib: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start: dict[int, tuple[str, int]] = {}
        self._wall = 0.0

    def __enter__(self) -> Sampler:
        self._start = {pid: (s[0], s[1]) for pid in _all_pids() if (s := _stat(pid))}
        self._wall = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._wall = time.monotonic() - self._wall
            self._end = {pid: (s[0], s[1]) for pid in _all_pids() if (s := _stat(pid))}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for name, pid in self.named.items():
                stat = _stat(pid)
                if stat is not None:
                    self.peak_kib[name] = max(self.peak_kib[name], stat[2])

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per group in the window: each named pid on its own, the rest by comm
        (processes that ended inside the window are not counted)."""
        by_pid = {pid: name for name, pid in self.named.items()}
        used: dict[str, float] = defaultdict(float)
        for pid, (comm, ticks) in self._end.items():
            before = self._start.get(pid)
            delta = ticks - (before[1] if before and before[0] == comm else 0)
            if delta > 0:
                used[by_pid.get(pid, comm)] += delta / CLOCK_TICKS
        top = sorted(used.items(), key=lambda kv: -kv[1])
        shown = {k: round(v, 1) for k, v in top if v >= 0.2 or k in self.named}
        shown["_wall"] = round(self._wall, 1)
        return shown

    def peak_rss_mb(self) -> dict[str, float]:
        return {k: round(v / 1024, 1) for k, v in self.peak_kib.items()}


def cpu_ms_per_item(cpu: dict[str, float], pushgate: list[str], items: int) -> dict[str, float]:
    """CPU milliseconds per delivery (or request) spent by pushgate's processes and by the
    backends: unlike a rate, this barely moves when other work shares the machine."""
    if items <= 0:
        return {}
    ours = sum(cpu.get(name, 0.0) for name in pushgate)
    figures = {"pushgate_cpu_ms": 1000 * ours / items}
    for label, comm in (("postgres_cpu_ms", "postgres"), ("rabbitmq_cpu_ms", "beam.smp")):
        if cpu.get(comm):
            figures[label] = 1000 * cpu[comm] / items
    return figures


def run_checked(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise ScenarioError(f"{' '.join(args[:4])}... failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def table(results: list[Result]) -> str:
    header = ("scenario", "profile", "params", "result", "target", "met", "check", "load")
    rows = [header]
    for r in results:
        value = r.figures.get(r.headline, float("nan"))
        extra = ", ".join(
            f"{k}={v:g}" for k, v in r.figures.items() if k != r.headline and not k.startswith("_")
        )
        rows.append(
            (
                r.scenario,
                r.profile,
                " ".join(f"{k}={v}" for k, v in r.params.items()),
                f"{r.headline}={value:,.0f} {r.unit}" + (f" ({extra})" if extra else ""),
                r.target,
                {True: "yes", False: "NO", None: "-"}[r.met],
                "ok" if r.correct else f"FAIL: {r.check}",
                f"{r.load[0]:.2f}->{r.load[1]:.2f}" + ("" if r.quiet else " BUSY"),
            )
        )
    return (
        "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in rows[:1])
        + ("\n|" + "---|" * len(header) + "\n")
        + "\n".join("| " + " | ".join(str(c) for c in row) + " |" for row in rows[1:])
    )
