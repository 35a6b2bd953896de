"""The `pushgate` command: serve, api, migrate, config, apps, keys, vapid, dlq and credentials."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate import __version__, bootstrap, logs
from pushgate.domain import vapid
from pushgate.domain.apikeys import Scope
from pushgate.errors import ConfigError, PushgateError
from pushgate.runtime import Runtime, running
from pushgate.settings import Settings, load_settings, redact_url, redacted
from pushgate.store import api_keys, apps, migrate
from pushgate.store.tables import App

T = TypeVar("T")


def _commands(help_text: str, **settings: Any) -> typer.Typer:
    # Click's plain help, not typer's rich panels: those print every flag as taking a value
    # (`--json <bool>`), and `--json true` is an error. Plain text is also what scripts grep.
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None, **settings)


app = _commands("pushgate: self-hosted push notifications.", pretty_exceptions_enable=False)
config_app = _commands("Inspect the effective settings.")
apps_app = _commands("Apps (tenants).")
keys_app = _commands("API keys.")
vapid_app = _commands("VAPID keys for Web Push.")
app.add_typer(config_app, name="config")
app.add_typer(apps_app, name="apps")
app.add_typer(keys_app, name="keys")
app.add_typer(vapid_app, name="vapid")
dlq_app = _commands("The dead-letter queue (failed.queue).")
app.add_typer(dlq_app, name="dlq")
credentials_app = _commands("Apps' FCM and APNs credentials.")
app.add_typer(credentials_app, name="credentials")

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


def _fail(message: str, code: int = 1) -> typer.Exit:
    # Plain write: rich would wrap the line, and scripts grep for it.
    sys.stderr.write(f"pushgate: {message}\n")
    return typer.Exit(code)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except PushgateError as exc:
        raise _fail(exc.message, 2) from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        # uvloop where there is one: the worker spends a good part of each send in the event
        # loop's socket writes, which uvloop does in C (as uvicorn does for `serve` and `api`).
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(coroutine)
    except PushgateError as exc:
        raise _fail(
            f"{exc.message} ({exc.code})", 2 if isinstance(exc, ConfigError) else 1
        ) from None
    except (OSError, DBAPIError) as exc:
        raise _fail(f"database unreachable: {_first_line(exc)}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return None
    return uvloop.new_event_loop


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


async def _with_runtime(
    settings: Settings, work: Callable[[Runtime], Awaitable[T]], *, broker: bool = False
) -> T:
    async with running(settings, start_broker=broker) as runtime:
        await _ensure_schema(runtime)
        return await work(runtime)


async def _ensure_schema(runtime: Runtime) -> None:
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


def _uvicorn_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        return "asyncio"
    return "uvloop"


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(f"pushgate {__version__}")
        raise typer.Exit


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the API, the worker and the scheduler in one process (embedded backends by default)."""
    server = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(config, **({"server": server} if server else {}))
    logs.configure(settings.log)
    _run(_prepare_single_node(settings))
    _serve_http(settings, with_worker=True)


async def _prepare_single_node(settings: Settings) -> None:
    async with running(settings, start_broker=False) as runtime:
        await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
        created = await bootstrap.ensure_default_app(runtime)
    if created is not None:
        out.print(
            f"[bold]Created app '{created.app_name}' and its admin API key "
            "(shown once, keep it):[/bold]"
        )
        # Printed bare on its own line so scripts can pick it up.
        print(created.admin_key, flush=True)


@app.command()
def api(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
) -> None:
    """Run the HTTP API only (production: several of them, after `pushgate migrate`)."""
    server = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings(config, **({"server": server} if server else {}))
    logs.configure(settings.log)
    _run(_with_runtime(settings, _nothing))
    _serve_http(settings)


async def _nothing(_runtime: Runtime) -> None:
    return None


