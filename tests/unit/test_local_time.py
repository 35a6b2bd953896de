"""Local-time delivery's pure rules: a wall-clock time's instant in a zone across daylight-saving
changes, which time zone names count, the zone fallback order, and what a request with
`send_at_local` accepts, refuses, and schedules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from pushgate.domain import localtime
from pushgate.domain.message import MAX_TTL_SECONDS
from pushgate.domain.request import NotificationCreate
from pushgate.sending import notification_cache, timing

PARIS = localtime.zone("Europe/Paris")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_wall_time_in_the_spring_gap_moves_forward_by_the_gap() -> None:
    # 2027-03-28: Paris goes from 02:00 CET straight to 03:00 CEST, so 02:30 never happens
    assert PARIS is not None
    went = localtime.instant(datetime(2027, 3, 28, 2, 30), PARIS)

    assert went == at("2027-03-28T01:30")
    assert went.astimezone(PARIS).strftime("%H:%M %Z") == "03:30 CEST"


def test_a_wall_time_in_the_autumn_overlap_goes_at_its_first_occurrence() -> None:
    # 2026-10-25: Paris goes back from 03:00 CEST to 02:00 CET, so 02:30 happens twice
    assert PARIS is not None
    went = localtime.instant(datetime(2026, 10, 25, 2, 30), PARIS)

    assert went == at("2026-10-25T00:30")  # 02:30 CEST, not 02:30 CET an hour later
    assert went.astimezone(PARIS).strftime("%H:%M %Z") == "02:30 CEST"


def test_wall_times_either_side_of_a_change_keep_their_own_offsets() -> None:
    assert PARIS is not None
    assert localtime.instant(datetime(2027, 3, 28, 1, 59), PARIS) == at("2027-03-28T00:59")
    assert localtime.instant(datetime(2027, 3, 28, 3, 0), PARIS) == at("2027-03-28T01:00")
    assert localtime.instant(datetime(2026, 10, 25, 3, 0), PARIS) == at("2026-10-25T02:00")


@pytest.mark.parametrize("name", [None, "", "Mars/Olympus_Mons", "../../etc/passwd", "Europe/"])
def test_a_name_that_is_no_time_zone_is_none(name: str | None) -> None:
    assert localtime.zone(name) is None


def test_a_device_zone_wins_then_the_user_then_the_app_then_utc() -> None:
    zones = timing.Zones({"ada": "Asia/Tokyo", "bob": "Nowhere/Special"}, "America/New_York")

    assert zones.of("Europe/Paris", "ada") == localtime.zone("Europe/Paris")
    assert zones.of("Not/AZone", "ada") == localtime.zone("Asia/Tokyo")
    assert zones.of(None, "bob") == localtime.zone("America/New_York")
    assert zones.of(None, None) == localtime.zone("America/New_York")
    assert timing.Zones({}, None).of("Bad/Zone", "carol") is UTC


def test_the_preferences_steps_rows_give_the_users_zones() -> None:
    facts = {"preferences": {"ada": SimpleNamespace(timezone="Asia/Tokyo"), "bob": {}}}

    assert timing._known_users(facts) == {"ada": "Asia/Tokyo", "bob": None}
    assert timing._known_users({}) is None


# --- the request ---------------------------------------------------------------------------


def request(**fields: Any) -> NotificationCreate:
    return NotificationCreate.model_validate({"broadcast": True, "title": "Hi", **fields})


def refused_field(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        request(**fields)
    [first] = caught.value.errors()
    return ".".join(str(part) for part in first["loc"])


@pytest.mark.parametrize("value", ["2026-12-24T09:00+01:00", "2026-12-24T09:00Z", 1798099200])
def test_a_local_time_with_an_offset_is_refused(value: object) -> None:
    assert refused_field(send_at_local=value) == "send_at_local"


def test_send_at_and_send_at_local_together_are_refused() -> None:
    field = refused_field(send_at="2026-12-24T09:00Z", send_at_local="2026-12-24T09:00")
    assert field == "send_at_local"


@pytest.mark.parametrize("years", [101, -101])
def test_a_local_time_more_than_a_hundred_years_away_is_refused(years: int) -> None:
    far = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=365 * years)
    assert refused_field(send_at_local=far.isoformat()) == "send_at_local"


def test_a_local_time_is_scheduled_for_its_first_zone_and_lives_until_its_last() -> None:
    # Given 09:00 local, asked for the day before
    made = request(send_at_local="2030-12-24T09:00", ttl=3600)
    now = at("2030-12-23T12:00")

    # Then it is due when 09:00 comes at UTC+14, and expires an hour after 09:00 at UTC-12
    assert made.scheduled_at(now) == at("2030-12-23T19:00")
    assert made.expires_at(now) == at("2030-12-24T22:00")
    assert made.options() == {"send_at_local": "2030-12-24T09:00:00", "past_local_time": "send"}


def test_a_local_time_already_come_somewhere_is_due_now() -> None:
    made = request(send_at_local="2030-12-24T09:00", past_local_time="skip")

    assert made.scheduled_at(at("2030-12-24T10:00")) is None
    assert made.expires_at(at("2030-12-24T10:00")) == at("2030-12-24T21:00") + timedelta(
        seconds=MAX_TTL_SECONDS
    )


def test_a_throttle_ends_after_its_audience_at_its_rate() -> None:
    options = {"throttle_per_minute": 300, "throttle_start": "2030-01-01T10:00:00+00:00"}

    assert timing.expected_end(options, 600) == at("2030-01-01T10:02")
    assert timing.expected_end({"throttle_per_minute": 300}, 600) is None
    assert timing.expected_end(None, 600) is None


# --- each local-time delivery's own lifetime -------------------------------------------------


def cached(*, ttl: int, start: datetime, expires_at: datetime) -> Any:
    return notification_cache.Cached(
        status="dispatching",
        app_id=uuid.uuid4(),
        expires_at=expires_at,
        lifetime_ends=start + timedelta(seconds=ttl),
        message=request(ttl=ttl).message(),
        loaded=0.0,
        local=datetime(2030, 12, 24, 9, 0),
    )


def test_a_local_time_deliverys_ttl_counts_from_its_own_time() -> None:
    # Given a notification first due at 19:00 (UTC+14), living until 22:00 + 1 h (UTC-12)
    info = cached(ttl=3600, start=at("2030-12-23T19:00"), expires_at=at("2030-12-24T22:00"))

    # When one of its deliveries is due at 08:00 UTC (Paris)
    paris = info.own(at("2030-12-24T08:00"))

    # Then it lives until 09:00, not 20:00 the day before nor 22:00
    assert (paris.lifetime_ends, paris.expires_at) == (at("2030-12-24T09:00"),) * 2
    # And one whose time had passed (sent at once) lives from the notification's start
    early = info.own(at("2030-12-20T00:00"))
    assert early.lifetime_ends == at("2030-12-23T20:00")
    # And a short ttl still gets the minimum window for its first attempt
    short = cached(ttl=0, start=at("2030-12-23T19:00"), expires_at=at("2030-12-24T21:01"))
    assert short.own(at("2030-12-24T08:00")).expires_at == at("2030-12-24T08:01")


@pytest.mark.parametrize(
    "fields", [{"send_at_local": "2030-12-24T09:00"}, {"throttle_per_minute": 100}]
)
def test_per_device_timing_with_one_fcm_topic_message_is_refused(fields: dict[str, Any]) -> None:
    field = refused_field(topics=["news"], fcm_topic=True, broadcast=False, **fields)
    assert field == next(iter(fields))
