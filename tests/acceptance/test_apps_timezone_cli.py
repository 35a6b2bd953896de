"""An app's default time zone through the real CLI: set, shown in the app's JSON, cleared, and
a name that is no time zone refused with a one-line reason."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.test_serve_cli import run_cli


def test_set_timezone_sets_shows_clears_and_refuses_what_is_no_zone(tmp_path: Path) -> None:
    # Given an app
    data = tmp_path / "data"
    assert run_cli(data, "apps", "create", "shop").returncode == 0

    # When its default time zone is set
    made = run_cli(data, "apps", "set-timezone", "--app", "shop", "Europe/Paris", "--json")

    # Then the app shows it
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["default_timezone"] == "Europe/Paris"
    [listed] = json.loads(run_cli(data, "apps", "list", "--json").stdout)["apps"]
    assert listed["default_timezone"] == "Europe/Paris"

    # And a name that is no zone is refused, the zone kept
    refused = run_cli(data, "apps", "set-timezone", "--app", "shop", "Europe/Atlantis")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "pushgate: 'Europe/Atlantis' is not a time zone: give an IANA name such as"
        " Europe/Paris (invalid_input)"
    ]
    [kept] = json.loads(run_cli(data, "apps", "list", "--json").stdout)["apps"]
    assert kept["default_timezone"] == "Europe/Paris"

    # And `none` goes back to UTC
    cleared = run_cli(data, "apps", "set-timezone", "--app", "shop", "none", "--json")
    assert json.loads(cleared.stdout)["default_timezone"] is None
