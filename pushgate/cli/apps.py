"""`pushgate apps`: create and list apps (tenants), set their own request limits and end-user
sign-in, and an app's JSON shape for every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api import signin
from pushgate.api.schemas.signin import AppAuthPublic
from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    commands,
    refused_input,
    settings_from,
    show,
    show_rows,
    with_app,
    with_session,
)
from pushgate.domain import rates
from pushgate.domain.rates import RouteClass
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
        "rate_limits": row.rate_limits or {},
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
            "rate limits": _limits_cell,
        },
    )


def _limits_cell(row: dict[str, Any]) -> str:
    limits = row["rate_limits"]
    return ", ".join(f"{k} {v}" for k, v in sorted(limits.items())) or "default"


RateOption = Annotated[
    str | None,
    typer.Option(
        help="N/second, N/minute, N/hour or N/day; off for no limit; default for the setting's."
    ),
]


@group.command("limits")
def apps_limits(
    name: str,
    send: RateOption = None,
    subscribe: RateOption = None,
    read: RateOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set an app's own request limits (all its keys together) per route class: send (POST
    /v1/notifications...), subscribe (device writes), read (GETs and admin routes). Without
    options, show them. API processes apply a change within server.key_cache_seconds."""
    settings = settings_from(config)
    given = {"send": send, "subscribe": subscribe, "read": read}
    with refused_input():
        changes = {
            route: None if text.strip().lower() == "default" else rates.parse(text, field=route)
            for route, text in given.items()
            if text is not None
        }

    async def work(_runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        row = await apps.get_by_name(session=session, name=name)
        if changes:
            row = await apps.set_rate_limits(session=session, app_id=row.id, limits=changes)
            await session.commit()
        return app_json(row)

    data = with_session(settings, work)
    effective = {
        route: data["rate_limits"].get(route)
        or f"{settings.rate_limits.for_app(RouteClass(route))} (default)"
        for route in given
    }
    show(
        {**data, "effective_rate_limits": effective},
        as_json,
        *(f"{route}: {limit}" for route, limit in effective.items()),
    )


@group.command("auth")
def apps_auth(
    app_name: AppOption,
    jwt_hs256_secret: Annotated[
        str | None, typer.Option(help="Shared HS256 secret (32+ characters).")
    ] = None,
    jwt_issuer: Annotated[str | None, typer.Option(help="Required `iss`.")] = None,
    jwt_audience: Annotated[str | None, typer.Option(help="Required `aud`.")] = None,
    jwt_public_key: Annotated[
        list[Path] | None, typer.Option(help="PEM file of an RSA or EC public key (repeatable).")
    ] = None,
    jwks_url: Annotated[str | None, typer.Option(help="https URL of a JWKS document.")] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Origin whose pages may call pushgate (repeatable).")
    ] = None,
    disable: Annotated[bool, typer.Option(help="Accept API keys only again.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let the app's end users register their own devices with a JWT from the app's backend
    (`Authorization: Bearer <jwt>` and `X-Pushgate-App: <app>`). Replaces what was set."""
    settings = settings_from(config)
    pems = [path.read_text(encoding="utf-8") for path in jwt_public_key or []]

    async def work(runtime: Runtime, session: AsyncSession, owner: App) -> dict[str, Any]:
        if disable:
            await apps.set_auth(
                session=session,
                box=runtime.credentials.box(),
                app_id=owner.id,
                config=None,
                secret=None,
            )
        else:
            await signin.configure(
                session=session,
                runtime=runtime,
                app_id=owner.id,
                hs256_secret=jwt_hs256_secret,
                issuer=jwt_issuer,
                audience=jwt_audience,
                public_keys=pems,
                jwks_url=jwks_url,
                cors_origins=cors_origin or [],
            )
        await session.commit()
        shown = AppAuthPublic.of(apps.auth_config(owner)).model_dump()
        return {"app": owner.name} | shown

    data = with_app(settings, app_name, work)
    state = ", ".join(data["algorithms"]) if data["enabled"] else "API keys only"
    show(data, as_json, f"app {data['app']}: end-user sign-in {state}")
