"""Conformance: for representative notifications, the JSON `build_message` sends equals what
firebase-admin's own encoder produces for the equivalent `messaging.Message`.

firebase-admin serialises a message in `messaging._MessagingService._message_data` (which calls
`encode_message`, i.e. `_messaging_encoder.MessageEncoder().default`) before posting it with
`json=`; both are called here directly, without a Firebase app and without the network. The
equivalents are written out by hand, so a change on either side shows up as a difference.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import orjson
import pytest
from firebase_admin import messaging  # type: ignore[import-untyped]

from pushgate.domain.message import Action, Message, Priority
from pushgate.providers.base import Target
from pushgate.providers.fcm_message import build_message, build_topic_message

NOW = 1_700_000_000
TOKEN = (
    "dGVzdA:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ-hQMRKRrZuJAEcl7B338qju59z"
    "JMjw2DELjzEvxwYv7hH5Ynpc1ODQ0aT4U4OFEeco8ohsN5PjL1iC2dNtk2BAokeMCg2ZXKqpc8FXKmhX94kIxQ"
)


def firebase_message(**fields: Any) -> Any:
    """`messaging.Message(**fields)`. firebase-admin 7.7 deprecates `token` in favour of `fid`
    (Firebase installation IDs); registration tokens are still what devices give us."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
        return messaging.Message(**fields)


def firebase_body(message: Any, *, dry_run: bool = False) -> Any:
    body = messaging._MessagingService._message_data(None, message, dry_run)
    # The wire form: requests posts it with json.dumps.
    return json.loads(json.dumps(body))


def ours(body: dict[str, Any]) -> Any:
    wire = orjson.loads(orjson.dumps(body))
    # firebase-admin sends validate_only only when it is true; FCM reads a missing one as false.
    if wire["validate_only"] is False:
        del wire["validate_only"]
    return wire


def aps_headers(
    *, priority: str, ttl: int, push_type: str = "alert", **more: str
) -> dict[str, str]:
    expiration = "0" if ttl == 0 else str(NOW + ttl)
    headers = {
        "apns-priority": priority,
        "apns-expiration": expiration,
        "apns-push-type": push_type,
    }
    return headers | {k.replace("_", "-"): v for k, v in more.items()}


