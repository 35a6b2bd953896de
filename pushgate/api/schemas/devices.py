"""Request and response bodies of the device registry, and its opaque page cursor."""

from __future__ import annotations

import binascii
import uuid
import zoneinfo
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pushgate.domain import storable, vapid
from pushgate.domain.platforms import PlatformLabel, PlatformName
from pushgate.domain.subscription import Platform
from pushgate.errors import InvalidInputError
from pushgate.store import devices

MAX_METADATA_BYTES = 4096
TOPIC_PATTERN = r"^[A-Za-z0-9\-_.~%]+$"

Topic = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=TOPIC_PATTERN)]
TopicList = Annotated[list[Topic], Field(max_length=devices.MAX_TOPICS)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=255), storable.TEXT]
AppVersion = Annotated[str, StringConstraints(min_length=1, max_length=64), storable.TEXT]
StatusFilter = Literal["active", "disabled", "deactivated", "all"]


def _locale(value: str) -> str:
    # Android reports en_US, browsers en-US; templates are matched on the BCP 47 spelling.
    return value.replace("_", "-")


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{value!r} is not an IANA time zone name") from None
    return value


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    size = len(orjson.dumps(value))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    return value


Locale = Annotated[
    str,
    StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"),
    AfterValidator(_locale),
]
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_timezone)]
# The storability check comes first: `_bounded` serialises what it passed.
Metadata = Annotated[storable.JSONObject, AfterValidator(_bounded)]


class WebPushKeys(BaseModel):
    p256dh: Annotated[str, storable.TEXT] = Field(
        max_length=200, description="Base64url P-256 public key of the browser."
    )
    auth: Annotated[str, storable.TEXT] = Field(
        max_length=100, description="Base64url 16-byte authentication secret."
    )


class WebPushSubscription(BaseModel):
    """What the browser's `PushSubscription.toJSON()` gives."""

    model_config = ConfigDict(populate_by_name=True)

    endpoint: Annotated[str, storable.TEXT] = Field(
        description="The push service URL (https, a known push service)."
    )
    keys: WebPushKeys
    expiration_time: float | None = Field(
        default=None, alias="expirationTime", description="Unix milliseconds, or null."
    )


class DeviceCreate(BaseModel):
    """Register a device, or refresh the device with the same platform and token."""

    model_config = ConfigDict(extra="forbid")

    platform: PlatformName
    token: Annotated[str, storable.TEXT] | None = Field(
        default=None, description="FCM, APNs or a plugin provider's token (not for webpush)."
    )
    subscription: WebPushSubscription | None = Field(default=None, description="webpush only.")
    user_id: UserId | None = None
    topics: TopicList | None = Field(default=None, description="Replaces the device's topics.")
    locale: Locale | None = None
    timezone: TimeZone | None = None
    app_version: AppVersion | None = None
    metadata: Metadata | None = None

    def profile(self) -> dict[str, Any]:
        """The profile fields the client sent: a re-registration changes only those."""
        return _profile(self, ("user_id", "locale", "timezone", "app_version", "metadata"))


class DeviceUpdate(BaseModel):
    """Change a device; only the fields sent change. `null` clears a field."""

    model_config = ConfigDict(extra="forbid")

    topics: TopicList = Field(default_factory=list, description="Replaces the device's topics.")
    enabled: bool = Field(
        default=True,
        description="The client's switch: false stops pushes to the device until set true again."
        " It does not revive a deactivated device (re-registering its token does).",
    )
    user_id: UserId | None = None
    locale: Locale | None = None
    timezone: TimeZone | None = None
    app_version: AppVersion | None = None
    metadata: Metadata | None = None

    def profile(self) -> dict[str, Any]:
        names = ("enabled", "user_id", "locale", "timezone", "app_version", "metadata")
        return _profile(self, names)


class DeviceTopicsCreate(BaseModel):
    """Topics to add to a device."""

    model_config = ConfigDict(extra="forbid")

    topics: Annotated[list[Topic], Field(min_length=1, max_length=devices.MAX_TOPICS)]


ENABLED = (
    "The client's switch (`PATCH` `enabled`), kept as set: a deactivated device may still show"
    " true. Read `active` to know whether the device receives pushes."
)
ACTIVE = (
    "Whether the device will receive pushes: it is enabled and not deactivated"
    " (`status` is `active`). The field to read."
)
STATUS = (
    "`active` receives pushes; `disabled`: `enabled` is false; `deactivated`: deleted or declared"
    " gone by its push service (`invalidated_at`, `invalidation_reason`), until its token is"
    " registered again. `deactivated` wins over `disabled`."
)


