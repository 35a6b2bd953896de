"""Bulk device registration straight into the store, and the database reads a scenario polls.

Registration is not what the bench measures, so devices are inserted in large batches through
the store's tables rather than one API call each. Web Push keys are valid P-256 points (pushgate
encrypts to them), taken round-robin from a small pool: making a million key pairs would take
minutes. FCM and APNs devices are a token each.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pushgate.domain.ids import new_id
from pushgate.store import db
from pushgate.store.tables import Delivery, Device, Notification, utcnow

KEY_POOL = 256
BATCH = 5000


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class Address:
    """One device row to insert: its platform and token (Web Push: endpoint and keys)."""

    platform: str
    token: str
    p256dh: str | None = None
    auth: str | None = None

    @classmethod
    def of(cls, sub: Subscription) -> Address:
        return cls("webpush", sub.endpoint, sub.p256dh, sub.auth)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_pool(size: int = KEY_POOL) -> list[tuple[str, str]]:
    """(p256dh, auth) pairs of real P-256 public keys and 16-byte secrets."""
    pool = []
    for _ in range(size):
        point = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
        pool.append((_b64(point), _b64(os.urandom(16))))
    return pool


def subscriptions(endpoints: Sequence[str]) -> list[Subscription]:
    pool = key_pool(min(KEY_POOL, max(1, len(endpoints))))
    return [
        Subscription(endpoint, *pool[index % len(pool)]) for index, endpoint in enumerate(endpoints)
    ]


async def _insert(
    url: str, app_id: uuid.UUID, addresses: Sequence[Address], *, users: bool
) -> list[uuid.UUID]:
    engine = db.create_engine(url, pool_size=2)
    ids: list[uuid.UUID] = []
    try:
        now = utcnow()
        for start in range(0, len(addresses), BATCH):
            rows = []
            for address in addresses[start : start + BATCH]:
                device_id = new_id()
                ids.append(device_id)
                row = _row(device_id, app_id, address, now)
                if users:
                    row["user_id"] = f"bench-{device_id.hex}"
                rows.append(row)
            async with engine.begin() as connection:
                await connection.execute(insert(Device), rows)
    finally:
        await engine.dispose()
    return ids


def _row(
    device_id: uuid.UUID, app_id: uuid.UUID, address: Address, now: datetime
) -> dict[str, object]:
    return {
        "id": device_id,
        "app_id": app_id,
        "platform": address.platform,
        "token": address.token,
        "p256dh": address.p256dh,
        "auth": address.auth,
        "enabled": True,
        "meta": {},
        "created_at": now,
        "updated_at": now,
        "last_seen_at": now,
    }


def insert_devices(
    url: str, app_id: uuid.UUID, subs: Sequence[Subscription], *, users: bool = False
) -> list[uuid.UUID]:
    """Insert Web Push devices; their ids in the order given (UUIDv7: also the fan-out order).
    With `users`, each device belongs to a user of its own."""
    return insert_addresses(url, app_id, [Address.of(sub) for sub in subs], users=users)


def insert_addresses(
    url: str, app_id: uuid.UUID, addresses: Sequence[Address], *, users: bool = False
) -> list[uuid.UUID]:
    """Insert devices of any platform; their ids in the order given."""
    return asyncio.run(_insert(url, app_id, addresses, users=users))


@dataclass(frozen=True)
class Progress:
    notifications: int
    dispatched: int
    total: int
    finished: int


async def progress(engine_url: str) -> Progress:
    engine = db.create_engine(engine_url, pool_size=1)
    try:
        return await read_progress(engine)
    finally:
        await engine.dispose()


async def read_progress(engine: AsyncEngine) -> Progress:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    func.count(),
                    func.count(Notification.dispatched_at),
                    func.coalesce(func.sum(Notification.total), 0),
                    func.coalesce(func.sum(Notification.finished), 0),
                )
            )
        ).one()
    return Progress(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def delivery_summary(engine: AsyncEngine) -> dict[str, Any]:
    """Deliveries per status, attempts beyond the first, the commonest errors of those not
    sent, and the last record time."""
    async with engine.connect() as connection:
        statuses = dict(
            (
                await connection.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                )
            ).all()
        )
        extra, last = (
            await connection.execute(
                select(
                    func.coalesce(func.sum(Delivery.attempts - 1), 0), func.max(Delivery.updated_at)
                )
            )
        ).one()
        errors = (
            await connection.execute(
                select(Delivery.status, Delivery.error, func.count())
                .where(Delivery.status != "sent")
                .group_by(Delivery.status, Delivery.error)
                .order_by(func.count().desc())
                .limit(3)
            )
        ).all()
        first_dispatch, last_dispatch = (
            await connection.execute(
                select(func.min(Notification.created_at), func.max(Notification.dispatched_at))
            )
        ).one()
    return {
        "statuses": {str(k): int(v) for k, v in statuses.items()},
        "extra_attempts": int(extra or 0),
        "errors": [f"{status} x{count}: {error}" for status, error, count in errors],
        "last_recorded": last,
        "first_created": first_dispatch,
        "last_dispatched": last_dispatch,
    }
