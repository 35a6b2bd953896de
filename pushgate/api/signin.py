"""End-user callers: a JWT from the app's own backend, checked against the app's sign-in
settings, in place of an API key on the device routes and the VAPID key route.

The token names its app in the `X-Pushgate-App` header (the app's name or id): the app's
settings say which keys verify it, so the app must be known before the token is checked.
JWKS documents are fetched through the SSRF guard (netguard.check_url) and kept per app
(`JWKSCache`); an unknown `kid` fetches again, at most once per `jwks.refetch_seconds`.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from pushgate import netguard
from pushgate.domain import enduser
from pushgate.errors import AuthenticationError, PushgateError
from pushgate.runtime import Runtime
from pushgate.settings import JWKSSettings
from pushgate.store import apps
from pushgate.store.credentials import SecretBox
from pushgate.store.tables import App

APP_HEADER = "x-pushgate-app"
JWKS_FIELD = "jwks_url"
MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class EndUser:
    """A signed-in end user of one app."""

    app_id: uuid.UUID
    user_id: str

    @property
    def key_id(self) -> uuid.UUID:
        # A stable pseudo key per app and user: the rate limiter's per-key bucket then counts
        # each user apart, and the app's bucket counts them all together.
        return uuid.uuid5(self.app_id, f"user:{self.user_id}")


@dataclass(slots=True)
class _Fetched:
    url: str
    by_kid: dict[str, Any]
    at: float


class JWKSCache:
    """Per app: the keys of its JWKS document, by `kid`. Not thread-safe: one event loop."""

    def __init__(
        self,
        settings: JWKSSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._transport = transport
        self._entries: dict[uuid.UUID, _Fetched] = {}
        self._failed: dict[uuid.UUID, float] = {}
        # Made here, not per fetch: reading a CA bundle blocks.
        self._verify = ssl.create_default_context(
            cafile=str(settings.ca_bundle) if settings.ca_bundle else None
        )

    def forget(self, app_id: uuid.UUID) -> None:
        self._entries.pop(app_id, None)
        self._failed.pop(app_id, None)

    async def keys(self, app_id: uuid.UUID, url: str, kid: str | None) -> dict[str, Any]:
        """The app's keys by kid: cached, fetched when missing, stale, or when `kid` is unknown
        and the last fetch is older than `refetch_seconds`.

        Raises: AuthenticationError when the document cannot be fetched or read.
        """
        now = self._clock()
        entry = self._entries.get(app_id)
        fresh = entry is not None and entry.url == url
        if entry is not None and fresh:
            age = now - entry.at
            unknown = kid is not None and kid not in entry.by_kid
            if age < self._settings.cache_seconds and not (
                unknown and age >= self._settings.refetch_seconds
            ):
                return entry.by_kid
        failed = self._failed.get(app_id)
        if failed is not None and now - failed < self._settings.refetch_seconds:
            # A host that just failed is not asked again for every request meanwhile.
            if entry is not None and fresh:
                return entry.by_kid
            raise enduser.invalid("the app's JWKS document could not be fetched just now")
        try:
            by_kid = await self._fetch(url)
        except AuthenticationError:
            self._failed[app_id] = now
            if entry is not None and fresh:
                # Stale keys beat none while the app's JWKS host is down.
                return entry.by_kid
            raise
        self._failed.pop(app_id, None)
        self._entries[app_id] = _Fetched(url=url, by_kid=by_kid, at=now)
        return by_kid

    async def _fetch(self, url: str) -> dict[str, Any]:
        try:
            addresses = await netguard.check_url(
                url,
                allow_private_addresses=self._settings.allow_private_addresses,
                field=JWKS_FIELD,
            )
        except PushgateError as exc:
            raise enduser.invalid(f"the app's JWKS URL is refused: {exc.message}") from None
        target, headers, extensions = pinned(url, addresses)
        try:
            async with httpx.AsyncClient(
                verify=self._verify,
                timeout=self._settings.timeout_seconds,
                follow_redirects=False,
                transport=self._transport,
            ) as client:
                response = await client.get(target, headers=headers, extensions=extensions)
            if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"HTTP {response.status_code}")
            return parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise enduser.invalid(f"the app's JWKS document cannot be read ({exc})") from None


def pinned(url: str, addresses: list[str] | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The request that connects to a checked address, not to what DNS answers next (DNS
    rebinding), while TLS still verifies the certificate for the URL's host (SNI).

    Returns: the URL to fetch, its headers and httpx's request extensions.
    """
    headers = {"accept": "application/json"}
    parts = urlsplit(url)
    if not addresses or parts.hostname is None:
        return url, headers, {}
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    port = f":{parts.port}" if parts.port else ""
    headers["host"] = parts.netloc
    return (
        urlunsplit(parts._replace(netloc=f"{literal}{port}")),
        headers,
        {"sni_hostname": parts.hostname},
    )


