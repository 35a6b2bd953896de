"""The interactive API docs as a person opens them: `pushgate serve` as a subprocess and Debian's
Chromium, headless, with no way out to the internet, renders /docs and /redoc from the assets
pushgate serves itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.test_serve_cli import Server
from tests.conftest import SERVICES_REQUIRED

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    reason = "Debian's chromium is not installed (apt-get install chromium)"
    if SERVICES_REQUIRED:
        pytest.fail(f"{reason} and PUSHGATE_TEST_SERVICES=require")
    pytest.skip(reason)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran. Every request the page makes to a host other
    than 127.0.0.1 fails (the proxy below goes nowhere), so an asset from a CDN is missing."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # Anything not on loopback goes to a closed port: no request leaves the machine.
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_swagger_ui_and_redoc_render_the_api_offline(server: Server, tmp_path: Path) -> None:
    # When a browser with no internet opens the docs
    swagger = rendered(f"{server.url}/docs", tmp_path / "swagger")
    redoc = rendered(f"{server.url}/redoc", tmp_path / "redoc")

    # Then Swagger UI lists the operations it read from /openapi.json...
    assert 'class="swagger-ui' in swagger
    assert "opblock" in swagger, swagger[-3000:]
    assert "/v1/notifications" in swagger
    # ...and so does ReDoc
    assert "/v1/notifications" in redoc, redoc[-3000:]
    assert "A page of the app's devices" in redoc
