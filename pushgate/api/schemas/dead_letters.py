"""Request and response bodies of the dead letters, and the opaque cursor of their list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from pushgate.domain import vapid
from pushgate.domain.dead_letters import LetterFilter
from pushgate.errors import FilterRequiredError, InvalidInputError
from pushgate.store.dead_letters import Cursor
from pushgate.store.tables import DeadLetterRecord

QueueName = Literal["push", "dispatch", "deliver"]


class DeadLetterPublic(BaseModel):
    id: uuid.UUID
    queue: str = Field(description="The queue it failed on, where a replay puts it back.")
    reason: str = Field(description="Why it failed, for people.")
    reason_code: str = Field(
        description="A word to filter on: the last outcome (`retry_later`, `credential_alarm`), "
        "an error code (`invalid_input`, `missing_variable`), `bad_job`, `dispatch_failed`."
    )
    provider: str | None
    notification_id: uuid.UUID | None
    delivery_id: int | None
    attempts: int
    failed_at: datetime
    replays: int = Field(description="Times it was put back on its queue.")
    last_replayed_at: datetime | None

    @classmethod
    def of(cls, row: DeadLetterRecord) -> DeadLetterPublic:
        return cls(
            id=row.id,
            queue=row.queue,
            reason=row.reason,
            reason_code=row.reason_code,
            provider=row.provider,
            notification_id=row.notification_id,
            delivery_id=row.delivery_id,
            attempts=row.attempts,
            failed_at=row.failed_at,
            replays=row.replays,
            last_replayed_at=row.replayed_at,
        )


class LastAnswer(BaseModel):
    status_code: int | None = Field(description="The provider's HTTP status, if it answered.")
    error: str | None


class DeadLetterDetail(DeadLetterPublic):
    last_answer: LastAnswer = Field(description="A failed delivery's last provider answer.")
    body: Any = Field(description="The message: its JSON when it is JSON, else its text.")
    headers: dict[str, Any]

    @classmethod
    def of(cls, row: DeadLetterRecord) -> DeadLetterDetail:
        try:
            body: Any = orjson.loads(row.body)
        except orjson.JSONDecodeError:
            body = row.body.decode("utf-8", "replace")
        return cls(
            **DeadLetterPublic.of(row).model_dump(),
            last_answer=LastAnswer(status_code=row.last_status_code, error=row.last_error),
            body=body,
            headers=row.headers or {},
        )


class DeadLettersPublic(BaseModel):
    items: list[DeadLetterPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ReplayFilter(BaseModel):
    """Which letters to replay: every field given narrows it; none at all needs `all`."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=64, description="A `reason_code`.")
    provider: str | None = Field(default=None, max_length=32)
    queue: QueueName | None = None
    since: datetime | None = Field(default=None, description="Failed at or after.")
    until: datetime | None = Field(default=None, description="Failed before.")
    all: bool = Field(default=False, description="Required to replay with no filter at all.")

    def chosen(self) -> LetterFilter:
        return checked_filter(
            LetterFilter(self.reason, self.provider, self.queue, self.since, self.until),
            everything=self.all,
        )


def checked_filter(chosen: LetterFilter, *, everything: bool) -> LetterFilter:
    """Raises: FilterRequiredError for an empty filter without `all`; InvalidInputError
    for a timestamp without its zone."""
    for name, moment in (("since", chosen.since), ("until", chosen.until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInputError(f"{name} needs a time zone (e.g. Z)", field=name)
    if chosen.empty and not everything:
        raise FilterRequiredError(
            "give a filter (reason, provider, queue, since, until) or all=true", field="all"
        )
    return chosen


class Replayed(BaseModel):
    replayed: int


class Purged(BaseModel):
    purged: int


def encode_cursor(after: Cursor) -> str:
    failed_at, letter_id = after
    return vapid.b64url_encode(f"{failed_at.isoformat()}|{letter_id}".encode())


def decode_cursor(cursor: str | None) -> Cursor | None:
    """Raises: InvalidInputError naming `cursor`, for anything `encode_cursor` did not make."""
    if cursor is None:
        return None
    try:
        moment, _, letter_id = vapid.b64url_decode(cursor).decode().partition("|")
        failed_at = datetime.fromisoformat(moment)
        if failed_at.tzinfo is None:
            raise ValueError("naive")
        return failed_at, uuid.UUID(letter_id)
    except ValueError:
        raise InvalidInputError("cursor is not one this API gave out", field="cursor") from None
