"""First start: an empty database gets an app `default` and an admin key, shown once."""

from __future__ import annotations

from dataclasses import dataclass

from pushgate.domain.apikeys import Scope
from pushgate.runtime import Runtime
from pushgate.store import api_keys, apps

DEFAULT_APP = "default"


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    app_name: str
    admin_key: str


async def ensure_default_app(runtime: Runtime) -> Bootstrapped | None:
    """Create the default app and an admin key when there is no app at all.

    Returns the new key (to print once), or None when the database already had apps.
    """
    async with runtime.sessions() as session:
        if await apps.count(session=session) > 0:
            return None
        app = await apps.create(session=session, box=runtime.credentials.box(), name=DEFAULT_APP)
        key = await api_keys.create(
            session=session, app_id=app.id, scope=Scope.ADMIN, name="bootstrap"
        )
        await session.commit()
    return Bootstrapped(app_name=app.name, admin_key=key.secret)
