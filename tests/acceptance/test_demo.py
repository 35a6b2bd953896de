"""`pushgate demo` on a fresh machine: a notification through a throwaway pushgate to a local
Web Push receiver, printed decrypted."""

from __future__ import annotations

import subprocess
import sys

from tests.acceptance.test_serve_cli import cli_env


def test_demo_prints_the_decrypted_notification(tmp_path) -> None:
    # When a newcomer runs the demo with nothing configured
    result = subprocess.run(
        [sys.executable, "-m", "pushgate", "demo"],
        env=cli_env(tmp_path / "unused"),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    # Then the receiver decrypted the notification and pushgate reports it sent
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"title": "Hello from pushgate"' in result.stdout
    assert "pushgate reports: completed" in result.stdout
    assert "'sent': 1" in result.stdout
