"""`/v1/users/{user_id}/preferences`: the defaults before anything is stored, a full replace,
a reset, validation naming the field, one app never seeing another's users, and the scopes
(send and admin keys; never a page's subscribe key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys

URL = "/v1/users/alice/preferences"
DEFAULTS = {
    "user_id": "alice",
    "muted": False,
    "categories": {},
    "platforms": {},
    "quiet_hours": None,
    "locale": None,
    "timezone": None,
    "updated_at": None,
}
FULL = {
    "muted": False,
    "categories": {"promo": False, "news": True},
    "platforms": {"webpush": True, "fcm": False},
    "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Paris"},
    "locale": "fr-CA",
    "timezone": "America/Montreal",
}


def shown(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "updated_at"}


async def test_a_user_without_preferences_has_the_defaults(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.get(URL, headers=tenant.send)

    assert response.status_code == 200
    assert response.json() == DEFAULTS


async def test_preferences_are_replaced_whole_and_reset(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # When a user's preferences are set
    put = await client.put(URL, json=FULL, headers=tenant.send)

    # Then they are answered and read back as sent
    assert put.status_code == 200, put.text
    assert shown(put.json()) == {"user_id": "alice", **FULL}
    assert put.json()["updated_at"] is not None
    got = await client.get(URL, headers=tenant.send)
    assert got.json() == put.json()

    # When they are replaced by fewer: what is left out takes its default
    muted = await client.put(URL, json={"muted": True}, headers=tenant.admin)
    assert shown(muted.json()) == shown(DEFAULTS) | {"muted": True}

    # When quiet hours are set again, then cleared with null
    await client.put(URL, json=FULL, headers=tenant.send)
    cleared = await client.put(URL, json={**FULL, "quiet_hours": None}, headers=tenant.send)
    assert cleared.json()["quiet_hours"] is None
    assert cleared.json()["categories"] == FULL["categories"]

    # When they are reset (twice: a reset of defaults is no error)
    for _ in range(2):
        reset = await client.delete(URL, headers=tenant.send)
        assert reset.status_code == 204
    assert (await client.get(URL, headers=tenant.send)).json() == DEFAULTS


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"quiet_hours": {"start": "25:00", "end": "07:00", "timezone": "UTC"}},
            "quiet_hours.start",
            "HH:MM",
        ),
        (
            {"quiet_hours": {"start": "22:00", "end": "7:00", "timezone": "UTC"}},
            "quiet_hours.end",
            "HH:MM",
        ),
        (
            {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
            "quiet_hours.timezone",
            "Mars/Olympus",
        ),
        ({"quiet_hours": {"start": "22:00", "end": "07:00"}}, "quiet_hours.timezone", "required"),
        (
            {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC", "days": [1]}},
            "quiet_hours.days",
            "not permitted",
        ),
        ({"timezone": "Nowhere/City"}, "timezone", "IANA"),
        ({"locale": "not a locale!"}, "locale", "pattern"),
        ({"platforms": {"pigeon": False}}, "platforms.pigeon", "webpush"),
        ({"categories": {"": False}}, "categories", "at least 1 character"),
        ({"categories": {"x" * 101: False}}, "categories", "at most 100 characters"),
        ({"categories": {f"c{n}": False for n in range(201)}}, "categories", "at most 200"),
        ({"categories": {"promo": "maybe"}}, "categories.promo", "boolean"),
        ({"muted": "sometimes"}, "muted", "boolean"),
        ({"snooze": True}, "snooze", "not permitted"),
    ],
)
async def test_invalid_preferences_are_refused_naming_the_field(
    client: httpx.AsyncClient, tenant: TenantKeys, change: dict[str, Any], field: str, words: str
) -> None:
    response = await client.put(URL, json={**FULL, **change}, headers=tenant.send)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"]["field"].startswith(field), error
    assert words in error["message"], error
    # And nothing was stored
    assert (await client.get(URL, headers=tenant.send)).json() == DEFAULTS


async def test_a_user_id_too_long_for_a_device_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.get(f"/v1/users/{'u' * 256}/preferences", headers=tenant.send)
    assert response.status_code == 422


async def test_another_apps_key_neither_sees_nor_changes_a_users_preferences(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    tenant_factory: Callable[[str], Awaitable[TenantKeys]],
) -> None:
    # Given alice's preferences in acme
    other = await tenant_factory("globex")
    await client.put(URL, json=FULL, headers=tenant.send)

    # When globex's key reads, sets and resets its own alice
    seen = await client.get(URL, headers=other.admin)
    await client.put(URL, json={"muted": True}, headers=other.send)
    await client.delete(URL, headers=other.send)

    # Then globex saw only its own (the defaults), and acme's alice is untouched
    assert seen.json() == DEFAULTS
    assert shown((await client.get(URL, headers=tenant.send)).json()) == {
        "user_id": "alice",
        **FULL,
    }


async def test_a_subscribe_key_may_not_read_or_change_preferences(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    for response in (
        await client.get(URL, headers=tenant.subscribe),
        await client.put(URL, json={"muted": True}, headers=tenant.subscribe),
        await client.delete(URL, headers=tenant.subscribe),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_scope"
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(URL, headers=tenant.send)).json() == DEFAULTS
