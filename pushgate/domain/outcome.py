"""The provider-neutral result of one send: what happened, and what the pipeline should do next.

Every provider maps every answer (and every timeout or connection failure) to exactly one
`Outcome`; see docs/protocols.md#outcomes for the per-provider tables. Outcomes are values,
not exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Error texts end up in the deliveries table and in logs; a push service's HTML error page
# must not.
MAX_ERROR_CHARS = 200


class HoldScope(StrEnum):
    """What a rate limit (a 429 with Retry-After) is about, and so what waits for it."""

    DEVICE = "device"
    """This delivery's destination only (APNs applies its 429 to one device token; FCM's
    device or topic message rate): its delivery waits, other devices' go on at once."""
    ORIGIN = "origin"
    """The whole push service origin (a Web Push service's 429, RFC 8030 section 8.4)."""
    PROJECT = "project"
    """Everything the app sends through this provider (FCM's per-project quota)."""


class OutcomeKind(StrEnum):
    """What the pipeline does with a delivery after one send."""

    SENT = "sent"
    """Accepted by the provider; keep its message id."""
    RETRY_LATER = "retry_later"
    """Transient; retry after `max(retry_after, backoff with jitter)`; counts an attempt."""
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (an outcome name, not a secret)
    """The device is gone: deactivate it, never retry."""
    REJECTED = "rejected"
    """Our request is wrong: do not retry unchanged, do not touch the device."""
    CREDENTIAL_ALARM = "credential_alarm"
    """Our credentials are bad: open the circuit for that app and provider."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One send's result.

    Attributes:
        kind: what happened.
        status_code: the provider's HTTP status, or None when no answer arrived (timeout,
            connection error, a request refused before it was sent).
        message_id: the provider's id for the message (`sent` only).
        retry_after: seconds the provider asked us to wait (`retry_later` only, when given).
        error: a short human text: the provider's reason, or what went wrong locally.
        hold: what `retry_after` holds when the answer was a 429 (see `HoldScope`).
    """

    kind: OutcomeKind
    status_code: int | None = None
    message_id: str | None = None
    retry_after: float | None = None
    error: str = ""
    hold: HoldScope = HoldScope.ORIGIN

    @classmethod
    def sent(cls, message_id: str | None, *, status_code: int | None = None) -> Outcome:
        return cls(OutcomeKind.SENT, status_code=status_code, message_id=message_id)

    @classmethod
    def retry_later(
        cls,
        error: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        hold: HoldScope = HoldScope.ORIGIN,
    ) -> Outcome:
        if retry_after is not None and retry_after < 0:
            retry_after = 0.0
        return cls(
            OutcomeKind.RETRY_LATER,
            status_code=status_code,
            retry_after=retry_after,
            error=_short(error),
            hold=hold,
        )

    @classmethod
    def token_invalid(cls, error: str, *, status_code: int | None = None) -> Outcome:
        return cls(OutcomeKind.TOKEN_INVALID, status_code=status_code, error=_short(error))

    @classmethod
    def rejected(cls, error: str, *, status_code: int | None = None) -> Outcome:
        return cls(OutcomeKind.REJECTED, status_code=status_code, error=_short(error))

    @classmethod
    def credential_alarm(cls, error: str, *, status_code: int | None = None) -> Outcome:
        return cls(OutcomeKind.CREDENTIAL_ALARM, status_code=status_code, error=_short(error))

    @property
    def is_final(self) -> bool:
        """True when no later attempt should be made for this delivery."""
        return self.kind is not OutcomeKind.RETRY_LATER


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
