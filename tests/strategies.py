"""Hypothesis strategies for hostile request input: text with NUL characters and lone
surrogates, NaN, infinities and integers beyond 64 bits, times at the ends of the calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

# Text that reaches the edges: NUL, lone surrogates, other controls, any plane.
edgy_text = st.one_of(
    st.text(max_size=12),
    st.text(
        alphabet=st.sampled_from(["a", "\x00", "\ud800", "\udc00", "é", "\n", "🔑"]), max_size=6
    ),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, edgy_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(edgy_text, inner, max_size=3)
    ),
    max_leaves=8,
)
instants = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "9999-01-01T00:00:00Z",
            "2030-01-02T03:04:05",
            "2030-01-02T03:04:05+02:00",
        ]
    ),
    st.datetimes(timezones=st.sampled_from([None, UTC])).map(datetime.isoformat),
)
TARGETS: list[dict[str, Any]] = [
    {"broadcast": True},
    {"topics": ["news"]},
    {"tokens": [{"platform": "fcm", "token": "t"}]},
]
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": edgy_text,
    "body": edgy_text,
    "category": edgy_text,
    "user_ids": st.lists(edgy_text, min_size=1, max_size=2),
    "user_id": edgy_text,
    "tag": edgy_text,
    "collapse_key": edgy_text,
    "idempotency_key": edgy_text,
    "request_id": edgy_text,
    "data": st.dictionaries(edgy_text, scalars, max_size=3),
    "metadata": json_values,
    "variables": json_values,
    "webpush": json_values,
    "fcm": json_values,
    "apns": json_values,
    "send_at": instants,
    "ttl": numbers,
    "condition": edgy_text,
    "tokens": st.lists(
        st.fixed_dictionaries(
            {
                "endpoint": edgy_text,
                "keys": st.fixed_dictionaries({"p256dh": edgy_text, "auth": edgy_text}),
                "expirationTime": numbers,
            }
        ),
        min_size=1,
        max_size=1,
    ),
}
requests = st.builds(
    lambda target, fields: {**target, **fields},
    st.sampled_from(TARGETS),
    st.fixed_dictionaries({}, optional=FIELDS),
)
DEVICE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "user_id": edgy_text,
    "app_version": edgy_text,
    "metadata": json_values,
    "token": edgy_text,
    "locale": edgy_text,
    "timezone": edgy_text,
}
devices = st.fixed_dictionaries({"platform": st.just("fcm")}, optional=DEVICE_FIELDS)


def raw_headers(headers: dict[str, str], name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """The headers plus one sent as raw bytes (how a client sends a non-ASCII value)."""
    return [(k.encode(), v.encode()) for k, v in headers.items()] + [(name, value)]