def _serve_http(settings: Settings, *, with_worker: bool = False) -> None:
    out.print(
        f"pushgate {__version__} listening on http://{settings.server.host}:{settings.server.port}"
        f"  (docs: /docs)",
        highlight=False,
    )
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
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Run a worker: ingress, dispatch and deliver consumers and the scheduler (production)."""
    from pushgate import worker as worker_module

    settings = _settings(config)
    logs.configure(settings.log)
    _run(_with_runtime(settings, _nothing))
    _run(worker_module.run(settings))


@app.command()
def demo() -> None:
    """Send a first notification to a local Web Push receiver and print it decrypted.

    Needs nothing else: a throwaway pushgate and receiver run in this process and are gone
    when it ends."""
    from pushgate import demo as demo_module

    logs.configure(load_settings(log={"level": "WARNING"}).log)
    _run(demo_module.run(lambda line: out.print(line, highlight=False, markup=False)))


@app.command("migrate")
def migrate_command(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema to the latest revision."""
    settings = _settings(config)

    async def work() -> str | None:
        # Not `_with_runtime`: its schema check refuses exactly the database this command is
        # here to bring up to date (a fresh or older PostgreSQL database).
        async with running(settings, start_broker=False) as runtime:
            await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
            return await migrate.current_revision(runtime.engine)

    revision = _run(work())
    out.print(f"database at revision {revision}", highlight=False)


@config_app.command("show")
def config_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the effective settings, secrets redacted."""
    settings = _settings(config)
    data = redacted(settings)
    data["database"]["effective_url"] = redact_url(settings.database_url)
    if as_json:
        _emit_json(data)
        return
    for line in _flatten(data):
        out.print(line, highlight=False, markup=False)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value!r}" if value is not None else f"{prefix}{key} =")
    return lines


# --- apps ------------------------------------------------------------------------------------


@apps_app.command("create")
def apps_create(
    name: str,
    vapid_subject: Annotated[
        str | None, typer.Option(help="mailto: or https: contact for push services.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an app (tenant) with its own VAPID key pair."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.sessions() as session:
            row = await apps.create(
                session=session,
                box=runtime.credentials.box(),
                name=name,
                vapid_subject=vapid_subject,
            )
            await session.commit()
            return _app_json(row)

    data = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json(data)
    else:
        out.print(f"created app {data['name']} ({data['id']})", highlight=False)
        out.print(f"VAPID public key: {data['vapid_public_key']}", highlight=False)


def _app_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "vapid_public_key": row.vapid_public_key,
        "vapid_subject": row.vapid_subject,
    }


@apps_app.command("list")
def apps_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the apps."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.sessions() as session:
            return [_app_json(row) for row in await apps.list_all(session=session)]

    rows = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json({"apps": rows})
        return
    table = Table("name", "id", "created", "VAPID subject")
    for row in rows:
        table.add_row(row["name"], row["id"], row["created_at"], row["vapid_subject"] or "")
    out.print(table)


# --- keys ------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    app_name: Annotated[str, typer.Option("--app", help="The app's name.")],
    scope: Annotated[Scope, typer.Option(help="admin, send or subscribe.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
            created = await api_keys.create(
                session=session, app_id=owner.id, scope=scope, name=name
            )
            await session.commit()
            return {**_key_json(created.row, owner.name), "key": created.secret}

    data = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json(data)
    else:
        out.print(f"{scope.value} key for app {app_name} (shown once, keep it):", highlight=False)
        print(data["key"], flush=True)


def _key_json(row: Any, app_name: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "app": app_name,
        "name": row.name,
        "scope": row.scope,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


@keys_app.command("list")
def keys_list(
    app_name: Annotated[str, typer.Option("--app", help="The app's name.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an app's keys (prefixes only: the secrets are not stored)."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
            rows = await api_keys.list_for_app(session=session, app_id=owner.id)
            return [_key_json(row, owner.name) for row in rows]

    rows = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json({"keys": rows})
        return
    table = Table("prefix", "scope", "name", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            row["prefix"],
            row["scope"],
            row["name"] or "",
            row["created_at"],
            row["last_used_at"] or "",
            row["revoked_at"] or "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key, its prefix (from `keys list`) or its id.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: requests with it are refused from then on."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> dict[str, Any]:
        import uuid

        async with runtime.sessions() as session:
            try:
                key_id = uuid.UUID(key)
            except ValueError:
                row = await api_keys.revoke(session=session, prefix=key)
            else:
                row = await api_keys.revoke(session=session, key_id=key_id)
            owner = await apps.get(session=session, app_id=row.app_id)
            await session.commit()
            return _key_json(row, owner.name)

    data = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json(data)
    else:
        out.print(f"revoked key {data['prefix']} of app {data['app']}", highlight=False)


# --- vapid -----------------------------------------------------------------------------------


@vapid_app.command("generate")
def vapid_generate(
    app_name: Annotated[
        str | None,
        typer.Option("--app", help="Replace this app's key pair (browsers must resubscribe)."),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Make a VAPID key pair; print it, or with --app make it that app's pair."""
    pair = vapid.generate_key_pair()
    if app_name is None:
        data = {"public_key": pair.public_key, "private_key": pair.private_key}
        if as_json:
            _emit_json(data)
        else:
            out.print(f"public key:  {pair.public_key}", highlight=False)
            out.print(f"private key: {pair.private_key}", highlight=False)
        return
    _set_app_pair(_settings(config), app_name, pair, as_json)


