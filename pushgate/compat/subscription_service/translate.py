"""Pure translation between the legacy subscription service and `/v1`: a subscription into a
`DeviceCreate`, a send into a `NotificationCreate` (their refusals named back in the legacy
fields), and delivery counts into the legacy `statistics`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from pushgate.api.schemas.devices import DeviceCreate, DeviceUpdate
from pushgate.compat.subscription_service import schemas
from pushgate.domain.request import NotificationCreate

Loc = tuple[int | str, ...]

# Delivery statuses as the legacy statistics count them.
FAILED = ("failed", "invalid", "rejected", "expired")
PENDING = ("pending", "sending", "retrying", "deferred")

TARGET_MESSAGE = (
    "give exactly one of topics, user_ids or subscription_ids"
    " (for every subscription: POST /notifications/broadcast/)"
)


def refused(exc: ValidationError, legacy_loc: Callable[[Loc], Loc]) -> RequestValidationError:
    """`exc` (raised building the `/v1` request) as the legacy body's refusal: each problem at
    the legacy field it came from, with `/v1`'s message and type."""
    problems = []
    for error in exc.errors():
        problem = {"type": error["type"], "loc": ("body", *legacy_loc(error["loc"]))}
        problem["msg"] = TARGET_MESSAGE if error["type"] == "target" else error["msg"]
        problems.append(problem)
    return RequestValidationError(problems)


def device_create(body: schemas.SubscriptionCreate) -> DeviceCreate:
    """The `/v1` registration of a legacy subscription, nested or flat.

    Raises: RequestValidationError at the legacy fields.
    """
    flat = body.keys is None
    keys = body.keys.model_dump() if body.keys else {"p256dh": body.p256dh, "auth": body.auth}
    wanted: dict[str, Any] = {
        "platform": "webpush",
        "subscription": {
            "endpoint": body.endpoint,
            "keys": {k: v for k, v in keys.items() if v is not None},
            "expirationTime": body.expiration_time,
        },
    }
    for name in ("topics", "user_id"):
        if name in body.model_fields_set:
            wanted[name] = getattr(body, name)

    def legacy_loc(loc: Loc) -> Loc:
        if loc[:2] == ("subscription", "keys"):
            return loc[2:] if flat else loc[1:]
        return loc[1:] if loc[:1] == ("subscription",) else loc

    try:
        return DeviceCreate.model_validate(wanted)
    except ValidationError as exc:
        raise refused(exc, legacy_loc) from None


def device_update(body: schemas.SubscriptionUpdate) -> DeviceUpdate:
    """The `/v1` change a legacy `PUT` asks for: only the fields it sent.

    Raises: RequestValidationError at the legacy fields.
    """
    try:
        return DeviceUpdate.model_validate(body.model_dump(exclude_unset=True))
    except ValidationError as exc:
        raise refused(exc, lambda loc: loc) from None


_RENAMED = {"category": "type", "device_ids": "subscription_ids"}
_LEGACY_NAMES = {v: k for k, v in _RENAMED.items()}


def notification_create(
    body: schemas.NotificationPayload, *, broadcast: bool, idempotency_key: str | None
) -> NotificationCreate:
    """The `/v1` request a legacy send (or broadcast) means. A criterion sent empty or null is
    not given; several given are refused like several `/v1` targets.

    Raises: RequestValidationError at the legacy fields.
    """
    wanted: dict[str, Any] = {}
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is None or value == []:
            continue
        wanted[_LEGACY_NAMES.get(name, name)] = value
    if broadcast:
        wanted["broadcast"] = True
    if idempotency_key is not None:
        wanted["idempotency_key"] = idempotency_key

    def legacy_loc(loc: Loc) -> Loc:
        return (_RENAMED.get(str(loc[0]), loc[0]), *loc[1:]) if loc else loc

    try:
        return NotificationCreate.model_validate(wanted)
    except ValidationError as exc:
        raise refused(exc, legacy_loc) from None


def statistics(counts: Mapping[str, int]) -> schemas.Statistics:
    """The legacy statistics of a notification's deliveries per status (skipped and canceled
    ones count in `total` only)."""
    return schemas.Statistics(
        total=sum(n for status, n in counts.items() if status != "total"),
        sent=counts.get("sent", 0),
        failed=sum(counts.get(s, 0) for s in FAILED),
        pending=sum(counts.get(s, 0) for s in PENDING),
    )
