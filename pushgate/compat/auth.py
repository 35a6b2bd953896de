"""Who calls a legacy route: a pushgate API key (Bearer or `X-API-Key`, as on `/v1`), an
end-user JWT where the shape took one, or, for the shapes listed in `compat.static_key`, the
single static key the old service checked (`API_KEY`), acting for one app.

Every caller is rate limited like a `/v1` caller: the static key has a bucket of its own per
shape, in its app's limits.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request

from pushgate.api import deps, ratelimit
from pushgate.api.responses import answers
from pushgate.compat import ShapeName
from pushgate.domain import enduser
from pushgate.domain.apikeys import Permission, prefix_of
from pushgate.domain.rates import RouteClass
from pushgate.runtime import Runtime
from pushgate.store import apps

# The static key's stable id (its rate-limit buckets, `key_id` in logs), one per shape.
STATIC_KEY_NAMESPACE = uuid.UUID("6f1e8f2c-8d3a-4d0e-9a63-2f3c1f0d7a51")


def static_key_id(shape: ShapeName) -> uuid.UUID:
    return uuid.uuid5(STATIC_KEY_NAMESPACE, shape)


def legacy_caller(
    shape: ShapeName,
    permission: Permission,
    route: RouteClass,
    *,
    end_users: bool = False,
    static_app_for_jwts: bool = False,
) -> Callable[[Request], Awaitable[deps.Caller]]:
    """A dependency answering the caller of one of `shape`'s routes, checked for
    `permission` and counted against `route`'s limits (legacy paths are not `/v1` paths, so
    the class is said here rather than read from the path). With `static_app_for_jwts`, an
    end-user JWT that names no app (`X-Pushgate-App`) is for `compat.static_key_app`: the
    old clients sent none."""

    @answers(401, 403, 429, 503)
    async def check(request: Request) -> deps.Caller:
        secret = deps.presented_key(request)
        caller = await _static_caller(shape, secret, request, route)
        if caller is None:
            if (
                end_users
                and secret
                and prefix_of(secret) is None
                and enduser.looks_like_jwt(secret)
            ):
                settings = request.app.state.runtime.settings.compat
                default = settings.static_key_app if static_app_for_jwts else None
                caller = await deps.end_user_of(secret, request, route, default_app=default)
            else:
                caller = await deps.caller_of(secret, request.app.state, request.scope, route)
        return deps.permitted(caller, permission)

    return check


async def _static_caller(
    shape: ShapeName, secret: str | None, request: Request, route: RouteClass
) -> deps.Caller | None:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings.compat
    static = settings.static_key_for(shape)
    if static is None or secret is None:
        return None
    if not hmac.compare_digest(secret.encode(), static.get_secret_value().encode()):
        return None
    app_id = await static_app_id(request, settings.static_key_app)
    key_id = static_key_id(shape)
    limiter: ratelimit.Limiter = request.app.state.limiter
    request.scope[ratelimit.SCOPE_KEY] = await limiter.check(
        key_id=key_id, app_id=app_id, own=None, route=route
    )
    return deps.Caller(app_id=app_id, key_id=key_id, scope=settings.static_key_scope)


async def static_app_id(request: Request, name: str) -> uuid.UUID:
    """The id of the app named `name` (the static key's), read once per process.

    Raises:
        NotFoundError: no such app (a setting naming an app that was never made).
    """
    state = request.app.state
    cache: dict[str, uuid.UUID] | None = getattr(state, "compat_app_ids", None)
    if cache is None:
        cache = state.compat_app_ids = {}
    found = cache.get(name)
    if found is None:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            found = (await apps.get_by_name(session=session, name=name)).id
        cache[name] = found
    return found
