"""Environment names of the legacy deployments that are not a plain rename of one setting
(those are in `settings.LEGACY_ENV`): names that combine into one setting (`RABBITMQ_HOST` into
the broker URL), values in another form (`100/hour`), and names refused with a pointer to what
replaces them. Each translator reads the environment and answers nested setting values (the
lowest precedence: `PUSHGATE_*` names and the config file's sections win)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Translator = Callable[[Mapping[str, str]], dict[str, Any]]

# One per shape that needs one; each may raise ConfigError for a name pushgate refuses.
TRANSLATORS: list[Translator] = []
# Every name a translator reads (the tests clear them from the environment).
NAMES: list[str] = []


def values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Every translator's values, merged section by section (the earlier translator wins)."""
    merged: dict[str, dict[str, Any]] = {}
    for translate in TRANSLATORS:
        for section, fields in translate(environ).items():
            merged.setdefault(section, {})
            for name, value in fields.items():
                merged[section].setdefault(name, value)
    return dict(merged)


# template_consumer: FCM_SERVER_KEY refused. flask_consumer: RABBITMQ_HOST, REDIS_HOST ... URLs.
from pushgate.compat.flask_consumer import env as flask_consumer_env  # noqa: E402
from pushgate.compat.template_consumer import env as template_consumer_env  # noqa: E402

TRANSLATORS.extend((template_consumer_env.translate, flask_consumer_env.translate))
NAMES.extend((*template_consumer_env.NAMES, *flask_consumer_env.NAMES))
