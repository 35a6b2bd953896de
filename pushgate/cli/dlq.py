"""`pushgate dlq`: the dead letters the workers recorded (list, show, replay, purge), on the code
the API's /v1/dead-letters runs (sending/dead_letters.py). Without `--app`, every app's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from pushgate.api.schemas import dead_letters as schemas
from pushgate.cli.common import (
    ConfigOption,
    JsonOption,
    commands,
    fail,
    refused_input,
    run,
    settings_from,
    show,
    show_rows,
    with_runtime,
)
from pushgate.domain.dead_letters import LetterFilter
from pushgate.runtime import Runtime
from pushgate.sending import dead_letters as letters
from pushgate.store import apps
from pushgate.store import dead_letters as stored

group = commands("Dead letters: what failed for good, per app; replay or purge them.")

AppFilter = Annotated[str | None, typer.Option("--app", help="Only this app's (its name).")]
Reason = Annotated[str | None, typer.Option(help="A reason code (e.g. retry_later, bad_job).")]
Provider = Annotated[str | None, typer.Option(help="fcm, apns, webpush...")]
Queue = Annotated[str | None, typer.Option(help="The queue it failed on: push, dispatch, deliver.")]
Since = Annotated[str | None, typer.Option(help="Failed at or after (ISO 8601; UTC if no zone).")]
Until = Annotated[str | None, typer.Option(help="Failed before (ISO 8601; UTC if no zone).")]
Everything = Annotated[bool, typer.Option("--all", help="Every letter (no filter).")]


def _moment(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--{name}: not an ISO 8601 time: {text!r}", 2) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filter(
    reason: str | None,
    provider: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    *,
    everything: bool,
) -> LetterFilter:
    chosen = LetterFilter(reason, provider, queue, _moment(since, "since"), _moment(until, "until"))
    with refused_input():
        return schemas.checked_filter(chosen, everything=everything)


async def _app_id(runtime: Runtime, name: str | None) -> uuid.UUID | None:
    if name is None:
        return stored.EVERY_APP
    async with runtime.sessions() as session:
        return (await apps.get_by_name(session=session, name=name)).id


def _letter_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise fail(f"not a dead letter id: {text!r}", 2) from None


@group.command("list")
def dlq_list(
    app_name: AppFilter = None,
    reason: Reason = None,
    provider: Provider = None,
    queue: Queue = None,
    since: Since = None,
    until: Until = None,
    replayed: Annotated[bool, typer.Option("--replayed", help="Those replayed instead.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what failed for good, newest first, with the reason."""
    settings = settings_from(config)
    chosen = _filter(reason, provider, queue, since, until, everything=True)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        app_id = await _app_id(runtime, app_name)
        async with runtime.sessions() as session:
            rows = await stored.page(
                session=session, app_id=app_id, chosen=chosen, replayed=replayed, limit=limit
            )
        return [schemas.DeadLetterPublic.of(row).model_dump(mode="json") for row in rows]

    show_rows(
        run(with_runtime(settings, work)),
        as_json,
        key="dead_letters",
        columns={
            "id": "id",
            "from": "queue",
            "code": "reason_code",
            "provider": "provider",
            "attempts": "attempts",
            "failed at": "failed_at",
            "reason": lambda row: str(row["reason"])[:80],
        },
    )


@group.command("show")
def dlq_show(
    letter: Annotated[str, typer.Argument(help="An id from `dlq list`.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """One letter: its reason, last provider answer, body and headers."""
    settings = settings_from(config)
    letter_id = _letter_id(letter)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.sessions() as session:
            row = await stored.get(session=session, app_id=stored.EVERY_APP, letter_id=letter_id)
        return schemas.DeadLetterDetail.of(row).model_dump(mode="json")

    detail = run(with_runtime(settings, work))
    show(
        detail,
        as_json,
        *(f"{name}: {value}" for name, value in detail.items()),
        markup=False,
    )


def _replay(
    ids: list[str] | None,
    chosen: LetterFilter | None,
    app_name: str | None,
    config: Any,
) -> int:
    settings = settings_from(config)
    wanted = None if not ids else [_letter_id(i) for i in ids]

    async def work(runtime: Runtime) -> int:
        app_id = await _app_id(runtime, app_name)
        return await letters.replay(runtime, app_id=app_id, ids=wanted, chosen=chosen)

    return run(with_runtime(settings, work, broker=True))


@group.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids from `dlq list`.")] = None,
    app_name: AppFilter = None,
    reason: Reason = None,
    provider: Provider = None,
    queue: Queue = None,
    since: Since = None,
    until: Until = None,
    everything: Everything = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put letters back on the queue they failed on: by id, or all a filter selects (or
    --all). A failed delivery is sent again, its attempts counted from zero (its last answer
    kept until the new one)."""
    chosen = None if ids else _filter(reason, provider, queue, since, until, everything=everything)
    count = _replay(ids, chosen, app_name, config)
    show({"replayed": count}, as_json, f"replayed {count} letter(s)")


@group.command("requeue")
def dlq_requeue(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids from `dlq list`; none = all.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """The older name of `replay`: the letters with these ids, or every one not replayed."""
    count = _replay(ids, None if ids else LetterFilter(), None, config)
    show({"requeued": count}, as_json, f"requeued {count} letter(s)")


@group.command("purge")
def dlq_purge(
    app_name: AppFilter = None,
    reason: Reason = None,
    provider: Provider = None,
    queue: Queue = None,
    since: Since = None,
    until: Until = None,
    everything: Everything = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete the letters a filter selects (or --all), replayed or not."""
    settings = settings_from(config)
    chosen = _filter(reason, provider, queue, since, until, everything=everything)

    async def work(runtime: Runtime) -> int:
        return await letters.purge(runtime, app_id=await _app_id(runtime, app_name), chosen=chosen)

    count = run(with_runtime(settings, work))
    show({"purged": count}, as_json, f"purged {count} letter(s)")
