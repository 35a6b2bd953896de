"""FastAPI dependencies as Annotated aliases, so route signatures read as sentences.

Every dependency here is `async def`: FastAPI runs a plain `def` dependency in a worker thread,
a thread hop per request on the hot path for nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from pushgate.api import ratelimit, signin
from pushgate.api.responses import answers
from pushgate.domain import enduser
from pushgate.domain.apikeys import Permission, Scope, allows, prefix_of
from pushgate.domain.rates import RouteClass
from pushgate.errors import AuthenticationError, PermissionDeniedError
from pushgate.runtime import Runtime
from pushgate.store import api_keys


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@answers(503)
async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    # Routes commit explicitly; anything not committed is rolled back when the session closes.
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the app (tenant) every query is scoped to, and the key's scope. An end
    user signed in with a JWT has `user_id` (its `sub`) and may touch only its own devices."""

    app_id: uuid.UUID
    key_id: uuid.UUID
    scope: Scope
    user_id: str | None = None

    def can(self, permission: Permission) -> bool:
        if self.user_id is not None:
            return permission in END_USER_GRANTS
        return allows(self.scope, permission)


END_USER_GRANTS = frozenset({Permission.DEVICES_WRITE, Permission.DEVICES_READ})


def presented_key(request: Request) -> str | None:
    headers = request.headers
    return key_of(headers.get("authorization"), headers.get("x-api-key"))


def key_of(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request presents: a Bearer token, else the X-API-Key header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_api_key or None


async def authenticate(request: Request, *, end_users: bool = False) -> Caller:
    """The caller of `request`: an API key, or with `end_users` an end-user JWT too."""
    scope = request.scope
    route = ratelimit.route_class(scope["method"], scope["path"])
    secret = presented_key(request)
    if end_users and secret and prefix_of(secret) is None and enduser.looks_like_jwt(secret):
        return await end_user_of(secret, request, route)
    return await caller_of(secret, request.app.state, scope, route)


async def end_user_of(
    token: str, request: Request, route: RouteClass, *, default_app: str | None = None
) -> Caller:
    """The end user a JWT signs in (signin.py), counted under its app's limits and a pseudo key
    of its own per user. The app is the one `X-Pushgate-App` names, else `default_app`.

    Raises:
        AuthenticationError: `invalid_token`, for any token that does not check out.
        RateLimitedError: the user's or the app's bucket for `route` is empty.
    """
    state = request.app.state
    runtime: Runtime = state.runtime
    async with runtime.sessions() as session:
        reference = request.headers.get(signin.APP_HEADER) or default_app
        app = await signin.app_named(session, reference)
    user = await signin.end_user(
        token, app, box=runtime.credentials.box(), jwks=state.jwks, now=time.time()
    )
    limiter: ratelimit.Limiter = state.limiter
    request.scope[ratelimit.SCOPE_KEY] = await limiter.check(
        key_id=user.key_id, app_id=user.app_id, own=None, route=route
    )
    return Caller(
        app_id=user.app_id, key_id=user.key_id, scope=Scope.SUBSCRIBE, user_id=user.user_id
    )


async def caller_of(
    secret: str | None, state: State, scope: MutableMapping[str, Any], route: RouteClass
) -> Caller:
    """Who presents `secret`, counted against its key's and app's limits for `route`. The key
    is read through the app's key cache, so a request with a known key touches the database
    at most once a minute (`last_used_at`). The quota to show goes into the request's `scope`.

    Raises:
        AuthenticationError: no key, or an unknown or revoked one.
        RateLimitedError: the key's or the app's bucket for `route` is empty.
    """
    runtime: Runtime = state.runtime
    if secret is None:
        raise AuthenticationError(
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = await api_keys.authenticate_cached(
        sessions=runtime.sessions, cache=state.key_cache, secret=secret
    )
    if key is None:
        raise AuthenticationError(
            "unknown or revoked API key",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    limiter: ratelimit.Limiter = state.limiter
    scope[ratelimit.SCOPE_KEY] = await limiter.check(
        key_id=key.key_id, app_id=key.app_id, own=key.limits, route=route
    )
    await api_keys.touch_cached(sessions=runtime.sessions, key=key)
    return Caller(app_id=key.app_id, key_id=key.key_id, scope=Scope(key.scope))


# Every API key check reads the key (database, cached) and the rate limits (cache): an outage
# of either answers 503.
@answers(401, 429, 503)
async def get_caller(request: Request) -> Caller:
    return await authenticate(request, end_users=True)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(
    permission: Permission, *, end_users: bool = False
) -> Callable[[Request], Awaitable[Caller]]:
    # One dependency per permission that authenticates too (rather than one on top of
    # get_caller): each level of dependencies costs FastAPI time on every request.
    @answers(401, 403, 429, 503)
    async def check(request: Request) -> Caller:
        caller = await authenticate(request, end_users=end_users)
        return permitted(caller, permission)

    return check


def permitted(caller: Caller, permission: Permission) -> Caller:
    """`caller`, if its key's scope grants `permission`.

    Raises:
        PermissionDeniedError: code `insufficient_scope`.
    """
    if not caller.can(permission):
        raise PermissionDeniedError(
            f"a {caller.scope.value} key may not do this (needs {permission.value})",
            code="insufficient_scope",
        )
    return caller


# The device routes also take end-user JWTs (signin.py); every other route, API keys only.
DeviceWriter = Annotated[Caller, Depends(require(Permission.DEVICES_WRITE, end_users=True))]
DeviceReader = Annotated[Caller, Depends(require(Permission.DEVICES_READ, end_users=True))]
Sender = Annotated[Caller, Depends(require(Permission.NOTIFICATIONS_SEND))]
NotificationReader = Annotated[Caller, Depends(require(Permission.NOTIFICATIONS_READ))]
Admin = Annotated[Caller, Depends(require(Permission.ADMIN))]
