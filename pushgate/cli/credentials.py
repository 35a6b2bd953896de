"""`pushgate credentials`: set an app's FCM service account or APNs signing key, and list them
(metadata and fingerprints, never the secrets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    commands,
    fail,
    refused_input,
    settings_from,
    show,
    show_app_rows,
    with_app,
)
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store.tables import App

group = commands("Apps' FCM and APNs credentials.")


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

    async def work(runtime: Runtime, session: AsyncSession, owner: App) -> dict[str, Any]:
        row = await sending.save(
            session=session,
            box=runtime.credentials.box(),
            app_id=owner.id,
            credentials=credentials,
        )
        await session.commit()
        return _credential_json(row, owner.name)

    data = with_app(settings, app_name, work)
    show(
        data,
        as_json,
        f"app {app_name} {data['platform']} credentials set (fingerprint"
        f" {data['fingerprint']}); running workers pick them up within a minute",
    )


@group.command("set-fcm")
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

    settings = settings_from(config)
    with refused_input():
        account = FCMCredentials.from_file(service_account)
        sending.check_token_uri(account, settings)
    _save_credentials(settings, app_name, account, as_json)


@group.command("set-apns")
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

    settings = settings_from(config)
    try:
        pem = key.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {key}: {exc.strerror or exc}", 2) from None
    if environment not in ("production", "sandbox"):
        raise fail("the APNs environment must be production or sandbox", 2)
    with refused_input():
        credentials = APNSCredentials(
            key=pem,
            key_id=key_id,
            team_id=team_id,
            topic=topic,
            environment="sandbox" if environment == "sandbox" else "production",
        )
    _save_credentials(settings, app_name, credentials, as_json)


@group.command("list")
def credentials_list(
    app_name: AppOption, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Show an app's credentials: metadata and fingerprints, never the secrets."""
    from pushgate.store import credentials as stored

    show_app_rows(
        settings_from(config),
        app_name,
        as_json,
        read=stored.list_for_app,
        as_dict=_credential_json,
        key="credentials",
        columns={
            "platform": "platform",
            "identity": _identity,
            "fingerprint": "fingerprint",
            "updated": "updated_at",
        },
    )


def _identity(row: dict[str, Any]) -> str:
    if row["platform"] == "fcm":
        return f"{row['project_id']} ({row['client_email']})"
    return f"{row['topic']} key {row['key_id']} team {row['team_id']} ({row['environment']})"
