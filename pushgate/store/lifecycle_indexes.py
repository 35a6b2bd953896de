"""The partial indexes of the lifecycle job (store/retention.py, store/device_expiry.py):
each of its scans walks one of them in order and stops at the batch size, so a run costs what
it deletes or changes, not the size of the table. Attached to their tables (store/tables.py
imports this module); migration 0014 makes them."""

from __future__ import annotations

from sqlalchemy import Column, Index, Table, text

from pushgate.store.tables import DeadLetterRecord, Device, Notification

_DEVICES: Table = Device.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
_DEAD_LETTERS: Table = DeadLetterRecord.__table__  # type: ignore[assignment]


def _partial(name: str, column: Column[object], where: str) -> Index:
    return Index(name, column, postgresql_where=text(where), sqlite_where=text(where))


INDEXES = (
    # Live devices by when they were last seen, until `device.expiring` is announced.
    _partial(
        "ix_devices_unseen",
        _DEVICES.c.last_seen_at,
        "invalidated_at IS NULL AND expiring_at IS NULL",
    ),
    # Announced devices by when they were announced: deactivated after the grace.
    _partial(
        "ix_devices_expiring",
        _DEVICES.c.expiring_at,
        "invalidated_at IS NULL AND expiring_at IS NOT NULL",
    ),
    # Live Web Push subscriptions that have an `expirationTime`.
    _partial(
        "ix_devices_subscription_expiry",
        _DEVICES.c.expires_at,
        "invalidated_at IS NULL AND expires_at IS NOT NULL",
    ),
    # Deactivated devices, purged after `retention.deleted_devices_days`.
    _partial("ix_devices_invalidated", _DEVICES.c.invalidated_at, "invalidated_at IS NOT NULL"),
    # Notifications whose idempotency key is still kept, in id (creation) order.
    _partial("ix_notifications_idempotency", _NOTIFICATIONS.c.id, "idempotency_key IS NOT NULL"),
    Index("ix_dead_letters_recorded_at", _DEAD_LETTERS.c.recorded_at),
)
