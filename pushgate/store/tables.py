"""Table definitions (SQLAlchemy 2 typed models). Rows never leave the store as API responses.

Every row belongs to an app (tenant); every query in store/ filters on `app_id`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pushgate.domain.ids import new_id

# Stable constraint names, so Alembic migrations can name what they alter on both dialects.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both dialects (SQLite drops the offset when reading)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# For optional JSON columns: Python None is SQL NULL, not the JSON value `null`.
NullableJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}  # noqa: RUF012


class App(Base):
    """A tenant: its own API keys, provider credentials and VAPID key pair."""

    __tablename__ = "apps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    vapid_public_key: Mapped[str] = mapped_column(String(100))
    # Sealed with the secrets key (store.credentials.SecretBox): read it with apps.vapid_key_pair.
    vapid_private_key: Mapped[str] = mapped_column(Text)
    vapid_subject: Mapped[str | None] = mapped_column(String(255))
    # An IANA time zone name for users and devices that give none (local-time delivery, quiet
    # hours); None is UTC.
    default_timezone: Mapped[str | None] = mapped_column(String(64))
    # Its own request limits per route class (`{"send": "6000/minute"}`), over the settings'.
    rate_limits: Mapped[dict[str, Any] | None]
    # End-user sign-in (domain.enduser.AuthConfig as JSON): issuer, audience, public keys,
    # JWKS URL, CORS origins. None: API keys only.
    auth: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # The HS256 secret of that sign-in, sealed with the secrets key like credentials.
    auth_secret: Mapped[str | None] = mapped_column(Text)


class APIKey(Base):
    """A hashed API key. The secret is shown once at creation and never stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Its own request limit (`600/minute`), over the settings' per-key defaults.
    rate_limit: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_api_keys_app_id", "app_id"),)


class Device(Base):
    """A push address: an FCM or APNs token, or a Web Push subscription (endpoint + keys)."""

    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    # The FCM registration token, the APNs device token, or the Web Push endpoint URL.
    token: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str | None] = mapped_column(String(100))
    auth: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime | None]
    user_id: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    app_version: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Registered again or delivered to (store/device_expiry.py `seen`: at most daily).
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When `device.expiring` was announced (unseen too long); cleared when it is seen again.
    expiring_at: Mapped[datetime | None]
    # Set when the device is deleted (soft) or a provider says the token is gone; kept for history.
    invalidated_at: Mapped[datetime | None]
    invalidation_reason: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        UniqueConstraint("app_id", "platform", "token", name="uq_devices_app_platform_token"),
        Index("ix_devices_app_user", "app_id", "user_id"),
        # Broadcast fan-out streams an app's devices in id order.
        Index("ix_devices_app_id", "app_id", "id"),
    )


class DeviceTopic(Base):
    """A device's subscription to a topic; indexed for streaming a topic's audience by id."""

    __tablename__ = "device_topics"

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_device_topics_app_topic_device", "app_id", "topic", "device_id"),)


class Job(Base):
    """A message of the embedded broker: waiting, leased to a consumer, delayed, or dead.

    `run_at` is when the job may next be handed out. A consumer claims a job by moving `run_at`
    to the end of its lease, so a job whose consumer died becomes claimable again by itself.
    """

    __tablename__ = "jobs"

    # A 32-bit id would run out within days at thousands of jobs a second; SQLite's rowid is
    # already 64-bit and only an INTEGER primary key becomes it.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    queue: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes]
    headers: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(default=1)
    # Deliveries since the job was last published or retried; above 1 means redelivered.
    claims: Mapped[int] = mapped_column(default=0)
    run_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    # The queue a dead letter came from, and why it failed (or why it was last retried).
    origin: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_jobs_queue_run_at", "queue", "run_at"),)


class Notification(Base):
    """An accepted send request: what to send (`message`), to whom (`target`), and its progress.

    `total` counts the deliveries dispatch created and `finished` those with a final status;
    dispatch sets `dispatched_at` when the audience is fully expanded, and the notification is
    final once both hold and `finished == total`. Per-outcome counts come from `deliveries`.
    """

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    target: Mapped[dict[str, Any]]
    message: Mapped[dict[str, Any]]
    category: Mapped[str | None] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # What decides, per delivery, whether and when it goes and in which words: the template
    # used, transactional, quiet hours, local time, throttle (`NotificationCreate.options`).
    # None for a plain notification, which dispatch then expands without looking further.
    options: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    # A template's rendering per locale variant, `{locale: message}`, besides `message` (the
    # default locale's); a delivery's `locale` picks one.
    renders: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    send_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # Keyset position of the audience expansion, so a redelivered dispatch job resumes.
    dispatch_cursor: Mapped[str | None] = mapped_column(String(100))
    # A dispatching worker holds the notification until then; a dead worker's hold runs out.
    lease_until: Mapped[datetime | None]
    total: Mapped[int] = mapped_column(Integer, default=0)
    finished: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("app_id", "idempotency_key", name="uq_notifications_app_idempotency"),
        Index("ix_notifications_app_created", "app_id", "id"),
        Index("ix_notifications_status_send_at", "status", "send_at"),
    )


