"""The Web Push gateway's HTTP routes: `GET /vapid_public_key`, `POST /subscribe` (the
registration of `POST /v1/devices`, then the app's welcome notification when it has one) and
the Web Push test page at its old path. With `open_app` set, the two routes also answer
without a key for that one app, each client address rate limited (`open_rate`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from pushgate import outages
from pushgate.api import deps, pageheaders
from pushgate.api.deps import Caller, RuntimeDep, SessionDep
from pushgate.api.responses import answers
from pushgate.api.routes import devices as device_routes
from pushgate.api.schemas import devices as device_schemas
from pushgate.compat.auth import legacy_caller, static_app_id
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.shapes import tag
from pushgate.compat.webpush_gateway import welcome
from pushgate.domain import rates
from pushgate.domain.apikeys import Permission, Scope
from pushgate.domain.rates import Rate, RouteClass
from pushgate.errors import NotFoundError, RateLimitedError
from pushgate.kv.base import Bucket
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.settings import Settings
from pushgate.store import apps

log = get_logger(__name__)

# The open mode's caller: one id for every keyless request (its logs' `key_id`).
OPEN_KEY_ID = uuid.UUID("0b5e7c1e-3f57-4c1d-9a55-7d0c3e6a2b41")
WEB = Path(__file__).resolve().parents[2] / "web"
# The test page at its old path: the same files as /web, so its relative URLs (the script,
# the style sheet, the service worker) resolve beside it.
PAGE_FILES = {
    "web_push_test.html": "webpush.html",
    "webpush.js": "webpush.js",
    "sw.js": "sw.js",
    "style.css": "style.css",
}
RECEIVED = "Subscription received and queued."


class PushSubscriptionIn(device_schemas.WebPushSubscription):
    """A browser's `PushSubscription.toJSON()`, as the old pages posted it; `user_id` when the
    page knows its user."""

    user_id: device_schemas.UserId | None = None


class SubscribeAnswer(BaseModel):
    status: Literal["ok"] = "ok"
    message: str = RECEIVED


class VapidPublicKey(BaseModel):
    public_key: str


def _caller(permission: Permission, route: RouteClass) -> Callable[[Request], Awaitable[Caller]]:
    """A key's caller, or, with `open_app` set and no key presented, that app's keyless
    caller (scope subscribe), counted against its client address's limit."""
    keyed = legacy_caller("webpush_gateway", permission, route)

    @answers(401, 403, 429, 503)
    async def check(request: Request) -> Caller:
        runtime: Runtime = request.app.state.runtime
        options = runtime.settings.compat.webpush_gateway
        if options.open_app is None or deps.presented_key(request) is not None:
            return await keyed(request)
        await _limit_address(runtime, request, options.open_rate)
        app_id = await static_app_id(request, options.open_app)
        return Caller(app_id=app_id, key_id=OPEN_KEY_ID, scope=Scope.SUBSCRIBE)

    return check


async def _limit_address(runtime: Runtime, request: Request, rate: Rate) -> None:
    """One token of the client address's bucket (shared by every API process through the
    key-value store, as the key limits are).

    Raises:
        RateLimitedError: 429 with `Retry-After`, the address's bucket is empty.
    """
    if rate.unlimited:
        return
    address = request.client.host if request.client else "unknown"
    bucket = Bucket(
        key=f"compat:webpush_gateway:open:{address}", capacity=rate.count, rate=rate.per_second
    )
    try:
        taken = await runtime.kv.take([bucket], now=time.time())
    except Exception as exc:
        # As for the key limits: not worth refusing every page while the store is away.
        if outages.backend_of(exc) is None:
            raise
        log.warning("open subscribe limit unavailable; request let through", error=repr(exc))
        return
    if taken.allowed:
        return
    quota = rates.quota(rate, taken.tokens[0])
    raise RateLimitedError(
        f"this address may make {rate.count} requests per {str(rate).partition('/')[2]}"
        f" without a key; try again in {quota.retry_after} s",
        headers={
            "Retry-After": str(quota.retry_after),
            **{name.decode(): value.decode() for name, value in quota.headers()},
        },
        details={
            "limited": "address",
            "limit": str(rate),
            "retry_after_seconds": quota.retry_after,
        },
    )


Subscriber = Annotated[Caller, Depends(_caller(Permission.DEVICES_WRITE, RouteClass.SUBSCRIBE))]
# Every scope may read the app's public key (`GET /v1/webpush/vapid-public-key`'s rule).
Reader = Annotated[Caller, Depends(_caller(Permission.DEVICES_WRITE, RouteClass.READ))]


def routes(_settings: Settings) -> APIRouter:
    router = APIRouter(route_class=LegacyRoute, tags=[tag("webpush_gateway")], deprecated=True)

    @router.get("/vapid_public_key", summary="The app's VAPID public key (legacy)")
    async def vapid_public_key(caller: Reader, session: SessionDep) -> VapidPublicKey:
        app = await apps.get(session=session, app_id=caller.app_id)
        return VapidPublicKey(public_key=app.vapid_public_key)

    @router.post("/subscribe", summary="Register a browser's Web Push subscription (legacy)")
    async def subscribe(
        body: PushSubscriptionIn, caller: Subscriber, runtime: RuntimeDep, session: SessionDep
    ) -> SubscribeAnswer:
        # Only what the page sent: a `user_id` it did not send must not clear the device's.
        fields = body.model_dump(by_alias=True, exclude_unset=True)
        user = fields.pop("user_id", None)
        device = device_schemas.DeviceCreate.model_validate(
            {"platform": "webpush", "subscription": fields}
            | ({"user_id": user} if user is not None else {})
        )
        registration = await device_routes.register(runtime, session, caller, device)
        if registration.created:  # a page loaded again re-subscribes: one welcome per device
            app = await apps.get(session=session, app_id=caller.app_id)
            await welcome.send(runtime, app.id, app.name, registration.record.device.id)
        return SubscribeAnswer()

    @router.get("/web_push_test/{name}", include_in_schema=False)
    async def test_page(name: str) -> FileResponse:
        source = PAGE_FILES.get(name)
        if source is None:
            raise NotFoundError(f"no page {name!r}", code="not_found")
        return FileResponse(WEB / source, headers=pageheaders.HEADERS)

    return router