class DevicePublic(BaseModel):
    """A device as keys that may read devices (send, admin) see it."""

    id: uuid.UUID
    platform: PlatformLabel
    token: str | None = Field(description="FCM or APNs token; null for webpush.")
    endpoint: str | None = Field(description="Web Push endpoint; null for fcm and apns.")
    user_id: str | None
    topics: list[str]
    locale: str | None
    timezone: str | None
    app_version: str | None
    metadata: dict[str, Any]
    enabled: bool = Field(description=ENABLED)
    active: bool = Field(description=ACTIVE)
    status: devices.Status = Field(description=STATUS)
    expires_at: datetime | None = Field(description="When the Web Push subscription expires.")
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime = Field(
        description="Last registered, or delivered to successfully (moved at most once a day):"
        " a device unseen for PUSHGATE_DEVICES__STALE_AFTER_DAYS is announced as expiring."
    )
    invalidated_at: datetime | None
    invalidation_reason: str | None

    @classmethod
    def of(cls, record: devices.DeviceRecord) -> DevicePublic:
        d = record.device
        webpush = d.platform == Platform.WEBPUSH
        return cls(
            id=d.id,
            platform=d.platform,
            token=None if webpush else d.token,
            endpoint=d.token if webpush else None,
            user_id=d.user_id,
            topics=list(record.topics),
            locale=d.locale,
            timezone=d.timezone,
            app_version=d.app_version,
            metadata=d.meta,
            enabled=d.enabled,
            active=devices.status_of(d) is devices.Status.ACTIVE,
            status=devices.status_of(d),
            expires_at=d.expires_at,
            created_at=d.created_at,
            updated_at=d.updated_at,
            last_seen_at=d.last_seen_at,
            invalidated_at=d.invalidated_at,
            invalidation_reason=d.invalidation_reason,
        )


class DeviceReceipt(BaseModel):
    """What a `subscribe` key gets back: the device's id, address and state, and of its profile
    only the fields this request sent (as stored). Never its user or metadata otherwise."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    platform: PlatformLabel
    token: str | None = Field(description="FCM or APNs token; null for webpush.")
    endpoint: str | None = Field(description="Web Push endpoint; null for fcm and apns.")
    enabled: bool = Field(description=ENABLED)
    active: bool = Field(description=ACTIVE)
    status: devices.Status = Field(description=STATUS)
    user_id: str | None = Field(default=None, description="Only when this request sent it.")
    topics: list[str] | None = Field(
        default=None, description="The topics this request sent, when it sent some."
    )
    locale: str | None = Field(default=None, description="Only when this request sent it.")
    timezone: str | None = Field(default=None, description="Only when this request sent it.")
    app_version: str | None = Field(default=None, description="Only when this request sent it.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Only when this request sent it."
    )

    @classmethod
    def of(
        cls, record: devices.DeviceRecord, *, sent: Collection[str] = (), topics: Iterable[str] = ()
    ) -> DeviceReceipt:
        """The receipt for `record` after a request that set the profile fields named in `sent`
        (their stored values are echoed) and added `topics` (echoed, not the device's others)."""
        full = DevicePublic.of(record)
        echoed = {name: getattr(full, name) for name in ECHOED if name in sent}
        if topics:
            echoed["topics"] = sorted(set(topics))
        return cls(
            id=full.id,
            platform=full.platform,
            token=full.token,
            endpoint=full.endpoint,
            enabled=full.enabled,
            active=full.active,
            status=full.status,
            **echoed,
        )


ECHOED = ("user_id", "topics", "locale", "timezone", "app_version", "metadata")


class DevicesPublic(BaseModel):
    """A page of devices in registration order."""

    items: list[DevicePublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")

    @classmethod
    def of(cls, page: devices.Page) -> DevicesPublic:
        after = page.next_after
        return cls(
            items=[DevicePublic.of(r) for r in page.items],
            next_cursor=None if after is None else encode_cursor(after),
        )


def encode_cursor(after: uuid.UUID) -> str:
    return vapid.b64url_encode(after.bytes)


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    """Raises: InvalidInputError naming `cursor`, for anything `encode_cursor` did not make."""
    if cursor is None:
        return None
    try:
        raw = vapid.b64url_decode(cursor)
        if len(raw) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        raise InvalidInputError("cursor is not one this API gave out", field="cursor") from None
    return uuid.UUID(bytes=raw)


def statuses(status: StatusFilter | None) -> frozenset[devices.Status]:
    if status is None:
        return devices.VISIBLE
    if status == "all":
        return frozenset(devices.Status)
    return frozenset({devices.Status(status)})


def _profile(model: BaseModel, names: tuple[str, ...]) -> dict[str, Any]:
    given = {n: getattr(model, n) for n in names if n in model.model_fields_set}
    if "metadata" in given:
        given["meta"] = given.pop("metadata") or {}
    return given
