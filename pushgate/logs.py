"""Structured logging (structlog): console lines for people, JSON lines for log shippers.

`log.format` applies to every line of the process: pushgate's own (structlog, printed
directly) and those of the libraries that log through the standard library (uvicorn, alembic,
SQLAlchemy, aio-pika ...), which go through the root logger's one handler and structlog's
`ProcessorFormatter`, so a JSON process prints nothing but JSON lines. Both paths bind the
context variables (a request's `request_id`, api/observe.py) and mask secrets
(pushgate/masking.py).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from pushgate import masking
from pushgate.settings import LogSettings

# Libraries whose DEBUG lines are a flood (and may carry request parameters or headers):
# kept at INFO even when pushgate logs at DEBUG. SQLAlchemy's statements only with
# `database.echo` (it sets its own level then).
QUIET = (
    "aiosqlite",
    "asyncio",
    "hpack",
    "h2",
    "aio_pika",
    "aiormq",
    "pamqp",
    "httpx",
    "httpcore",
    "urllib3",
    "multipart",
    "python_multipart",
    "redis",
    "asyncpg",
    "sentry_sdk",
    "aiohttp",
)


# The request being answered (api/observe.py sets it): one context variable set per request is
# cheaper than structlog's bind_contextvars, and each log line reads it once.
request_id: ContextVar[str | None] = ContextVar("pushgate_request_id", default=None)


def add_request_id(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A structlog processor: `request_id` on every line written while a request runs."""
    current = request_id.get()
    if current is not None:
        event.setdefault("request_id", current)
    return event


def mask_secrets(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A structlog processor: every field through `masking.mask`."""
    for name, value in event.items():
        if name.startswith("_"):  # the formatter's own (`_record`, `_from_structlog`)
            continue
        masked = masking.mask(value, name)
        if masked is not value:
            event[name] = masked
    return event


def _dumps(value: Any, **_kw: Any) -> str:
    # UUIDs and datetimes as JSON strings; anything else unknown by its str().
    return orjson.dumps(value, default=str).decode()


def configure(settings: LogSettings) -> None:
    level = logging.getLevelNamesMapping()[settings.level]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if settings.format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            mask_secrets,
            renderer,
        ],
        # Filtering by level before any processor runs keeps disabled debug lines nearly free.
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamper,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    # SQLAlchemy's engine logs every statement with its parameters (device tokens among them)
    # at INFO: only when asked for with `database.echo`, which sets the level itself.
    logging.getLogger("sqlalchemy").setLevel(max(level, logging.WARNING))
    # Libraries that set up handlers of their own print around ours: theirs go, so every line
    # is rendered once, in the chosen format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "sqlalchemy.engine"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # uvicorn's per-request access line costs as much as a small request at high rates.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # Python warnings (SQLAlchemy's SAWarning, deprecations) as log lines too, not bare text.
    # Off first: captureWarnings(True) does nothing when it was on already, and whatever set
    # `warnings.showwarning` since (a test's catch_warnings) would keep printing bare text.
    logging.captureWarnings(False)
    logging.captureWarnings(True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
