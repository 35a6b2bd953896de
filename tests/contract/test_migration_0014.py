"""Migration 0014 on SQLite and PostgreSQL: a device's `last_seen_at` becomes its last
successful delivery when that is later than its last registration (deliveries moved it only
from this revision on), and nothing else changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.store import migrate
from tests.contract import test_migrations

empty_engine = test_migrations.empty_engine  # the fixture: a database with no tables

REGISTERED = datetime(2025, 1, 1, tzinfo=UTC)


def value(engine: AsyncEngine, moment: datetime | uuid.UUID) -> Any:
    """A bind value as the models store it: SQLite keeps text (UTC, microseconds; UUIDs as
    32 hex digits), PostgreSQL its own types."""
    if engine.dialect.name != "sqlite":
        return moment
    if isinstance(moment, uuid.UUID):
        return moment.hex
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def test_last_seen_at_takes_the_last_successful_delivery(empty_engine: AsyncEngine) -> None:
    # Given a database at 0013: three devices registered on 2025-01-01, one delivered to
    # since (twice), one only failed since, one delivered to before it registered
    await migrate.upgrade(empty_engine, "0013")
    app, notification = uuid.uuid4(), uuid.uuid4()
    devices = {name: uuid.uuid4() for name in ("delivered", "failed", "earlier")}
    deliveries = [
        ("delivered", "sent", datetime(2026, 3, 1, tzinfo=UTC)),
        ("delivered", "sent", datetime(2026, 6, 1, 12, 30, tzinfo=UTC)),
        ("failed", "failed", None),
        ("earlier", "sent", datetime(2024, 6, 1, tzinfo=UTC)),
    ]

    def v(x: datetime | uuid.UUID) -> Any:
        return value(empty_engine, x)

    async with empty_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key)"
                " VALUES (:id, 'acme', :at, 'pub', 'priv')"
            ),
            {"id": v(app), "at": v(REGISTERED)},
        )
        for name, device_id in devices.items():
            await connection.execute(
                text(
                    "INSERT INTO devices (id, app_id, platform, token, metadata, enabled,"
                    " created_at, updated_at, last_seen_at)"
                    " VALUES (:id, :app, 'fcm', :token, '{}', true, :at, :at, :at)"
                ),
                {"id": v(device_id), "app": v(app), "token": name, "at": v(REGISTERED)},
            )
        await connection.execute(
            text(
                "INSERT INTO notifications (id, app_id, status, target, message, metadata,"
                " expires_at, total, finished, created_at, updated_at)"
                " VALUES (:id, :app, 'completed', '{}', '{}', '{}', :at, 4, 4, :at, :at)"
            ),
            {"id": v(notification), "app": v(app), "at": v(REGISTERED)},
        )
        for name, status, sent_at in deliveries:
            await connection.execute(
                text(
                    "INSERT INTO deliveries (notification_id, app_id, device_id, platform, token,"
                    " status, attempts, created_at, updated_at, sent_at)"
                    " VALUES (:n, :app, :device, 'fcm', :token, :status, 1, :at, :at, :sent)"
                ),
                {
                    "n": v(notification),
                    "app": v(app),
                    "device": v(devices[name]),
                    "token": name,
                    "status": status,
                    "at": v(REGISTERED),
                    "sent": None if sent_at is None else v(sent_at),
                },
            )

    # When
    await migrate.upgrade(empty_engine)

    # Then
    async with empty_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT token, last_seen_at, expiring_at FROM devices ORDER BY token")
        )
        seen = {row.token: (row.last_seen_at, row.expiring_at) for row in rows}
    assert seen == {
        "delivered": (v(datetime(2026, 6, 1, 12, 30, tzinfo=UTC)), None),
        "earlier": (v(REGISTERED), None),
        "failed": (v(REGISTERED), None),
    }
