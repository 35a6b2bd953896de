"""pushgate as real processes for a scenario: `pushgate serve` (embedded profile) or
`pushgate api` + N x `pushgate worker` (services profile: PostgreSQL, RabbitMQ, Redis), each with
its own database, queue prefix and key prefix, removed afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg  # type: ignore[import-untyped,unused-ignore]
from cryptography.fernet import Fernet
from redis import asyncio as aioredis

from bench import cleanup as bench_cleanup
from bench.harness import ScenarioError, free_port, run_checked
from pushgate.broker.rabbitmq_topology import Topology

PUSHGATE = [sys.executable, "-m", "pushgate"]
POSTGRES_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


async def _services_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
        await conn.close()
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_ADMIN}: {exc}"
    try:
        connection = await asyncio.wait_for(aio_pika.connect(RABBITMQ_URL), 5)
        await connection.close()
    except Exception as exc:
        return f"RabbitMQ at {RABBITMQ_URL}: {exc}"
    try:
        client = aioredis.from_url(REDIS_URL)
        await client.ping()
        await client.aclose()
    except Exception as exc:
        return f"Redis at {REDIS_URL}: {exc}"
    return None


def services_missing() -> str | None:
    """Why the services profile cannot run here, or None."""
    return asyncio.run(_services_reachable())


@dataclass
class Deployment:
    """One scenario's pushgate: database, app, send key, and the processes."""

    profile: str
    workdir: Path
    ca: Path
    settings: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # The services profile's processes must share one (the embedded one makes its own file).
    secrets_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    app_id: uuid.UUID | None = None
    send_key: str = ""
    port: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Names of every process started, kept after stop() for the CPU accounting.
    pids_seen: dict[str, int] = field(default_factory=dict)
    # Its entry in bench.cleanup while it has anything to undo.
    undo_token: int | None = None

    @property
    def services(self) -> bool:
        return self.profile == "services"

    @property
    def database(self) -> str:
        return f"pushgate_bench_{self.tag}"

    @property
    def prefix(self) -> str:
        return f"bench-{self.tag}."

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        """The async SQLAlchemy URL, for the bench's own seeding and polling."""
        if self.services:
            return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"
        return f"sqlite+aiosqlite:///{self.workdir / 'data' / 'pushgate.db'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHGATE_")}
        for name in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL", "SERVICE_PORT", "LOG_LEVEL"):
            env.pop(name, None)
        env |= {
            "PUSHGATE_DATA_DIR": str(self.workdir / "data"),
            "PUSHGATE_LOG__LEVEL": "WARNING",
            "PUSHGATE_WEBPUSH__EXTRA_HOSTS": "127.0.0.1",
            "PUSHGATE_WEBPUSH__ALLOW_PRIVATE_ADDRESSES": "true",
            "PUSHGATE_WEBPUSH__CA_BUNDLE": str(self.ca),
            "PUSHGATE_WEBPUSH__VAPID_SUBJECT": "mailto:bench@pushgate.example.com",
            "PUSHGATE_SERVER__HOST": "127.0.0.1",
            "PUSHGATE_SERVER__PORT": str(self.port),
        }
        if self.services:
            env |= {
                "PUSHGATE_DATABASE__URL": f"postgresql://postgres@127.0.0.1:5432/{self.database}",
                "PUSHGATE_BROKER__URL": RABBITMQ_URL,
                "PUSHGATE_BROKER__PREFIX": self.prefix,
                "PUSHGATE_REDIS__URL": REDIS_URL,
                "PUSHGATE_REDIS__PREFIX": f"bench-{self.tag}:",
                "PUSHGATE_SECRETS__KEY": self.secrets_key,
            }
        return env | self.settings

    # --- setup -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Database, schema, an app and a send key, through the CLI like an operator."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if self.undo_token is None:
            self.undo_token = bench_cleanup.register(f"pushgate {self.tag}", self.cleanup)
        if self.services:
            asyncio.run(self._create_database())
        env = self.env()
        run_checked([*PUSHGATE, "migrate"], env=env)
        made = json.loads(run_checked([*PUSHGATE, "apps", "create", "bench", "--json"], env=env))
        self.app_id = uuid.UUID(made["id"])
        key = run_checked(
            [*PUSHGATE, "keys", "create", "--app", "bench", "--scope", "send", "--json"], env=env
        )
        self.send_key = json.loads(key)["key"]

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

    # --- processes ---------------------------------------------------------------------------

    def start(self, *, workers: int = 1, dispatchers: int = 0) -> None:
        """The API and `workers` workers; with `dispatchers`, that many dispatch-only workers
        (`pushgate worker --queues dispatch`) and the others consume everything else."""
        if self.services:
            self._spawn("api", ["api"])
            self._wait_http()
            senders = ["worker", "--queues", "push,deliver,failed"] if dispatchers else ["worker"]
            for index in range(workers):
                self._spawn(f"worker{index + 1}", senders)
            for index in range(dispatchers):
                self._spawn(f"dispatcher{index + 1}", ["worker", "--queues", "dispatch"])
            asyncio.run(self._wait_consumers("deliver", workers))
            asyncio.run(self._wait_consumers("dispatch", dispatchers or workers))
        else:
            self._spawn("serve", ["serve"])
            self._wait_http()

    def start_api_only(self) -> None:
        self._spawn("api" if self.services else "serve", ["api" if self.services else "serve"])
        self._wait_http()

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [*PUSHGATE, *args], env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        self.pids_seen[name] = self.processes[name].pid
        log.close()

    def _wait_http(self) -> None:
        import urllib.request

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise ScenarioError(f"pushgate did not answer on {self.url}: {self.tail()}")

    async def _wait_consumers(self, queue: str, workers: int) -> None:
        queue_name = Topology(self.prefix).queue(queue)
        deadline = time.monotonic() + START_TIMEOUT
        connection = await aio_pika.connect(RABBITMQ_URL)
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                channel = await connection.channel()
                try:
                    declared = await channel.declare_queue(queue_name, passive=True)
                    consumers = declared.declaration_result.consumer_count or 0
                except aio_pika.exceptions.ChannelClosed:
                    consumers = 0
                if not channel.is_closed:
                    await channel.close()
                if consumers >= workers:
                    return
                await asyncio.sleep(0.2)
        finally:
            await connection.close()
        raise ScenarioError(f"workers did not start consuming: {self.tail()}")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ScenarioError(f"pushgate {name} exited ({process.returncode}): {self.tail()}")

    def tail(self) -> str:
        lines = []
        for name in self.processes:
            log = self.workdir / f"{name}.log"
            if log.exists():
                lines.append(f"[{name}] " + log.read_text(errors="replace")[-600:])
        return "\n".join(lines)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    def stop(self) -> None:
        """SIGTERM (graceful: finish in-flight work), then wait; kill only after the timeout."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    # --- teardown ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stop the processes, drop the database, queues and keys, remove the data directory.
        Safe to repeat (an interrupt may cut one short and `bench.cleanup` run it again)."""
        self.stop()
        if self.services:
            failures = asyncio.run(self._drop_services())
            if failures:
                raise ScenarioError(f"cannot remove {', '.join(failures)}")
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        bench_cleanup.forget(self.undo_token)
        self.undo_token = None

    async def _drop_services(self) -> list[str]:
        """Each kind removed even when another cannot be; what failed, with the reason."""
        failures = []
        for what, drop in (
            ("database", self._drop_database),
            ("queues", self._drop_queues),
            ("keys", self._drop_keys),
        ):
            try:
                await drop()
            except Exception as exc:
                failures.append(f"{what} ({exc})")
        return failures

    async def _drop_database(self) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _drop_queues(self) -> None:
        topology = Topology(self.prefix)
        connection = await aio_pika.connect(RABBITMQ_URL)
        try:
            channel = await connection.channel()
            for spec in topology.queues():
                await channel.queue_delete(spec.name)
            await channel.exchange_delete(topology.exchange)
        finally:
            await connection.close()

    async def _drop_keys(self) -> None:
        client = aioredis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"bench-{self.tag}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def describe(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a scenario changed, short names for the table."""
    return {k.removeprefix("PUSHGATE_").lower(): v for k, v in settings.items()}
