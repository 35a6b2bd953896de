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


# Each shape's translator (imported here, after the lists, so settings.py gets them with
# this module): fcm_gateway RATE_LIMIT_PER_*; template_consumer refuses FCM_SERVER_KEY;
# webpush_gateway PORT; subscription_service JWT_SECRET_KEY; flask_consumer RABBITMQ_HOST,
# REDIS_HOST ... into URLs.
from pushgate.compat.fcm_gateway import env as fcm_gateway_env  # noqa: E402
from pushgate.compat.flask_consumer import env as flask_consumer_env  # noqa: E402
from pushgate.compat.subscription_service import env as subscription_service_env  # noqa: E402
from pushgate.compat.template_consumer import env as template_consumer_env  # noqa: E402
from pushgate.compat.webpush_gateway import env as webpush_gateway_env  # noqa: E402

for _shape in (
    fcm_gateway_env,
    template_consumer_env,
    webpush_gateway_env,
    subscription_service_env,
    flask_consumer_env,
):
    TRANSLATORS.append(_shape.translate)
    NAMES.extend(_shape.NAMES)
