"""nginx from Debian's packages as a fast upstream on 127.0.0.1 over TLS: the process, its
configuration skeleton, and reading back what arrived.

Each provider's sink (`webpush.py`, `fcm.py`, `apns.py`) subclasses `NginxSink` with the
locations that answer like that provider, the fields its access log records and how a log line
counts as a delivery. The access log is how the bench proves that every delivery arrived and
counts the ones that arrived more than once: fields are tab-separated (nginx escapes a tab
inside a value), so values with spaces such as an `Authorization` header or a request body stay
one field each.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bench import cleanup as bench_cleanup
from bench.harness import ScenarioError, free_port
from bench.sinks.tls import TLSFiles

START_TIMEOUT = 10.0
STOP_TIMEOUT = 20.0
MODULES = Path("/usr/lib/nginx/modules")

CONFIG = """\
{modules}
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format bench escape={escape} '{fields}';
    access_log {dir}/access.log bench buffer=1m flush=1s;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_buffer_size 16k;
    client_max_body_size 16k;
    client_body_temp_path {dir}/body;
{http}
    server {{
        listen 127.0.0.1:{port} ssl{http2} reuseport backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:10m;
{locations}
        location / {{
            return 404;
        }}
    }}
}}
"""


@dataclass
class Arrivals:
    """What the sink's access log says arrived: per delivery key (a Web Push path, an FCM or
    APNs token), how often and when first; every status and connection seen; and whatever the
    sink found wrong with a request that did arrive (`problems`)."""

    counts: Counter[str] = field(default_factory=Counter)
    first_at: dict[str, float] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    connections: set[str] = field(default_factory=set)
    protocols: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    # Figures a sink adds to the row (e.g. OAuth token requests).
    figures: dict[str, float] = field(default_factory=dict)
    last_at: float = 0.0
    first_ever: float = float("inf")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def seen(self, line: dict[str, str]) -> None:
        """A delivery request (answered whatever way): its status, connection, protocol."""
        self.statuses[line["status"]] += 1
        self.connections.add(line["connection"])
        if "server_protocol" in line:
            self.protocols[line["server_protocol"]] += 1

    def add(self, key: str, at: float) -> None:
        """One delivery accepted by the sink."""
        self.counts[key] += 1
        self.first_at.setdefault(key, at)
        self.last_at = max(self.last_at, at)
        self.first_ever = min(self.first_ever, at)

    def check(self, expected: list[str]) -> tuple[bool, str, int]:
        """(every expected key arrived exactly once, nothing else did and the sink found
        nothing wrong; a one-line verdict; duplicates). The sinks never fail a request, so a
        second arrival is never a legitimate retry."""
        missing = sum(1 for key in expected if key not in self.counts)
        wanted = set(expected)
        strangers = sum(c for key, c in self.counts.items() if key not in wanted)
        duplicates = sum(c - 1 for c in self.counts.values() if c > 1)
        ok = missing == 0 and strangers == 0 and duplicates == 0 and not self.problems
        verdict = (
            f"{len(expected) - missing}/{len(expected)} arrived, {duplicates} duplicate(s)"
            f", {strangers} unexpected, statuses {dict(self.statuses)}"
        )
        if self.problems:
            verdict += "; " + ", ".join(f"{what}: {n}" for what, n in self.problems.items())
        return ok, verdict, duplicates


class NginxSink:
    """One nginx master + `workers` workers, for one scenario; `stop()` flushes the log.

    Subclasses set `FIELDS` (nginx variables, in log order), `locations()` and `record()`.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ("msec", "status", "uri", "connection")
    # `json` where a field is a request body: the logged value is then a JSON string's inside.
    ESCAPE: ClassVar[str] = "default"
    HTTP2: ClassVar[bool] = False
    # Dynamic modules the configuration needs (file names under /usr/lib/nginx/modules).
    NEEDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, directory: Path, tls: TLSFiles, *, workers: int = 1) -> None:
        self.dir = directory
        self.tls = tls
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.undo_token: int | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def locations(self) -> str:
        """The `location` blocks that answer like the provider."""
        raise NotImplementedError

    def http_block(self) -> str:
        """Extra directives at the `http` level (maps, body buffering)."""
        return ""

    def record(self, found: Arrivals, line: dict[str, str]) -> None:
        """Account one access-log line (`FIELDS` by name): `found.seen(line)` for a delivery
        request, `found.add(key, at)` when it was accepted."""
        raise NotImplementedError

    def finish(self, found: Arrivals) -> None:
        """Checks that need the whole log (run after every line was recorded)."""

    def prepare(self) -> None:
        """Files the sink or pushgate need before nginx starts (keys, credentials)."""

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise ScenarioError("nginx is not installed (make bench installs nginx-light)")
        modules = [MODULES / name for name in self.NEEDS]
        for module in modules:
            if not module.exists():
                raise ScenarioError(
                    f"nginx module {module} is missing (make bench installs libnginx-mod-http-echo)"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "body").mkdir(exist_ok=True)
        self.prepare()
        config = self.dir / "nginx.conf"
        config.write_text(
            CONFIG.format(
                modules="\n".join(f"load_module {m};" for m in modules),
                workers=self.workers,
                dir=self.dir,
                escape=self.ESCAPE,
                fields="\t".join(f"${name}" for name in self.FIELDS),
                http=self.http_block(),
                port=self.port,
                http2=" http2" if self.HTTP2 else "",
                cert=self.tls.cert_chain,
                key=self.tls.key,
                locations=self.locations(),
            )
        )
        self.undo_token = bench_cleanup.register(f"nginx on port {self.port}", self.stop)
        self.process = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise ScenarioError(f"nginx did not start: {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ScenarioError("nginx did not listen in time")

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        """Graceful stop (SIGQUIT): the workers finish and flush their log buffers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        bench_cleanup.forget(self.undo_token)
        self.undo_token = None

    def arrivals(self) -> Arrivals:
        """Read after `stop()`: only then is every buffered line on disk."""
        found = Arrivals()
        log = self.dir / "access.log"
        if not log.exists():
            return found
        with log.open() as lines:
            for raw in lines:
                values = raw.rstrip("\n").split("\t")
                if len(values) != len(self.FIELDS):
                    found.problems["unreadable log lines"] += 1
                    continue
                self.record(found, dict(zip(self.FIELDS, values, strict=True)))
        self.finish(found)
        return found
