"""The FCM HTTP v1 request builder (`build_message`, `build_topic_message`, the `fcm` override
merge) and service-account credentials, without I/O."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushgate.domain.message import Action, Message, Priority
from pushgate.errors import InvalidInputError
from pushgate.providers.base import Target
from pushgate.providers.fcm_credentials import GOOGLE_TOKEN_URI, FCMCredentials
from pushgate.providers.fcm_message import build_message, build_topic_message, deep_merge

NOW = 1_700_000_000.0
TOKEN = Target("fcm-registration-token")


def test_a_full_notification_fills_every_platform_block():
    message = Message(
        title="Order shipped",
        body="Arrives Tuesday",
        icon="ic_box",
        image="https://cdn.shop.example.com/box.png",
        badge="https://cdn.shop.example.com/badge.png",
        url="https://shop.example.com/orders/42",
        tag="order-42",
        sound="default",
        actions=(Action("track", "Track"),),
        data={"order_id": "42"},
        priority=Priority.HIGH,
        ttl=3600,
        collapse_key="order-42",
    )

    body = build_message(TOKEN, message, now=NOW)

    assert body == {
        "message": {
            "token": "fcm-registration-token",
            "notification": {
                "title": "Order shipped",
                "body": "Arrives Tuesday",
                "image": "https://cdn.shop.example.com/box.png",
            },
            "data": {"order_id": "42"},
            "android": {
                "priority": "high",
                "ttl": "3600s",
                "collapse_key": "order-42",
                "notification": {"icon": "ic_box", "sound": "default", "tag": "order-42"},
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": str(int(NOW) + 3600),
                    "apns-push-type": "alert",
                    "apns-collapse-id": "order-42",
                },
                "payload": {
                    "aps": {
                        "alert": {"title": "Order shipped", "body": "Arrives Tuesday"},
                        "sound": "default",
                        "mutable-content": 1,
                    }
                },
                "fcm_options": {"image": "https://cdn.shop.example.com/box.png"},
            },
            "webpush": {
                "headers": {"TTL": "3600", "Urgency": "high", "Topic": "order-42"},
                "notification": {
                    "icon": "ic_box",
                    "badge": "https://cdn.shop.example.com/badge.png",
                    "tag": "order-42",
                    "actions": [{"action": "track", "title": "Track"}],
                },
                "fcm_options": {"link": "https://shop.example.com/orders/42"},
            },
        },
        "validate_only": False,
    }


def test_a_data_only_message_is_a_background_push_on_apple_devices():
    # Apple refuses priority 10 for a content-available push.
    message = Message(data={"sync": "1"}, priority=Priority.HIGH, ttl=60)

    body = build_message(TOKEN, message, now=NOW)["message"]

    assert "notification" not in body
    assert body["data"] == {"sync": "1"}
    assert body["apns"]["payload"] == {"aps": {"content-available": 1}}
    assert body["apns"]["headers"]["apns-priority"] == "5"
    assert body["apns"]["headers"]["apns-push-type"] == "background"
    assert body["android"] == {"priority": "high", "ttl": "60s"}


def test_normal_priority_and_zero_ttl_mean_now_or_never_everywhere():
    body = build_message(TOKEN, Message(body="x", ttl=0), now=NOW)["message"]

    assert body["android"]["priority"] == "normal"
    assert body["android"]["ttl"] == "0s"
    assert body["apns"]["headers"]["apns-expiration"] == "0"
    assert body["apns"]["headers"]["apns-priority"] == "5"
    assert body["webpush"]["headers"] == {"TTL": "0", "Urgency": "normal"}


def test_validate_only_is_carried_in_the_body():
    assert build_message(TOKEN, Message(body="x"), validate_only=True)["validate_only"] is True


def test_a_long_collapse_key_is_shortened_to_what_apns_and_web_push_accept():
    key = "promotions/" + "x" * 100

    body = build_message(TOKEN, Message(body="x", collapse_key=key), now=NOW)["message"]

    assert body["android"]["collapse_key"] == key
    assert len(body["apns"]["headers"]["apns-collapse-id"].encode()) <= 64
    assert len(body["webpush"]["headers"]["Topic"]) <= 32
    again = build_message(TOKEN, Message(body="y", collapse_key=key), now=NOW)["message"]
    assert again["apns"]["headers"] == body["apns"]["headers"]


def test_a_url_that_is_not_https_is_not_sent_as_the_web_link():
    # FCM refuses a non-https webpush.fcm_options.link with INVALID_ARGUMENT.
    body = build_message(TOKEN, Message(body="x", url="http://shop.example.com"))["message"]

    assert "fcm_options" not in body["webpush"]


def test_topics_and_conditions_replace_the_token():
    news = build_topic_message("/topics/news", Message(body="x"))["message"]
    both = build_topic_message("'news' in topics && 'sports' in topics", Message(body="x"))

    assert news["topic"] == "news"
    assert "token" not in news
    assert both["message"]["condition"] == "'news' in topics && 'sports' in topics"
    assert "topic" not in both["message"]


def test_a_malformed_topic_name_is_refused():
    with pytest.raises(InvalidInputError) as caught:
        build_topic_message("news and weather", Message(body="x"))

    assert caught.value.field == "topic"


def test_the_fcm_override_is_merged_deeply_and_none_removes():
    message = Message(
        title="Hi",
        body="there",
        icon="ic_a",
        actions=(Action("a", "A"), Action("b", "B")),
        fcm={
            "android": {"notification": {"channel_id": "orders", "icon": None}},
            "apns": {"payload": {"aps": {"category": "ORDER"}, "order": 42}},
            "webpush": {"notification": {"actions": [{"action": "c", "title": "C"}]}},
            "fcm_options": {"analytics_label": "spring"},
            "notification": None,
        },
    )

    body = build_message(TOKEN, message, now=NOW)["message"]

    assert body["android"]["notification"] == {"channel_id": "orders"}
    assert body["apns"]["payload"] == {
        "aps": {"alert": {"title": "Hi", "body": "there"}, "category": "ORDER"},
        "order": 42,
    }
    assert body["webpush"]["notification"]["actions"] == [{"action": "c", "title": "C"}]
    assert body["fcm_options"] == {"analytics_label": "spring"}
    assert "notification" not in body


def test_deep_merge_leaves_its_inputs_alone():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    override = {"a": {"b": None, "e": {"f": None, "g": 3}}, "d": [4]}

    merged = deep_merge(base, override)

    assert merged == {"a": {"c": [1], "e": {"g": 3}}, "d": [4]}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 2}
    assert override["a"]["e"] == {"f": None, "g": 3}  # type: ignore[index]


@pytest.mark.parametrize("field", ["token", "topic", "condition"])
def test_the_override_cannot_redirect_the_message(field):
    with pytest.raises(InvalidInputError) as caught:
        build_message(TOKEN, Message(body="x", fcm={field: "elsewhere"}))

    assert caught.value.field == f"fcm.{field}"


@pytest.mark.parametrize(
    "message",
    [
        Message(body="x", data={"count": 3}),  # type: ignore[dict-item]
        Message(body="x", fcm={"data": {"ok": "1", "flag": True}}),
    ],
    ids=["data", "override"],
)
def test_data_values_must_be_strings(message):
    with pytest.raises(InvalidInputError) as caught:
        build_message(TOKEN, message)

    assert caught.value.field == "data"


# --- credentials -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def account(rsa_pem) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "shop-prod",
        "private_key_id": "abc123",
        "private_key": rsa_pem,
        "client_email": "firebase-adminsdk-x@shop-prod.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_credentials_load_from_a_dict_inline_json_and_the_operators_file(account, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))

    loaded = [
        FCMCredentials.from_service_account(account),
        FCMCredentials.from_service_account(json.dumps(account)),
        FCMCredentials.from_file(path),
        FCMCredentials.from_file(str(path)),
    ]

    assert len(set(loaded)) == 1
    credentials = loaded[0]
    assert credentials.project_id == "shop-prod"
    assert credentials.client_email == account["client_email"]
    assert credentials.private_key_id == "abc123"
    assert credentials.service_account_info()["private_key"] == account["private_key"]
    assert "PRIVATE KEY" not in repr(credentials)


def test_a_key_pasted_with_escaped_newlines_still_loads(account):
    escaped = account | {"private_key": account["private_key"].replace("\n", "\\n")}

    assert FCMCredentials.from_service_account(escaped) == FCMCredentials.from_service_account(
        account
    )


def test_a_missing_token_uri_means_googles(account):
    del account["token_uri"]

    assert FCMCredentials.from_service_account(account).token_uri == GOOGLE_TOKEN_URI


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"private_key": None}, '"private_key" is missing'),
        ({"project_id": ""}, '"project_id" is missing'),
        ({"client_email": None}, '"client_email" is missing'),
        ({"client_email": "robot"}, "not an e-mail address"),
        ({"type": "authorized_user"}, 'not "service_account"'),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnope\n"}, "not an unencrypted PEM"),
        ({"token_uri": "http://oauth2.googleapis.com/token"}, "must be an https URL"),
    ],
    ids=["no-key", "no-project", "no-email", "bad-email", "type", "bad-pem", "http-token-uri"],
)
def test_a_malformed_service_account_names_the_problem(account, change, problem):
    broken = {k: v for k, v in (account | change).items() if v is not None}

    with pytest.raises(InvalidInputError) as caught:
        FCMCredentials.from_service_account(broken)

    assert problem in caught.value.message
    assert caught.value.field == "service_account"


def test_an_elliptic_curve_key_is_refused(account):
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )

    with pytest.raises(InvalidInputError, match="not an RSA key"):
        FCMCredentials.from_service_account(account | {"private_key": pem})


@pytest.mark.parametrize(
    ("source", "problem"),
    [("{not json", "not JSON"), ("[1, 2]", "not an object"), ("@\u0000", "not JSON")],
    ids=["bad-json", "array", "nul"],
)
def test_unreadable_sources_are_refused(source, problem):
    with pytest.raises(InvalidInputError, match=problem):
        FCMCredentials.from_service_account(source)


def test_a_path_given_as_content_is_not_read(account, tmp_path):
    # Given a usable service account in a file
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))

    # When its path is given where content is expected, then it is refused as not JSON
    with pytest.raises(InvalidInputError, match="not JSON"):
        FCMCredentials.from_service_account(str(path))
    with pytest.raises(TypeError):
        FCMCredentials.from_service_account(path)


def test_an_unreadable_file_is_refused_naming_it(tmp_path):
    missing = tmp_path / "nonexistent.json"

    with pytest.raises(InvalidInputError, match="cannot read") as caught:
        FCMCredentials.from_file(missing)

    assert str(missing) in caught.value.message


def test_a_nul_in_a_stored_field_is_refused(account):
    with pytest.raises(InvalidInputError, match="NUL"):
        FCMCredentials.from_service_account(account | {"project_id": "shop\u0000prod"})
