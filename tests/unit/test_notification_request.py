"""The notification request model shared by the API and the `push.queue` ingress: targets,
legacy aliases, data conversion, send times, conditions, and the idempotency hash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from pushgate.domain.message import Priority
from pushgate.domain.request import MIN_DELIVERY_WINDOW_SECONDS, NotificationCreate

P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SUBSCRIPTION = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc123",
    "expirationTime": None,
    "keys": {"p256dh": P256DH, "auth": AUTH},
}


def refusal(body: dict[str, Any]) -> tuple[str, str]:
    """The first problem with a body, as (field, message) the way the API reports it."""
    with pytest.raises(ValidationError) as caught:
        NotificationCreate.model_validate(body)
    first = caught.value.errors()[0]
    return ".".join(str(p) for p in first["loc"]), str(first["msg"])


# --- targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        {"device_ids": [str(uuid.uuid4())]},
        {"tokens": [{"platform": "fcm", "token": "abc:def"}]},
        {"user_ids": ["u1"]},
        {"topics": ["news"]},
        {"condition": "'news' in topics"},
        {"broadcast": True},
    ],
)
def test_each_target_kind_alone_is_accepted(target: dict[str, Any]) -> None:
    # When a request names exactly one target
    request = NotificationCreate.model_validate({**target, "title": "Hi"})

    # Then that is the stored target
    [kind] = target
    assert request.target()["kind"] == kind


@pytest.mark.parametrize(
    "targets",
    [
        {},
        {"broadcast": False},
        {"user_ids": ["u1"], "topics": ["news"]},
        {"broadcast": True, "device_ids": [str(uuid.uuid4())]},
        {"condition": "'a' in topics", "topics": ["a"]},
    ],
)
def test_anything_but_exactly_one_target_is_refused_on_the_target_field(
    targets: dict[str, Any],
) -> None:
    field, message = refusal({**targets, "title": "Hi"})

    assert field == "target"
    assert "exactly one target" in message


@pytest.mark.parametrize("name", ["device_ids", "tokens", "user_ids", "topics"])
def test_an_empty_audience_list_is_refused(name: str) -> None:
    field, _ = refusal({name: [], "title": "Hi"})

    assert field == name


def test_a_device_id_that_is_not_a_uuid_is_refused_at_accept_time() -> None:
    field, _ = refusal({"device_ids": ["not-a-uuid"], "title": "Hi"})

    assert field == "device_ids.0"


def test_device_ids_are_stored_as_strings() -> None:
    device = uuid.uuid4()

    request = NotificationCreate.model_validate({"device_ids": [str(device)], "title": "Hi"})

    assert request.target() == {"kind": "device_ids", "value": [str(device)]}


def test_legacy_user_id_is_one_user_of_user_ids() -> None:
    # Given the shape older systems send
    request = NotificationCreate.model_validate({"user_id": "u42", "title": "Hi"})

    # Then it targets that user, like `user_ids`
    assert request.target() == {"kind": "user_ids", "value": ["u42"]}
    assert request.request_hash() == (
        NotificationCreate.model_validate({"user_ids": ["u42"], "title": "Hi"}).request_hash()
    )


def test_user_id_and_user_ids_together_are_refused() -> None:
    field, message = refusal({"user_id": "u1", "user_ids": ["u2"], "title": "Hi"})

    assert field == "user_id"
    assert "not both" in message


# --- aliases and refusals ------------------------------------------------------------------


def test_request_id_is_the_idempotency_key() -> None:
    request = NotificationCreate.model_validate(
        {"request_id": "order-42-shipped", "broadcast": True, "title": "Hi"}
    )

    assert request.idempotency_key == "order-42-shipped"


def test_an_idempotency_key_over_255_characters_is_refused() -> None:
    field, _ = refusal({"idempotency_key": "k" * 256, "broadcast": True, "title": "Hi"})

    assert field == "idempotency_key"


def test_a_template_notification_gives_no_title_of_its_own() -> None:
    field, message = refusal(
        {"user_id": "u1", "template_code": "welcome", "variables": {"n": 1}, "title": "Hi"}
    )

    assert field == "title"
    assert "comes from the template" in message


def test_variables_without_a_template_are_refused() -> None:
    field, message = refusal({"user_id": "u1", "title": "Hi", "variables": {"name": "Ann"}})

    assert field == "variables"
    assert "template_code" in message


def test_a_template_notification_needs_no_title_and_normalises_its_locale() -> None:
    request = NotificationCreate.model_validate(
        {"user_id": "u1", "template_code": "welcome", "locale": "fr_ca"}
    )

    assert request.locale == "fr-CA"


def test_a_request_with_nothing_to_send_is_refused() -> None:
    field, message = refusal({"broadcast": True, "category": "news"})

    assert field == "title"
    assert "nothing to send" in message


def test_unknown_fields_are_refused_by_name() -> None:
    field, _ = refusal({"broadcast": True, "title": "Hi", "titel": "typo"})

    assert field == "titel"


# --- payload -------------------------------------------------------------------------------


def test_data_values_become_strings() -> None:
    request = NotificationCreate.model_validate(
        {
            "broadcast": True,
            "data": {"order": 42, "price": 9.5, "paid": True, "gift": False, "note": "x"},
        }
    )

    assert request.message().data == {
        "order": "42",
        "price": "9.5",
        "paid": "true",
        "gift": "false",
        "note": "x",
    }


@pytest.mark.parametrize("nested", [{"a": 1}, [1, 2], None])
def test_a_nested_data_value_is_refused_naming_its_key(nested: Any) -> None:
    field, message = refusal({"broadcast": True, "data": {"ok": "1", "items": nested}})

    assert field == "data.items"
    assert "strings, numbers or booleans" in message


def test_more_than_100_data_keys_are_refused() -> None:
    field, _ = refusal({"broadcast": True, "data": {f"k{i}": "v" for i in range(101)}})

    assert field == "data"


def test_message_carries_the_options() -> None:
    request = NotificationCreate.model_validate(
        {"broadcast": True, "title": "T", "priority": "high", "ttl": 60, "collapse_key": "c"}
    )

    message = request.message()

    assert (message.title, message.priority, message.ttl, message.collapse_key) == (
        "T",
        Priority.HIGH,
        60,
        "c",
    )


# --- time ----------------------------------------------------------------------------------


def test_a_send_at_without_offset_is_taken_as_utc() -> None:
    request = NotificationCreate.model_validate(
        {"broadcast": True, "title": "Hi", "send_at": "2030-01-02T03:04:05"}
    )

    assert request.send_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_send_at_with_offset_keeps_its_instant() -> None:
    request = NotificationCreate.model_validate(
        {"broadcast": True, "title": "Hi", "send_at": "2030-01-02T05:04:05+02:00"}
    )

    assert request.send_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_expiry_counts_from_the_send_time() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    request = NotificationCreate.model_validate(
        {"broadcast": True, "title": "Hi", "ttl": 3600, "send_at": "2030-01-01T02:00:00Z"}
    )

    assert request.expires_at(now) == datetime(2030, 1, 1, 3, tzinfo=UTC)


def test_ttl_zero_still_leaves_time_for_the_first_attempt() -> None:
    # Given "now or never" for the push service
    now = datetime(2030, 1, 1, tzinfo=UTC)
    request = NotificationCreate.model_validate({"broadcast": True, "title": "Hi", "ttl": 0})

    # Then pushgate itself does not expire it before it could be sent
    assert request.expires_at(now) == now + timedelta(seconds=MIN_DELIVERY_WINDOW_SECONDS)
    assert request.message().ttl == 0


# --- conditions ----------------------------------------------------------------------------


def test_a_valid_condition_is_kept_as_written() -> None:
    text = "'a' in topics && !('b' in topics)"

    request = NotificationCreate.model_validate({"condition": text, "title": "Hi"})

    assert request.target() == {"kind": "condition", "value": text}


@pytest.mark.parametrize(
    "condition",
    ["'a' in topics &&", "a in topics", "('a' in topics", "'a' in topics 'b' in topics", "  "],
)
def test_a_condition_syntax_error_is_refused_on_the_condition_field(condition: str) -> None:
    field, message = refusal({"condition": condition, "title": "Hi"})

    assert field == "condition"
    assert message.startswith("condition")


# --- raw tokens ----------------------------------------------------------------------------


def test_a_bare_push_subscription_is_a_webpush_token() -> None:
    # When a browser's PushSubscription JSON is given as it comes
    request = NotificationCreate.model_validate({"tokens": [SUBSCRIPTION], "title": "Hi"})

    # Then it is a webpush address with its keys
    [token] = request.tokens or []
    assert token.platform == "webpush"
    assert token.subscription is not None
    assert token.subscription.endpoint == SUBSCRIPTION["endpoint"]
    assert token.subscription.keys.auth == AUTH


def test_platform_token_objects_are_accepted() -> None:
    request = NotificationCreate.model_validate(
        {
            "tokens": [
                {"platform": "fcm", "token": "fcm-token:1"},
                {"platform": "apns", "token": "ab" * 32},
                {"platform": "webpush", "subscription": SUBSCRIPTION},
            ],
            "title": "Hi",
        }
    )

    assert [t["platform"] for t in request.target()["value"]] == ["fcm", "apns", "webpush"]


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ({"platform": "webpush", "token": "https://push.example/x"}, "subscription"),
        ({"platform": "fcm"}, "token"),
        ({"platform": "fcm", "token": "t", "subscription": SUBSCRIPTION}, "no `subscription`"),
        ({"platform": "sms", "token": "t"}, "fcm"),
    ],
)
def test_an_incomplete_token_object_is_refused_naming_the_item(
    token: dict[str, Any], says: str
) -> None:
    field, message = refusal({"tokens": [token], "title": "Hi"})

    assert field.startswith("tokens.0")
    assert says in message


# --- idempotency hash ----------------------------------------------------------------------


def test_request_hash_ignores_key_order_and_the_key_itself() -> None:
    first = NotificationCreate.model_validate(
        {
            "idempotency_key": "k1",
            "user_ids": ["u1"],
            "title": "Hi",
            "data": {"a": "1", "b": "2"},
            "webpush": {"x": 1, "y": {"p": 1, "q": 2}},
        }
    )
    second = NotificationCreate.model_validate(
        {
            "webpush": {"y": {"q": 2, "p": 1}, "x": 1},
            "data": {"b": "2", "a": "1"},
            "title": "Hi",
            "user_ids": ["u1"],
            "request_id": "k2",
        }
    )

    assert first.request_hash() == second.request_hash()


def test_request_hash_changes_with_the_content() -> None:
    base = {"user_ids": ["u1"], "title": "Hi"}

    assert (
        NotificationCreate.model_validate(base).request_hash()
        != NotificationCreate.model_validate({**base, "title": "Hi!"}).request_hash()
    )


# --- fcm_topic -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "address"),
    [
        ({"topics": ["news"]}, "topic:news"),
        ({"topics": ["news", "news"]}, "topic:news"),
        ({"topics": ["a", "b"]}, "condition:'a' in topics || 'b' in topics"),
        (
            {"topics": ["a", "b", "c", "d", "e"]},
            "condition:'a' in topics || 'b' in topics || 'c' in topics || 'd' in topics"
            " || 'e' in topics",
        ),
        (
            {"condition": "'a' in topics && !('b' in topics)"},
            "condition:'a' in topics && !('b' in topics)",
        ),
    ],
)
def test_fcm_topic_is_stored_with_the_target_and_addresses_one_fcm_destination(
    target: dict[str, Any], address: str
) -> None:
    from pushgate.domain import notification

    # When a topics or condition request asks for fcm_topic
    request = NotificationCreate.model_validate({**target, "fcm_topic": True, "title": "Hi"})

    # Then the stored target says so, and its one delivery addresses FCM's topic or condition
    stored = request.target()
    assert stored["fcm_topic"] is True
    assert notification.is_fcm_topic(stored)
    assert notification.fcm_topic_address(stored) == address
    assert notification.fcm_destination(address) == address.partition(":")[2]


def test_without_fcm_topic_the_stored_target_is_unchanged() -> None:
    from pushgate.domain import notification

    stored = NotificationCreate.model_validate({"topics": ["news"], "title": "Hi"}).target()

    assert stored == {"kind": "topics", "value": ["news"]}
    assert not notification.is_fcm_topic(stored)


@pytest.mark.parametrize(
    "target",
    [
        {"user_ids": ["u1"]},
        {"user_id": "u1"},
        {"device_ids": [str(uuid.uuid4())]},
        {"tokens": [{"platform": "fcm", "token": "abc:def"}]},
        {"broadcast": True},
    ],
)
def test_fcm_topic_needs_a_topics_or_condition_target(target: dict[str, Any]) -> None:
    field, message = refusal({**target, "fcm_topic": True, "title": "Hi"})

    assert field == "fcm_topic"
    assert "topics" in message
    assert "condition" in message


def test_fcm_topic_takes_at_most_five_topics() -> None:
    five = ["a", "b", "c", "d", "e"]
    NotificationCreate.model_validate({"topics": five, "fcm_topic": True, "title": "Hi"})
    # The limit is FCM's: without fcm_topic pushgate fans out to any number of topics
    NotificationCreate.model_validate({"topics": [*five, "f"], "title": "Hi"})

    field, message = refusal({"topics": [*five, "f"], "fcm_topic": True, "title": "Hi"})

    assert field == "topics"
    assert "at most 5 topics" in message
    assert "got 6" in message


def test_fcm_topic_condition_names_at_most_five_topics() -> None:
    condition = " || ".join(f"'{t}' in topics" for t in "abcdef")
    NotificationCreate.model_validate({"condition": condition, "title": "Hi"})

    field, message = refusal({"condition": condition, "fcm_topic": True, "title": "Hi"})

    assert field == "condition"
    assert "at most 5 topics" in message


def test_request_hash_includes_fcm_topic_and_is_unchanged_without_it() -> None:
    import hashlib

    import orjson

    base = {"topics": ["news"], "title": "Hi"}
    plain = NotificationCreate.model_validate(base)
    with_option = NotificationCreate.model_validate({**base, "fcm_topic": True})

    # The option is part of the request: the same key with and without it is a conflict
    assert plain.request_hash() != with_option.request_hash()
    # Off, it is left out (as every option added since), so a request stored before the
    # options existed keeps its hash
    from pushgate.domain.request import _LATER_OPTIONS

    before = plain.model_dump(mode="json", exclude={"idempotency_key", *_LATER_OPTIONS})
    assert plain.request_hash() == (
        hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )
