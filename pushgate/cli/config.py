"""`pushgate config`: the effective settings, secrets redacted."""

from __future__ import annotations

from typing import Any

from pushgate.cli.common import ConfigOption, JsonOption, commands, settings_from, show
from pushgate.settings import redact_url, redacted

group = commands("Inspect the effective settings.")


@group.command("show")
def config_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the effective settings, secrets redacted."""
    settings = settings_from(config)
    data = redacted(settings)
    data["database"]["effective_url"] = redact_url(settings.database_url)
    show(data, as_json, *_flatten(data), markup=False)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.extend(_flatten(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value!r}" if value is not None else f"{prefix}{key} =")
    return lines
