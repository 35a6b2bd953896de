"""The HTTP contract around the routes, as the OpenAPI fuzz (tests/fuzz) found it wanting: a
method a path lacks answers 405 with every method of the path in `Allow`; a literal path is a
resource of its own, not an id of the template beside it; and the document lists every error
status an operation can answer, each with the error body. On both profiles."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TenantKeys

DEVICE = "/v1/devices/0192e6a4-0000-7000-8000-000000000000"


def error_code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # Starlette named only the first route on the path: `Allow: GET`.
        ("PUT", DEVICE, "GET, PATCH, DELETE"),
        ("POST", "/v1/users/u1/preferences", "GET, PUT, DELETE"),
        ("PATCH", "/health", "GET"),
        # Static files sent no `Allow` at all.
        ("POST", "/web/index.html", "GET, HEAD"),
        # A literal path was taken for the template beside it: GET /v1/notifications/bulk
        # was GET /v1/notifications/{notification_id}, a 422 for the id "bulk".
        ("GET", "/v1/notifications/bulk", "POST"),
        ("DELETE", "/v1/notifications/send-immediate", "POST"),
        ("GET", "/v1/dead-letters/replay", "POST"),
        # `/fcm` (PUT) beside `/{platform}` (DELETE): now one path with both.
        ("GET", "/v1/apps/current/credentials/fcm", "PUT, DELETE"),
    ],
)
async def test_a_method_the_path_lacks_is_405_with_every_method_of_the_path(
    client: httpx.AsyncClient, tenant: TenantKeys, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers=tenant.admin)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert error_code(response) == "method_not_allowed"


async def test_ids_and_credentials_answer_as_before(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    # An id that is not one is still a 422 naming it
    bad_id = await client.get("/v1/notifications/not-an-id", headers=tenant.admin)
    assert bad_id.status_code == 422
    assert bad_id.json()["error"]["details"]["field"] == "notification_id"
    # And each platform's credentials are removed at the path they are set at
    for platform in ("fcm", "apns"):
        removed = await client.delete(
            f"/v1/apps/current/credentials/{platform}", headers=tenant.admin
        )
        assert (removed.status_code, error_code(removed)) == (404, "credentials_not_found")


async def test_a_body_that_is_not_utf8_is_a_400_the_document_declares(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.post(
        f"{DEVICE}/topics",
        content=b'{"topics": ["\xff"]}',
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    document = (await client.get("/openapi.json")).json()

    assert (response.status_code, error_code(response)) == (400, "bad_request")
    assert "400" in document["paths"]["/v1/devices/{device_id}/topics"]["post"]["responses"]


ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


async def test_every_operation_lists_the_errors_it_can_answer(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]

    for path, operations in paths.items():
        for method, operation in operations.items():
            answers = operation["responses"]
            where = f"{method.upper()} {path}"
            # Every error is the error body (readiness's 503 is its report, with an error)
            for status, answer in answers.items():
                if int(status) >= 400 and path != "/health/ready":
                    assert answer["content"] == ERROR_BODY, (where, status)
            # A body may be unreadable, too large or invalid; parameters invalid
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(answers), where
            if operation.get("parameters"):
                assert "422" in answers, where
            # The API key routes: no key, a key over its rate limit, a backend out of reach
            # and say how to send the key
            if path.startswith("/v1/"):
                assert {"401", "429", "503"} <= set(answers), where
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}], where
            else:
                assert "security" not in operation, where
    # The probes take no key and no input
    assert set(paths["/health"]["get"]["responses"]) == {"200"}
    assert set(paths["/health/ready"]["get"]["responses"]) == {"200", "503"}
    # The statuses of each route's own rules (409 and 400 were missing)
    assert {"404", "409"} <= set(
        paths["/v1/notifications/{notification_id}/cancel"]["post"]["responses"]
    )
    assert "409" in paths["/v1/notifications"]["post"]["responses"]
    assert "409" in paths["/v1/devices"]["post"]["responses"]
    assert "400" in paths["/v1/dead-letters"]["delete"]["responses"]
    assert "404" in paths["/v1/apps/current/credentials/fcm"]["delete"]["responses"]
    # Any key may read its app's VAPID key: no scope lacks it
    assert "403" not in paths["/v1/webpush/vapid-public-key"]["get"]["responses"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"]) == ("http", "bearer")
    # FastAPI's validation shape is not pushgate's, and is gone
    assert "HTTPValidationError" not in document["components"]["schemas"]
