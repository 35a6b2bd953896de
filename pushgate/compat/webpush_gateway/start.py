"""What the Web Push gateway's environment sets up when a process starts: its VAPID key pair
and subject (`VAPID_PRIVATE_KEY`, `VAPID_PUBLIC_KEY`, `VAPID_SUBJECT` or `VAPID_EMAIL`) as the
app's, and a webhook telling `USER_SERVICE_URL` of invalidated subscriptions. Idempotent: every
`serve`, `api` and `worker` process runs it.

A key pair is never replaced silently: the app's pair is replaced only while no Web Push
device is registered with it (a new app's generated pair nobody subscribed with); once
browsers subscribed with the stored pair, a different one is an error naming what to do."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate import netguard, outages
from pushgate.compat.webpush_gateway.settings import WebPushGatewaySettings
from pushgate.domain import vapid
from pushgate.domain import webhooks as rules
from pushgate.domain.subscription import Platform
from pushgate.errors import ConfigError, InvalidInputError, NotFoundError, PushgateError
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.store import apps
from pushgate.store import webhooks as stored
from pushgate.store.tables import App, Device

log = get_logger(__name__)

EVENT = rules.EventType.DEVICE_INVALIDATED.value
# Held while one process looks for the webhook and makes it, so two starting together make
# one; long enough for that, short enough that a process killed meanwhile holds nothing long.
LOCK_SECONDS = 30.0


async def start(runtime: Runtime) -> None:
    """Import the legacy VAPID settings and make the user service's webhook, when set.

    Raises:
        ConfigError: one line: a key pair that is not one, or that differs from the pair
            browsers subscribed with; an unusable subject or URL; no such app.
    """
    options = runtime.settings.compat.webpush_gateway
    if options.open_app is not None:
        # Checked here, so a missing app stops the process instead of answering every page
        # with an error that blames it.
        async with runtime.sessions() as session:
            await _app(session, options.open_app, "OPEN_APP")
    wants_vapid = options.vapid_private_key or options.vapid_public_key or options.vapid_subject
    if not wants_vapid and not options.user_service_url:
        return
    async with runtime.sessions() as session:
        app = await _app(session, options.app, "APP")
        await import_vapid(runtime, session, app, options)
        await session.commit()
        app_id = app.id
    if options.user_service_url:
        await _user_service_webhook(runtime, app_id, options.user_service_url)


async def _app(session: AsyncSession, name: str, setting: str) -> App:
    """Raises: ConfigError naming `PUSHGATE_COMPAT__WEBPUSH_GATEWAY__<setting>`."""
    try:
        return await apps.get_by_name(session=session, name=name)
    except NotFoundError:
        raise ConfigError(
            f"invalid setting PUSHGATE_COMPAT__WEBPUSH_GATEWAY__{setting}: no app named {name!r}"
            f" (create it with `pushgate apps create {name}`)"
        ) from None


def key_pair(options: WebPushGatewaySettings) -> vapid.VapidKeyPair | None:
    """The pair VAPID_PRIVATE_KEY (and VAPID_PUBLIC_KEY, when set) name, None when unset.

    Raises:
        ConfigError: not a P-256 private key, a public key without it, or a public key
            that is not the private key's.
    """
    if options.vapid_private_key is None:
        if options.vapid_public_key is not None:
            raise ConfigError(
                "VAPID_PUBLIC_KEY is set without VAPID_PRIVATE_KEY: pushgate signs with the"
                " private key, set both (or neither, to keep the app's own pair)"
            )
        return None
    try:
        pair = vapid.import_key_pair(options.vapid_private_key.get_secret_value())
    except InvalidInputError as exc:
        raise ConfigError(f"VAPID_PRIVATE_KEY: {exc.message}") from None
    given = options.vapid_public_key
    if given is not None and _normal(given) != pair.public_key:
        raise ConfigError(
            "VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY: set the pair"
            f" together (that private key's public key is {pair.public_key})"
        )
    return pair


def _normal(key: str) -> str:
    """A public key as base64url without padding, however it was written."""
    return key.strip().replace("+", "-").replace("/", "_").rstrip("=")


async def import_vapid(
    runtime: Runtime, session: AsyncSession, app: App, options: WebPushGatewaySettings
) -> None:
    """Make the settings' pair and subject the app's, in `session` (the caller commits).

    Raises:
        ConfigError: see `start`.
    """
    pair = key_pair(options)
    if pair is not None and pair.public_key != app.vapid_public_key:
        subscribed = await _webpush_devices(session, app)
        if subscribed:
            raise ConfigError(
                f"VAPID_PRIVATE_KEY differs from the key pair of app {app.name!r}, which"
                f" {subscribed} Web Push device(s) subscribed with: unset VAPID_* to keep it, or"
                f" replace it on purpose with `pushgate vapid import --app {app.name}` (those"
                " browsers must subscribe again)"
            )
        await apps.set_vapid_keys(
            session=session, box=runtime.credentials.box(), app=app, pair=pair
        )
        log.info("VAPID key pair imported from VAPID_PRIVATE_KEY", app=app.name)
    subject = options.vapid_subject
    if subject is not None and subject != app.vapid_subject:
        try:
            await apps.set_vapid_subject(session=session, app=app, subject=subject)
        except InvalidInputError as exc:
            raise ConfigError(f"VAPID_SUBJECT (or VAPID_EMAIL): {exc.message}") from None
        log.info("VAPID subject set from the environment", app=app.name, subject=subject)


async def _webpush_devices(session: AsyncSession, app: App) -> int:
    """How many Web Push devices the app has, deactivated ones included (their browsers
    still hold subscriptions made with the stored key)."""
    query = select(func.count()).where(
        Device.app_id == app.id, Device.platform == Platform.WEBPUSH.value
    )
    return int((await session.execute(query)).scalar_one())


async def _user_service_webhook(runtime: Runtime, app_id: uuid.UUID, url: str) -> None:
    """A webhook of the app for `device.invalidated` to `url`, unless it has one already.
    Its signing secret is shown nowhere: rotate it (`POST /v1/webhooks/{id}/rotate`) to read
    one, if the user service verifies signatures."""
    try:
        checked = await netguard.check_webhook_url(
            url, allow_private_addresses=runtime.settings.webhooks.allow_private_addresses
        )
    except PushgateError as exc:
        raise ConfigError(f"USER_SERVICE_URL: {exc.message}") from None
    lock = f"compat:webpush_gateway:user_service:{app_id}"
    try:
        mine = await runtime.kv.add(lock, b"1", ttl=LOCK_SECONDS)
    except Exception as exc:
        if outages.backend_of(exc) is None:
            raise
        mine = True  # no store to agree through: the look-up below still avoids most repeats
    if not mine:
        return  # another process, starting now, makes it
    try:
        async with runtime.sessions() as session:
            rows = await stored.list_for_app(session=session, app_id=app_id)
            if any(row.url == checked and EVENT in row.events for row in rows):
                return
            row = await stored.create(
                session=session,
                app_id=app_id,
                url=checked,
                events=[EVENT],
                sealed_secret=runtime.credentials.box().seal(rules.new_secret()),
            )
            await session.commit()
        log.info("webhook made from USER_SERVICE_URL", webhook_id=str(row.id), url=checked)
    finally:
        with contextlib.suppress(Exception):
            await runtime.kv.delete(lock)
