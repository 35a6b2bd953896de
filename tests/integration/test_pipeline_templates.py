"""Templated notifications through the whole pipeline on both profiles: rendered at accept (a
bad variable is a 422 then, or a dead letter on push.queue), each device sent its own locale's
variant (the Web Push fake decrypts what arrived), each notification recording the version it
used."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pushgate.sending import locales, planning
from tests.conftest import TenantKeys
from tests.fakes.webpush_server import FakeWebPushService
from tests.integration.conftest import Pushgate
from tests.integration.test_ingress import dead_letters, publish, stored, until

ORDER: dict[str, Any] = {
    "code": "order_shipped",
    "default_locale": "en",
    "variants": {
        "en": {
            "title": "Order {{ order.id }} shipped",
            "body": "Hi {{ name }}, it arrives {{ day }}",
            "url": "https://shop.example/o/{{ order.id }}",
            "data": {"order": "{{ order.id }}"},
        },
        "fr": {
            "title": "Commande {{ order.id }} expédiée",
            "body": "Bonjour {{ name }}, elle arrive {{ day }}",
            "url": "https://shop.example/fr/o/{{ order.id }}",
            "data": {"order": "{{ order.id }}"},
        },
        "fr-CA": {
            "title": "Commande {{ order.id }} envoyée",
            "body": "Allo {{ name }}, elle arrive {{ day }}",
        },
    },
}
VARIABLES = {"name": "Ada", "day": "mardi", "order": {"id": 42}}


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def make_template(pushgate: Pushgate, acme: TenantKeys, body: dict[str, Any]) -> None:
    response = await pushgate.http.post("/v1/templates", json=body, headers=acme.admin)
    assert response.status_code == 201, response.text


def english(code: str, **variant: Any) -> dict[str, Any]:
    """A template with one variant, `en`."""
    return {"code": code, "default_locale": "en", "variants": {"en": variant}}


async def prefer(pushgate: Pushgate, acme: TenantKeys, user_id: str, locale: str) -> None:
    """The user's own locale, in their preferences."""
    response = await pushgate.http.put(
        f"/v1/users/{user_id}/preferences", json={"locale": locale}, headers=acme.send
    )
    assert response.status_code == 200, response.text


