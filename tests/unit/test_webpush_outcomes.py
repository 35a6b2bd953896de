"""Every row of the Web Push error table, docs/protocols.md#web-push-errors, plus Retry-After in
both of its forms (docs/protocols.md#retry-after)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from pushgate.domain.outcome import HoldScope, Outcome, OutcomeKind
from pushgate.providers.webpush import map_response

NOW = 1_800_000_000.0


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_sent_with_the_location_as_message_id(status):
    location = "https://fcm.googleapis.com/fcm/0:1700000000%abc"

    outcome = map_response(status, {"Location": location}, b"")

    assert outcome == Outcome.sent(location, status_code=status)


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscriptions_are_token_invalid(status):
    outcome = map_response(status, {}, b'{"code": 410, "errno": 106, "message": "unsubscribed"}')

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert outcome.status_code == status
    assert "unsubscribed" in outcome.error


def test_400_is_rejected_and_keeps_the_device():
    outcome = map_response(400, {}, b'{"reason": "BadWebPushTopic"}')

    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.error == "Bad Request: BadWebPushTopic"


@pytest.mark.parametrize("status", [401, 403])
def test_vapid_problems_raise_a_credential_alarm(status):
    outcome = map_response(status, {}, b'{"reason": "BadJwtToken"}')

    assert outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert "BadJwtToken" in outcome.error


def test_413_is_rejected():
    outcome = map_response(413, {}, b"payload too large")

    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.status_code == 413


def test_429_retries_after_the_seconds_the_service_asked_for():
    outcome = map_response(429, {"Retry-After": "120"}, b"")

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == 120.0
    assert outcome.status_code == 429


def test_429_holds_the_whole_push_service_origin():
    outcome = map_response(429, {"Retry-After": "120"}, b"")

    assert outcome.hold is HoldScope.ORIGIN


def test_429_retry_after_as_an_http_date_is_relative_to_now():
    headers = {"retry-after": formatdate(NOW + 90, usegmt=True)}

    outcome = map_response(429, headers, b"", now=NOW)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == pytest.approx(90.0)


def test_a_retry_after_date_in_the_past_means_now():
    outcome = map_response(429, {"Retry-After": formatdate(NOW - 30, usegmt=True)}, b"", now=NOW)

    assert outcome.retry_after == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_429_without_a_usable_retry_after_still_retries(value):
    headers = {} if value is None else {"Retry-After": value}

    outcome = map_response(429, headers, b"")

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_retry_and_never_touch_the_subscription(status):
    outcome = map_response(status, {}, b"<html>upstream error</html>")

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.status_code == status


def test_503_retry_after_is_honoured():
    assert map_response(503, {"Retry-After": "7"}, b"").retry_after == 7.0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_rejected_not_followed(status):
    outcome = map_response(status, {"Location": "https://169.254.169.254/latest"}, b"")

    assert outcome.kind is OutcomeKind.REJECTED
    assert "redirect" in outcome.error
    assert outcome.message_id is None


def test_a_long_html_error_page_becomes_a_short_error_text():
    outcome = map_response(502, {}, b"<html>" + b"x" * 5000 + b"</html>")

    assert len(outcome.error) <= 200


def test_outcomes_other_than_retry_later_are_final():
    assert not Outcome.retry_later("busy").is_final
    assert Outcome.token_invalid("gone").is_final
    assert Outcome.sent("id").is_final


def test_a_request_timeout_answer_is_retried_later():
    assert map_response(408, {}, b"").kind is OutcomeKind.RETRY_LATER


def test_a_request_timeout_answer_honours_a_retry_after_header():
    assert map_response(408, {"Retry-After": "4"}, b"").retry_after == 4.0


@pytest.mark.parametrize("status", [405, 415, 422])
def test_other_client_errors_are_rejected_without_touching_the_device(status):
    assert map_response(status, {}, b"").kind is OutcomeKind.REJECTED
