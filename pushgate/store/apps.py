"""Queries on apps (tenants), and their VAPID key pairs: the private key is sealed with the
secrets key before it is stored and opened only where it signs (`vapid_key_pair`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.domain import enduser, localtime, vapid
from pushgate.domain.rates import Rate, RouteClass
from pushgate.errors import ConflictError, InvalidInputError, NotFoundError
from pushgate.store.credentials import SecretBox
from pushgate.store.tables import App

MAX_NAME = 100


async def create(
    *, session: AsyncSession, box: SecretBox, name: str, vapid_subject: str | None = None
) -> App:
    """Create an app with a fresh VAPID key pair (its private key sealed with `box`).

    Raises:
        InvalidInputError: empty or overlong name, or an unusable VAPID subject.
        ConflictError: an app with that name exists.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInputError(f"app name must be 1 to {MAX_NAME} characters", field="name")
    pair = vapid.generate_key_pair()
    app = App(
        name=name,
        vapid_public_key=pair.public_key,
        vapid_private_key=box.seal(pair.private_key),
        vapid_subject=vapid.validate_subject(vapid_subject) if vapid_subject else None,
    )
    try:
        # A savepoint, so a duplicate undoes only this insert, not the caller's other work.
        async with session.begin_nested():
            session.add(app)
    except IntegrityError:
        raise ConflictError(f"an app named {name!r} exists", code="app_exists") from None
    return app


async def get(*, session: AsyncSession, app_id: uuid.UUID) -> App:
    app = await session.get(App, app_id)
    if app is None:
        raise NotFoundError("no such app")
    return app


async def get_by_name(*, session: AsyncSession, name: str) -> App:
    app = (await session.execute(select(App).where(App.name == name))).scalar_one_or_none()
    if app is None:
        raise NotFoundError(f"no app named {name!r}", code="app_not_found")
    return app


async def list_all(*, session: AsyncSession) -> list[App]:
    return list((await session.execute(select(App).order_by(App.created_at))).scalars())


async def count(*, session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(App))).scalar_one())


async def set_vapid_keys(
    *, session: AsyncSession, box: SecretBox, app: App, pair: vapid.VapidKeyPair
) -> App:
    app.vapid_private_key = box.seal(pair.private_key)
    app.vapid_public_key = pair.public_key
    await session.flush()
    return app


def vapid_key_pair(*, app: App, box: SecretBox) -> vapid.VapidKeyPair:
    """The app's VAPID key pair, its private key opened.

    Raises:
        ConfigError: the secrets key does not open it (it changed since the key was stored).
    """
    return vapid.VapidKeyPair(
        private_key=box.open(app.vapid_private_key), public_key=app.vapid_public_key
    )


async def set_vapid_subject(*, session: AsyncSession, app: App, subject: str | None) -> App:
    app.vapid_subject = vapid.validate_subject(subject) if subject else None
    await session.flush()
    return app


async def set_default_timezone(*, session: AsyncSession, app: App, name: str | None) -> App:
    """Set the time zone for the app's devices and users that give none (local-time delivery);
    None is UTC.

    Raises:
        InvalidInputError: not an IANA time zone name this system knows (`Europe/Paris`).
    """
    if name is not None and localtime.zone(name) is None:
        raise InvalidInputError(
            f"{name!r} is not a time zone: give an IANA name such as Europe/Paris",
            field="timezone",
        )
    app.default_timezone = name
    await session.flush()
    return app


async def set_rate_limits(
    *, session: AsyncSession, app_id: uuid.UUID, limits: Mapping[str, Rate | None]
) -> App:
    """Change the app's own request limits per route class (`send`, `subscribe`, `read`): a
    Rate replaces the default for that class, None goes back to it; classes not named stay.
    API processes see the change within `server.key_cache_seconds`.

    Raises:
        NotFoundError: no such app.
        InvalidInputError: an unknown route class.
    """
    app = await get(session=session, app_id=app_id)
    merged = dict(app.rate_limits or {})
    for name, rate in limits.items():
        try:
            route = RouteClass(name)
        except ValueError:
            known = ", ".join(r.value for r in RouteClass)
            raise InvalidInputError(f"no route class {name!r} ({known})", field=name) from None
        if rate is None:
            merged.pop(route.value, None)
        else:
            merged[route.value] = str(rate)
    app.rate_limits = merged or None
    await session.flush()
    return app


async def set_auth(
    *,
    session: AsyncSession,
    box: SecretBox,
    app_id: uuid.UUID,
    config: enduser.AuthConfig | None,
    secret: str | None,
) -> App:
    """Set (or with None clear) the app's end-user sign-in; `secret` is the HS256 secret,
    sealed with `box` (None: none). The caller commits.

    Raises:
        NotFoundError: no such app.
    """
    app = await get(session=session, app_id=app_id)
    app.auth = config.to_json() if config is not None else None
    app.auth_secret = box.seal(secret) if config is not None and secret else None
    await session.flush()
    return app


def auth_config(app: App) -> enduser.AuthConfig | None:
    return enduser.AuthConfig.from_json(app.auth) if app.auth is not None else None
