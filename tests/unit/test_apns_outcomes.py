"""map_response / classify: every row of the APNs error table, docs/protocols.md#apns-errors
(Apple's "Handling notification responses from APNs")."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from pushgate.domain.outcome import HoldScope, OutcomeKind
from pushgate.providers.apns_payload import FollowUp, classify, map_response


def body(reason: str, **extra) -> bytes:
    return orjson.dumps({"reason": reason, **extra})


def test_200_is_sent_with_the_apns_id():
    outcome = map_response(200, {"apns-id": "EC1BF194-B3B2-424A-89A9-5A918A6E6B5B"}, b"")

    assert outcome.kind is OutcomeKind.SENT
    assert outcome.message_id == "EC1BF194-B3B2-424A-89A9-5A918A6E6B5B"
    assert outcome.status_code == 200


@pytest.mark.parametrize("reason", ["Unregistered", "ExpiredToken"])
def test_410_invalidates_the_token(reason):
    outcome = map_response(410, {}, body(reason, timestamp=1_700_000_000_000))

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert reason in outcome.error


def test_410_for_a_device_registered_before_the_timestamp_invalidates_it():
    registered = datetime(2023, 11, 14, 22, 0, tzinfo=UTC)  # before the timestamp below
    outcome = map_response(
        410,
        {},
        body("Unregistered", timestamp=1_700_000_000_000),  # 2023-11-14T22:13:20Z
        device_registered_at=registered,
    )

    assert outcome.kind is OutcomeKind.TOKEN_INVALID


@pytest.mark.parametrize(
    "registered_at",
    [
        datetime(2023, 11, 14, 23, 0, tzinfo=UTC),
        datetime(2023, 11, 14, 23, 0),  # naive: UTC, as the store keeps it
        1_700_000_000.5,
    ],
)
def test_410_for_a_device_that_re_registered_after_the_timestamp_is_rejected(registered_at):
    outcome = map_response(
        410,
        {},
        body("Unregistered", timestamp=1_700_000_000_000),
        device_registered_at=registered_at,
    )

    assert outcome.kind is OutcomeKind.REJECTED
    assert "re-registered" in outcome.error


def test_400_bad_device_token_invalidates_and_names_the_environment():
    outcome = map_response(400, {}, body("BadDeviceToken"), environment="sandbox")

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert "sandbox" in outcome.error


def test_400_device_token_not_for_topic_invalidates():
    assert map_response(400, {}, body("DeviceTokenNotForTopic")).kind is OutcomeKind.TOKEN_INVALID


@pytest.mark.parametrize(
    "reason",
    [
        "BadTopic",
        "PayloadEmpty",
        "BadPriority",
        "InvalidPushType",
        "BadCollapseId",
        "TopicDisallowed",
        "BadExpirationDate",
        "BadMessageId",
        "DuplicateHeaders",
        "IdleTimeout",
        "MissingDeviceToken",
        "MissingTopic",
        "",
    ],
)
def test_other_400s_are_rejected(reason):
    outcome = map_response(400, {}, body(reason) if reason else b"")

    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.status_code == 400


def test_403_expired_provider_token_asks_for_a_refresh_and_one_retry():
    verdict = classify(403, {}, body("ExpiredProviderToken"))

    assert verdict.follow_up is FollowUp.REFRESH_TOKEN_AND_RETRY
    assert verdict.outcome.kind is OutcomeKind.RETRY_LATER
    assert "refresh" in verdict.outcome.error


@pytest.mark.parametrize(
    "reason",
    [
        "InvalidProviderToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "MissingProviderToken",
        "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyIdInToken",
        "BadEnvironmentKeyInToken",  # the spelling APNs is seen to answer with
        "SomeReasonAppleAddsLater",
    ],
)
def test_403_credential_problems_raise_the_alarm(reason):
    verdict = classify(403, {}, body(reason))

    assert verdict.outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert verdict.follow_up is FollowUp.NONE


def test_a_401_is_a_credential_alarm_too():
    assert map_response(401, {}, body("")).kind is OutcomeKind.CREDENTIAL_ALARM


def test_413_is_rejected():
    assert map_response(413, {}, body("PayloadTooLarge")).kind is OutcomeKind.REJECTED


def test_429_too_many_requests_retries_slowly():
    outcome = map_response(429, {}, body("TooManyRequests"))

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after is not None
    assert outcome.retry_after >= 60


def test_429_too_many_requests_holds_that_device_token_only():
    # Apple applies it to one device token: the app's other devices must not wait.
    outcome = map_response(429, {}, body("TooManyRequests"))

    assert outcome.hold is HoldScope.DEVICE


def test_429_honours_a_retry_after_header():
    outcome = map_response(429, {"retry-after": "120"}, body("TooManyRequests"))

    assert outcome.retry_after == 120


def test_429_too_many_provider_token_updates_retries_later():
    verdict = classify(429, {}, body("TooManyProviderTokenUpdates"))

    assert verdict.outcome.kind is OutcomeKind.RETRY_LATER
    assert verdict.reason == "TooManyProviderTokenUpdates"


def test_429_too_many_provider_token_updates_holds_nothing():
    # About our token minting, not one device: plain backoff, no Retry-After to hold with.
    outcome = map_response(429, {}, body("TooManyProviderTokenUpdates"))

    assert outcome.retry_after is None
    assert outcome.hold is not HoldScope.DEVICE


def test_a_429_with_another_reason_is_treated_as_too_many_requests():
    outcome = map_response(429, {}, body(""))

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == 60
    assert outcome.hold is HoldScope.DEVICE


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "InternalServerError"), (503, "ServiceUnavailable"), (502, "")]
)
def test_server_errors_retry_later_on_the_same_connection(status, reason):
    verdict = classify(status, {}, body(reason) if reason else b"<html>")

    assert verdict.outcome.kind is OutcomeKind.RETRY_LATER
    assert verdict.follow_up is FollowUp.NONE


def test_a_server_error_honours_a_retry_after_header():
    outcome = map_response(503, {"retry-after": "30"}, body("ServiceUnavailable"))

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.retry_after == 30


def test_shutdown_retries_later_on_a_new_connection():
    verdict = classify(503, {}, body("Shutdown"))

    assert verdict.outcome.kind is OutcomeKind.RETRY_LATER
    assert verdict.follow_up is FollowUp.NEW_CONNECTION


@pytest.mark.parametrize(("status", "reason"), [(404, "BadPath"), (405, "MethodNotAllowed")])
def test_a_wrong_path_or_method_is_rejected(status, reason):
    assert map_response(status, {}, body(reason)).kind is OutcomeKind.REJECTED


@pytest.mark.parametrize("status", [402, 408, 409, 418])
def test_any_other_status_is_rejected(status):
    assert map_response(status, {}, b"").kind is OutcomeKind.REJECTED
