"""Shape 1, `fcm_gateway`, without I/O: the environment names its deployments set, and how
its priorities, platforms, statuses and bodies read in pushgate's terms."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from pushgate.compat.fcm_gateway import schemas, translate
from pushgate.domain.notification import DeliveryStatus, NotificationStatus
from pushgate.domain.rates import Rate
from pushgate.errors import ConfigError
from pushgate.settings import load_settings

DEFAULT_KEY_RATE = Rate(60_000, 60.0)


def test_project_and_service_account_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_ID", "shop-prod")
    monkeypatch.setenv("SERVICE_ACCOUNT_PATH", "/etc/gateway/firebase.json")
    fcm = load_settings().fcm
    assert fcm.project_id == "shop-prod"
    assert fcm.service_account_path == Path("/etc/gateway/firebase.json")


@pytest.mark.parametrize(
    ("per_minute", "per_hour", "expected"),
    [
        ("120", None, Rate(120, 60.0)),
        (None, "5000", Rate(5000, 3600.0)),
        # One bucket per key and route class: the lower sustained rate wins.
        ("60", "1000", Rate(1000, 3600.0)),
        ("10", "1000", Rate(10, 60.0)),
        ("60", "3600", Rate(60, 60.0)),  # the same rate: the smaller burst
        ("0", "1000", Rate(1000, 3600.0)),  # 0: no limit from that name
        ("0", None, Rate(0, 60.0)),  # off
    ],
)
def test_rate_limits_become_the_send_and_device_write_limits_of_keys(
    monkeypatch: pytest.MonkeyPatch, per_minute: str | None, per_hour: str | None, expected: Rate
) -> None:
    for name, value in (("RATE_LIMIT_PER_MINUTE", per_minute), ("RATE_LIMIT_PER_HOUR", per_hour)):
        if value is not None:
            monkeypatch.setenv(name, value)
    limits = load_settings().rate_limits
    assert limits.key_send == expected
    assert limits.key_subscribe == expected
    assert limits.key_read == DEFAULT_KEY_RATE  # reads were not the old gateway's to limit


def test_pushgate_names_win_over_the_rate_limit_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MINUTE", "100")
    monkeypatch.setenv("PUSHGATE_RATE_LIMITS__KEY_SEND", "7/second")
    limits = load_settings().rate_limits
    assert limits.key_send == Rate(7, 1.0)
    assert limits.key_subscribe == Rate(100, 60.0)


@pytest.mark.parametrize("name", ["RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_HOUR"])
def test_a_rate_limit_that_is_no_number_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "100/minute")
    with pytest.raises(ConfigError, match=f"invalid setting {name}: '100/minute'"):
        load_settings()


def test_worker_threads_is_the_worker_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_THREADS", "16")
    assert load_settings().worker.concurrency == 16
    monkeypatch.setenv("WORKER_THREADS", "0")
    with pytest.raises(ConfigError, match=r"PUSHGATE_WORKER__CONCURRENCY \(or WORKER_THREADS\)"):
        load_settings()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("high", "high"),
        (" HIGH ", "high"),
        ("max", "high"),
        ("urgent", "high"),
        ("10", "high"),
        ("normal", "normal"),
        ("NORMAL", "normal"),
        ("default", "normal"),
        ("low", "normal"),
        ("min", "normal"),
        ("5", "normal"),
        (None, "normal"),
    ],
)
def test_priorities_such_gateways_send(given: str | None, expected: str) -> None:
    assert schemas.SendRequest.model_validate({"priority": given}).priority == expected


@pytest.mark.parametrize("given", ["whenever", "", 10, True, ["high"]])
def test_other_priorities_are_refused_on_the_field(given: object) -> None:
    with pytest.raises(ValidationError) as refused:
        schemas.SendRequest.model_validate({"priority": given})
    [error] = refused.value.errors()
    assert error["loc"] == ("priority",)
    assert "high or normal" in error["msg"]


def test_platforms_such_services_store() -> None:
    assert [translate.platform(p) for p in (None, "android", "iOS", "web", "fcm")] == ["fcm"] * 5
    assert translate.platform("apns") == "apns"
    assert translate.platform("Blackberry") == "blackberry"  # /v1's platform check refuses it


def test_every_pushgate_status_has_a_legacy_one() -> None:
    assert set(translate.STATUSES) == set(NotificationStatus)
    assert set(translate.STATUSES.values()) == {"pending", "sent", "failed"}
    assert set(translate.DELIVERY_STATUSES) == set(DeliveryStatus)
    assert translate.delivery_status("skipped") == "failed"
    assert translate.delivery_status("retrying") == "pending"


def test_a_send_is_the_v1_request_it_means() -> None:
    body = {"title": "t", "body": "b", "user_id": "u1", "idempotency_key": "k", "data": {"n": 1}}
    send = schemas.SendRequest.model_validate({**body, "token": "", "unknown": "ignored"})
    wanted = translate.request(
        send.model_dump(), to_token=translate.token_of(send.token) is not None
    )
    assert (wanted.user_ids, wanted.idempotency_key, wanted.data) == (["u1"], "k", {"n": "1"})
    checked = translate.request({**body, "priority": "high"}, to_token=True)
    aimed = translate.to_device(checked, translate.UNREGISTERED)
    assert aimed.device_ids == [translate.UNREGISTERED]
    assert aimed.user_ids is None
    assert aimed.priority == "high"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"title": "t"}, ("body", "user_id")),
        ({"title": "t", "user_id": ""}, ("body", "user_id")),
        ({"user_id": "u1"}, ("body", "title")),
        ({"title": "t", "user_id": "u1", "image": "x" * 3000}, ("body", "image")),
    ],
)
def test_a_refused_send_names_the_legacy_field(
    body: dict[str, object], loc: tuple[str, ...]
) -> None:
    with pytest.raises(RequestValidationError) as refused:
        translate.request(body, to_token=False)
    assert refused.value.errors()[0]["loc"] == loc


def test_bulk_takes_the_bare_list_and_at_most_100() -> None:
    adapter = TypeAdapter(schemas.BulkRequest)
    assert len(adapter.validate_python([{"title": "t"}] * 100).notifications) == 100
    assert adapter.validate_python({"notifications": [{}]}).notifications == [{}]
    for refused in ([{"title": "t"}] * 101, []):
        with pytest.raises(ValidationError):
            adapter.validate_python(refused)
