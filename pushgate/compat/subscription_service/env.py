"""The legacy subscription service's environment names that are not a plain rename:
`JWT_SECRET_KEY` lands in this shape's own section, a level deeper than `settings.LEGACY_ENV`
maps names. Imports nothing of pushgate: it runs while pushgate's settings load."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAMES = ("JWT_SECRET_KEY",)


def translate(environ: Mapping[str, str]) -> dict[str, Any]:
    secret = environ.get("JWT_SECRET_KEY")
    if secret is None:
        return {}
    return {"compat": {"subscription_service": {"jwt_secret_key": secret}}}
