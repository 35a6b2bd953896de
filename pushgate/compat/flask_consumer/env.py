"""The environment names of `flask_consumer` deployments that combine into one setting:
`RABBITMQ_HOST` (with pika's `RABBITMQ_PORT`, `RABBITMQ_USER`, `RABBITMQ_PASSWORD`) into the
broker URL, `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD` into the Redis URL. (`FIREBASE_KEY`
is a plain rename: `settings.LEGACY_ENV`.) The URLs are built only when the host is set; the
URL names (`RABBITMQ_URL`, `REDIS_URL`) and `PUSHGATE_*` win over them. Imports nothing of the
API or the runtime (`compat/env.py` runs while the settings module loads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pushgate.errors import ConfigError

RABBITMQ = ("RABBITMQ_HOST", "RABBITMQ_PORT", "RABBITMQ_USER", "RABBITMQ_PASSWORD")
REDIS = ("REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD")
NAMES = [*RABBITMQ, *REDIS]


def translate(environ: Mapping[str, str]) -> dict[str, Any]:
    """`broker.url` and `redis.url` from the host names, when set.

    Raises:
        ConfigError: a port that is not a port number.
    """
    values: dict[str, Any] = {}
    host = environ.get("RABBITMQ_HOST", "").strip()
    if host:
        # pika's defaults: port 5672, user and password `guest`, virtual host `/`.
        port = _port(environ, "RABBITMQ_PORT", 5672)
        user = quote(environ.get("RABBITMQ_USER") or "guest", safe="")
        password = quote(environ.get("RABBITMQ_PASSWORD") or "guest", safe="")
        values["broker"] = {"url": f"amqp://{user}:{password}@{_host(host)}:{port}/"}
    host = environ.get("REDIS_HOST", "").strip()
    if host:
        port = _port(environ, "REDIS_PORT", 6379)
        password = environ.get("REDIS_PASSWORD") or ""
        auth = f":{quote(password, safe='')}@" if password else ""
        values["redis"] = {"url": f"redis://{auth}{_host(host)}:{port}/0"}
    return values


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"invalid setting {name}: {text!r} is not a port number (1-65535)")
    return int(text)


def _host(host: str) -> str:
    # An IPv6 address goes in brackets in a URL.
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
