"""The dashboard's files as a server hands them out: one HTML shell for every dashboard address
(deep links included) that holds no data, scripts and styles of our own that load nothing from
elsewhere, and the security headers on every page and file under /dashboard and /web."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from pushgate.api import pageheaders

STATIC = Path(__file__).resolve().parents[2] / "pushgate" / "web" / "dashboard" / "static"
ASSETS = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"([^"]+)";""", re.MULTILINE | re.DOTALL)
EXPECTED = {
    "Content-Security-Policy": pageheaders.CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def assert_page_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.url, name, response.headers)


def test_the_policy_allows_no_inline_code_and_no_framing() -> None:
    policy = dict(
        part.strip().split(" ", 1) for part in pageheaders.CONTENT_SECURITY_POLICY.split(";")
    )
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert "unsafe" not in pageheaders.CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "address",
    [
        "/dashboard",
        "/dashboard/",
        "/dashboard/notifications/0b7c7c52-8a57-4bb3-9d0a-000000000001",
        "/dashboard/dead-letters?reason=expired",
    ],
)
async def test_every_dashboard_address_loads_the_same_shell(
    client: httpx.AsyncClient, address: str
) -> None:
    # When a person opens any dashboard address, deep links included, without a key
    response = await client.get(address)

    # Then it is the app's HTML shell, with the page headers
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_page_headers(response)
    assert '<script type="module" src="/dashboard/static/app.js"></script>' in response.text
    # and it holds no data and no code of its own: every script and style is a file
    assert "pgk_" not in response.text
    assert "{{root}}" not in response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
    assert "<style" not in response.text
    assert not re.search(r"\sstyle=", response.text)
    assert not re.search(r"\son[a-z]+=", response.text)


async def test_every_dashboard_file_is_served_as_what_it_is_with_the_headers(
    client: httpx.AsyncClient,
) -> None:
    assert "app.js" in ASSETS
    for asset in ASSETS:
        response = await client.get(f"/dashboard/static/{asset}")
        assert response.status_code == 200, asset
        kind = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        assert kind[Path(asset).suffix] in response.headers["content-type"], asset
        assert_page_headers(response)
        # Nothing from another host: the page works offline (the SVG namespace is a name,
        # not a place anything is fetched from).
        text = response.text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), asset


def test_every_module_the_scripts_import_is_a_dashboard_file() -> None:
    # A broken import leaves the whole page blank: check the graph without a browser.
    for script in STATIC.rglob("*.js"):
        for target in IMPORT.findall(script.read_text()):
            assert target.startswith("."), (script, target)
            assert (script.parent / target).resolve().is_file(), (script, target)


async def test_a_missing_dashboard_file_is_a_json_404_with_the_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/dashboard/static/nope.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert_page_headers(response)


@pytest.mark.parametrize("address", ["/web/webpush.html", "/web/webpush.js", "/web/sw.js"])
async def test_the_webpush_test_page_has_the_same_headers(
    client: httpx.AsyncClient, address: str
) -> None:
    response = await client.get(address)
    assert response.status_code == 200
    assert_page_headers(response)


async def test_the_api_itself_gets_no_page_headers(client: httpx.AsyncClient) -> None:
    # The page policy is for documents; JSON answers and /docs keep their own.
    response = await client.get("/health")
    assert "Content-Security-Policy" not in response.headers
