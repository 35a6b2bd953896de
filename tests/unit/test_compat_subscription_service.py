"""Shape 4 (`subscription_service`) apart from I/O: its environment names (the `N/period`
rates, JWT_SECRET_KEY, SENTRY_DSN, PROMETHEUS_METRICS_ENABLED) and the translation of its
bodies into `/v1` requests."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from pushgate.compat.subscription_service import schemas, translate
from pushgate.domain.rates import Rate
from pushgate.errors import ConfigError
from pushgate.settings import load_settings

SECRET = "legacy-jwt-secret-0123456789abcdef-xyz"


def test_the_legacy_rates_become_the_key_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_SUBSCRIPTION", "100/hour")
    monkeypatch.setenv("RATE_LIMIT_NOTIFICATION", "50/minute")
    monkeypatch.setenv("RATE_LIMIT_ANALYTICS", "200/day")
    limits = load_settings().rate_limits
    assert limits.key_subscribe == Rate(100, 3600.0)
    assert limits.key_send == Rate(50, 60.0)
    assert limits.key_read == Rate(200, 86400.0)
    assert limits.app_send == Rate(120_000, 60.0)  # the app's own buckets keep their defaults

    # pushgate's own names win over the legacy ones
    monkeypatch.setenv("PUSHGATE_RATE_LIMITS__KEY_SEND", "10/second")
    assert load_settings().rate_limits.key_send == Rate(10, 1.0)


@pytest.mark.parametrize("text", ["100/fortnight", "lots", "100/ms", "-1/hour"])
def test_a_rate_that_does_not_read_stops_start_naming_the_legacy_name(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("RATE_LIMIT_SUBSCRIPTION", text)
    with pytest.raises(ConfigError, match=r"RATE_LIMIT_SUBSCRIPTION.*N/hour"):
        load_settings()


def test_jwt_secret_sentry_and_metrics_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    monkeypatch.setenv("SENTRY_DSN", "https://key@sentry.example/1")
    monkeypatch.setenv("PROMETHEUS_METRICS_ENABLED", "False")
    settings = load_settings()
    given = settings.compat.subscription_service.jwt_secret_key
    assert given is not None
    assert given.get_secret_value() == SECRET
    assert settings.sentry.dsn is not None
    assert settings.sentry.dsn.get_secret_value() == "https://key@sentry.example/1"
    assert settings.metrics.enabled is False

    monkeypatch.setenv("PUSHGATE_COMPAT__SUBSCRIPTION_SERVICE__JWT_SECRET_KEY", SECRET + "-new")
    given = load_settings().compat.subscription_service.jwt_secret_key
    assert given is not None
    assert given.get_secret_value() == SECRET + "-new"


def test_a_short_jwt_secret_stops_start_and_a_blank_one_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", "too-short")
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY must be at least 32 characters"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET_KEY", "  ")
    assert load_settings().compat.subscription_service.jwt_secret_key is None


def _locs(exc: pytest.ExceptionInfo[RequestValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_a_subscription_nested_or_flat_is_one_registration() -> None:
    endpoint = "https://push.example/send/abc"
    nested = schemas.SubscriptionCreate.model_validate(
        {"endpoint": endpoint, "keys": {"p256dh": "P", "auth": "A"}, "topics": ["news"]}
    )
    flat = schemas.SubscriptionCreate.model_validate(
        {"endpoint": endpoint, "p256dh": "P", "auth": "A", "topics": ["news"], "browser": "x"}
    )
    assert translate.device_create(nested) == translate.device_create(flat)
    device = translate.device_create(flat)
    assert device.platform == "webpush"
    assert device.subscription is not None
    assert device.subscription.keys.p256dh == "P"
    assert device.model_fields_set == {"platform", "subscription", "topics"}

    # Refusals name the legacy fields, in the form the client sent
    with pytest.raises(RequestValidationError) as refused:
        translate.device_create(
            schemas.SubscriptionCreate.model_validate({"endpoint": endpoint, "p256dh": "P"})
        )
    assert _locs(refused) == [("body", "auth")]
    with pytest.raises(RequestValidationError) as refused:
        translate.device_create(
            schemas.SubscriptionCreate.model_validate(
                {
                    "endpoint": endpoint,
                    "keys": {"p256dh": "P" * 201, "auth": "A"},
                    "topics": ["a b"],
                }
            )
        )
    assert _locs(refused) == [("body", "keys", "p256dh"), ("body", "topics", 0)]


def test_a_send_is_the_v1_request_with_one_target() -> None:
    device = uuid.uuid4()
    body = schemas.NotificationSend.model_validate(
        {
            "title": "Sale",
            "body": "Today only",
            "type": "promo",
            "url": "https://shop.example/sale",
            "actions": [{"action": "open", "title": "Open"}],
            "topics": [],
            "user_ids": None,
            "subscription_ids": [str(device)],
        }
    )
    request = translate.notification_create(body, broadcast=False, idempotency_key="k-1")
    assert request.device_ids == [device]
    assert request.category == "promo"
    assert request.idempotency_key == "k-1"
    assert request.topics is None  # sent empty: not a criterion

    everyone = translate.notification_create(
        schemas.NotificationPayload(title="Hi"), broadcast=True, idempotency_key=None
    )
    assert everyone.broadcast is True

    with pytest.raises(RequestValidationError) as refused:
        translate.notification_create(
            schemas.NotificationSend(title="x", topics=["a"], user_ids=["u"]),
            broadcast=False,
            idempotency_key=None,
        )
    [problem] = refused.value.errors()
    assert problem["loc"] == ("body", "target")
    assert "topics, user_ids or subscription_ids" in problem["msg"]

    with pytest.raises(RequestValidationError) as refused:
        translate.notification_create(
            schemas.NotificationSend(title="x", type="", subscription_ids=["nope"]),
            broadcast=False,
            idempotency_key=None,
        )
    assert _locs(refused) == [("body", "subscription_ids", 0), ("body", "type")]


def test_statistics_count_deliveries_by_their_legacy_meaning() -> None:
    counts = {"sent": 3, "invalid": 1, "failed": 1, "retrying": 2, "skipped": 1, "total": 8}
    assert translate.statistics(counts) == schemas.Statistics(total=8, sent=3, failed=2, pending=2)
    assert translate.statistics({}) == schemas.Statistics(total=0, sent=0, failed=0, pending=0)
