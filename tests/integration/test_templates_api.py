"""The templates API on both backend profiles: create, edit as new versions, read, list, the
version history, preview, and who may do what."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys
from tests.integration.conftest import Pushgate

WELCOME: dict[str, Any] = {
    "code": "welcome",
    "default_locale": "en",
    "description": "first push after sign-up",
    "variants": {
        "en": {"title": "Welcome, {{ name }}", "body": "You have {{ count }} messages"},
        "fr": {"title": "Bienvenue, {{ name }}", "body": "Vous avez {{ count }} messages"},
        "fr-ca": {"title": "Bienvenue chez nous, {{ name }}"},
    },
}


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def create(pushgate: Pushgate, acme: TenantKeys, body: dict[str, Any]) -> dict[str, Any]:
    response = await pushgate.http.post("/v1/templates", json=body, headers=acme.admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_template_is_created_as_version_1_and_edits_add_versions(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    # Given a template created by an admin key
    created = await create(pushgate, acme, WELCOME)
    assert created["version"] == 1
    assert set(created["variants"]) == {"en", "fr", "fr-CA"}  # locales in one spelling

    # When it is edited twice
    for title in ("Hi {{ name }}", "Hey {{ name }}"):
        edited = {**WELCOME, "variants": {"en": {"title": title}}}
        del edited["code"]
        response = await pushgate.http.put("/v1/templates/welcome", json=edited, headers=acme.admin)
        assert response.status_code == 200, response.text

    # Then the current one is the last edit, and the history keeps every version
    current = (await pushgate.http.get("/v1/templates/welcome", headers=acme.send)).json()
    assert (current["version"], current["variants"]) == (3, {"en": {"title": "Hey {{ name }}"}})
    history = await pushgate.http.get("/v1/templates/welcome/versions", headers=acme.send)
    assert [v["version"] for v in history.json()["items"]] == [3, 2, 1]
    assert history.json()["items"][2]["variants"]["fr"]["title"] == "Bienvenue, {{ name }}"
    listed = (await pushgate.http.get("/v1/templates", headers=acme.send)).json()
    assert [(t["code"], t["version"]) for t in listed["items"]] == [("welcome", 3)]


async def test_a_code_that_exists_is_a_conflict_and_an_unknown_one_not_found(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await create(pushgate, acme, WELCOME)

    again = await pushgate.http.post("/v1/templates", json=WELCOME, headers=acme.admin)
    edit = {k: v for k, v in WELCOME.items() if k != "code"}
    missing = await pushgate.http.put("/v1/templates/nope", json=edit, headers=acme.admin)
    read = await pushgate.http.get("/v1/templates/nope/versions", headers=acme.send)

    assert (again.status_code, error(again)["code"]) == (409, "template_exists")
    assert (missing.status_code, error(missing)["code"]) == (404, "template_not_found")
    assert (read.status_code, error(read)["code"]) == (404, "template_not_found")


async def test_a_send_key_reads_and_previews_but_cannot_write(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await create(pushgate, acme, WELCOME)
    edit = {k: v for k, v in WELCOME.items() if k != "code"}

    created = await pushgate.http.post(
        "/v1/templates", json={**WELCOME, "code": "other"}, headers=acme.send
    )
    edited = await pushgate.http.put("/v1/templates/welcome", json=edit, headers=acme.send)
    read = await pushgate.http.get("/v1/templates/welcome", headers=acme.subscribe)
    anonymous = await pushgate.http.get("/v1/templates/welcome")

    assert (created.status_code, error(created)["code"]) == (403, "insufficient_scope")
    assert edited.status_code == 403
    assert read.status_code == 403
    assert anonymous.status_code == 401


async def test_another_app_does_not_see_the_template(pushgate: Pushgate, acme: TenantKeys) -> None:
    await create(pushgate, acme, WELCOME)
    other = await pushgate.tenant("globex")

    response = await pushgate.http.get("/v1/templates/welcome", headers=other.send)
    listed = await pushgate.http.get("/v1/templates", headers=other.send)

    assert response.status_code == 404
    assert listed.json()["items"] == []


async def test_preview_renders_every_variant_or_the_one_asked_with_fallback(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await create(pushgate, acme, WELCOME)
    variables = {"name": "Ada", "count": 2}

    every = await pushgate.http.post(
        "/v1/templates/welcome/preview", json={"variables": variables}, headers=acme.send
    )
    belgian = await pushgate.http.post(
        "/v1/templates/welcome/preview",
        json={"variables": variables, "locale": "fr_BE"},
        headers=acme.send,
    )

    assert every.status_code == 200, every.text
    assert every.json()["variants"]["en"]["body"] == "You have 2 messages"
    assert every.json()["variants"]["fr-CA"]["title"] == "Bienvenue chez nous, Ada"
    assert belgian.json()["variants"] == {
        "fr": {
            "title": "Bienvenue, Ada",
            "body": "Vous avez 2 messages",
            "url": None,
            "image": None,
            "data": {},
            "webpush": {},
            "fcm": {},
            "apns": {},
        }
    }


async def test_preview_of_an_older_version_and_a_missing_variable(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await create(pushgate, acme, WELCOME)
    edit = {"default_locale": "en", "variants": {"en": {"title": "v2 {{ name }}"}}}
    await pushgate.http.put("/v1/templates/welcome", json=edit, headers=acme.admin)

    old = await pushgate.http.post(
        "/v1/templates/welcome/preview",
        json={"variables": {"name": "Ada", "count": 1}, "version": 1, "locale": "en"},
        headers=acme.send,
    )
    missing = await pushgate.http.post(
        "/v1/templates/welcome/preview", json={"variables": {}}, headers=acme.send
    )

    assert old.json()["variants"]["en"]["title"] == "Welcome, Ada"
    assert old.json()["version"] == 1
    assert missing.status_code == 422
    assert error(missing)["code"] == "missing_variable"
    assert error(missing)["details"]["field"] == "variables.name"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "has space"}, "code"),
        ({"default_locale": "de"}, "default_locale"),
        ({"variants": {"en": {"title": "{{ oops"}}}, "variants.en.title"),
        ({"variants": {"en": {"title": "{{ ''.__class__ }}"}}}, "variants.en.title"),
        ({"variants": {"en": {"title": "x", "subtitle": "y"}}}, "variants.en.subtitle"),
    ],
)
async def test_a_bad_template_is_refused_naming_the_field(
    pushgate: Pushgate, acme: TenantKeys, change: dict[str, Any], field: str
) -> None:
    response = await pushgate.http.post(
        "/v1/templates", json={**WELCOME, **change}, headers=acme.admin
    )

    assert response.status_code == 422, response.text
    assert error(response)["details"]["field"] == field


async def test_the_routes_are_in_the_openapi_document_with_their_statuses(
    pushgate: Pushgate,
) -> None:
    document = (await pushgate.http.get("/openapi.json")).json()
    paths = document["paths"]

    assert set(paths["/v1/templates"]) == {"get", "post"}
    assert {"201", "401", "403", "409", "422"} <= set(paths["/v1/templates"]["post"]["responses"])
    assert {"200", "404", "409", "422"} <= set(paths["/v1/templates/{code}"]["put"]["responses"])
    assert "404" in paths["/v1/templates/{code}/versions"]["get"]["responses"]
    assert "422" in paths["/v1/templates/{code}/preview"]["post"]["responses"]


async def test_concurrent_edits_each_get_their_own_version(
    pushgate: Pushgate, acme: TenantKeys
) -> None:
    await create(pushgate, acme, WELCOME)

    answers = await asyncio.gather(
        *(
            pushgate.http.put(
                "/v1/templates/welcome",
                json={"default_locale": "en", "variants": {"en": {"title": f"edit {n}"}}},
                headers=acme.admin,
            )
            for n in range(4)
        )
    )

    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == [2, 3, 4, 5]


async def test_the_list_is_paged_by_code(pushgate: Pushgate, acme: TenantKeys) -> None:
    for code in ("c", "a", "b"):
        await create(pushgate, acme, {**WELCOME, "code": code})

    first = (await pushgate.http.get("/v1/templates?limit=2", headers=acme.send)).json()
    rest = await pushgate.http.get(
        f"/v1/templates?limit=2&cursor={first['next_cursor']}", headers=acme.send
    )

    assert [t["code"] for t in first["items"]] == ["a", "b"]
    assert [t["code"] for t in rest.json()["items"]] == ["c"]
    assert rest.json()["next_cursor"] is None
