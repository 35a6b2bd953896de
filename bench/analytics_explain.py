"""The analytics queries at scale: fill a database of its own with 10,000,000 deliveries (and
100,000 notifications, 1,000,000 devices) with generate_series, build the rollups from them as
the pipeline would have kept them, then run every query the analytics API makes under
EXPLAIN (ANALYZE, BUFFERS) and time the three answers. docs/analytics.md shows its output.

    createdb -h 127.0.0.1 -U postgres analytics_explain
    .venv/bin/python -m bench.analytics_explain postgresql+asyncpg://postgres@127.0.0.1/analytics_explain

`--skip-fill` reuses a database filled by an earlier run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pushgate.api.routes import analytics as routes
from pushgate.domain.analytics import Interval
from pushgate.store import db, migrate
from pushgate.store.tables import LATENCY_COLUMNS

ACME = uuid.UUID("00000000-0000-7000-8000-00000000ac3e")
OTHER = uuid.UUID("00000000-0000-7000-8000-0000000001be")
DELIVERIES = 10_000_000
PER_NOTIFICATION = 100
DEVICES = 1_000_000

# Each step one statement; the delivery mix: 90 % sent, 4 % invalid, 3 % failed, 2 % expired,
# 1 % rejected; latencies 20 ms to ~2 s, most near the bottom.
FILL = [
    "INSERT INTO apps (id, name, created_at, vapid_public_key, vapid_private_key) VALUES"
    " ('{acme}', 'explain-acme', now(), 'x', 'x'), ('{other}', 'explain-other', now(), 'x', 'x')",
    "CREATE UNLOGGED TABLE explain_notes AS SELECT n,"
    " ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid AS id,"
    " now() - interval '30 days' + n * (interval '30 days' / {notes}) AS created_at,"
    " (ARRAY['news', 'promo', 'alerts', 'billing', 'social', NULL])[1 + n % 6] AS category"
    " FROM generate_series(0, {notes} - 1) AS n",
    "INSERT INTO notifications (id, app_id, status, target, message, category, metadata,"
    " expires_at, total, finished, created_at, updated_at, dispatched_at, completed_at)"
    " SELECT id, '{acme}', 'completed', '{{}}', '{{\"ttl\": 3600}}', category, '{{}}',"
    " created_at + interval '1 day', {per}, {per}, created_at, created_at, created_at, created_at"
    " FROM explain_notes",
    "INSERT INTO deliveries (notification_id, app_id, platform, token, status, attempts,"
    " response_code, created_at, updated_at, sent_at)"
    " SELECT e.id, '{acme}', (ARRAY['fcm', 'apns', 'webpush'])[1 + g % 3], 'token-' || g,"
    " s.status, 1, 200, e.created_at, e.created_at + s.latency,"
    " CASE WHEN s.status = 'sent' THEN e.created_at + s.latency END"
    " FROM generate_series(0, {deliveries} - 1) AS g"
    " JOIN explain_notes AS e ON e.n = g / {per}"
    " CROSS JOIN LATERAL (SELECT CASE WHEN g % 100 < 90 THEN 'sent' WHEN g % 100 < 94 THEN"
    " 'invalid' WHEN g % 100 < 97 THEN 'failed' WHEN g % 100 < 99 THEN 'expired' ELSE"
    " 'rejected' END AS status, interval '1 millisecond' * (20 + 2000 * power(random(), 4))"
    " AS latency) AS s",
    "ANALYZE",
    # The rollups as 4 deliverer processes (4 shards) would have written them: hours, then days.
    "INSERT INTO delivery_rollups (app_id, period, start, provider, category, outcome, shard,"
    " count, {latency_columns})"
    " WITH per AS MATERIALIZED (SELECT d.app_id, date_trunc('hour', d.updated_at, 'UTC') AS start,"
    " d.platform, coalesce(e.category, '') AS category, d.status, d.id % 4 AS shard,"
    " CASE WHEN d.status <> 'sent' THEN -1"
    " WHEN extract(epoch FROM d.sent_at - d.created_at) * 1000 < 10 THEN 0"
    " ELSE least(40, 1 + floor(ln(extract(epoch FROM d.sent_at - d.created_at) * 100)"
    " / ln(1.25))::int) END AS b, count(*) AS n"
    " FROM deliveries AS d JOIN notifications AS e ON e.id = d.notification_id"
    " GROUP BY 1, 2, 3, 4, 5, 6, 7)"
    " SELECT app_id, 'hour', start, platform, category, status, shard, sum(n), {latency_sums}"
    " FROM per GROUP BY 1, 2, 3, 4, 5, 6, 7",
    "INSERT INTO delivery_rollups (app_id, period, start, provider, category, outcome, shard,"
    " count, {latency_columns}) SELECT app_id, 'day', date_trunc('day', start, 'UTC'), provider,"
    " category, outcome, shard, sum(count), {latency_day_sums} FROM delivery_rollups"
    " GROUP BY 1, 2, 3, 4, 5, 6, 7",
    "INSERT INTO notification_rollups (app_id, day, category, shard, notifications)"
    " SELECT app_id, date_trunc('day', created_at, 'UTC'), coalesce(category, ''),"
    " abs(hashtext(id::text)) % 4, count(*) FROM notifications GROUP BY 1, 2, 3, 4",
    # A million devices: one in twenty invalidated, one in a hundred of those as expired.
    "INSERT INTO devices (id, app_id, platform, token, enabled, metadata, created_at,"
    " updated_at, last_seen_at, invalidated_at, invalidation_reason)"
    " SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,"
    " '{acme}', (ARRAY['fcm', 'apns', 'webpush'])[1 + g % 3], 'device-' || g, true, '{{}}',"
    " now() - interval '60 days' + g * (interval '60 days' / {devices}), now(), now(),"
    " CASE WHEN g % 20 = 0 THEN now() - (g % 30) * interval '1 day' END,"
    " CASE WHEN g % 2000 = 0 THEN 'subscription expired' WHEN g % 20 = 0 THEN 'Unregistered'"
    " END FROM generate_series(0, {devices} - 1) AS g",
    "INSERT INTO device_rollups (app_id, day, platform, shard, new, invalidated, expired,"
    " deleted) SELECT app_id, day, platform, 0, sum(new), sum(invalidated), sum(expired), 0"
    " FROM (SELECT app_id, date_trunc('day', created_at, 'UTC') AS day, platform, 1 AS new,"
    " 0 AS invalidated, 0 AS expired FROM devices UNION ALL SELECT app_id,"
    " date_trunc('day', invalidated_at, 'UTC'), platform, 0,"
    " (invalidation_reason NOT LIKE '%expired%')::int, (invalidation_reason LIKE '%expired%')::int"
    " FROM devices WHERE invalidated_at IS NOT NULL) AS events GROUP BY 1, 2, 3",
    "INSERT INTO device_counts (app_id, platform, shard, active) SELECT app_id, platform,"
    " abs(hashtext(id::text)) % 4, count(*) FROM devices WHERE invalidated_at IS NULL"
    " GROUP BY 1, 2, 3",
    "DROP TABLE explain_notes",
]


async def fill(engine: AsyncEngine, deliveries: int, devices: int) -> None:
    await migrate.upgrade(engine)
    params = {
        "notes": deliveries // PER_NOTIFICATION,
        "per": PER_NOTIFICATION,
        "deliveries": deliveries,
        "devices": devices,
        "acme": ACME,
        "other": OTHER,
        "latency_columns": ", ".join(LATENCY_COLUMNS),
        "latency_sums": ", ".join(f"coalesce(sum(n) FILTER (WHERE b = {k}), 0)" for k in range(41)),
        "latency_day_sums": ", ".join(f"sum({c})" for c in LATENCY_COLUMNS),
    }
    for step in FILL:
        started = time.perf_counter()
        async with engine.begin() as connection:
            await connection.execute(text("SET LOCAL jit = off"))  # compiling costs more here
            await connection.execute(text(step.format(**params)))
        print(f"-- {time.perf_counter() - started:7.1f} s  {step[:70]}...", flush=True)
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE"))


async def sizes(engine: AsyncEngine) -> None:
    query = text(
        "SELECT relname, reltuples::bigint, pg_size_pretty(pg_total_relation_size(oid))"
        " FROM pg_class WHERE relname IN ('deliveries', 'notifications', 'devices',"
        " 'delivery_rollups', 'device_rollups', 'device_counts', 'notification_rollups')"
        " ORDER BY relname"
    )
    async with engine.connect() as connection:
        for name, rows, size in await connection.execute(query):
            print(f"{name:22} {rows:>12,} rows  {size}")


Answer = Callable[[AsyncSession], Awaitable[Any]]


def answers() -> dict[str, Answer]:
    def asked(session: AsyncSession) -> routes.Asked:
        return routes.Asked(ACME, session, None, None)

    return {
        "GET /v1/analytics/deliveries?interval=hour (last 24 h)": lambda s: routes.deliveries(
            asked(s), Interval.HOUR, None, None
        ),
        "GET /v1/analytics/deliveries?interval=day (last 30 days)": lambda s: routes.deliveries(
            asked(s), Interval.DAY, None, None
        ),
        "GET /v1/analytics/deliveries?interval=day&provider=fcm&category=news": (
            lambda s: routes.deliveries(asked(s), Interval.DAY, "fcm", "news")
        ),
        "GET /v1/analytics/devices (last 30 days)": lambda s: routes.devices(asked(s), None),
        "GET /v1/analytics/notifications (last 30 days)": lambda s: routes.notifications(
            asked(s), "day"
        ),
    }


async def explain(engine: AsyncEngine) -> None:
    sessions = db.session_maker(engine)
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    for title, answer in answers().items():
        timings = []
        for _ in range(5):
            async with sessions() as session:
                started = time.perf_counter()
                await answer(session)
                timings.append((time.perf_counter() - started) * 1000)
        captured.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        async with sessions() as session:
            await answer(session)
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        print(f"\n### {title}\n")
        print(
            f"Whole answer (queries + shaping, 5 runs): median {statistics.median(timings):.1f} ms,"
            f" min {min(timings):.1f} ms\n"
        )
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            for statement, parameters in captured:
                plan = await raw.fetch(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, *(parameters or ())
                )
                print("```")
                print(" ".join(statement.split()))
                print("--")
                print("\n".join(row[0] for row in plan))
                print("```")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="an empty PostgreSQL database of its own")
    parser.add_argument("--skip-fill", action="store_true")
    parser.add_argument("--deliveries", type=int, default=DELIVERIES)
    parser.add_argument("--devices", type=int, default=DEVICES)
    args = parser.parse_args()
    engine = db.create_engine(args.url)
    try:
        if not args.skip_fill:
            await fill(engine, args.deliveries, args.devices)
        await sizes(engine)
        await explain(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
