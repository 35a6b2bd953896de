"""The Web Push payload a service worker receives, the `webpush` override, and the size limit."""

from __future__ import annotations

import orjson
import pytest

from pushgate.domain.message import (
    MAX_WEBPUSH_PLAINTEXT,
    Action,
    Message,
    Priority,
    check_webpush_payload,
    webpush_payload,
)
from pushgate.errors import PayloadTooLargeError


def test_payload_carries_every_field_a_service_worker_shows():
    message = Message(
        title="Order shipped",
        body="Your parcel is on its way",
        icon="https://shop.example.com/icon.png",
        image="https://shop.example.com/parcel.jpg",
        badge="https://shop.example.com/badge.png",
        url="https://shop.example.com/orders/42",
        tag="order-42",
        actions=[
            Action(action="track", title="Track", icon="https://shop.example.com/t.png"),
            Action(action="dismiss", title="Dismiss"),
        ],
        data={"order_id": "42"},
    )

    assert orjson.loads(webpush_payload(message)) == {
        "title": "Order shipped",
        "body": "Your parcel is on its way",
        "icon": "https://shop.example.com/icon.png",
        "image": "https://shop.example.com/parcel.jpg",
        "badge": "https://shop.example.com/badge.png",
        "url": "https://shop.example.com/orders/42",
        "tag": "order-42",
        "actions": [
            {"action": "track", "title": "Track", "icon": "https://shop.example.com/t.png"},
            {"action": "dismiss", "title": "Dismiss"},
        ],
        "data": {"order_id": "42"},
    }


def test_empty_fields_and_delivery_options_stay_out_of_the_payload():
    message = Message(
        title="Hi",
        body="",
        sound="chime.caf",
        priority=Priority.HIGH,
        ttl=60,
        collapse_key="k",
        fcm={"android": {}},
        apns={"aps": {}},
    )

    assert orjson.loads(webpush_payload(message)) == {"title": "Hi"}


def test_webpush_override_adds_replaces_and_removes_fields():
    message = Message(
        title="Generic title",
        body="Body",
        icon="https://a.example.com/i.png",
        webpush={"title": "Browser title", "requireInteraction": True, "icon": None},
    )

    assert orjson.loads(webpush_payload(message)) == {
        "title": "Browser title",
        "body": "Body",
        "requireInteraction": True,
    }


def test_payload_of_exactly_the_limit_is_accepted():
    overhead = len(webpush_payload(Message(body="")))  # "{}"
    filler = MAX_WEBPUSH_PLAINTEXT - overhead - len('"body":""')
    message = Message(body="x" * filler)

    payload = check_webpush_payload(message)

    assert len(payload) == MAX_WEBPUSH_PLAINTEXT == 3993


def test_payload_one_byte_over_the_limit_is_refused_naming_the_field():
    overhead = len('{"body":""}')
    message = Message(body="x" * (MAX_WEBPUSH_PLAINTEXT - overhead + 1))

    with pytest.raises(PayloadTooLargeError) as raised:
        check_webpush_payload(message, field="notification.body")

    assert raised.value.code == "payload_too_large"
    assert raised.value.status_code == 413
    assert raised.value.details == {
        "field": "notification.body",
        "size_bytes": 3994,
        "limit_bytes": 3993,
    }


def test_limit_counts_utf8_bytes_not_characters():
    # 1,500 euro signs are 4,500 bytes of UTF-8: over the limit though under 3,993 characters.
    with pytest.raises(PayloadTooLargeError):
        check_webpush_payload(Message(body="€" * 1500))