async def test_each_device_gets_its_locales_variant_with_fallback_to_the_default(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a template in en (default), fr and fr-CA, and browsers of every kind of locale
    await make_template(pushgate, acme, ORDER)
    browsers: dict[str, dict[str, Any]] = {}
    for name, fields in {
        "en": {"locale": "en-GB"},
        "fr": {"locale": "fr"},
        "fr-CA": {"locale": "fr_CA"},
        "fr-BE": {"locale": "fr-be"},
        "de": {"locale": "de-DE"},
        "none": {},
        "user-fr-CA": {"user_id": "quebec"},
    }.items():
        browsers[name] = fake_push.new_subscription()
        await pushgate.subscribe(acme.subscribe, browsers[name], topics=["orders"], **fields)
    await prefer(pushgate, acme, "quebec", "fr-CA")

    # When one notification is sent with the template and its variables
    notification = await pushgate.send(
        acme.send,
        {
            "topics": ["orders"],
            "template_code": "order_shipped",
            "variables": VARIABLES,
            "category": "orders",
            "ttl": 3600,
        },
    )
    status = await pushgate.finished(acme.send, notification)

    # Then every browser got its own locale's words, the others falling back
    assert status["status"] == "completed", status
    assert status["counts"]["sent"] == 7
    titles = {}
    for name, browser in browsers.items():
        [arrived] = fake_push.received_for(browser)
        titles[name] = arrived.payload["title"]
    assert titles == {
        "en": "Order 42 shipped",
        "fr": "Commande 42 expédiée",
        "fr-CA": "Commande 42 envoyée",
        "fr-BE": "Commande 42 expédiée",
        "de": "Order 42 shipped",
        "none": "Order 42 shipped",
        "user-fr-CA": "Commande 42 envoyée",
    }
    [french] = fake_push.received_for(browsers["fr"])
    assert french.payload == {
        "title": "Commande 42 expédiée",
        "body": "Bonjour Ada, elle arrive mardi",
        "url": "https://shop.example/fr/o/42",
        "data": {"order": "42"},
    }
    # And the notification says which template and version it used, and each delivery its variant
    assert status["template"] == {"code": "order_shipped", "version": 1, "locale": None}
    assert status["message"]["title"] == "Order 42 shipped"
    assert status["category"] == "orders"
    deliveries = await pushgate.deliveries(acme.send, notification)
    assert sorted(str(d["locale"]) for d in deliveries) == sorted(
        ["None", "fr", "fr-CA", "fr", "None", "None", "fr-CA"]
    )


async def test_a_template_edited_between_two_sends_gives_each_its_own_version(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a browser and a template
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u1")
    await make_template(pushgate, acme, ORDER)
    body = {"user_id": "u1", "template_code": "order_shipped", "variables": VARIABLES}

    # When it is sent, edited, and sent again
    first = await pushgate.send(acme.send, body)
    edit = {"default_locale": "en", "variants": {"en": {"title": "Parcel {{ order.id }} is out"}}}
    response = await pushgate.http.put("/v1/templates/order_shipped", json=edit, headers=acme.admin)
    assert response.status_code == 200, response.text
    second = await pushgate.send(acme.send, body)

    # Then each notification records its version and was delivered with its own text
    one = await pushgate.finished(acme.send, first)
    two = await pushgate.finished(acme.send, second)
    assert (one["template"]["version"], two["template"]["version"]) == (1, 2)
    await until(lambda: len(fake_push.received_for(browser)) == 2, what="both sends")
    assert sorted(r.payload["title"] for r in fake_push.received_for(browser)) == [
        "Order 42 shipped",
        "Parcel 42 is out",
    ]
    history = (await pushgate.http.get("/v1/notifications", headers=acme.send)).json()
    assert {(n["id"], n["template"]["version"]) for n in history["items"]} == {
        (first, 1),
        (second, 2),
    }


async def test_a_forced_locale_sends_every_device_that_variant(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    await make_template(pushgate, acme, ORDER)
    browsers = [fake_push.new_subscription() for _ in range(2)]
    await pushgate.subscribe(acme.subscribe, browsers[0], user_id="u1", locale="en")
    await pushgate.subscribe(acme.subscribe, browsers[1], user_id="u1")

    notification = await pushgate.send(
        acme.send,
        {"user_id": "u1", "template_code": "order_shipped", "variables": VARIABLES, "locale": "FR"},
    )
    status = await pushgate.finished(acme.send, notification)

    assert status["template"] == {"code": "order_shipped", "version": 1, "locale": "fr"}
    for browser in browsers:
        [arrived] = fake_push.received_for(browser)
        assert arrived.payload["title"] == "Commande 42 expédiée"


async def test_a_missing_variable_or_unknown_template_is_refused_at_accept(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a template whose fr-CA variant alone reads `name`... and every variant reads `day`
    await make_template(pushgate, acme, ORDER)
    base = {"broadcast": True, "template_code": "order_shipped"}

    # When variables are missing, wrong, or the template is unknown
    missing = await pushgate.http.post(
        "/v1/notifications",
        json={**base, "variables": {"name": "Ada", "order": {"id": 1}}},
        headers=acme.send,
    )
    nested = await pushgate.http.post(
        "/v1/notifications",
        json={**base, "variables": {**VARIABLES, "order": {"number": 1}}},
        headers=acme.send,
    )
    unknown = await pushgate.http.post(
        "/v1/notifications",
        json={**base, "template_code": "nope", "variables": VARIABLES},
        headers=acme.send,
    )

    # Then each is a 422 naming the variable or the template, and nothing is stored
    assert missing.status_code == 422, missing.text
    assert error(missing)["code"] == "missing_variable"
    assert error(missing)["details"]["field"] == "variables.day"
    assert "order_shipped" in error(missing)["message"]
    assert error(nested)["details"]["field"] == "variables.order.id"
    assert unknown.status_code == 422
    assert error(unknown)["code"] == "unknown_template"
    assert error(unknown)["details"]["field"] == "template_code"
    history = (await pushgate.http.get("/v1/notifications", headers=acme.send)).json()
    assert history["items"] == []


async def test_a_wrongly_typed_variable_and_a_sandbox_refusal_are_422s(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await make_template(pushgate, acme, english("price", title="Now {{ price | round(2) }}"))
    await make_template(pushgate, acme, english("sneaky", title="{{ items.append(1) }}"))

    typed = await pushgate.http.post(
        "/v1/notifications",
        json={"broadcast": True, "template_code": "price", "variables": {"price": "cheap"}},
        headers=acme.send,
    )
    sneaky = await pushgate.http.post(
        "/v1/notifications",
        json={"broadcast": True, "template_code": "sneaky", "variables": {"items": []}},
        headers=acme.send,
    )

    assert typed.status_code == 422, typed.text
    assert error(typed)["details"]["field"] == "variables.price"
    assert sneaky.status_code == 422, sneaky.text
    assert error(sneaky)["code"] == "template_unsafe"
    assert error(sneaky)["details"]["field"] == "template_code"


async def test_every_variant_is_held_to_the_web_push_payload_limit(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await make_template(
        pushgate,
        acme,
        {
            "code": "long",
            "default_locale": "en",
            "variants": {
                "en": {"title": "short"},
                "fr": {"title": "{{ a }}", "body": "{{ a }}", "data": {"x": "{{ a }}"}},
            },
        },
    )

    response = await pushgate.http.post(
        "/v1/notifications",
        json={"broadcast": True, "template_code": "long", "variables": {"a": "é" * 1400}},
        headers=acme.send,
    )

    assert response.status_code == 413, response.text
    assert error(response)["details"]["locale"] == "fr"


async def test_push_queue_messages_use_templates_and_a_bad_variable_is_dead_lettered(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a French browser and a template
    await make_template(pushgate, acme, ORDER)
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u-7", locale="fr-FR")

    # When a backend publishes a templated message, and one missing a variable
    await publish(
        pushgate,
        {
            "app": "acme",
            "request_id": "order-42",
            "user_id": "u-7",
            "template_code": "order_shipped",
            "variables": VARIABLES,
            "category": "orders",
        },
        {
            "app": "acme",
            "request_id": "order-43",
            "user_id": "u-7",
            "template_code": "order_shipped",
            "variables": {"day": "lundi", "order": {"id": 43}},
        },
    )

    # Then the good one arrives in French, and the bad one is dead-lettered saying why
    await until(lambda: len(fake_push.received_for(browser)) == 1, what="the delivery")
    [arrived] = fake_push.received_for(browser)
    assert arrived.payload["body"] == "Bonjour Ada, elle arrive mardi"
    row = await stored(pushgate, acme, "order-42")
    status = await pushgate.finished(acme.send, row["id"])
    assert status["template"]["code"] == "order_shipped"
    assert status["category"] == "orders"
    [letter] = await dead_letters(pushgate, 1)
    assert letter.reason.startswith("missing_variable: variable 'name' is missing"), letter.reason
    assert "order_shipped" in letter.reason


async def test_bulk_and_send_immediate_render_templates_too(
    pushgate: Pushgate, acme: TenantKeys, fake_push: FakeWebPushService
) -> None:
    # Given a French browser and a template
    await make_template(pushgate, acme, ORDER)
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="u1", locale="fr")
    body = {"user_id": "u1", "template_code": "order_shipped", "variables": VARIABLES}

    # When a bulk request sends it twice (once missing a variable), then send-immediate once
    bulk = await pushgate.http.post(
        "/v1/notifications/bulk",
        json={"notifications": [body, {**body, "variables": {}}, {**body, "locale": "en"}]},
        headers=acme.send,
    )
    immediate = await pushgate.http.post(
        "/v1/notifications/send-immediate", json=body, headers=acme.send
    )

    # Then each item is answered on its own, and every send arrives in its variant
    assert [r["status_code"] for r in bulk.json()["results"]] == [202, 422, 202]
    assert bulk.json()["results"][1]["error"]["code"] == "missing_variable"
    assert immediate.status_code == 200, immediate.text
    assert [d["status"] for d in immediate.json()["deliveries"]] == ["sent"]
    await until(lambda: len(fake_push.received_for(browser)) == 3, what="three sends")
    assert sorted(r.payload["title"] for r in fake_push.received_for(browser)) == [
        "Commande 42 expédiée",
        "Commande 42 expédiée",
        "Order 42 shipped",
    ]


async def test_the_users_locale_is_read_even_without_the_preferences_step(
    pushgate: Pushgate,
    acme: TenantKeys,
    fake_push: FakeWebPushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given planning with the template step alone, and a user whose own locale is fr-CA
    monkeypatch.setattr(planning, "STEPS", [locales.choose_variants])
    await make_template(pushgate, acme, ORDER)
    browser = fake_push.new_subscription()
    await pushgate.subscribe(acme.subscribe, browser, user_id="quebec")
    await prefer(pushgate, acme, "quebec", "fr-ca")

    # When the user is sent the template
    notification = await pushgate.send(
        acme.send, {"user_id": "quebec", "template_code": "order_shipped", "variables": VARIABLES}
    )
    await pushgate.finished(acme.send, notification)

    # Then the step read the user's locale itself
    [arrived] = fake_push.received_for(browser)
    assert arrived.payload["title"] == "Commande 42 envoyée"
