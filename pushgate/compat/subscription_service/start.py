"""At process start: the legacy end users' JWTs (HS256, `JWT_SECRET_KEY`) accepted as
pushgate end-user sign-in of the static key's app (`compat.static_key_app`), the app the
legacy routes give a token that names none.

Idempotent (every `serve`, `api` and `worker` process runs it): an app already accepting that
secret is left alone. An app whose sign-in is set otherwise (another secret, public keys, a
JWKS URL) is an error, never silently replaced: two backends would disagree on who signs in.
"""

from __future__ import annotations

import hmac

from pushgate.api import signin
from pushgate.errors import ConfigError, NotFoundError
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.store import apps
from pushgate.store.tables import App

log = get_logger(__name__)


async def configure_sign_in(runtime: Runtime) -> None:
    """Set the static key app's sign-in from `JWT_SECRET_KEY`, when it is set.

    Raises: ConfigError when the app does not exist or its sign-in is set otherwise.
    """
    compat = runtime.settings.compat
    given = compat.subscription_service.jwt_secret_key
    if given is None:
        return
    secret = given.get_secret_value()
    name = compat.static_key_app
    async with runtime.sessions() as session:
        try:
            app = await apps.get_by_name(session=session, name=name)
        except NotFoundError:
            raise ConfigError(
                f"JWT_SECRET_KEY is for the app {name!r} (PUSHGATE_COMPAT__STATIC_KEY_APP),"
                f" which does not exist: create it first (`pushgate apps create {name}`)"
            ) from None
        if app.auth is not None:
            if _takes(app, secret, runtime):
                return
            raise ConfigError(
                f"the app {name!r} already has an end-user sign-in that does not take"
                " JWT_SECRET_KEY, and pushgate does not replace it: remove it (DELETE"
                " /v1/apps/current/auth) to take the legacy secret, or unset JWT_SECRET_KEY"
            )
        await signin.configure(
            session=session,
            runtime=runtime,
            app_id=app.id,
            hs256_secret=secret,
            issuer=None,
            audience=None,
            public_keys=[],
            jwks_url=None,
            cors_origins=[],
        )
        await session.commit()
    log.info("end-user sign-in set from JWT_SECRET_KEY", app=name)


def _takes(app: App, secret: str, runtime: Runtime) -> bool:
    """Whether the app's sign-in accepts HS256 tokens signed with `secret`."""
    config = apps.auth_config(app)
    if config is None or not config.hs256 or app.auth_secret is None:
        return False
    stored = runtime.credentials.box().open(app.auth_secret)
    return hmac.compare_digest(stored.encode(), secret.encode())
