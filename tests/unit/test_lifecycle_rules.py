"""The lifecycle job's pure rules: which rows of a batch may go and when a walk is over, the
UUIDv7 bound of a creation time, the settings' names and defaults, and which device count an
expiry adds to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pushgate.domain import ids
from pushgate.domain.notification import FINAL_DELIVERY
from pushgate.settings import load_settings
from pushgate.store import rollups
from pushgate.store.retention import Row, pick

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FINAL = sorted(s.value for s in FINAL_DELIVERY)
DAY = timedelta(days=1)


def row(key: int, status: str, finished: datetime | None, created: datetime | None = None) -> Row:
    return Row(key, status, finished, created or (finished or T) - DAY)


def test_only_final_rows_finished_before_the_cutoff_are_picked() -> None:
    # Given a batch: old and final, old but open, final but too recent, final with no time
    rows = [
        row(1, "sent", T - 40 * DAY),
        row(2, "pending", T - 40 * DAY),
        row(3, "retrying", T - 40 * DAY),
        row(4, "failed", T - 31 * DAY),
        row(5, "sent", T - 29 * DAY, created=T - 35 * DAY),
        row(6, "skipped", None, created=T - 50 * DAY),
        row(7, "canceled", T - 30 * DAY - timedelta(seconds=1)),
    ]

    # When
    chosen, over = pick(rows, final=FINAL, before=T - 30 * DAY)

    # Then
    assert chosen == [1, 4, 7]
    assert over is False


def test_a_row_made_after_the_cutoff_ends_the_walk() -> None:
    rows = [row(1, "sent", T - 40 * DAY), row(2, "sent", T, created=T - 29 * DAY)]

    chosen, over = pick(rows, final=FINAL, before=T - 30 * DAY)

    assert chosen == [1]
    assert over is True


def test_the_id_floor_separates_ids_made_before_a_moment_from_those_after() -> None:
    ms = int(T.timestamp() * 1000)
    before = [ids.new_id(ms - 1) for _ in range(50)]
    at_or_after = [ids.new_id(ms) for _ in range(50)] + [ids.new_id(ms + 1)]

    bound = ids.floor(T)

    assert all(i < bound for i in before)
    assert all(i >= bound for i in at_or_after)
    # and as text (SQLite keeps UUIDs as 32 hex digits): the same order
    assert all(i.hex < bound.hex for i in before)
    assert all(i.hex >= bound.hex for i in at_or_after)


def test_lifecycle_settings_defaults() -> None:
    settings = load_settings()

    assert settings.retention.model_dump() == {
        "deliveries_days": 30,
        "notifications_days": 30,
        "idempotency_hours": 24,
        "dead_letters_days": 14,
        "deleted_devices_days": 30,
        "batch_size": 1000,
        "interval_seconds": 300.0,
    }
    assert (settings.devices.stale_after_days, settings.devices.stale_grace_days) == (270, 14)


def test_lifecycle_settings_come_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "RETENTION__DELIVERIES_DAYS": "7",
        "RETENTION__NOTIFICATIONS_DAYS": "90",
        "RETENTION__IDEMPOTENCY_HOURS": "48",
        "RETENTION__DEAD_LETTERS_DAYS": "3",
        "RETENTION__DELETED_DEVICES_DAYS": "0",
        "RETENTION__BATCH_SIZE": "500",
        "RETENTION__INTERVAL_SECONDS": "60",
        "DEVICES__STALE_AFTER_DAYS": "0",
        "DEVICES__STALE_GRACE_DAYS": "3",
    }.items():
        monkeypatch.setenv(f"PUSHGATE_{name}", value)

    settings = load_settings()

    keep = settings.retention
    assert (keep.deliveries_days, keep.notifications_days, keep.idempotency_hours) == (7, 90, 48)
    assert (keep.dead_letters_days, keep.deleted_devices_days) == (3, 0)
    assert (keep.batch_size, keep.interval_seconds) == (500, 60.0)
    assert (settings.devices.stale_after_days, settings.devices.stale_grace_days) == (0, 3)


def test_expired_and_stale_deactivations_count_as_expired() -> None:
    assert rollups.invalidation_kind("expired") == "expired"
    assert rollups.invalidation_kind("stale") == "expired"
    assert rollups.invalidation_kind("Unregistered") == "invalidated"
