"""`pushgate vapid`: make or import an app's VAPID key pair for Web Push, and set its subject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.cli.apps import app_json
from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    commands,
    refused_input,
    settings_from,
    show,
    with_app,
)
from pushgate.domain import vapid
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store import apps
from pushgate.store.tables import App

group = commands("VAPID keys for Web Push.")


@group.command("generate")
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
        show(
            {"public_key": pair.public_key, "private_key": pair.private_key},
            as_json,
            f"public key:  {pair.public_key}",
            f"private key: {pair.private_key}",
        )
        return
    _set_app_pair(settings_from(config), app_name, pair, as_json)


@group.command("import")
def vapid_import(
    app_name: AppOption,
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
    with refused_input():
        pair = vapid.import_key_pair(text)
    _set_app_pair(settings_from(config), app_name, pair, as_json)


def _change_app(
    settings: Settings,
    app_name: str,
    change: Callable[[Runtime, AsyncSession, App], Awaitable[object]],
) -> dict[str, Any]:
    """Load an app by name, apply `change` in one transaction, and return the app as JSON."""

    async def work(runtime: Runtime, session: AsyncSession, owner: App) -> dict[str, Any]:
        await change(runtime, session, owner)
        await session.commit()
        return app_json(owner)

    return with_app(settings, app_name, work)


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
    show(data, as_json, f"app {app_name} now uses VAPID public key {pair.public_key}")


@group.command("subject")
def vapid_subject(
    app_name: AppOption,
    subject: Annotated[str, typer.Argument(help="mailto:you@example.com or https://example.com")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the contact push services see in the app's VAPID tokens."""
    data = _change_app(
        settings_from(config),
        app_name,
        lambda _runtime, session, app: apps.set_vapid_subject(
            session=session, app=app, subject=subject
        ),
    )
    show(data, as_json, f"app {app_name} VAPID subject: {data['vapid_subject']}")
