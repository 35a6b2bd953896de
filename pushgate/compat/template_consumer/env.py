"""The environment name of `template_consumer` deployments pushgate refuses: `FCM_SERVER_KEY`,
the server key of FCM's legacy HTTP API, which Google shut down in 2024. Imports nothing of
the API or the runtime (`compat/env.py` runs while the settings module loads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushgate.errors import ConfigError

NAMES = ["FCM_SERVER_KEY"]


def translate(environ: Mapping[str, str]) -> dict[str, Any]:
    """No setting of its own: refuses `FCM_SERVER_KEY` when it holds a key.

    Raises:
        ConfigError: FCM_SERVER_KEY is set.
    """
    if environ.get("FCM_SERVER_KEY", "").strip():
        raise ConfigError(
            "FCM_SERVER_KEY is a key for FCM's legacy HTTP API, which Google shut down in 2024:"
            " remove it and give pushgate a Firebase service account instead"
            " (SERVICE_ACCOUNT_PATH=/path/to/service-account.json)"
        )
    return {}
