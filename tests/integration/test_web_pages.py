"""The static pages pushgate serves for people: the Web Push test page and its service worker,
and the interactive API docs, which load nothing from outside."""

from __future__ import annotations

import re

import httpx
import pytest


async def test_webpush_test_page_and_service_worker_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/web/webpush.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "webpush.js" in page.text
    worker = await client.get("/web/sw.js")
    assert worker.status_code == 200
    assert "javascript" in worker.headers["content-type"]
    assert "showNotification" in worker.text


async def test_missing_page_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/web/nope.html")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*'([^']+)'|spec-url=["']([^"']+)["']""")
CONTENT_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_load_nothing_from_outside(client: httpx.AsyncClient, page: str) -> None:
    # Given the interactive API docs page
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")

    # Then it names no other host (a CDN would leave it blank offline)
    assert not re.search(r"(https?:)?//[a-z0-9.-]+", response.text, re.IGNORECASE)
    if page == "/docs":  # nor does its spec validator badge (Swagger UI's default calls out)
        assert '"validatorUrl": null' in response.text
    # and everything it loads is served here, as what it is
    urls = {next(g for g in match.groups() if g) for match in ASSET.finditer(response.text)}
    assert any(url.endswith(".js") for url in urls), urls
    assert "/openapi.json" in urls
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        kind = CONTENT_TYPES[url[url.rindex(".") :]]
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])


async def test_the_webpush_page_shows_how_a_page_gets_an_end_user_token(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/web/webpush.html")
    assert "X-Pushgate-App" in page.text
    assert "/push-token" in page.text
    script = await client.get("/web/webpush.js")
    assert "X-Pushgate-App" in script.text
