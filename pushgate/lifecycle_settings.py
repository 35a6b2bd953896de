"""The settings sections of the data lifecycle: `retention` (how long finished rows are kept
before the worker's lifecycle job deletes them) and `devices` (when a device nobody has seen
is announced as expiring, and then deactivated). Part of `Settings` (settings.py), kept apart
to keep that module small; the job is sending/lifecycle.py."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetentionSettings(BaseModel):
    """How long each kind of row is kept once it is done with; 0 keeps it forever. The
    analytics rollups are never deleted: `/v1/analytics/*` keeps its answers."""

    # A delivery with a final status, counted from its last change.
    deliveries_days: int = Field(default=30, ge=0, le=36_500)
    # A notification with a final status, counted from its completion; its deliveries go
    # with it (a delivery cannot outlive its notification).
    notifications_days: int = Field(default=30, ge=0, le=36_500)
    # A finished notification's idempotency key, counted from its completion (not from the
    # request: a long send keeps its key for its whole run): after it the same key makes a new
    # notification.
    idempotency_hours: int = Field(default=24, ge=0, le=876_000)
    # A recorded dead letter, counted from when it was recorded.
    dead_letters_days: int = Field(default=14, ge=0, le=36_500)
    # A deactivated device (deleted by the app, or deactivated by a provider or by expiry),
    # counted from its deactivation: after it the row and its topics are deleted for good.
    deleted_devices_days: int = Field(default=30, ge=0, le=36_500)
    # Rows per statement: each batch is its own short transaction.
    batch_size: int = Field(default=1000, ge=1, le=50_000)
    # How often one of the workers runs the job (a key-value lock picks which).
    interval_seconds: float = Field(default=300.0, gt=0, le=86_400)


class DeviceExpirySettings(BaseModel):
    """Devices nobody has seen: neither registered again nor delivered to successfully.

    After `stale_after_days` unseen (FCM itself drops a token unused for 270 days) the device
    gets a `device.expiring` webhook event; `stale_grace_days` later, still unseen, it is
    deactivated with reason `stale`. 0 days: devices never go stale. A Web Push subscription
    past its `expirationTime` is deactivated (`expired`) whatever these say."""

    stale_after_days: int = Field(default=270, ge=0, le=36_500)
    stale_grace_days: int = Field(default=14, ge=0, le=36_500)
