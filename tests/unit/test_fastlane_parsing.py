"""The fast lane reads a body to exactly what FastAPI's json.loads gives, or leaves it to
FastAPI: it never accepts a body with other values."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pushgate.api.fastlane import _loads, _well_formed

SAME = [
    b'{"a": -0, "b": 1.0000000000000002, "c": 18446744073709551615}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
    b'{"s": "\\u0000 \\u00e9 \xe2\x82\xac", "n": null, "t": true, "l": [1, 2.5e-3]}',
    b'  {"tiny": 0.1e-400, "huge": 1.5e308}  ',
]
REFUSED = [b'{"a": NaN}', b'{"a": Infinity}', b'\xef\xbb\xbf{"a": 1}', b'{"a": "\\ud800"}']


def typed(value: Any) -> Any:
    """The value with every leaf's type, so 1 and 1.0 differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("body", SAME)
def test_a_body_reads_as_json_loads_reads_it(body: bytes) -> None:
    assert typed(_loads(body)) == typed(json.loads(body))


@pytest.mark.parametrize("body", REFUSED)
def test_what_the_fast_reader_refuses_raises_so_fastapi_answers_it(body: bytes) -> None:
    json.loads(body)  # FastAPI's reader takes it (and then answers as it does)
    with pytest.raises(orjson.JSONDecodeError):
        _loads(body)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"broadcast": true, "title": "x"}', None),
        (b'{"broadcast": true, "title": "x"}', "k"),
    ],
)
def test_a_valid_request_takes_the_fast_lane(body: bytes, key: str | None) -> None:
    assert _well_formed(body, key) is not None


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"broadcast": true, "title": "x"}', ""),
        (b'{"broadcast": true, "title": "x"}', "k" * 256),
        (b'{"title": "x"}', None),
        (b'{"broadcast": true, "title": "x"', None),
        (b"[" * 100_000, None),
        (b'{"broadcast": true, "title": "x", "metadata": {"a": NaN}}', None),
        (b'{"broadcast": true, "title": "x", "metadata": {"a": 1e400}}', None),
        (b'{"broadcast": true, "title": "x\\u0000"}', None),
        (b'{"broadcast": true, "title": "x", "fcm": {"n": 18446744073709551616}}', None),
        (b'{"broadcast": true, "title": "x", "send_at": "9999-01-01T00:00:00Z"}', None),
        (b'{"broadcast": true, "title": "x"}', "cl\xc3\xa9"),  # UTF-8 read as latin-1
        (b'{"broadcast": true, "title": "x"}', "k\x00"),
    ],
)
def test_anything_else_goes_fastapis_way(body: bytes, key: str | None) -> None:
    assert _well_formed(body, key) is None
