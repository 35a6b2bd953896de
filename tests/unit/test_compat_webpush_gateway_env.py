"""The Web Push gateway's legacy environment names (VAPID_*, USER_SERVICE_URL, PORT,
RABBITMQ_QUEUE_NAME), its settings, the ingress queue's name on RabbitMQ, and which queue
messages are its own."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pushgate.broker.rabbitmq_topology import Topology
from pushgate.compat.webpush_gateway import messages, start
from pushgate.compat.webpush_gateway.settings import WebPushGatewaySettings
from pushgate.domain import vapid
from pushgate.errors import ConfigError
from pushgate.settings import load_settings

SUBSCRIPTION = {
    "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
    "expirationTime": None,
    "keys": {"p256dh": "BNc", "auth": "tBH"},
}


def test_vapid_names_and_the_user_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAPID_PUBLIC_KEY", "BPub")
    monkeypatch.setenv("VAPID_PRIVATE_KEY", "priv-raw")
    monkeypatch.setenv("VAPID_EMAIL", "ops@shop.example.com")
    monkeypatch.setenv("USER_SERVICE_URL", "https://users.internal.example.com/hooks")
    options = load_settings().compat.webpush_gateway
    assert options.vapid_public_key == "BPub"
    assert options.vapid_private_key is not None
    assert options.vapid_private_key.get_secret_value() == "priv-raw"
    assert options.vapid_subject == "mailto:ops@shop.example.com"
    assert options.user_service_url == "https://users.internal.example.com/hooks"

    # VAPID_SUBJECT (shape 4's name, a whole subject) wins over VAPID_EMAIL
    monkeypatch.setenv("VAPID_SUBJECT", "https://shop.example.com")
    assert load_settings().compat.webpush_gateway.vapid_subject == "https://shop.example.com"
    # and the section's own names over both
    monkeypatch.setenv("PUSHGATE_COMPAT__WEBPUSH_GATEWAY__VAPID_SUBJECT", "mailto:a@b.example.com")
    assert load_settings().compat.webpush_gateway.vapid_subject == "mailto:a@b.example.com"

    monkeypatch.delenv("VAPID_SUBJECT")
    monkeypatch.delenv("PUSHGATE_COMPAT__WEBPUSH_GATEWAY__VAPID_SUBJECT")
    monkeypatch.setenv("VAPID_EMAIL", "mailto:ops@shop.example.com")  # written whole already
    assert load_settings().compat.webpush_gateway.vapid_subject == "mailto:ops@shop.example.com"


def test_options_of_the_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHGATE_COMPAT__WEBPUSH_GATEWAY__OPEN_APP", "default")
    monkeypatch.setenv("PUSHGATE_COMPAT__WEBPUSH_GATEWAY__OPEN_RATE", "5/minute")
    monkeypatch.setenv(
        "PUSHGATE_COMPAT__WEBPUSH_GATEWAY__WELCOME", '{"default": {"title": "Welcome!"}}'
    )
    options = load_settings().compat.webpush_gateway
    assert options.open_app == "default"
    assert str(options.open_rate) == "5/minute"
    assert options.welcome["default"].title == "Welcome!"
    assert WebPushGatewaySettings().open_app is None  # off by default

    monkeypatch.setenv(
        "PUSHGATE_COMPAT__WEBPUSH_GATEWAY__WELCOME",
        '{"default": {"title": "Hi", "template_code": "welcome"}}',
    )
    with pytest.raises(ConfigError, match="WELCOME"):
        load_settings()


def test_port_follows_the_other_port_names_and_only_with_the_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "5000")
    # A shell's PORT is not pushgate's unless the environment enables the old gateway's shape
    assert load_settings().server.port == 8000
    monkeypatch.setenv("PUSHGATE_COMPAT__ENABLED", "fcm_gateway,webpush_gateway")
    assert load_settings().server.port == 5000
    monkeypatch.setenv("SERVICE_PORT", "5100")
    assert load_settings().server.port == 5100
    monkeypatch.setenv("PUSHGATE_SERVER__PORT", "5200")
    assert load_settings().server.port == 5200


def test_rabbitmq_queue_name_names_the_ingress_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().broker.ingress_queue is None
    monkeypatch.setenv("RABBITMQ_QUEUE_NAME", "push_notifications")
    assert load_settings().broker.ingress_queue == "push_notifications"

    topology = Topology("t1.", ingress_queue="push_notifications")
    assert topology.queue("push") == "t1.push_notifications"
    assert topology.queue("deliver") == "t1.deliver.queue"
    names = {spec.name: spec.routing_key for spec in topology.queues()}
    assert names["t1.push_notifications"] == "push"  # still bound to the push routing key
    assert "t1.push.queue" not in names
    assert Topology().queue("push") == "push.queue"

    monkeypatch.setenv("RABBITMQ_QUEUE_NAME", "deliver.queue")
    with pytest.raises(ConfigError, match="RABBITMQ_QUEUE_NAME"):
        load_settings()


def test_its_messages_are_those_with_a_list_of_subscriptions() -> None:
    legacy = {
        "notification_id": "n-1",
        "user_id": "u-1",
        "devices": [SUBSCRIPTION],
        "title": "Hi",
        "body": "There",
        "action_url": "https://shop.example.com/o/1",
    }
    assert messages.matches(legacy)
    assert messages.matches({**legacy, "devices": []})  # refused later, with its reason
    assert not messages.matches({**legacy, "devices": ["a-token"]})
    # pushgate's own format, and the other legacy shapes', have no `devices`
    assert not messages.matches({"user_id": "u-1", "title": "Hi", "device_ids": ["x"]})
    assert not messages.matches({"template_id": "t", "variables": {}, "notification_id": "n"})


def test_the_vapid_pair_must_be_one() -> None:
    pair = vapid.generate_key_pair()
    given = WebPushGatewaySettings(
        vapid_private_key=SecretStr(pair.private_key), vapid_public_key=pair.public_key + "="
    )
    assert start.key_pair(given) == pair  # padding, as some tools print it, is the same key
    assert start.key_pair(WebPushGatewaySettings()) is None
    assert start.key_pair(WebPushGatewaySettings(vapid_private_key=SecretStr(pair.private_key)))

    other = vapid.generate_key_pair()
    refusals = {
        "is not the public key of VAPID_PRIVATE_KEY": given.model_copy(
            update={"vapid_public_key": other.public_key}
        ),
        "VAPID_PUBLIC_KEY is set without VAPID_PRIVATE_KEY": WebPushGatewaySettings(
            vapid_public_key=pair.public_key
        ),
        "VAPID_PRIVATE_KEY: private key is not base64url": WebPushGatewaySettings(
            vapid_private_key=SecretStr("not a key!")
        ),
    }
    for message, options in refusals.items():
        with pytest.raises(ConfigError, match=message) as refused:
            start.key_pair(options)
        assert "\n" not in str(refused.value)
