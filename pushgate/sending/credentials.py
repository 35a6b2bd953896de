"""Each app's provider credentials as the providers take them, read from the database and
cached briefly (a key rotated with the CLI reaches every process within the cache time)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from pushgate.domain import vapid
from pushgate.providers import webpush
from pushgate.settings import Settings
from pushgate.store import apps
from pushgate.store.db import SessionMaker

CACHE_SECONDS = 60.0


class MissingCredentialsError(LookupError):
    """The app cannot send on this platform until an admin configures it; says how."""


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
        if platform != "webpush":
            raise MissingCredentialsError(f"no {platform} credentials are configured")
        async with self._sessions() as session:
            app = await apps.get(session=session, app_id=app_id)
        subject = app.vapid_subject or self._settings.webpush.vapid_subject
        if not subject:
            raise MissingCredentialsError(
                f"app {app.name!r} has no VAPID subject: run `pushgate vapid subject --app "
                f"{app.name} mailto:you@example.com` (or set PUSHGATE_WEBPUSH__VAPID_SUBJECT)"
            )
        pair = vapid.VapidKeyPair(
            private_key=app.vapid_private_key, public_key=app.vapid_public_key
        )
        return webpush.VapidCredentials(key_pair=pair, subject=subject)
