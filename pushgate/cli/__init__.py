"""The `pushgate` command: one module per command group, assembled here into `app`.

Groups: processes (serve, api, worker), demo, migrate, send, config, apps, keys, vapid, dlq,
queues and credentials; what they share is in `common`."""

from __future__ import annotations

from typing import Annotated

import typer

from pushgate import __version__
from pushgate.cli import (
    apps,
    config,
    credentials,
    demo,
    dlq,
    keys,
    migrate,
    processes,
    queues,
    send,
    vapid,
)
from pushgate.cli.common import commands, out

app = commands("pushgate: self-hosted push notifications.", pretty_exceptions_enable=False)
app.add_typer(config.group, name="config")
app.add_typer(apps.group, name="apps")
app.add_typer(keys.group, name="keys")
app.add_typer(vapid.group, name="vapid")
app.add_typer(dlq.group, name="dlq")
app.add_typer(credentials.group, name="credentials")
app.command()(processes.serve)
app.command()(processes.api)
app.command()(processes.worker)
app.command()(demo.demo)
app.command("migrate")(migrate.migrate_command)
app.command("send")(send.send)
app.command("queues")(queues.queues)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(f"pushgate {__version__}")
        raise typer.Exit


def main() -> None:
    app()
