"""nginx from Debian's packages as a fast Web Push service on 127.0.0.1 over TLS.

`POST /push/<anything>` answers `201 Created` with a `Location` header, like a real push service
accepting a message; nothing is decrypted. Every request is written to an access log
(`<msec> <status> <uri> <connection>`), which is how the bench proves that every delivery arrived
and counts the ones that arrived more than once.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import ScenarioError, free_port
from bench.sinks.tls import TLSFiles

START_TIMEOUT = 10.0
STOP_TIMEOUT = 20.0

CONFIG = """\
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format bench '$msec $status $uri $connection';
    access_log {dir}/access.log bench buffer=1m flush=1s;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    client_body_buffer_size 16k;
    client_max_body_size 16k;
    client_body_temp_path {dir}/body;
    server {{
        listen 127.0.0.1:{port} ssl reuseport backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:10m;
        location /push/ {{
            add_header Location "https://127.0.0.1:{port}/message/$request_id" always;
            return 201;
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""


@dataclass
class Arrivals:
    """What the sink's access log says arrived: per URI path, how often, and when first."""

    counts: Counter[str] = field(default_factory=Counter)
    first_at: dict[str, float] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    connections: set[str] = field(default_factory=set)
    last_at: float = 0.0
    first_ever: float = float("inf")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def check(self, expected: list[str]) -> tuple[bool, str, int]:
        """(every expected path arrived and nothing else did, a one-line verdict, duplicates)."""
        missing = sum(1 for path in expected if path not in self.counts)
        wanted = set(expected)
        strangers = sum(c for path, c in self.counts.items() if path not in wanted)
        duplicates = sum(c - 1 for c in self.counts.values() if c > 1)
        ok = missing == 0 and strangers == 0
        verdict = (
            f"{len(expected) - missing}/{len(expected)} arrived, {duplicates} duplicate(s)"
            f", {strangers} unexpected, statuses {dict(self.statuses)}"
        )
        return ok, verdict, duplicates


class NginxSink:
    """One nginx master + `workers` workers, for one scenario; `stop()` flushes the log."""

    def __init__(self, directory: Path, tls: TLSFiles, *, workers: int = 1) -> None:
        self.dir = directory
        self.tls = tls
        self.workers = workers
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    @staticmethod
    def path(name: str) -> str:
        return f"/push/{name}"

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise ScenarioError("nginx is not installed (make bench installs nginx-light)")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "body").mkdir(exist_ok=True)
        config = self.dir / "nginx.conf"
        config.write_text(
            CONFIG.format(
                workers=self.workers,
                dir=self.dir,
                port=self.port,
                cert=self.tls.cert_chain,
                key=self.tls.key,
            )
        )
        self.process = subprocess.Popen(
            [binary, "-p", str(self.dir), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        import socket

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
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def arrivals(self) -> Arrivals:
        """Read after `stop()`: only then is every buffered line on disk."""
        found = Arrivals()
        log = self.dir / "access.log"
        if not log.exists():
            return found
        with log.open() as lines:
            for line in lines:
                parts = line.split()
                if len(parts) != 4:
                    continue
                at, status, uri, connection = float(parts[0]), parts[1], parts[2], parts[3]
                found.statuses[status] += 1
                found.connections.add(connection)
                if status != "201":
                    continue
                found.counts[uri] += 1
                found.first_at.setdefault(uri, at)
                found.last_at = max(found.last_at, at)
                found.first_ever = min(found.first_ever, at)
        return found
