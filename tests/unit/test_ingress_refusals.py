"""A push.queue message whose data is refused past the parser (at storage) is dead-lettered at
once with the reason; an outage is retried."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError, StatementError

from pushgate.broker.base import IncomingMessage, Settlement
from pushgate.sending import ingress


def message() -> IncomingMessage:
    return IncomingMessage(
        id="m-1", queue="push", body=b"{}", headers={}, attempts=1, redelivered=False, receipt=None
    )


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("date value out of range"),
        UnicodeEncodeError("utf-8", "\udc00", 0, 1, "surrogates not allowed"),
        StatementError("(builtins.ValueError) bad value", "INSERT", {}, ValueError("bad value")),
    ],
)
def test_data_refused_at_storage_is_dead_lettered_at_once(error: Exception) -> None:
    incoming = message()
    ingress._failed(incoming, error)
    assert incoming.settlement == Settlement.DEAD_LETTER
    assert incoming.reason.startswith(f"accept failed: {type(error).__name__}")


def test_an_outage_is_retried() -> None:
    incoming = message()
    ingress._failed(incoming, OperationalError("SELECT 1", {}, ConnectionRefusedError()))
    assert incoming.settlement == Settlement.RETRY
