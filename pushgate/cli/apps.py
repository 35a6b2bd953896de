"""`pushgate apps`: create and list apps (tenants), and an app's JSON shape for every command."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    commands,
    settings_from,
    show,
    show_rows,
    with_app,
    with_session,
)
from pushgate.runtime import Runtime
from pushgate.store import apps
from pushgate.store.tables import App

group = commands("Apps (tenants).")


@group.command("create")
def apps_create(
    name: str,
    vapid_subject: Annotated[
        str | None, typer.Option(help="mailto: or https: contact for push services.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an app (tenant) with its own VAPID key pair."""
    settings = settings_from(config)

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        row = await apps.create(
            session=session,
            box=runtime.credentials.box(),
            name=name,
            vapid_subject=vapid_subject,
        )
        await session.commit()
        return app_json(row)

    data = with_session(settings, work)
    show(
        data,
        as_json,
        f"created app {data['name']} ({data['id']})",
        f"VAPID public key: {data['vapid_public_key']}",
    )


def app_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "vapid_public_key": row.vapid_public_key,
        "vapid_subject": row.vapid_subject,
        "default_timezone": row.default_timezone,
    }


@group.command("set-timezone")
def apps_set_timezone(
    app_name: AppOption,
    timezone: Annotated[
        str,
        typer.Argument(help="An IANA time zone (Europe/Paris), or `none` for UTC."),
    ],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the app's default time zone: local-time delivery (`send_at_local`) uses it for
    devices and users that give none."""
    settings = settings_from(config)
    name = None if timezone.lower() == "none" else timezone

    async def work(_runtime: Runtime, session: AsyncSession, owner: App) -> dict[str, Any]:
        row = await apps.set_default_timezone(session=session, app=owner, name=name)
        await session.commit()
        return app_json(row)

    data = with_app(settings, app_name, work)
    show(
        data, as_json, f"app {data['name']}: default time zone {data['default_timezone'] or 'UTC'}"
    )


@group.command("list")
def apps_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the apps."""

    async def work(_runtime: Runtime, session: AsyncSession) -> list[dict[str, Any]]:
        return [app_json(row) for row in await apps.list_all(session=session)]

    show_rows(
        with_session(settings_from(config), work),
        as_json,
        key="apps",
        columns={
            "name": "name",
            "id": "id",
            "created": "created_at",
            "VAPID subject": "vapid_subject",
        },
    )
