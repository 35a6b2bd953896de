"""`pushgate keys`: create, list and revoke an app's API keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    commands,
    emit_json,
    iso,
    out,
    refused_input,
    settings_from,
    show,
    show_app_rows,
    with_app,
    with_session,
)
from pushgate.domain import rates
from pushgate.domain.apikeys import Scope
from pushgate.runtime import Runtime
from pushgate.store import api_keys, apps
from pushgate.store.tables import App

group = commands("API keys.")


@group.command("create")
def keys_create(
    app_name: AppOption,
    scope: Annotated[Scope, typer.Option(help="admin, send or subscribe.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    rate_limit: Annotated[
        str | None,
        typer.Option(
            help="The key's own request limit in every route class, e.g. 600/minute"
            " (N/second, N/minute, N/hour, N/day, or off); default: the rate_limits settings."
        ),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    settings = settings_from(config)
    with refused_input():
        own = rates.parse_optional(rate_limit, field="--rate-limit")

    async def work(_runtime: Runtime, session: AsyncSession, owner: App) -> dict[str, Any]:
        created = await api_keys.create(
            session=session, app_id=owner.id, scope=scope, name=name, rate_limit=own
        )
        await session.commit()
        return {**_key_json(created.row, owner.name), "key": created.secret}

    data = with_app(settings, app_name, work)
    if as_json:
        emit_json(data)
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
        "rate_limit": row.rate_limit,
        "created_at": row.created_at.isoformat(),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }


@group.command("list")
def keys_list(
    app_name: AppOption,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an app's keys (prefixes only: the secrets are not stored)."""
    show_app_rows(
        settings_from(config),
        app_name,
        as_json,
        read=api_keys.list_for_app,
        as_dict=_key_json,
        key="keys",
        columns={
            "prefix": "prefix",
            "scope": "scope",
            "name": "name",
            "rate limit": lambda row: row["rate_limit"] or "default",
            "created": "created_at",
            "last used": "last_used_at",
            "revoked": "revoked_at",
        },
    )


@group.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key, its prefix (from `keys list`) or its id.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a key: requests with it are refused from then on."""
    settings = settings_from(config)

    async def work(_runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        import uuid

        try:
            key_id = uuid.UUID(key)
        except ValueError:
            row = await api_keys.revoke(session=session, prefix=key)
        else:
            row = await api_keys.revoke(session=session, key_id=key_id)
        owner = await apps.get(session=session, app_id=row.app_id)
        await session.commit()
        return _key_json(row, owner.name)

    data = with_session(settings, work)
    show(data, as_json, f"revoked key {data['prefix']} of app {data['app']}")