class Delivery(Base):
    """One notification to one device (or raw token): its status, attempts and last answer.

    The address is copied from the device so a send needs no join and raw tokens fit the same
    shape; `lease_until` marks a claim by a worker, so a redelivered job does not send twice and
    a dead worker's claims expire.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    platform: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str | None] = mapped_column(String(100))
    auth: Mapped[str | None] = mapped_column(String(40))
    # The template variant this delivery sends (a key of its notification's `renders`); None
    # is the notification's `message`.
    locale: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_deliveries_notification", "notification_id", "id"),
        # The sweeper's three scans (store/deliveries.py reclaim_stale), one partial index each:
        # a delivery that reaches a final status leaves no entry in any of them (see
        # migration 0006).
        *(
            Index(
                f"ix_deliveries_{status}",
                column,
                postgresql_where=text(f"status = '{status}'"),
                sqlite_where=text(f"status = '{status}'"),
            )
            for column, status in (
                ("updated_at", "pending"),
                ("next_attempt_at", "retrying"),
                ("lease_until", "sending"),
                # The sweeper releases deferred deliveries when their time comes (0008).
                ("next_attempt_at", "deferred"),
            )
        ),
    )


class AppCredential(Base):
    """An app's credentials for FCM (a service account) or APNs (a .p8 signing key).

    `secret` is the key material encrypted at rest (Fernet, see store/credentials.py); the other
    columns are what an admin may see. `fingerprint` tells two secrets apart without showing
    either.
    """

    __tablename__ = "app_credentials"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str | None] = mapped_column(String(255))
    client_email: Mapped[str | None] = mapped_column(String(255))
    key_id: Mapped[str | None] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(64))
    topic: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("app_id", "platform", name="uq_app_credentials_app_platform"),
    )


class Template(Base):
    """One version of an app's template: per-locale variants of the message's text fields,
    rendered with variables. Versions are never changed: an edit adds the next one, and a
    notification records the version it used."""

    __tablename__ = "templates"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    default_locale: Mapped[str] = mapped_column(String(35))
    # {locale: {"title", "body", "url", "image", "data", "webpush", "fcm", "apns"}}
    variants: Mapped[dict[str, Any]]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("app_id", "code", "version", name="uq_templates_app_code_version"),
    )


class UserPreference(Base):
    """What one user of an app wants to receive and when: a global mute, opt-outs per category
    and per platform, quiet hours in a time zone, and the user's own locale and time zone (used
    for devices that give none)."""

    __tablename__ = "user_preferences"

    app_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    # {category: false} opts out; a category not named is received.
    categories: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {platform: false} opts out.
    platforms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # "HH:MM" wall-clock bounds in `quiet_timezone`; both or neither.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    quiet_timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """An app's webhook: a URL that gets its events (store/webhooks.py), signed per the
    Standard Webhooks spec with `secret` (sealed with the secrets key, like credentials).

    After a rotation `previous_secret` keeps signing, as a second signature, until
    `previous_secret_until`, so receivers can switch keys without missing an event.
    """

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSONType)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    # Failed attempts in a row; reset by a 2xx, and the webhook is disabled at the setting's limit.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_webhooks_app_id", "app_id"),)


class WebhookEvent(Base):
    """The outbox: one event for one webhook, written in the transaction of its cause, sent by
    the worker's webhook sender (sending/webhooks.py) in order per (webhook, ordering_key)."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    app_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    # Events with the same key (a device id, a notification id) go out one after another.
    ordering_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # While a sender holds it (a lapsed lease lets another sender take it back).
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        # The sender's scan: due pending events, oldest first.
        Index(
            "ix_webhook_events_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # "Is an earlier event for this key still unsent?" and a webhook's deliveries.
        Index("ix_webhook_events_webhook_key", "webhook_id", "ordering_key", "id"),
    )


class DeadLetterRecord(Base):
    """A message that failed for good, moved out of the broker's `failed` queue by the worker's
    recorder (sending/dead_letters.py) so it can be listed per app, filtered, replayed and purged.

    `app_id` is the app the letter is about; None only for a letter whose app is unknown while
    no `default` app exists. `replayed_at` set: put back on its queue (and out of the list)."""

    __tablename__ = "dead_letters"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    app_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    # The broker's id of the letter: the recorder looks it up to skip a redelivered letter.
    message_id: Mapped[str] = mapped_column(String(255))
    queue: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    # A bounded word for filters (an outcome kind, an error code, `bad_job`), never free text.
    reason_code: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str | None] = mapped_column(String(32))
    notification_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime]
    body: Mapped[bytes]
    headers: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_dead_letters_app_id_failed_at", "app_id", "failed_at", "id"),
        Index("ix_dead_letters_message_id", "message_id"),
    )


# The analytics rollups live in their own module, as do the lifecycle job's indexes; importing
# them here puts them in `Base.metadata` (migrations, the schema checks) wherever the tables
# are. At the bottom: they need `Base` and the tables.
from pushgate.store import lifecycle_indexes, rollup_tables  # noqa: E402, F401
