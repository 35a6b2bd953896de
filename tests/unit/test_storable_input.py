"""Property tests over the request models and the ingress parser: whatever JSON arrives, the
answer is a validation error or a request both databases store as sent, never another
exception."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pushgate.api.schemas.devices import DeviceCreate, DeviceUpdate
from pushgate.domain import storable
from pushgate.domain.request import MAX_SCHEDULE_AHEAD, NotificationCreate
from pushgate.sending import ingress
from tests.strategies import devices, requests

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_storable(value: Any) -> None:
    """What both databases store as sent: no NUL, no lone surrogate, finite numbers, 64-bit
    integers (orjson, which refuses lone surrogates and big integers, reads it back)."""
    encoded = orjson.dumps(value)
    assert b"\\u0000" not in encoded
    assert orjson.loads(encoded) == value
    text = json.dumps(value, allow_nan=False)  # raises on NaN or Infinity
    assert "\x00" not in text


def validates_or_refuses(model: type[BaseModel], raw: dict[str, Any]) -> BaseModel | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            assert error["loc"], error  # every refusal names a field
        return None


@PROPERTY
@given(requests)
@example({"broadcast": True, "title": "x", "metadata": {"n": math.nan}})
@example({"broadcast": True, "title": "x", "send_at": "9999-01-01T00:00:00Z"})
def test_a_notification_request_is_refused_or_storable(raw: dict[str, Any]) -> None:
    request = validates_or_refuses(NotificationCreate, raw)
    if request is None:
        return
    assert isinstance(request, NotificationCreate)
    assert_storable(request.model_dump(mode="json"))
    assert_storable(request.target())
    assert request.expires_at(datetime.now(UTC)) < datetime.max.replace(tzinfo=UTC)


@PROPERTY
@given(devices)
def test_a_device_registration_is_refused_or_storable(raw: dict[str, Any]) -> None:
    for model in (DeviceCreate, DeviceUpdate):
        body = (
            raw
            if model is DeviceCreate
            else {k: v for k, v in raw.items() if k in {"user_id", "metadata", "app_version"}}
        )
        device = validates_or_refuses(model, body)
        if device is not None:
            assert_storable(device.model_dump(mode="json", exclude={"platform"}))


@PROPERTY
@given(st.one_of(st.binary(max_size=40), requests.map(lambda r: json.dumps(r).encode())))
@example(b'{"broadcast": true, "title": "x", "metadata": {"n": 1e400}}')
@example(b'{"app": "a\\u0000", "broadcast": true, "title": "x"}')
def test_the_ingress_parser_raises_only_value_errors(body: bytes) -> None:
    try:
        app, request = ingress.parse(body)
    except ValueError:
        return
    assert_storable(request.model_dump(mode="json"))
    assert app is None or storable.text_problem(app) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, {"b": "\x00"}]}, "a.1.b: a string must not contain a NUL character"),
        ({"a\x00": 1}, "object: a key must not contain a NUL character"),
        ({"a": "\udc00"}, "a: a string must not contain a lone surrogate (\\udc00)"),
        ({"a": math.inf}, "a: numbers must be finite, not inf"),
        ({"a": -math.inf}, "a: numbers must be finite, not -inf"),
        ({"a": math.nan}, "a: numbers must be finite, not nan"),
        ({"a": 2**63}, "a: integers must fit in 64 bits"),
        ({"a": -(2**63) - 1}, "a: integers must fit in 64 bits"),
    ],
)
def test_a_json_value_is_refused_naming_where(value: Any, problem: str) -> None:
    with pytest.raises(ValueError, match="unstorable_json") as info:
        NotificationCreate.model_validate({"broadcast": True, "title": "x", "metadata": value})
    assert problem in str(info.value)


def test_json_at_the_64_bit_edges_is_kept() -> None:
    metadata = {"min": -(2**63), "max": 2**63 - 1, "f": 1.5e308, "s": "é\U0001f511"}
    request = NotificationCreate.model_validate(
        {"broadcast": True, "title": "x", "metadata": metadata}
    )
    assert request.metadata == metadata


def test_send_at_is_at_most_100_years_ahead() -> None:
    base = {"broadcast": True, "title": "x"}
    near = datetime.now(UTC) + MAX_SCHEDULE_AHEAD - timedelta(days=1)
    assert NotificationCreate.model_validate({**base, "send_at": near}).send_at == near
    with pytest.raises(ValidationError, match="send_at_range"):
        NotificationCreate.model_validate({**base, "send_at": near + timedelta(days=2)})
