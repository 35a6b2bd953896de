"""The static pages pushgate serves for people: the Web Push test page and its service worker."""

from __future__ import annotations

import httpx


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
