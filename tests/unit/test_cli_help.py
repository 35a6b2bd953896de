"""`pushgate ... --help` shows a boolean flag as a flag (`--json`), never as an option taking a
value (`--json <bool>`): `--json true` is an error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from pushgate import cli


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer's own click, not `click.Group`)
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


ALL = list(commands(typer.main.get_group(cli.app)))


def test_every_command_is_walked() -> None:
    assert ("dlq", "requeue") in ALL
    assert ("config", "show") in ALL


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "pushgate")
def test_help_shows_boolean_flags_without_a_value(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli.app, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["--help", "Show", "this", "message", "and", "exit."] in lines


def test_json_flag_is_listed_bare_and_takes_no_value() -> None:
    # Given a command with a --json flag
    result = CliRunner().invoke(cli.app, ["config", "show", "--help"])
    [line] = [line for line in result.output.splitlines() if "--json" in line]

    # Then its help line is the flag and its description, nothing between
    assert line.split()[:2] == ["--json", "Print"]
    # and giving it a value is refused, as the help says
    refused = CliRunner().invoke(cli.app, ["config", "show", "--json", "true"])
    assert refused.exit_code == 2
