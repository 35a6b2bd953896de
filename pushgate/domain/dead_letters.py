"""Which dead letters an operator means: the filter that selects letters for listing, replay
and purge. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters: each field given narrows the selection (all of them together)."""

    reason: str | None = None
    provider: str | None = None
    queue: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def empty(self) -> bool:
        return all(
            v is None for v in (self.reason, self.provider, self.queue, self.since, self.until)
        )
