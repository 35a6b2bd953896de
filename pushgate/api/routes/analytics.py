"""Analytics: deliveries, devices and notifications over time, read from the rollups (never
from the raw rows, so an answer costs the same at ten million deliveries as at ten)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.deps import NotificationReader, SessionDep
from pushgate.api.schemas import analytics as schemas
from pushgate.domain import storable, subscription
from pushgate.domain.analytics import Interval, Stats, Window
from pushgate.domain.preferences import Category
from pushgate.store import analytics
from pushgate.store.tables import utcnow

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

Provider = Annotated[str, Query(min_length=1, max_length=16), storable.TEXT]
Since = Annotated[
    storable.Instant | None,
    Query(description="Start (ISO 8601); rounded down to its bucket. Default: see interval."),
]
Until = Annotated[storable.Instant | None, Query(description="End (ISO 8601). Default: now.")]


@dataclass(frozen=True, slots=True)
class Asked:
    """Who asks (their app is the only one read) and for which time range."""

    app_id: uuid.UUID
    session: AsyncSession
    since: datetime | None
    until: datetime | None

    def window(self, interval: Interval) -> Window:
        return Window.of(interval, self.since, self.until, now=utcnow())


async def _asked(
    caller: NotificationReader, session: SessionDep, since: Since = None, until: Until = None
) -> Asked:
    return Asked(caller.app_id, session, since, until)


AskedDep = Annotated[Asked, Depends(_asked)]


@router.get("/deliveries", summary="Deliveries by time, provider and category")
async def deliveries(
    asked: AskedDep,
    interval: Annotated[
        Interval, Query(description="Bucket size; default range 24 h by hour, 30 days by day.")
    ] = Interval.HOUR,
    provider: Provider | None = None,
    category: Category | None = None,
) -> schemas.DeliveryAnalytics:
    window = asked.window(interval)
    found = {}
    for group in ("time", "provider", "category"):
        found[group] = await analytics.delivery_stats(
            session=asked.session,
            app_id=asked.app_id,
            since=window.since,
            until=window.end,
            group=group,
            interval=interval,
            provider=provider,
            category=category,
        )
    totals = Stats()
    for stats in found["provider"].values():
        totals.merge(stats)
    by_time = found["time"]
    return schemas.DeliveryAnalytics.model_validate(
        {
            "interval": interval.value,
            "since": window.since,
            "until": window.until,
            "totals": totals.public(),
            "series": [
                {"time": start, **by_time.get(start, Stats()).public()} for start in window.starts()
            ],
            "by_provider": [
                {"provider": name, **stats.public()} for name, stats in _ranked(found["provider"])
            ],
            "by_category": [
                {"category": name, **stats.public()} for name, stats in _ranked(found["category"])
            ],
        }
    )


def _ranked(groups: dict[str | None, Stats]) -> list[tuple[str | None, Stats]]:
    """Most deliveries first; ties by name (no category first)."""
    return sorted(groups.items(), key=lambda item: (-item[1].total, item[0] or ""))


@router.get("/devices", summary="Active devices, and new and gone ones per day and platform")
async def devices(asked: AskedDep, platform: Provider | None = None) -> schemas.DeviceAnalytics:
    window = asked.window(Interval.DAY)
    counts = await analytics.device_days(
        session=asked.session,
        app_id=asked.app_id,
        since=window.since,
        until=window.end,
        platform=platform,
    )
    active = await analytics.active_devices(
        session=asked.session, app_id=asked.app_id, platform=platform
    )
    if platform is not None:
        platforms = [platform]
    else:
        builtin = [str(p) for p in subscription.Platform]
        seen = {p for _, p in counts} | set(active)
        platforms = builtin + sorted(seen - set(builtin))
    zero = dict.fromkeys(("new", "invalidated", "expired", "deleted"), 0)
    return schemas.DeviceAnalytics.model_validate(
        {
            "since": window.since,
            "until": window.until,
            "active": {p: active.get(p, 0) for p in platforms},
            "days": [
                {"day": day.date().isoformat(), "platform": p, **counts.get((day, p), zero)}
                for day in window.starts()
                for p in platforms
            ],
        }
    )


@router.get("/notifications", summary="Notifications per category and day")
async def notifications(
    asked: AskedDep,
    interval: Annotated[
        Literal["day"], Query(description="Notifications are counted per day.")
    ] = "day",
) -> schemas.NotificationAnalytics:
    window = asked.window(Interval.DAY)
    span: dict[str, Any] = {
        "session": asked.session,
        "app_id": asked.app_id,
        "since": window.since,
        "until": window.end,
    }
    accepted = await analytics.notification_counts(**span, by=["category"])
    per_day = await analytics.notification_counts(**span, by=["day"])
    sent = await analytics.delivery_stats(**span, group="category")
    names = sorted(
        set(accepted) | set(sent), key=lambda c: (-accepted.get(c, 0), -_total(sent, c), c or "")
    )
    by_category = []
    for name in names:
        stats = sent.get(name, Stats()).public()
        by_category.append(
            {
                "category": name,
                "notifications": accepted.get(name, 0),
                "deliveries": {"total": stats["total"], "by_outcome": stats["by_outcome"]},
                "success_rate": stats["success_rate"],
                "latency_ms": stats["latency_ms"],
            }
        )
    return schemas.NotificationAnalytics.model_validate(
        {
            "interval": interval,
            "since": window.since,
            "until": window.until,
            "by_category": by_category,
            "series": [
                {"time": day, "notifications": per_day.get(day, 0)} for day in window.starts()
            ],
        }
    )


def _total(groups: dict[str | None, Stats], name: str | None) -> int:
    stats = groups.get(name)
    return 0 if stats is None else stats.total
