"""Playwright driving Debian's Chromium (never a browser Playwright downloads), headless, with
every request that leaves the loopback interface aborted: a page that needs the internet shows
it here. Also where screenshots go (PUSHGATE_TEST_ARTIFACTS, default .artifacts/)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.acceptance.test_docs_browser import chromium

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Records each `securitypolicyviolation` event: a CSP refusal the console might not show.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def artifacts() -> Path:
    where = Path(os.environ.get("PUSHGATE_TEST_ARTIFACTS") or REPO / ".artifacts") / "browser"
    where.mkdir(parents=True, exist_ok=True)
    return where


def screenshot(page: Page, name: str) -> Path:
    path = artifacts() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Tab:
    """One browser context and its page, with what it tried to reach and what it logged."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def api_calls(self) -> list[str]:
        return [url for url in self.requests if urlsplit(url).path.startswith("/v1/")]

    def csp_violations(self) -> list[str]:
        reported: list[str] = self.page.evaluate("window.__cspViolations || []")
        logged = [line for line in self.console if "Content Security Policy" in line]
        return reported + logged


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as driver:
        launched = _launch(driver, executable)
        yield launched
        launched.close()


def _launch(driver: Playwright, executable: str) -> Browser:
    return driver.chromium.launch(
        executable_path=executable,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    )


@pytest.fixture
def tab(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A fresh context (empty sessionStorage) whose page can reach loopback only; a screenshot
    of where it ended is saved as the test's artifact, pass or fail."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    opened = Tab(context, page)

    def offline(route: Route, *_: Any) -> None:
        url = route.request.url
        opened.requests.append(url)
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname not in LOOPBACK:
            opened.blocked.append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def logged(message: ConsoleMessage) -> None:
        opened.console.append(f"{message.type}: {message.text}")

    context.route("**/*", offline)
    context.add_init_script(WATCH_CSP)
    page.on("console", logged)
    page.on("pageerror", lambda error: opened.console.append(f"pageerror: {error}"))
    page.set_default_timeout(20_000)
    try:
        yield opened
    finally:
        # A page that crashed cannot be photographed: the test's own failure says why.
        with contextlib.suppress(PlaywrightError):
            screenshot(page, request.node.name)
        context.close()
