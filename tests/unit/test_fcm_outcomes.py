"""Every row of the FCM error table, docs/protocols.md#fcm-errors, through `map_response` and
`is_oauth_failure`, with answers in the format FCM sends
(https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pushgate.domain.outcome import HoldScope, OutcomeKind
from pushgate.providers.fcm_message import fcm_error_code, is_oauth_failure, map_response

NOW = 1_700_000_000.0
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def error_body(
    status: int, rpc_status: str, message: str, code: str | None = None, **extra: Any
) -> bytes:
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    details.extend(extra.pop("details", []))
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


JSON = {"Content-Type": "application/json; charset=UTF-8"}


def test_200_is_sent_with_the_message_name_as_id():
    outcome = map_response(200, JSON, b'{"name": "projects/p/messages/0:1500415314455276%31bd"}')

    assert outcome.kind is OutcomeKind.SENT
    assert outcome.message_id == "projects/p/messages/0:1500415314455276%31bd"
    assert outcome.status_code == 200


@pytest.mark.parametrize(
    ("status", "rpc", "code", "message"),
    [
        (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
        (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
        (
            400,
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        ),
        (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid registration token"),
    ],
    ids=["unregistered", "sender-id-mismatch", "invalid-token", "invalid-token-other-words"],
)
def test_a_gone_or_foreign_token_is_token_invalid(status, rpc, code, message):
    outcome = map_response(status, JSON, error_body(status, rpc, message, code))

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert outcome.status_code == status
    assert code in outcome.error


@pytest.mark.parametrize(
    "message",
    [
        "Request contains an invalid argument.",
        "Invalid value at 'message.data[0].value' (TYPE_STRING), 12",
        "Android message is too big",
        "The registration token field is required",  # about the request, not the token
    ],
)
def test_an_invalid_payload_is_rejected_and_leaves_the_device_alone(message):
    # The popular mistake: deactivating on every INVALID_ARGUMENT kills live devices.
    outcome = map_response(
        400, JSON, error_body(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT")
    )

    assert outcome.kind is OutcomeKind.REJECTED
    assert message[:40] in outcome.error


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 60.0),
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:27 GMT"}, 7.0),
    ],
    ids=["default", "seconds", "http-date"],
)
def test_quota_exceeded_retries_after_retry_after_or_a_minute(headers, expected):
    body = error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED")

    outcome = map_response(429, JSON | headers, body, now=NOW)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == pytest.approx(expected)


QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


def quota_failure(*violations: dict[str, str]) -> dict[str, Any]:
    return {"@type": QUOTA_FAILURE, "violations": list(violations)}


@pytest.mark.parametrize(
    ("details", "scope"),
    [
        (
            [quota_failure({"subject": "device", "description": "Device message rate exceeded"})],
            HoldScope.DEVICE,
        ),
        (
            # The subject names the calling project, the description the device's quota.
            [
                quota_failure(
                    {"subject": "project:123", "description": "Device message rate exceeded."}
                )
            ],
            HoldScope.DEVICE,
        ),
        (
            [quota_failure({"subject": "topic", "description": "Topic message rate exceeded"})],
            HoldScope.DEVICE,
        ),
        (
            [
                quota_failure(
                    {
                        "subject": "project:123",
                        "description": "Message rate exceeded for the project",
                    }
                )
            ],
            HoldScope.PROJECT,
        ),
        ([], HoldScope.DEVICE),  # FCM does not say: only the device waits
        ([quota_failure()], HoldScope.DEVICE),
        ([{"@type": QUOTA_FAILURE, "violations": "garbled"}], HoldScope.DEVICE),
    ],
    ids=[
        "device",
        "device-quota-of-a-project",
        "topic",
        "project",
        "unsaid",
        "no-violations",
        "garbled",
    ],
)
def test_quota_exceeded_holds_what_its_quota_failure_is_about(details, scope):
    body = error_body(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED", details=details
    )

    outcome = map_response(429, JSON, body, now=NOW)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.hold is scope


def test_a_429_without_an_fcm_error_holds_the_project():
    # Google's front end pushing back: nothing in it is about one device.
    outcome = map_response(429, JSON, error_body(429, "RESOURCE_EXHAUSTED", "slow down"))

    assert outcome.hold is HoldScope.PROJECT


@pytest.mark.parametrize(
    ("status", "rpc", "code"), [(503, "UNAVAILABLE", "UNAVAILABLE"), (500, "INTERNAL", "INTERNAL")]
)
@pytest.mark.parametrize(("headers", "expected"), [({}, 10.0), ({"Retry-After": "3"}, 3.0)])
def test_unavailable_and_internal_retry_after_retry_after_or_ten_seconds(
    status, rpc, code, headers, expected
):
    outcome = map_response(status, JSON | headers, error_body(status, rpc, "down", code))

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == expected
    assert outcome.status_code == status


def test_a_third_party_auth_error_is_a_credential_alarm_without_a_token_refresh():
    body = error_body(
        401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"
    )

    assert map_response(401, JSON, body).kind is OutcomeKind.CREDENTIAL_ALARM
    assert not is_oauth_failure(401, body)


@pytest.mark.parametrize(("status", "rpc"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_an_oauth_refusal_asks_for_a_refresh_then_is_a_credential_alarm(status, rpc):
    body = error_body(status, rpc, "Request had invalid authentication credentials.")

    assert is_oauth_failure(status, body)
    assert map_response(status, JSON, body).kind is OutcomeKind.CREDENTIAL_ALARM


def test_a_sender_id_mismatch_is_not_an_oauth_failure():
    body = error_body(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")

    assert not is_oauth_failure(403, body)


def test_an_html_404_means_the_legacy_endpoint_and_is_rejected():
    html = b"<!DOCTYPE html><html><title>Error 404 (Not Found)!!1</title></html>"

    outcome = map_response(404, {"Content-Type": "text/html; charset=UTF-8"}, html)

    assert outcome.kind is OutcomeKind.REJECTED
    assert "legacy endpoint" in outcome.error
    assert "<html" not in outcome.error


def test_the_code_comes_from_the_fcm_error_detail_not_the_http_status():
    # A 404 whose detail says QUOTA_EXCEEDED is a quota problem, whatever the status says.
    body = error_body(
        404,
        "NOT_FOUND",
        "odd",
        details=[
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "errorCode": "UNREGISTERED"},
            {"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"},
        ],
    )

    assert fcm_error_code(body) == "QUOTA_EXCEEDED"
    assert map_response(404, JSON, body).kind is OutcomeKind.RETRY_LATER


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, error_body(400, "INVALID_ARGUMENT", 'Unknown name "foo"'), OutcomeKind.REJECTED),
        (
            404,
            error_body(404, "NOT_FOUND", "Requested entity was not found."),
            OutcomeKind.REJECTED,
        ),
        (429, error_body(429, "RESOURCE_EXHAUSTED", "slow down"), OutcomeKind.RETRY_LATER),
        (502, b"<html>Bad Gateway</html>", OutcomeKind.RETRY_LATER),
        (503, b"", OutcomeKind.RETRY_LATER),
        (408, b"", OutcomeKind.RETRY_LATER),
        (413, b"", OutcomeKind.REJECTED),
        (
            500,
            error_body(500, "INTERNAL", "x", "UNSPECIFIED_ERROR"),
            OutcomeKind.RETRY_LATER,
        ),
    ],
    ids=["bad-request", "not-found", "429", "502-html", "503-empty", "408", "413", "unspecified"],
)
def test_answers_without_a_known_fcm_code_follow_the_http_status(status, body, kind):
    outcome = map_response(status, {}, body)

    assert outcome.kind is kind
    if status == 429:
        assert outcome.retry_after == 60.0
    if status >= 500:
        assert outcome.retry_after == 10.0


def test_error_texts_are_short_and_name_the_code():
    body = error_body(400, "INVALID_ARGUMENT", "Invalid value " + "x" * 1000, "INVALID_ARGUMENT")

    outcome = map_response(400, JSON, body)

    assert outcome.error.startswith("INVALID_ARGUMENT: Invalid value")
    assert len(outcome.error) <= 200


@pytest.mark.parametrize(
    ("status", "rpc", "kind", "retry_after"),
    [
        (500, "INTERNAL", OutcomeKind.RETRY_LATER, 10.0),
        (503, "UNAVAILABLE", OutcomeKind.RETRY_LATER, 10.0),
        (408, "DEADLINE_EXCEEDED", OutcomeKind.RETRY_LATER, None),
        (400, "INVALID_ARGUMENT", OutcomeKind.REJECTED, None),
        (401, "UNAUTHENTICATED", OutcomeKind.CREDENTIAL_ALARM, None),
        (403, "PERMISSION_DENIED", OutcomeKind.CREDENTIAL_ALARM, None),
        # Today's mapping: the 429 branch is for QUOTA_EXCEEDED or no FcmError at all.
        (429, "RESOURCE_EXHAUSTED", OutcomeKind.REJECTED, None),
    ],
)
def test_unspecified_error_follows_the_http_status(status, rpc, kind, retry_after):
    body = error_body(status, rpc, "No more information", "UNSPECIFIED_ERROR")

    outcome = map_response(status, JSON, body)

    assert outcome.kind is kind
    assert outcome.retry_after == retry_after
    # An FcmError detail says FCM read our token: no refresh.
    assert not is_oauth_failure(status, body)


def test_a_408_honours_a_retry_after_header():
    outcome = map_response(408, {"Retry-After": "5"}, b"")

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == 5.0
