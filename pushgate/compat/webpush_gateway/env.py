"""The Web Push gateway's environment names that are not a plain rename: VAPID_PUBLIC_KEY,
VAPID_PRIVATE_KEY, VAPID_SUBJECT, VAPID_EMAIL (an address: the subject as `mailto:`) and
USER_SERVICE_URL, in the nested `compat.webpush_gateway` section; and PORT, the listen port,
read only when the environment enables the shape (`PUSHGATE_COMPAT__ENABLED`), since a PORT
in a shell is often another program's. Imports nothing of pushgate: pushgate/settings.py
reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RENAMES = {
    "VAPID_PUBLIC_KEY": "vapid_public_key",
    "VAPID_PRIVATE_KEY": "vapid_private_key",
    "VAPID_SUBJECT": "vapid_subject",
    "USER_SERVICE_URL": "user_service_url",
}
NAMES = (*RENAMES, "VAPID_EMAIL", "PORT")
ENABLED = "PUSHGATE_COMPAT__ENABLED"


def translate(environ: Mapping[str, str]) -> dict[str, Any]:
    """`compat.webpush_gateway` values from the legacy names set in `environ`."""
    fields = {field: environ[name] for name, field in RENAMES.items() if name in environ}
    email = environ.get("VAPID_EMAIL", "").strip()
    if email and "vapid_subject" not in fields:
        # The old gateway put `mailto:` in front itself; some deployments wrote it already.
        fields["vapid_subject"] = email if email.startswith("mailto:") else f"mailto:{email}"
    values: dict[str, Any] = {"compat": {"webpush_gateway": fields}} if fields else {}
    if "PORT" in environ and _enabled(environ.get(ENABLED, "")):
        # Below PUSHGATE_SERVER__PORT and SERVICE_PORT (plain renames win over translations).
        values["server"] = {"port": environ["PORT"]}
    return values


def _enabled(names: str) -> bool:
    """Whether `PUSHGATE_COMPAT__ENABLED` (`a,b` or a JSON list) names this shape."""
    return "webpush_gateway" in names.replace('"', " ").replace(",", " ").replace("[", " ").split()
