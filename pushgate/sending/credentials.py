"""Each app's provider credentials as the providers take them, read from the database and
cached briefly (a key rotated with the CLI or the API reaches every process within the cache
time; the process that changed it forgets its copy at once).

Where they come from is the provider's to say (`DeliveryProvider.credentials` and
`capabilities.vapid`): a stored secret from the app's row in `app_credentials`, else the
single-tenant settings (FCM's `fcm.service_account_path`, APNs's `apns.key_path` ...); the app's
own VAPID keys (its private key decrypted here, once per cache time); or nothing at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain.vapid import VapidCredentials
from pushgate.errors import InvalidInputError
from pushgate.providers.base import DeliveryProvider, Storable, StoredCredentials
from pushgate.settings import Settings
from pushgate.store import apps
from pushgate.store import credentials as stored
from pushgate.store.db import SessionMaker
from pushgate.store.tables import AppCredential

CACHE_SECONDS = 60.0


class MissingCredentialsError(LookupError):
    """The app cannot send on this platform until an admin configures it; says how."""


def check_token_uri(credentials: Storable, settings: Settings) -> None:
    """Refuse credentials the provider would refuse at every send (FCM: a token_uri that is
    not an allowed OAuth endpoint). Kept under this name for the CLI; same as `check`.

    Raises:
        InvalidInputError: says why, naming the field.
    """
    credentials.check(settings)


async def save(
    *,
    session: AsyncSession,
    box: stored.SecretBox,
    app_id: uuid.UUID,
    credentials: Storable,
) -> AppCredential:
    """Store checked credentials for the app (replacing any); the caller commits."""
    secret, metadata = credentials.record()
    return await stored.put(
        session=session,
        box=box,
        app_id=app_id,
        platform=credentials.platform,
        secret=secret,
        metadata=metadata,
    )


def metadata_of(row: AppCredential) -> dict[str, str | None]:
    """A stored row's metadata, as `StoredCredentials.read` takes it."""
    return {name: getattr(row, name) for name in stored.METADATA_FIELDS}


class Credentials:
    """`await credentials(app_id, platform)` -> what that platform's provider needs.

    Raises:
        MissingCredentialsError: the app has nothing configured for the platform.
    """

    def __init__(
        self,
        sessions: SessionMaker,
        settings: Settings,
        providers: Mapping[str, DeliveryProvider[Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._cache: dict[tuple[uuid.UUID, str], tuple[float, Any]] = {}
        self._box: stored.SecretBox | None = None
        # Read once: where each platform's credentials come from.
        self._stored = {n: p.credentials for n, p in providers.items() if p.credentials}
        self._vapid_platforms = {n for n, p in providers.items() if p.capabilities.vapid}

    def box(self) -> stored.SecretBox:
        """The secrets box, made on first use: deployments that never store provider
        credentials need no key."""
        if self._box is None:
            self._box = stored.SecretBox.from_settings(self._settings)
        return self._box

    def forget(self, app_id: uuid.UUID) -> None:
        """Drop this process's cached credentials of the app (they were just changed)."""
        for key in [k for k in self._cache if k[0] == app_id]:
            del self._cache[key]

    def read(
        self, platform: str, secret: str | Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> Storable:
        """Credentials an admin gives for `platform` (a secret and its metadata), checked as
        they will be used, settings included.

        Raises:
            InvalidInputError: unusable; `field` names what.
            LookupError: `platform` keeps no stored credentials.
        """
        reader = self._stored.get(platform)
        if reader is None:
            raise LookupError(f"{platform} keeps no stored credentials")
        credentials = reader.read(secret, metadata)
        if not isinstance(credentials, Storable):
            raise TypeError(f"{platform} credentials cannot be stored")
        credentials.check(self._settings)
        return credentials

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
        if platform in self._vapid_platforms:
            return await self._vapid(app_id)
        reader = self._stored.get(platform)
        if reader is None:
            return None  # the provider needs no credentials
        async with self._sessions() as session:
            app = await apps.get(session=session, app_id=app_id)
            row = await stored.get(session=session, app_id=app_id, platform=platform)
        if row is not None:
            try:
                return reader.read(self.box().open(row.secret), metadata_of(row))
            except InvalidInputError as exc:
                raise MissingCredentialsError(
                    f"the stored {platform} credentials of app {app.name!r} are not usable:"
                    f" {exc.message}; set them again"
                ) from None
        fallback = _from_settings(platform, reader)
        if fallback is not None:
            return fallback
        raise MissingCredentialsError(
            f"app {app.name!r} has no {platform} credentials: run {reader.how_to_set(app.name)}"
        )

    async def _vapid(self, app_id: uuid.UUID) -> VapidCredentials:
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
        return VapidCredentials(key_pair=pair, subject=subject)


def _from_settings(platform: str, reader: StoredCredentials[Any]) -> Any:
    """The single-tenant credentials from settings, for apps that set none of their own.

    A configured but unusable file is refused loudly (MissingCredentialsError names it):
    silently ignoring it would leave the operator guessing.
    """
    try:
        return reader.from_settings()
    except InvalidInputError as exc:
        raise MissingCredentialsError(
            f"the {platform} credentials in the settings are not usable: {exc.message}"
        ) from None
    except OSError as exc:
        raise MissingCredentialsError(
            f"cannot read the {platform} key named in the settings: {exc}"
        ) from None
