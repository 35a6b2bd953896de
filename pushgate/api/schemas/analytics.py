"""Analytics answers (`/v1/analytics/...`): delivery statistics over time, by provider and by
category; devices per platform and day; notifications per category and day."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class Stats(BaseModel):
    total: int = Field(description="Deliveries that reached a final status.")
    by_outcome: dict[str, int] = Field(
        description="Per final status: sent, failed, invalid, expired, rejected, skipped,"
        " canceled (zeros included)."
    )
    success_rate: float | None = Field(
        description="sent / (total - skipped - canceled); null when that is 0."
    )
    latency_ms: Percentiles = Field(
        description="End-to-end latency of the sent deliveries, from when the notification was"
        " due (accepted, or its send_at) to the provider's answer; from histogram buckets"
        " (docs/analytics.md: within 25 % between 10 ms and 60 s)."
    )


class TimeStats(Stats):
    time: datetime = Field(description="Start of the bucket (UTC).")


class ProviderStats(Stats):
    provider: str


class CategoryStats(Stats):
    category: str | None


class DeliveryAnalytics(BaseModel):
    interval: str
    since: datetime = Field(description="Start of the first bucket.")
    until: datetime
    totals: Stats
    series: list[TimeStats] = Field(description="Every bucket of the range, oldest first.")
    by_provider: list[ProviderStats]
    by_category: list[CategoryStats]


class DeviceDay(BaseModel):
    day: str = Field(description="The UTC day, YYYY-MM-DD.")
    platform: str
    new: int
    invalidated: int = Field(description="Deactivated on a provider's word (token invalid).")
    expired: int = Field(
        description="Deactivated as expired: a Web Push subscription past its expirationTime,"
        " a device unseen too long (`stale`), or a provider's reason that says expired."
    )
    deleted: int


class DeviceAnalytics(BaseModel):
    since: datetime
    until: datetime
    active: dict[str, int] = Field(description="Live devices per platform, now.")
    days: list[DeviceDay] = Field(description="Every day of the range per platform, oldest first.")


class DeliveryCounts(BaseModel):
    total: int
    by_outcome: dict[str, int]


class NotificationCategory(BaseModel):
    category: str | None
    notifications: int = Field(description="Notifications accepted on the range's days.")
    deliveries: DeliveryCounts = Field(description="Deliveries finished in the range.")
    success_rate: float | None
    latency_ms: Percentiles


class NotificationDay(BaseModel):
    time: datetime
    notifications: int


class NotificationAnalytics(BaseModel):
    interval: str
    since: datetime
    until: datetime
    by_category: list[NotificationCategory]
    series: list[NotificationDay]
