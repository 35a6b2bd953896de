"""The commands that run pushgate: `serve` (API, worker and scheduler in one process), `api` and
`worker` (production: several of each, after `pushgate migrate`)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from pushgate import __version__, bootstrap, logs, sentry_reports
from pushgate.cli.common import ConfigOption, run, say, settings_from, with_runtime
from pushgate.compat import install as compat
from pushgate.runtime import running
from pushgate.settings import Settings
from pushgate.store import migrate

HostOption = Annotated[str | None, typer.Option(help="Listen address.")]
PortOption = Annotated[int | None, typer.Option(help="Listen port.")]


def serve(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run the API, the worker and the scheduler in one process (embedded backends by default)."""
    settings = _server_settings(config, host, port)
    run(_prepare_single_node(settings))
    _serve_http(settings, with_worker=True)


def api(config: ConfigOption = None, host: HostOption = None, port: PortOption = None) -> None:
    """Run the HTTP API only (production: several of them, after `pushgate migrate`)."""
    settings = _server_settings(config, host, port)
    run(with_runtime(settings, compat.start))
    _serve_http(settings)


QueuesOption = Annotated[
    str | None,
    typer.Option(
        help="Consume only these queues, comma-separated: push, dispatch, deliver, failed "
        "(default: all; `--queues dispatch` runs a dispatcher beside the senders)."
    ),
]


def worker(config: ConfigOption = None, queues: QueuesOption = None) -> None:
    """Run a worker: ingress, dispatch and deliver consumers and the scheduler (production)."""
    from pushgate import worker as worker_module

    settings = settings_from(config, **({"worker": {"queues": queues}} if queues else {}))
    logs.configure(settings.log)
    sentry_reports.configure(settings.sentry, release=__version__)
    run(with_runtime(settings, compat.start))
    run(worker_module.run(settings))


def _server_settings(config: Path | None, host: str | None, port: int | None) -> Settings:
    server = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_from(config, **({"server": server} if server else {}))
    logs.configure(settings.log)
    sentry_reports.configure(settings.sentry, release=__version__)
    return settings


async def _prepare_single_node(settings: Settings) -> None:
    async with running(settings, start_broker=False) as runtime:
        await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
        created = await bootstrap.ensure_default_app(runtime)
        await compat.start(runtime)
    if created is not None:
        say(
            settings,
            f"[bold]Created app '{created.app_name}' and its admin API key "
            "(shown once, keep it):[/bold]",
            app=created.app_name,
        )
        # Printed bare on its own line so scripts can pick it up (in JSON mode too: it is the
        # command's output, not a log line).
        print(created.admin_key, flush=True)


def _serve_http(settings: Settings, *, with_worker: bool = False) -> None:
    url = f"http://{settings.server.host}:{settings.server.port}"
    say(settings, f"pushgate {__version__} listening on {url}  (docs: /docs)", url=url)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done, so the process would end
    # as killed by the signal. A graceful stop (the worker finished its work in flight) is a
    # clean exit: the handler uvicorn restores and re-raises into is this no-op, and the
    # command returns with code 0.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
    try:
        _run_uvicorn(settings, with_worker=with_worker)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_uvicorn(settings: Settings, *, with_worker: bool) -> None:
    import uvicorn

    from pushgate.api.app import create_app

    uvicorn.run(
        create_app(settings, with_worker=with_worker),
        host=settings.server.host,
        port=settings.server.port,
        loop=_uvicorn_loop(),
        http="httptools",
        log_level=settings.log.level.lower(),
        # Its loggers propagate to the root handler pushgate.logs set up, in `log.format`.
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


def _uvicorn_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return "asyncio"
    return "uvloop"