@vapid_app.command("import")
def vapid_import(
    app_name: Annotated[str, typer.Option("--app", help="The app's name.")],
    private_key: Annotated[
        str, typer.Option(help="Base64url raw private key, or a PEM file's path or text.")
    ],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Use an existing VAPID key pair (e.g. from a previous push server) for an app."""
    text = private_key
    candidate = Path(private_key)
    if len(private_key) < 4096 and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    try:
        pair = vapid.import_key_pair(text)
    except PushgateError as exc:
        raise _fail(exc.message, 2) from None
    _set_app_pair(_settings(config), app_name, pair, as_json)


def _change_app(
    settings: Settings,
    app_name: str,
    change: Callable[[Runtime, AsyncSession, App], Awaitable[object]],
) -> dict[str, Any]:
    """Load an app by name, apply `change` in one transaction, and return the app as JSON."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
            await change(runtime, session, owner)
            await session.commit()
            return _app_json(owner)

    return _run(_with_runtime(settings, work))


def _set_app_pair(
    settings: Settings, app_name: str, pair: vapid.VapidKeyPair, as_json: bool
) -> None:
    data = _change_app(
        settings,
        app_name,
        lambda runtime, session, app: apps.set_vapid_keys(
            session=session, box=runtime.credentials.box(), app=app, pair=pair
        ),
    )
    if as_json:
        _emit_json(data)
    else:
        out.print(f"app {app_name} now uses VAPID public key {pair.public_key}", highlight=False)


@vapid_app.command("subject")
def vapid_subject(
    app_name: Annotated[str, typer.Option("--app", help="The app's name.")],
    subject: Annotated[str, typer.Argument(help="mailto:you@example.com or https://example.com")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the contact push services see in the app's VAPID tokens."""
    data = _change_app(
        _settings(config),
        app_name,
        lambda _runtime, session, app: apps.set_vapid_subject(
            session=session, app=app, subject=subject
        ),
    )
    if as_json:
        _emit_json(data)
    else:
        out.print(f"app {app_name} VAPID subject: {data['vapid_subject']}", highlight=False)


# --- dead letters ----------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what failed for good, with the reason and the last answer."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        letters = await runtime.broker.dead_letters(limit=limit)
        return [
            {
                "id": letter.id,
                "queue": letter.queue,
                "reason": letter.reason,
                "attempts": letter.attempts,
                "failed_at": letter.failed_at.isoformat() if letter.failed_at else None,
                "body": letter.body.decode("utf-8", "replace"),
            }
            for letter in letters
        ]

    rows = _run(_with_runtime(settings, work, broker=True))
    if as_json:
        _emit_json({"dead_letters": rows})
        return
    table = Table("id", "from", "attempts", "failed at", "reason", "body")
    for row in rows:
        table.add_row(
            row["id"],
            row["queue"],
            str(row["attempts"]),
            row["failed_at"] or "",
            row["reason"],
            row["body"][:80],
        )
    out.print(table)


@dlq_app.command("requeue")
def dlq_requeue(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids from `dlq list`; none = all.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put dead letters back on the queue they came from. A failed delivery is sent again,
    its attempts counted from zero (its last answer is kept until the new one)."""
    settings = _settings(config)

    async def work(runtime: Runtime) -> int:
        return await runtime.broker.requeue_dead_letters(ids or None)

    count = _run(_with_runtime(settings, work, broker=True))
    if as_json:
        _emit_json({"requeued": count})
    else:
        out.print(f"requeued {count} message(s)", highlight=False)


# --- provider credentials --------------------------------------------------------------------

AppOption = Annotated[str, typer.Option("--app", help="The app's name.")]


def _credential_json(row: Any, app_name: str) -> dict[str, Any]:
    return {
        "app": app_name,
        "platform": row.platform,
        "fingerprint": row.fingerprint,
        **{
            name: getattr(row, name)
            for name in ("project_id", "client_email", "key_id", "team_id", "topic", "environment")
        },
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _save_credentials(settings: Settings, app_name: str, credentials: Any, as_json: bool) -> None:
    # Imported here, like the providers below: they pull in google-auth and h2, which every
    # other command would pay for at start-up.
    from pushgate.sending import credentials as sending

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
            row = await sending.save(
                session=session,
                box=runtime.credentials.box(),
                app_id=owner.id,
                credentials=credentials,
            )
            await session.commit()
            return _credential_json(row, owner.name)

    data = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json(data)
    else:
        out.print(
            f"app {app_name} {data['platform']} credentials set (fingerprint"
            f" {data['fingerprint']}); running workers pick them up within a minute",
            highlight=False,
        )


@credentials_app.command("set-fcm")
def credentials_set_fcm(
    app_name: AppOption,
    service_account: Annotated[
        Path, typer.Option(help="The service-account JSON file from the Firebase console.")
    ],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set (or replace) an app's FCM service account; it is checked first."""
    from pushgate.providers.fcm_credentials import FCMCredentials
    from pushgate.sending import credentials as sending

    settings = _settings(config)
    try:
        account = FCMCredentials.from_file(service_account)
        sending.check_token_uri(account, settings)
    except PushgateError as exc:
        raise _fail(exc.message, 2) from None
    _save_credentials(settings, app_name, account, as_json)


@credentials_app.command("set-apns")
def credentials_set_apns(
    app_name: AppOption,
    key: Annotated[Path, typer.Option(help="The .p8 signing key file from Apple.")],
    key_id: Annotated[str, typer.Option(help="The key's 10-character id.")],
    team_id: Annotated[str, typer.Option(help="The 10-character developer team id.")],
    topic: Annotated[str, typer.Option(help="The app's bundle id.")],
    environment: Annotated[
        str, typer.Option(help="production, or sandbox for development builds.")
    ] = "production",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set (or replace) an app's APNs token-auth key; it is checked first."""
    from pushgate.providers.apns_credentials import APNSCredentials

    settings = _settings(config)
    try:
        pem = key.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {key}: {exc.strerror or exc}", 2) from None
    if environment not in ("production", "sandbox"):
        raise _fail("the APNs environment must be production or sandbox", 2)
    try:
        credentials = APNSCredentials(
            key=pem,
            key_id=key_id,
            team_id=team_id,
            topic=topic,
            environment="sandbox" if environment == "sandbox" else "production",
        )
    except PushgateError as exc:
        raise _fail(exc.message, 2) from None
    _save_credentials(settings, app_name, credentials, as_json)


@credentials_app.command("list")
def credentials_list(
    app_name: AppOption, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Show an app's credentials: metadata and fingerprints, never the secrets."""
    from pushgate.store import credentials as stored

    settings = _settings(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
            rows = await stored.list_for_app(session=session, app_id=owner.id)
            return [_credential_json(row, owner.name) for row in rows]

    rows = _run(_with_runtime(settings, work))
    if as_json:
        _emit_json({"credentials": rows})
        return
    table = Table("platform", "identity", "fingerprint", "updated")
    for row in rows:
        identity = (
            f"{row['project_id']} ({row['client_email']})"
            if row["platform"] == "fcm"
            else f"{row['topic']} key {row['key_id']} team {row['team_id']} ({row['environment']})"
        )
        table.add_row(row["platform"], identity, row["fingerprint"], row["updated_at"])
    out.print(table)


def main() -> None:
    app()
