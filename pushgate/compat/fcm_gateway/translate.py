"""What the old gateway's bodies, priorities, platforms and statuses are in pushgate's terms.
Pure: no I/O. Refusals are pydantic errors located on the legacy field, so the route answers
them as the old FastAPI service did (`422`, `detail` a list of `{loc, msg, type}`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.request import NotificationCreate

# The priorities such gateways send, as pushgate's two (FCM's Android priority is NORMAL or
# HIGH, APNs's 5 or 10; pushgate maps `high` and `normal` onto each provider's own). Matched
# without regard to case or surrounding blanks; anything else is refused.
PRIORITIES: Mapping[str, str] = {
    "high": "high",
    "max": "high",
    "urgent": "high",
    "10": "high",
    "normal": "normal",
    "default": "normal",
    "low": "normal",
    "min": "normal",
    "5": "normal",
}

# The platform names such services store with a token, as pushgate's. An FCM gateway sends
# everything through FCM: its `android`, `ios` and `web` tokens are FCM registration tokens
# (the Firebase SDKs of each platform). A native APNs device token is registered as `apns`.
# Other names go to pushgate as given (`fcm`, `apns`, a plugin provider's), so pushgate's own
# validation answers an unknown one.
PLATFORMS: Mapping[str, str] = {"android": "fcm", "ios": "fcm", "web": "fcm"}

# pushgate's notification statuses as the old gateway's three.
STATUSES: Mapping[str, str] = {
    NotificationStatus.ACCEPTED: "pending",
    NotificationStatus.SCHEDULED: "pending",
    NotificationStatus.DISPATCHING: "pending",
    # Every device got it, or (partially_failed) some did: the old gateway said `sent` once
    # FCM took the message. `pushgate_status` tells the two apart.
    NotificationStatus.COMPLETED: "sent",
    NotificationStatus.PARTIALLY_FAILED: "sent",
    NotificationStatus.FAILED: "failed",
    NotificationStatus.EXPIRED: "failed",
    NotificationStatus.CANCELED: "failed",
}

# One device's delivery as the old gateway's three: a delivery not sent for good is `failed`,
# skipped ones (the user's preferences) included; one still under way is `pending`.
DELIVERY_STATUSES: Mapping[str, str] = {
    **{s.value: "failed" for s in DeliveryStatus},
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.PENDING: "pending",
    DeliveryStatus.SENDING: "pending",
    DeliveryStatus.RETRYING: "pending",
    DeliveryStatus.DEFERRED: "pending",
}

# pushgate's request fields named as the legacy body names them, for refusals.
_LEGACY_FIELD = {"user_ids": "user_id", "device_ids": "token", "tokens": "token"}
_SENT_FIELDS = ("title", "body", "image", "data", "priority", "idempotency_key")


def priority(value: Any) -> str:
    """pushgate's priority for a legacy one (`None`: normal).

    Raises:
        PydanticCustomError: a value none of `PRIORITIES`.
    """
    if value is None:
        return "normal"
    if isinstance(value, str) and value.strip().lower() in PRIORITIES:
        return PRIORITIES[value.strip().lower()]
    raise PydanticCustomError(
        "priority",
        "priority must be high or normal (also accepted: max, urgent, 10 for high;"
        " default, low, min, 5 for normal)",
    )


def platform(value: str | None) -> str:
    """pushgate's platform for a legacy one (`None`: fcm)."""
    if value is None:
        return "fcm"
    name = value.strip().lower()
    return PLATFORMS.get(name, name)


def status(pushgate_status: str) -> str:
    return STATUSES.get(pushgate_status, "pending")


def delivery_status(pushgate_status: str) -> str:
    return DELIVERY_STATUSES.get(pushgate_status, "pending")


def token_of(value: str | None) -> str | None:
    """The token a body gives: an empty one (`"token": ""`) sends to the user's devices, as a
    missing one does."""
    return value if value and value.strip() else None


# Stands for the device a token send goes to while the request is checked, before the token
# is registered (a request `/v1` refuses registers nothing): `to_device` puts the real one in.
UNREGISTERED = uuid.UUID(int=0)


def request(send: Mapping[str, Any], *, to_token: bool) -> NotificationCreate:
    """The `/v1` request a legacy send means: to the device of its token (`to_token`, see
    `to_device`), else to its user's devices. `send` holds the legacy body's fields
    (`SendRequest`'s, None when unset).

    Raises:
        RequestValidationError: what `/v1` refuses in it, located on the legacy field.
    """
    fields: dict[str, Any] = {
        name: send[name] for name in _SENT_FIELDS if send.get(name) is not None
    }
    if to_token:
        fields["device_ids"] = [UNREGISTERED]
    elif send.get("user_id") is None:
        raise refused(
            [{"loc": ("user_id",), "msg": "give a token, a user_id, or both", "type": "missing"}]
        )
    else:
        fields["user_id"] = send["user_id"]
    try:
        return NotificationCreate.model_validate(fields)
    except ValidationError as exc:
        raise refused(exc.errors()) from None


def to_device(checked: NotificationCreate, device_id: uuid.UUID) -> NotificationCreate:
    """`checked` (a token send) aimed at the device its token is registered as."""
    return checked.model_copy(update={"device_ids": [device_id]})


def refused(
    errors: Sequence[Any], *, at: tuple[str | int, ...] = ("body",)
) -> RequestValidationError:
    """`errors` (pydantic's, on pushgate's fields) as a legacy refusal of the body at `at`."""
    located = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in _LEGACY_FIELD:
            loc[0] = _LEGACY_FIELD[str(loc[0])]
        elif loc == ["target"]:
            loc = ["user_id"]
        located.append(
            {"loc": (*at, *loc), "msg": error.get("msg", ""), "type": error.get("type", "")}
        )
    return RequestValidationError(located)
