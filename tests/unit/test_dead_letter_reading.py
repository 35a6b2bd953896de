"""Reading dead letters for people (sending/letters.py) and a worker's queue counts
(queue_stats.QueueCounters): pure, no I/O."""

from __future__ import annotations

import uuid

import orjson
import pytest

from pushgate.broker.base import IncomingMessage
from pushgate.queue_stats import QueueCounters
from pushgate.sending import jobs, letters


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("retry_later: HTTP 500: upstream broke", "retry_later"),
        ("invalid_input: title: too long", "invalid_input"),
        ("missing_variable: variable 'name' is missing", "missing_variable"),
        ("not a deliver job: 'ids'", "bad_job"),
        ("not JSON: unexpected character", "bad_job"),
        ("dispatch failed: OperationalError: gone", "dispatch_failed"),
        ("accept failed: DataError: bad", "accept_failed"),
        ("Something Else: entirely", "unknown"),
        ("", "unknown"),
    ],
)
def test_reason_codes_are_a_small_set_of_words(reason: str, code: str) -> None:
    assert letters.reason_code(reason) == code


def test_a_failed_deliverys_letter_names_its_app_provider_and_last_answer() -> None:
    notification = uuid.uuid4()
    body = jobs.dead_delivery(
        delivery_id=7,
        notification_id=str(notification),
        app_id="app-1",
        platform="webpush",
        attempts=3,
        last_outcome="retry_later",
        last_status_code=500,
        last_error="upstream broke",
    )

    said = letters.describe("deliver", body)

    assert said == letters.Described(
        app_ref="app-1",
        provider="webpush",
        notification_id=notification,
        delivery_id=7,
        outcome="retry_later",
        status_code=500,
        error="upstream broke",
    )


@pytest.mark.parametrize(
    ("origin", "body", "app_ref"),
    [
        ("push", orjson.dumps({"app": "acme", "title": "x"}), "acme"),
        ("push", orjson.dumps({"app_id": "0000", "title": "x"}), "0000"),
        ("push", b"{not json", None),
        ("push", b"[1, 2]", None),
        ("dispatch", orjson.dumps({"notification_id": "not-a-uuid"}), None),
        ("deliver", orjson.dumps({"kind": "delivery_failed", "delivery_id": "x"}), None),
    ],
)
def test_any_body_is_read_without_raising(origin: str, body: bytes, app_ref: str | None) -> None:
    said = letters.describe(origin, body)
    assert said.app_ref == app_ref
    assert said.delivery_id is None


async def test_counters_count_in_flight_and_settled_per_queue() -> None:
    now = [1000.0]
    counters = QueueCounters(clock=lambda: now[0])
    counters.consumer_started("deliver")
    seen: list[dict[str, dict[str, float]]] = []

    async def handler(batch: list[IncomingMessage]) -> None:
        seen.append(counters.snapshot())
        batch[0].ack()  # the second is left unsettled: not counted as settled

    tracked = counters.track("deliver", handler)
    batch = [IncomingMessage(str(i), "deliver", b"", {}, 1, False, receipt=i) for i in range(2)]
    now[0] += 30
    await tracked(batch)

    assert seen[0]["deliver"]["in_flight"] == 2
    after = counters.snapshot()["deliver"]
    assert (after["consumers"], after["in_flight"]) == (1, 0)
    assert after["rate_per_second"] == pytest.approx(1 / 30)
    # A minute later the settled message no longer counts
    now[0] += 61
    assert counters.snapshot()["deliver"]["rate_per_second"] == 0
