"""The two legacy queue consumers' messages (pushgate/compat/template_consumer,
flask_consumer): which messages each claims (never pushgate's own, never another shape's),
and the `/v1` request each means, or the reason it is dead-lettered with."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pushgate.compat import messages, registry
from pushgate.compat.flask_consumer import message as flask_consumer
from pushgate.compat.queue_fields import priority
from pushgate.compat.template_consumer import message as template_consumer

# The bodies, byte for byte in their fields.
TEMPLATE_CONSUMER: dict[str, Any] = {
    "notification_id": "9b1f0c6e-0d7a-4f55-a7f4-2d1c3e4b5a69",
    "user_id": "u-1",
    "template_id": "order_shipped",
    "variables": {"title": "Shipped", "message": "Order 7 is on its way", "order": "7"},
    "priority": 1,
    "metadata": {"order_id": "7", "count": 3, "gift": True, "tags": ["a"], "none": None},
}
FLASK_CONSUMER: dict[str, Any] = {
    "notification_type": "push",
    "user_id": "u-1",
    "template_code": "welcome",
    "variables": {"name": "Ada"},
    "request_id": "signup-42",
    "priority": 8,
    "metadata": {"source": "signup"},
}
# webpush_gateway's message (shape 3): another shape's, not these two.
WEBPUSH_GATEWAY = {
    "notification_id": "n-1",
    "user_id": "u-1",
    "devices": [{"endpoint": "https://push.example/x", "keys": {"p256dh": "k", "auth": "a"}}],
    "title": "Hi",
    "body": "There",
    "action_url": "https://shop.example/",
}
# pushgate's own messages, as tests/integration/test_ingress.py and the templates tests send.
OWN: list[dict[str, Any]] = [
    {
        "app": "acme",
        "request_id": "order-7-shipped",
        "user_id": "u-7",
        "priority": "high",
        "title": "Shipped",
        "body": "Order 7 is on its way",
        "metadata": {"source": "orders"},
    },
    {"app": "acme", "user_id": "u-1", "body": "fine", "ttl": -5},
    {"app": "acme", "user_id": None, "user_ids": None, "body": "fine"},
    {"app": "acme", "user_id": "u-1", "template_code": "welcome", "variables": {"name": "Ada"}},
    {
        "app": "acme",
        "request_id": "order-42",
        "user_id": "u-7",
        "template_code": "order_shipped",
        "variables": {"name": "Ada"},
        "category": "orders",
    },
    {"app": "acme", "request_id": "r-1", "user_id": "u-1", "title": "Once", "priority": "normal"},
    {"tokens": [{"platform": "fcm", "token": "t"}], "title": "x", "request_id": "r"},
    {},
]


def claimed_by(data: dict[str, Any]) -> list[str]:
    return [
        name
        for name, matches in (
            ("template_consumer", template_consumer.matches),
            ("flask_consumer", flask_consumer.matches),
        )
        if matches(data)
    ]


def test_each_shape_claims_its_own_messages_and_no_other() -> None:
    assert claimed_by(TEMPLATE_CONSUMER) == ["template_consumer"]
    # Without template_id, notification_id with variables is still the consumer's.
    assert claimed_by({**TEMPLATE_CONSUMER, "template_id": None}) == ["template_consumer"]
    without = {k: v for k, v in TEMPLATE_CONSUMER.items() if k != "template_id"}
    assert claimed_by(without) == ["template_consumer"]
    assert claimed_by(FLASK_CONSUMER) == ["flask_consumer"]
    # A producer that left notification_type out: request_id, template_code, integer priority.
    no_type = {k: v for k, v in FLASK_CONSUMER.items() if k != "notification_type"}
    assert claimed_by(no_type) == ["flask_consumer"]
    assert claimed_by({**no_type, "priority": True}) == []
    assert claimed_by({**no_type, "priority": "high"}) == []
    assert claimed_by(WEBPUSH_GATEWAY) == []
    for own in OWN:
        assert claimed_by(own) == [], own


def test_the_ingress_reads_pushgate_own_messages_as_before() -> None:
    registry.load()
    for own in OWN:
        assert messages.recognise(dict(own)) is None, own
    found = messages.recognise(dict(TEMPLATE_CONSUMER))
    assert found is not None
    assert found.name == "template_consumer"
    found = messages.recognise(dict(FLASK_CONSUMER))
    assert found is not None
    assert found.name == "flask_consumer"


def test_priorities_zero_to_ten_map_to_normal_below_five_and_high_from_five() -> None:
    assert [priority(n) for n in range(11)] == ["normal"] * 5 + ["high"] * 6
    assert priority(None) == "normal"
    assert priority("high") == "high"
    for bad in (-1, 11, 5.0, True, "5", "urgent", [5]):
        with pytest.raises(ValueError, match=r"^invalid_input: priority: must be an integer"):
            priority(bad)


def test_a_template_consumer_message_with_a_pushgate_template() -> None:
    request = template_consumer.request_of(dict(TEMPLATE_CONSUMER), template="order_shipped")
    assert request.template_code == "order_shipped"
    assert request.variables == TEMPLATE_CONSUMER["variables"]
    assert request.user_ids == ["u-1"]
    assert request.idempotency_key == TEMPLATE_CONSUMER["notification_id"]
    assert request.priority == "normal"
    assert request.metadata == TEMPLATE_CONSUMER["metadata"]
    assert (request.title, request.body, request.data) == (None, None, {})


def test_a_template_consumer_message_without_a_template_sends_its_title_and_message() -> None:
    message = {**TEMPLATE_CONSUMER, "priority": 7, "user_id": 42, "ttl": 600}
    request = template_consumer.request_of(message, template=None)
    assert (request.title, request.body) == ("Shipped", "Order 7 is on its way")
    assert request.template_code is None
    assert request.variables == {}
    # Flat values become data (numbers and booleans as /v1 converts them); nested and null
    # ones stay in the stored metadata only.
    assert request.data == {"order_id": "7", "count": "3", "gift": "true"}
    assert request.metadata == TEMPLATE_CONSUMER["metadata"]
    assert request.priority == "high"
    assert request.user_ids == ["42"]
    assert request.ttl == 600  # pushgate's own options pass through


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"priority": 11}, "invalid_input: priority: must be an integer from 0 to 10"),
        ({"variables": ["x"]}, "invalid_input: variables: must be an object"),
        ({"variables": {"title": 7}}, "invalid_input: variables.title: must be a string"),
        ({"user_id": None}, "exactly one target"),
        ({"variables": {}, "metadata": {}}, "nothing to send"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_template_consumer_message_that_can_never_be_sent(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        template_consumer.request_of({**TEMPLATE_CONSUMER, **change}, template=None)


def test_a_template_id_that_cannot_name_a_template_is_refused() -> None:
    assert template_consumer.template_code({"template_id": 12}) == "12"
    assert template_consumer.template_code({"template_id": ""}) is None
    with pytest.raises(ValueError, match="template_id: must be a string"):
        template_consumer.template_code({"template_id": {"id": 1}})
    with pytest.raises(ValueError, match="template_id: must not contain a NUL"):
        template_consumer.template_code({"template_id": "a\x00b"})


def test_a_flask_consumer_message_is_the_v1_request_with_a_word_for_its_priority() -> None:
    request = flask_consumer.request_of(dict(FLASK_CONSUMER))
    assert request.template_code == "welcome"
    assert request.variables == {"name": "Ada"}
    assert request.user_ids == ["u-1"]
    assert request.idempotency_key == "signup-42"
    assert request.priority == "high"
    assert request.metadata == {"source": "signup"}
    nulls = flask_consumer.request_of({**FLASK_CONSUMER, "metadata": None, "request_id": 42})
    assert nulls.metadata == {}
    assert nulls.idempotency_key == "42"


def test_a_flask_consumer_message_for_another_channel_or_invalid_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^unsupported_notification_type: notification_type is"):
        flask_consumer.request_of({**FLASK_CONSUMER, "notification_type": "email"})
    with pytest.raises(ValueError, match="priority: must be an integer from 0 to 10"):
        flask_consumer.request_of({**FLASK_CONSUMER, "priority": -1})
    with pytest.raises(ValidationError, match="title comes from the template"):
        flask_consumer.request_of({**FLASK_CONSUMER, "title": "x"})