def parse_jwks(document: Any) -> dict[str, Any]:
    """The usable keys of a JWKS document by kid (keys without a kid are keyed by position).

    Raises: ValueError when it is not a JWKS document.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Any] = {}
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        keys[str(entry.get("kid") or f"#{index}")] = key.key
    return keys


async def app_named(session: Any, reference: str | None) -> App:
    """The app an end-user token says it is for (`X-Pushgate-App`: its name or id).

    Raises: AuthenticationError when the header is missing or names no app with sign-in.
    """
    if not reference:
        raise AuthenticationError(
            "an end-user token must name its app in the X-Pushgate-App header",
            code="invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    try:
        app = await apps.get(session=session, app_id=uuid.UUID(reference))
    except ValueError:
        app = None
    except PushgateError:
        app = None
    if app is None:
        try:
            app = await apps.get_by_name(session=session, name=reference)
        except PushgateError:
            raise enduser.invalid("no such app") from None
    if app.auth is None:
        raise enduser.invalid("this app does not accept end-user tokens")
    return app


async def end_user(
    token: str,
    app: App,
    *,
    box: SecretBox,
    jwks: JWKSCache,
    now: float,
) -> EndUser:
    """Who `token` signs in, for `app`.

    Raises: AuthenticationError `invalid_token`.
    """
    config = enduser.AuthConfig.from_json(app.auth or {})
    header = enduser.header_of(token)
    by_kid: dict[str, Any] = {}
    if config.jwks_url and header.get("alg") in enduser.ASYMMETRIC:
        kid = header.get("kid")
        by_kid = await jwks.keys(app.id, config.jwks_url, kid if isinstance(kid, str) else None)
    keys = enduser.Keys(
        secret=box.open(app.auth_secret) if app.auth_secret else None,
        pems=config.public_keys,
        by_kid=by_kid,
    )
    return EndUser(app_id=app.id, user_id=enduser.subject(token, config, keys, now=now))


async def configure(
    *,
    session: Any,
    runtime: Runtime,
    app_id: uuid.UUID,
    hs256_secret: str | None,
    issuer: str | None,
    audience: str | None,
    public_keys: list[str],
    jwks_url: str | None,
    cors_origins: list[str],
) -> enduser.AuthConfig:
    """Check and store the app's sign-in settings (the API's PUT and `pushgate apps auth`);
    the caller commits.

    Raises:
        InvalidInputError: no key, a short secret, a bad key, origin or JWKS URL.
        UnsafeEndpointError: the JWKS URL's host is not public (and not allowed by
            `jwks.allow_private_addresses`).
    """
    config = enduser.config_of(
        hs256_secret=hs256_secret,
        issuer=issuer,
        audience=audience,
        public_keys=public_keys,
        jwks_url=jwks_url,
        cors_origins=cors_origins,
    )
    if config.jwks_url:
        await netguard.check_url(
            config.jwks_url,
            allow_private_addresses=runtime.settings.jwks.allow_private_addresses,
            field=JWKS_FIELD,
        )
    await apps.set_auth(
        session=session,
        box=runtime.credentials.box(),
        app_id=app_id,
        config=config,
        secret=hs256_secret,
    )
    return config
