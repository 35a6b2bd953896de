"""What the analytics rollups add to recording a batch of outcomes: the per-delivery counting
in Python (`DeliveryTally.add`) and the one upsert per batch, timed beside the batch's own
UPDATE of the deliveries, on SQLite and on PostgreSQL. docs/analytics.md quotes its output.

    .venv/bin/python -m bench.analytics_cost postgresql+asyncpg://postgres@127.0.0.1/<own db>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from pushgate.domain.ids import new_id
from pushgate.store import db, deliveries, migrate, rollups
from pushgate.store.tables import App, Notification, utcnow

BATCH = 250
ROUNDS = 200


def batch_tally(app: uuid.UUID, now: datetime) -> rollups.DeliveryTally:
    """A batch's outcomes counted: three providers, two categories (six keys), all sent."""
    tally = rollups.DeliveryTally()
    for i in range(BATCH):
        tally.add(
            app_id=app,
            at=now,
            provider=("fcm", "apns", "webpush")[i % 3],
            category=("news", None)[i % 2],
            outcome="sent",
            latency_ms=40.0 + i,
        )
    return tally


def tally_cost() -> float:
    """Microseconds per delivery to count it."""
    app = uuid.uuid4()
    now = datetime.now(UTC)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        batch_tally(app, now)
    return (time.perf_counter() - started) / (ROUNDS * BATCH) * 1e6


async def statement_costs(url: str) -> tuple[float, float]:
    """Median milliseconds of one batch's deliveries UPDATE and of its rollup upsert."""
    engine = db.create_engine(url)
    sessions = db.session_maker(engine)
    try:
        await migrate.upgrade(engine)
        app, note = new_id(), new_id()
        now = utcnow()
        async with sessions() as session:
            await session.execute(
                insert(App).values(
                    id=app,
                    name=f"cost-{app.hex[:8]}",
                    created_at=now,
                    vapid_public_key="x",
                    vapid_private_key="x",
                )
            )
            await session.execute(
                insert(Notification).values(
                    id=note,
                    app_id=app,
                    status="dispatching",
                    target={},
                    message={},
                    meta={},
                    expires_at=now + timedelta(days=1),
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
        updates, upserts = [], []
        for _ in range(ROUNDS // 4):
            async with sessions() as session:
                items = [
                    deliveries.NewDelivery(device_id=None, platform="fcm", token=f"t{i}")
                    for i in range(BATCH)
                ]
                ids = await deliveries.insert_many(
                    session=session, notification_id=note, app_id=app, items=items, now=now
                )
                await session.commit()
            changes = [
                {
                    "id": i,
                    "status": "sent",
                    "updated_at": now,
                    "lease_until": None,
                    "response_code": 200,
                    "error": None,
                    "provider_message_id": "m",
                    "sent_at": now,
                }
                for i in ids
            ]
            tally = batch_tally(app, now)
            async with sessions() as session:
                started = time.perf_counter()
                await deliveries.record(session=session, changes=changes)
                middle = time.perf_counter()
                await rollups.add_deliveries(session=session, tally=tally)
                done = time.perf_counter()
                await session.commit()
            updates.append((middle - started) * 1000)
            upserts.append((done - middle) * 1000)
        return statistics.median(updates), statistics.median(upserts)
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("postgres_url", help="a PostgreSQL database of its own")
    args = parser.parse_args()
    print(f"counting: {tally_cost():.2f} µs per delivery ({BATCH}-delivery batches)")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{Path(tmp) / 'cost.db'}"
        for name, url in (("SQLite", sqlite), ("PostgreSQL", args.postgres_url)):
            update, upsert = await statement_costs(url)
            print(
                f"{name}: batch of {BATCH}: deliveries UPDATE {update:.2f} ms,"
                f" rollup upsert (6 keys x hour and day = 12 rows) {upsert:.2f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
