"""What the commands share: the typer group factory, the --config/--json/--app options, settings
loading, running work with the runtime (schema checked), an app by name, output as one JSON
object or for people, and the error exits (1: it failed, 2: input or settings refused)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.errors import ConfigError, PushgateError
from pushgate.runtime import Runtime, running
from pushgate.settings import Settings, load_settings
from pushgate.store import apps, migrate
from pushgate.store.tables import App

T = TypeVar("T")

out = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML settings file (or PUSHGATE_CONFIG).",
        envvar="PUSHGATE_CONFIG",
        exists=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
AppOption = Annotated[str, typer.Option("--app", help="The app's name.")]


def commands(help_text: str, **settings: Any) -> typer.Typer:
    """A command group (or the root command) with plain help."""
    # Click's plain help, not typer's rich panels: those print every flag as taking a value
    # (`--json <bool>`), and `--json true` is an error. Plain text is also what scripts grep.
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **settings)


# --- errors and exits ------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> typer.Exit:
    """Write `pushgate: <message>` to stderr; return the exit to raise."""
    # Plain write: rich would wrap the line, and scripts grep for it.
    sys.stderr.write(f"pushgate: {message}\n")
    return typer.Exit(code)


@contextlib.contextmanager
def refused_input() -> Iterator[None]:
    """A PushgateError raised inside is input the command refuses: its message, exit code 2."""
    try:
        yield
    except PushgateError as exc:
        raise fail(exc.message, 2) from None


def say(settings: Settings, text: str, **fields: Any) -> None:
    """A command's status line: printed for people, or a JSON log line (the markup dropped)
    with `log.format = json`, so such a process prints nothing but JSON."""
    if settings.log.format == "json":
        from pushgate.logs import get_logger

        get_logger("pushgate.cli").info(Text.from_markup(text).plain, **fields)
    else:
        out.print(text, highlight=False)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """The effective settings; exit 2 when they are not usable."""
    with refused_input():
        return load_settings(config, **overrides)


# --- running ---------------------------------------------------------------------------------


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end; pushgate's errors and an unreachable database exit."""
    try:
        # uvloop where there is one: the worker spends a good part of each send in the event
        # loop's socket writes, which uvloop does in C (as uvicorn does for `serve` and `api`).
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coroutine)
    except PushgateError as exc:
        raise fail(
            f"{exc.message} ({exc.code})", 2 if isinstance(exc, ConfigError) else 1
        ) from None
    except (OSError, DBAPIError) as exc:
        raise fail(f"database unreachable: {_first_line(exc)}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return None
    return uvloop.new_event_loop


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


async def with_runtime(
    settings: Settings, work: Callable[[Runtime], Awaitable[T]], *, broker: bool = False
) -> T:
    """Open the runtime (the broker too when asked), check the schema, and do `work`."""
    async with running(settings, start_broker=broker) as runtime:
        await ensure_schema(runtime)
        return await work(runtime)


async def ensure_schema(runtime: Runtime) -> None:
    """The embedded database belongs to this node: bring it up to date. A shared PostgreSQL
    database is migrated on purpose, by `pushgate migrate`, before new code runs on it."""
    if runtime.settings.is_embedded_database:
        await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
        return
    current = await migrate.current_revision(runtime.engine)
    head = migrate.head_revision()
    if current != head:
        raise ConfigError(
            f"the database is at schema revision {current or 'none'}, this version needs "
            f"{head}: run `pushgate migrate` first",
            code="schema_outdated",
        )


def with_session(settings: Settings, work: Callable[[Runtime, AsyncSession], Awaitable[T]]) -> T:
    """Run `work` with the runtime and one session, which `work` commits if it writes."""

    async def in_session(runtime: Runtime) -> T:
        async with runtime.sessions() as session:
            return await work(runtime, session)

    return run(with_runtime(settings, in_session))


def with_app(
    settings: Settings,
    app_name: str,
    work: Callable[[Runtime, AsyncSession, App], Awaitable[T]],
) -> T:
    """Run `work` on the app named `app_name`, in one session (which `work` commits if it
    writes); exit 1 when there is no such app."""

    async def on_app(runtime: Runtime, session: AsyncSession) -> T:
        owner = await apps.get_by_name(session=session, name=app_name)
        return await work(runtime, session, owner)

    return with_session(settings, on_app)


# --- output ----------------------------------------------------------------------------------


def emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


def show(data: dict[str, Any], as_json: bool, *lines: str, markup: bool = True) -> None:
    """`data` as one JSON object with --json, else `lines` for people."""
    if as_json:
        emit_json(data)
        return
    for line in lines:
        out.print(line, highlight=False, markup=markup)


Cell = str | Callable[[dict[str, Any]], str]


def show_rows(
    rows: list[dict[str, Any]], as_json: bool, *, key: str, columns: dict[str, Cell]
) -> None:
    """`{key: rows}` as one JSON object with --json, else a table: one column per header of
    `columns`, its cells a row's value under the key given (blank for None) or computed."""
    if as_json:
        emit_json({key: rows})
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row, how) for how in columns.values()))
    out.print(table)


def show_app_rows(
    settings: Settings,
    app_name: str,
    as_json: bool,
    *,
    read: Callable[..., Awaitable[Sequence[Any]]],
    as_dict: Callable[[Any, str], dict[str, Any]],
    key: str,
    columns: dict[str, Cell],
) -> None:
    """An app's rows of one kind, `read(session=..., app_id=...)`, shown by `show_rows`."""

    async def work(_runtime: Runtime, session: AsyncSession, owner: App) -> list[dict[str, Any]]:
        return [as_dict(row, owner.name) for row in await read(session=session, app_id=owner.id)]

    show_rows(with_app(settings, app_name, work), as_json, key=key, columns=columns)


def _cell(row: dict[str, Any], how: Cell) -> str:
    if callable(how):
        return how(row)
    value = row[how]
    return "" if value is None else str(value)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