CASES: list[tuple[str, Message, Any]] = [
    (
        "everything",
        Message(
            title="Order shipped",
            body="Arrives Tuesday",
            icon="ic_box",
            image="https://cdn.shop.example.com/box.png",
            badge="https://cdn.shop.example.com/badge.png",
            url="https://shop.example.com/orders/42",
            tag="order-42",
            sound="default",
            actions=(Action("track", "Track", "https://cdn.shop.example.com/t.png"),),
            data={"order_id": "42", "kind": "shipping"},
            priority=Priority.HIGH,
            ttl=3600,
            collapse_key="order-42",
        ),
        firebase_message(
            token=TOKEN,
            notification=messaging.Notification(
                title="Order shipped",
                body="Arrives Tuesday",
                image="https://cdn.shop.example.com/box.png",
            ),
            data={"order_id": "42", "kind": "shipping"},
            android=messaging.AndroidConfig(
                priority="high",
                ttl=3600,
                collapse_key="order-42",
                notification=messaging.AndroidNotification(
                    icon="ic_box", sound="default", tag="order-42"
                ),
            ),
            apns=messaging.APNSConfig(
                headers=aps_headers(priority="10", ttl=3600, apns_collapse_id="order-42"),
                payload=messaging.APNSPayload(
                    aps=messaging.Aps(
                        alert=messaging.ApsAlert(title="Order shipped", body="Arrives Tuesday"),
                        sound="default",
                        mutable_content=True,
                    )
                ),
                fcm_options=messaging.APNSFCMOptions(image="https://cdn.shop.example.com/box.png"),
            ),
            webpush=messaging.WebpushConfig(
                headers={"TTL": "3600", "Urgency": "high", "Topic": "order-42"},
                notification=messaging.WebpushNotification(
                    icon="ic_box",
                    badge="https://cdn.shop.example.com/badge.png",
                    tag="order-42",
                    actions=[
                        messaging.WebpushNotificationAction(
                            "track", "Track", icon="https://cdn.shop.example.com/t.png"
                        )
                    ],
                ),
                fcm_options=messaging.WebpushFCMOptions(link="https://shop.example.com/orders/42"),
            ),
        ),
    ),
    (
        "title-and-body",
        Message(title="Hello", body="World", ttl=86_400),
        firebase_message(
            token=TOKEN,
            notification=messaging.Notification(title="Hello", body="World"),
            android=messaging.AndroidConfig(priority="normal", ttl=86_400),
            apns=messaging.APNSConfig(
                headers=aps_headers(priority="5", ttl=86_400),
                payload=messaging.APNSPayload(
                    aps=messaging.Aps(alert=messaging.ApsAlert(title="Hello", body="World"))
                ),
            ),
            webpush=messaging.WebpushConfig(headers={"TTL": "86400", "Urgency": "normal"}),
        ),
    ),
    (
        "data-only",
        Message(data={"sync": "inbox", "since": "1699999999"}, priority=Priority.HIGH, ttl=0),
        firebase_message(
            token=TOKEN,
            data={"sync": "inbox", "since": "1699999999"},
            android=messaging.AndroidConfig(priority="high", ttl=0),
            apns=messaging.APNSConfig(
                headers=aps_headers(priority="5", ttl=0, push_type="background"),
                payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
            ),
            webpush=messaging.WebpushConfig(headers={"TTL": "0", "Urgency": "high"}),
        ),
    ),
    (
        "unicode",
        Message(title="Café ☕", body="Ваш заказ 🚚 — 東京", data={"city": "東京"}, ttl=60),
        firebase_message(
            token=TOKEN,
            notification=messaging.Notification(title="Café ☕", body="Ваш заказ 🚚 — 東京"),
            data={"city": "東京"},
            android=messaging.AndroidConfig(priority="normal", ttl=60),
            apns=messaging.APNSConfig(
                headers=aps_headers(priority="5", ttl=60),
                payload=messaging.APNSPayload(
                    aps=messaging.Aps(
                        alert=messaging.ApsAlert(title="Café ☕", body="Ваш заказ 🚚 — 東京")
                    )
                ),
            ),
            webpush=messaging.WebpushConfig(headers={"TTL": "60", "Urgency": "normal"}),
        ),
    ),
    (
        "platform-overrides",
        Message(
            title="Sale",
            body="-20% today",
            ttl=7200,
            fcm={
                "android": {
                    "notification": {"channel_id": "promotions", "color": "#FF0000"},
                    "restricted_package_name": "com.shop.app",
                },
                "apns": {
                    "payload": {"aps": {"category": "PROMO", "thread-id": "sales"}, "promo": "s20"}
                },
                "webpush": {"notification": {"requireInteraction": True}},
                "fcm_options": {"analytics_label": "spring_sale"},
            },
        ),
        firebase_message(
            token=TOKEN,
            notification=messaging.Notification(title="Sale", body="-20% today"),
            android=messaging.AndroidConfig(
                priority="normal",
                ttl=7200,
                restricted_package_name="com.shop.app",
                notification=messaging.AndroidNotification(
                    channel_id="promotions", color="#FF0000"
                ),
            ),
            apns=messaging.APNSConfig(
                headers=aps_headers(priority="5", ttl=7200),
                payload=messaging.APNSPayload(
                    aps=messaging.Aps(
                        alert=messaging.ApsAlert(title="Sale", body="-20% today"),
                        category="PROMO",
                        thread_id="sales",
                    ),
                    promo="s20",
                ),
            ),
            webpush=messaging.WebpushConfig(
                headers={"TTL": "7200", "Urgency": "normal"},
                notification=messaging.WebpushNotification(require_interaction=True),
            ),
            fcm_options=messaging.FCMOptions(analytics_label="spring_sale"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("message", "equivalent"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_token_messages_encode_as_firebase_admin_does(message, equivalent):
    assert ours(build_message(Target(TOKEN), message, now=NOW)) == firebase_body(equivalent)


def test_a_dry_run_encodes_as_firebase_admin_does():
    equivalent = firebase_message(
        token=TOKEN,
        notification=messaging.Notification(body="check"),
        android=messaging.AndroidConfig(priority="normal", ttl=60),
        apns=messaging.APNSConfig(
            headers=aps_headers(priority="5", ttl=60),
            payload=messaging.APNSPayload(
                aps=messaging.Aps(alert=messaging.ApsAlert(body="check"))
            ),
        ),
        webpush=messaging.WebpushConfig(headers={"TTL": "60", "Urgency": "normal"}),
    )
    message = Message(body="check", ttl=60)

    body = build_message(Target(TOKEN), message, validate_only=True, now=NOW)

    assert ours(body) == firebase_body(equivalent, dry_run=True)


@pytest.mark.parametrize(
    ("destination", "firebase_target"),
    [
        ("/topics/weather", {"topic": "/topics/weather"}),
        ("weather", {"topic": "weather"}),
        ("'stock-GOOG' in topics || 'industry-tech' in topics", None),
    ],
    ids=["prefixed-topic", "topic", "condition"],
)
def test_topic_and_condition_messages_encode_as_firebase_admin_does(destination, firebase_target):
    target = firebase_target or {"condition": destination}
    equivalent = firebase_message(
        notification=messaging.Notification(title="Rain"),
        android=messaging.AndroidConfig(priority="normal", ttl=600),
        apns=messaging.APNSConfig(
            headers=aps_headers(priority="5", ttl=600),
            payload=messaging.APNSPayload(
                aps=messaging.Aps(alert=messaging.ApsAlert(title="Rain"))
            ),
        ),
        webpush=messaging.WebpushConfig(headers={"TTL": "600", "Urgency": "normal"}),
        **target,
    )

    body = build_topic_message(destination, Message(title="Rain", ttl=600), now=NOW)

    assert ours(body) == firebase_body(equivalent)
