"""Bodies of `/v1/users/{user_id}/preferences`: what a user wants to receive and when. The rules
they feed are `domain.preferences`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pushgate.api.schemas.devices import Locale, TimeZone
from pushgate.domain import preferences as rules
from pushgate.domain.platforms import PlatformLabel, PlatformName
from pushgate.domain.preferences import Category, Preferences, QuietHours
from pushgate.store.preferences import Saved

MAX_CATEGORIES = 200
MAX_PLATFORMS = 50


def _clock(value: str) -> str:
    rules.clock(value)
    return value


Clock = Annotated[
    str,
    StringConstraints(max_length=5),
    AfterValidator(_clock),
    Field(description="A wall-clock time, `HH:MM` (00:00 to 23:59).", examples=["22:00"]),
]


class QuietHoursIn(BaseModel):
    """A daily window of the user's wall-clock time in which nothing is delivered: deliveries
    wait until it ends (unless the notification sets `ignore_quiet_hours`)."""

    model_config = ConfigDict(extra="forbid")

    start: Clock
    end: Clock = Field(
        description="Excluded. Not after `start`: the window crosses midnight (22:00 to 07:00);"
        " equal to `start`: no window."
    )
    timezone: TimeZone = Field(description="The IANA zone of both times (`Europe/Paris`).")

    def rule(self) -> QuietHours:
        return QuietHours.parse(self.start, self.end, self.timezone)


class QuietHoursPublic(BaseModel):
    start: str
    end: str
    timezone: str

    @classmethod
    def of(cls, quiet: QuietHours) -> QuietHoursPublic:
        return cls(
            start=quiet.start.strftime("%H:%M"),
            end=quiet.end.strftime("%H:%M"),
            timezone=quiet.timezone,
        )


class PreferencesUpdate(BaseModel):
    """A user's whole preferences: what is left out takes its default (a full replace)."""

    model_config = ConfigDict(extra="forbid")

    muted: bool = Field(
        default=False, description="Nothing at all, not even `transactional` notifications."
    )
    categories: Annotated[dict[Category, bool], Field(max_length=MAX_CATEGORIES)] = Field(
        default_factory=dict,
        description="`false` opts out of a notification `category` (a `transactional`"
        " notification still comes); a category not named is received.",
    )
    platforms: Annotated[dict[PlatformName, bool], Field(max_length=MAX_PLATFORMS)] = Field(
        default_factory=dict, description="`false` opts out of that platform's devices."
    )
    quiet_hours: QuietHoursIn | None = Field(default=None, description="`null`: none.")
    locale: Locale | None = Field(
        default=None, description="The user's language, for devices that give none."
    )
    timezone: TimeZone | None = Field(
        default=None, description="The user's IANA zone, for devices that give none."
    )

    def preferences(self) -> Preferences:
        return Preferences(
            muted=self.muted,
            categories=self.categories,
            platforms=self.platforms,
            quiet_hours=None if self.quiet_hours is None else self.quiet_hours.rule(),
            locale=self.locale,
            timezone=self.timezone,
        )


class PreferencesPublic(BaseModel):
    user_id: str
    muted: bool
    categories: dict[str, bool]
    platforms: dict[PlatformLabel, bool]
    quiet_hours: QuietHoursPublic | None
    locale: str | None
    timezone: str | None
    updated_at: datetime | None = Field(
        description="When they were last replaced; null: none stored, these are the defaults."
    )

    @classmethod
    def of(cls, user_id: str, saved: Saved | None) -> PreferencesPublic:
        prefs = Preferences() if saved is None else saved.preferences
        quiet = prefs.quiet_hours
        return cls(
            user_id=user_id,
            muted=prefs.muted,
            categories=dict(prefs.categories),
            platforms=dict(prefs.platforms),
            quiet_hours=None if quiet is None else QuietHoursPublic.of(quiet),
            locale=prefs.locale,
            timezone=prefs.timezone,
            updated_at=None if saved is None else saved.updated_at,
        )
