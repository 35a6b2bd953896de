"""Each app's provider credentials as the providers take them, read from the database and
cached briefly (a key rotated with the CLI or the API reaches every process within the cache
time; the process that changed it forgets its copy at once).

FCM and APNs credentials come from the app's row in `app_credentials`, else from the
single-tenant settings (`fcm.service_account_path`, `apns.key_path` ...); VAPID keys from the
app itself (its private key decrypted here, once per cache time).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.errors import InvalidInputError
from pushgate.providers import fcm_credentials, webpush
from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.fcm_credentials import FCMCredentials
from pushgate.settings import Settings
from pushgate.store import apps
from pushgate.store import credentials as stored
from pushgate.store.db import SessionMaker
from pushgate.store.tables import AppCredential

CACHE_SECONDS = 60.0


class MissingCredentialsError(LookupError):
    """The app cannot send on this platform until an admin configures it; says how."""


def allowed_token_uris(settings: Settings) -> tuple[str, ...]:
    """The OAuth token endpoints a service account may name: Google's, and the settings'."""
    return (*fcm_credentials.GOOGLE_TOKEN_URIS, *settings.fcm.token_uris)


def check_token_uri(credentials: FCMCredentials, settings: Settings) -> None:
    """Refuse a service account whose token_uri the provider would refuse at every send.

    Raises:
        InvalidInputError: the token_uri is not an allowed endpoint.
    """
    if credentials.token_uri not in allowed_token_uris(settings):
        raise InvalidInputError(
            f"the FCM service account is not usable: its token_uri {credentials.token_uri} is"
            " not Google's OAuth endpoint (an operator may allow others with"
            " PUSHGATE_FCM__TOKEN_URIS)",
            field="service_account.token_uri",
        )


def fcm_record(credentials: FCMCredentials) -> tuple[str, dict[str, str | None]]:
    """(secret, metadata) to store for a checked service account."""
    secret = json.dumps(credentials.service_account_info(), sort_keys=True)
    return secret, {"project_id": credentials.project_id, "client_email": credentials.client_email}


def apns_record(credentials: APNSCredentials) -> tuple[str, dict[str, str | None]]:
    """(secret, metadata) to store for a checked APNs signing key."""
    return credentials.key.strip() + "\n", {
        "key_id": credentials.key_id,
        "team_id": credentials.team_id,
        "topic": credentials.topic,
        "environment": credentials.environment,
    }


async def save(
    *,
    session: AsyncSession,
    box: stored.SecretBox,
    app_id: uuid.UUID,
    credentials: FCMCredentials | APNSCredentials,
) -> AppCredential:
    """Store checked credentials for the app (replacing any); the caller commits."""
    if isinstance(credentials, FCMCredentials):
        platform, (secret, metadata) = "fcm", fcm_record(credentials)
    else:
        platform, (secret, metadata) = "apns", apns_record(credentials)
    return await stored.put(
        session=session,
        box=box,
        app_id=app_id,
        platform=platform,
        secret=secret,
        metadata=metadata,
    )


def from_row(row: AppCredential, box: stored.SecretBox) -> FCMCredentials | APNSCredentials:
    """The provider's credentials from a stored row.

    Raises:
        ConfigError: the secrets key cannot decrypt it.
        InvalidInputError: the stored material no longer validates.
    """
    secret = box.open(row.secret)
    if row.platform == "fcm":
        return FCMCredentials.from_service_account(secret)
    return APNSCredentials(
        key=secret,
        key_id=row.key_id or "",
        team_id=row.team_id or "",
        topic=row.topic or "",
        environment="sandbox" if row.environment == "sandbox" else "production",
    )


class Credentials:
    """`await credentials(app_id, platform)` -> what that platform's provider needs.

    Raises:
        MissingCredentialsError: the app has nothing configured for the platform.
    """

    def __init__(
        self,
        sessions: SessionMaker,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._cache: dict[tuple[uuid.UUID, str], tuple[float, Any]] = {}
        self._box: stored.SecretBox | None = None

    def box(self) -> stored.SecretBox:
        """The secrets box, made on first use: deployments that never store FCM or APNs
        credentials need no key."""
        if self._box is None:
            self._box = stored.SecretBox.from_settings(self._settings)
        return self._box

    def forget(self, app_id: uuid.UUID) -> None:
        """Drop this process's cached credentials of the app (they were just changed)."""
        for key in [k for k in self._cache if k[0] == app_id]:
            del self._cache[key]

    async def __call__(self, app_id: uuid.UUID, platform: str) -> Any:
        key = (app_id, platform)
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = await self._load(app_id, platform)
        self._cache[key] = (now, value)
        return value

    async def _load(self, app_id: uuid.UUID, platform: str) -> Any:
        if platform == "webpush":
            return await self._vapid(app_id)
        if platform not in stored.PLATFORMS:
            raise MissingCredentialsError(f"no {platform} credentials are configured")
        async with self._sessions() as session:
            app = await apps.get(session=session, app_id=app_id)
            row = await stored.get(session=session, app_id=app_id, platform=platform)
        if row is not None:
            try:
                return from_row(row, self.box())
            except InvalidInputError as exc:
                raise MissingCredentialsError(
                    f"the stored {platform} credentials of app {app.name!r} are not usable:"
                    f" {exc.message}; set them again"
                ) from None
        fallback = self._from_settings(platform)
        if fallback is not None:
            return fallback
        if platform == "fcm":
            how = (
                f"`pushgate credentials set-fcm --app {app.name} --service-account FILE`, or"
                " PUT /v1/apps/current/credentials/fcm with an admin key"
            )
        else:
            how = (
                f"`pushgate credentials set-apns --app {app.name} --key FILE --key-id ..."
                " --team-id ... --topic ...`, or PUT /v1/apps/current/credentials/apns with an"
                " admin key"
            )
        raise MissingCredentialsError(f"app {app.name!r} has no {platform} credentials: run {how}")

    def _from_settings(self, platform: str) -> FCMCredentials | APNSCredentials | None:
        """The single-tenant credentials from settings, for apps that set none of their own.

        A configured but unusable file is refused loudly (MissingCredentialsError names it):
        silently ignoring it would leave the operator guessing.
        """
        try:
            if platform == "fcm":
                fcm = self._settings.fcm
                if fcm.service_account_path is None:
                    return None
                account = FCMCredentials.from_file(fcm.service_account_path)
                if fcm.project_id:
                    account = dataclasses.replace(account, project_id=fcm.project_id)
                return account
            apns = self._settings.apns
            if apns.key_path is None:
                return None
            return APNSCredentials(
                key=apns.key_path.read_text(encoding="utf-8"),
                key_id=apns.key_id or "",
                team_id=apns.team_id or "",
                topic=apns.topic or "",
                environment=apns.environment,
            )
        except InvalidInputError as exc:
            raise MissingCredentialsError(
                f"the {platform} credentials in the settings are not usable: {exc.message}"
            ) from None
        except OSError as exc:
            raise MissingCredentialsError(
                f"cannot read the {platform} key named in the settings: {exc}"
            ) from None

    async def _vapid(self, app_id: uuid.UUID) -> webpush.VapidCredentials:
        async with self._sessions() as session:
            app = await apps.get(session=session, app_id=app_id)
        subject = app.vapid_subject or self._settings.webpush.vapid_subject
        if not subject:
            raise MissingCredentialsError(
                f"app {app.name!r} has no VAPID subject: run `pushgate vapid subject --app "
                f"{app.name} mailto:you@example.com` (or set PUSHGATE_WEBPUSH__VAPID_SUBJECT)"
            )
        # Opened here, once per app and cache time like the other credentials: the sends
        # that follow sign with the cached pair.
        pair = apps.vapid_key_pair(app=app, box=self.box())
        return webpush.VapidCredentials(key_pair=pair, subject=subject)
