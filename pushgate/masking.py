"""Secrets kept out of logs and error reports: values of secret-named fields, and anything
shaped like a secret inside text (a pushgate API key, a bearer token, a JWT, a URL's
password, a PEM private key, `token=...`). At most a short prefix is left (`abcd…`), enough
to tell two values apart in an incident, never enough to use one.

Used by the log processors (pushgate/logs.py) and Sentry's `before_send`
(pushgate/sentry_reports.py). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from typing import Any

ELLIPSIS = "…"
SHOWN = 4

# Field names whose values are secrets, compared lower-cased with `-` read as `_`.
SECRET_NAMES = frozenset(
    {
        "token",
        "auth",
        "key",
        "jwt",
        "cookie",
        "set_cookie",
        "assertion",
        "x_api_key",
        "body_secret",
    }
)
SECRET_PARTS = (
    "secret",
    "password",
    "passwd",
    "private",
    "credential",
    "authorization",
    "api_key",
    "apikey",
    "dsn",
    "p256dh",
    "bearer",
    "signature",
)
SECRET_SUFFIXES = ("_token", "_key", "_auth")
# Names that end like a secret but hold none.
NOT_SECRET = frozenset({"idempotency_key", "collapse_key", "sort_key", "ordering_key", "lock_key"})

_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        lambda m: "-----BEGIN PRIVATE KEY-----" + ELLIPSIS,
    ),
    (re.compile(r"pgk_[A-Za-z0-9_\-]{4,}"), lambda m: m[0][: 4 + SHOWN] + ELLIPSIS),
    (
        # Not followed by "…": a key masked by the rule above stays as it is.
        re.compile(
            r"\b(bearer|basic|vapid t=|key=)\s*([A-Za-z0-9._~+/=\-]{6,})(?![A-Za-z0-9._~+/=\-…])",
            re.I,
        ),
        lambda m: f"{m[1]} {m[2][:SHOWN]}{ELLIPSIS}",
    ),
    (
        re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]+\.?[A-Za-z0-9_\-]*"),
        lambda m: "eyJ" + ELLIPSIS,
    ),
    (
        re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/\s:@]*):([^/\s@]+)@"),
        lambda m: f"{m[1]}{m[2]}:{ELLIPSIS}@",
    ),
    (
        re.compile(
            r"\b(token|secret|password|passwd|auth|p256dh|api[_-]?key|authorization|dsn"
            r"|private_key|credentials?)(['\"]?\s*[:=]\s*['\"]?)([^\s'\"&,;}\]]{6,})",
            re.I,
        ),
        lambda m: f"{m[1]}{m[2]}{m[3][:SHOWN]}{ELLIPSIS}",
    ),
)


def is_secret_name(name: str) -> bool:
    key = name.lower().replace("-", "_")
    if key in NOT_SECRET:
        return False
    return (
        key in SECRET_NAMES
        or any(part in key for part in SECRET_PARTS)
        or key.endswith(SECRET_SUFFIXES)
    )


def short(value: str) -> str:
    """A secret value reduced to a prefix: `abcd…` (nothing of a short one)."""
    if len(value) <= 2 * SHOWN:
        return ELLIPSIS
    return value[:SHOWN] + ELLIPSIS


def mask_text(text: str) -> str:
    """`text` with every secret-shaped part masked."""
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


def mask(value: Any, name: str | None = None) -> Any:
    """`value` with secrets masked: the whole value under a secret name (numbers and booleans
    kept: counts named like `tokens` are no secret), and secret-shaped text anywhere, through
    dicts, lists and tuples."""
    if name is not None and is_secret_name(name):
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return short(value)
        if isinstance(value, dict | list | tuple | set):
            return ELLIPSIS
        return short(str(value))
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value
