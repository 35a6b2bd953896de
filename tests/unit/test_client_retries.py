"""The client's retry loop (`calls.exchange`), fed answers and transport errors directly: what it
resends, after how long, and what it refuses to resend."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pushgate.client import PushgateConnectionError, RateLimitedError
from pushgate.client import resources as r
from pushgate.client.calls import Call, Exchange, Retries, Sleep, exchange
from pushgate.client.errors import PushgateError

REQUEST = httpx.Request("GET", "http://127.0.0.1/v1/x")


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


def steps(call: Call[Any], retries: Retries, outcomes: list[Any]) -> tuple[list[Any], Any]:
    """Drive the exchange with `outcomes` in order; its steps and its result."""
    walk: Exchange[Any] = exchange(call, REQUEST, retries)
    seen = [next(walk)]
    outcomes = list(outcomes)
    try:
        while True:
            outcome = None if isinstance(seen[-1], Sleep) else outcomes.pop(0)
            seen.append(walk.send(outcome))
    except StopIteration as stop:
        return seen, stop.value


def test_read_is_resent_after_a_connection_error() -> None:
    call = r._get_template("welcome")
    error = httpx.ConnectError("refused")
    body = {"code": "welcome", "version": 1, "default_locale": "en", "variants": {}}
    body["created_at"] = "2026-01-01T00:00:00Z"
    seen, result = steps(call, Retries(backoff=0.5), [error, answer(200, body)])
    assert seen == [REQUEST, Sleep(0.5), REQUEST]
    assert result.version == 1


def test_cancel_is_not_resent_after_a_connection_error() -> None:
    call = r._cancel("01a23b37-7539-710d-b2b1-8a1a09817a77")
    with pytest.raises(PushgateConnectionError):
        steps(call, Retries(), [httpx.ReadTimeout("slow")])


def test_send_carries_a_fresh_key_and_is_resent() -> None:
    first, second = r._send({"user_id": "a"}), r._send({"user_id": "a"})
    assert first.idempotent
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert r._send({"user_id": "a"}, idempotency_key="k").headers["Idempotency-Key"] == "k"
    assert "idempotency_key" not in (first.json or {})


def test_unavailable_waits_retry_after() -> None:
    call = r._delete_prefs("alice")
    seen, result = steps(call, Retries(), [answer(503, **{"Retry-After": "2"}), answer(204)])
    assert seen == [REQUEST, Sleep(2.0), REQUEST]
    assert result is None


def test_wait_beyond_max_wait_raises_without_waiting() -> None:
    limited = answer(429, {"error": {"code": "rate_limited", "message": "slow down"}})
    limited.headers["Retry-After"] = "60"
    with pytest.raises(RateLimitedError) as raised:
        steps(r._delete_prefs("alice"), Retries(max_wait=30), [limited])
    assert (raised.value.code, raised.value.retry_after) == ("rate_limited", 60.0)


def test_error_without_the_apis_body_still_raises_with_a_code() -> None:
    with pytest.raises(PushgateError) as raised:
        steps(r._delete_prefs("alice"), Retries(), [httpx.Response(502, text="bad gateway")])
    assert (raised.value.status, raised.value.code) == (502, "http_502")
