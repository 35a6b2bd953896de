"""`pushgate dlq`: list the dead-letter queue (failed.queue) and requeue from it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pushgate.cli.common import (
    ConfigOption,
    JsonOption,
    commands,
    iso,
    run,
    settings_from,
    show,
    show_rows,
    with_runtime,
)
from pushgate.runtime import Runtime

group = commands("The dead-letter queue (failed.queue).")


@group.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what failed for good, with the reason and the last answer."""
    settings = settings_from(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        letters = await runtime.broker.dead_letters(limit=limit)
        return [
            {
                "id": letter.id,
                "queue": letter.queue,
                "reason": letter.reason,
                "attempts": letter.attempts,
                "failed_at": iso(letter.failed_at),
                "body": letter.body.decode("utf-8", "replace"),
            }
            for letter in letters
        ]

    show_rows(
        run(with_runtime(settings, work, broker=True)),
        as_json,
        key="dead_letters",
        columns={
            "id": "id",
            "from": "queue",
            "attempts": "attempts",
            "failed at": "failed_at",
            "reason": "reason",
            "body": lambda row: str(row["body"][:80]),
        },
    )


@group.command("requeue")
def dlq_requeue(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids from `dlq list`; none = all.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead letters back on the queue they came from. A failed delivery is sent again,
    its attempts counted from zero (its last answer is kept until the new one)."""
    settings = settings_from(config)

    async def work(runtime: Runtime) -> int:
        return await runtime.broker.requeue_dead_letters(ids or None)

    count = run(with_runtime(settings, work, broker=True))
    show({"requeued": count}, as_json, f"requeued {count} message(s)")
