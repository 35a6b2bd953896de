"""Request ids in log lines (api/observe.py) and secrets kept out of them (pushgate/masking.py,
pushgate/logs.py)."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings

import httpx
import structlog
from starlette.types import Receive, Scope, Send

from pushgate import logs, masking
from pushgate.api.observe import RequestObserver
from pushgate.logs import get_logger
from pushgate.settings import LogSettings


async def test_log_lines_of_a_request_carry_its_id() -> None:
    log = get_logger("test")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("inside the request")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class App:
        class state:  # noqa: N801 (what Starlette's scope["app"] offers)
            pass

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = App
        await RequestObserver(app)(scope, receive, send)

    with structlog.testing.capture_logs(processors=[logs.add_request_id]) as lines:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=asgi), base_url="http://t"
        ) as http:
            answer = await http.get("/", headers={"X-Request-ID": "req-1"})
        log.warning("after the request")

    assert answer.headers["x-request-id"] == "req-1"
    assert [(line["event"], line.get("request_id")) for line in lines] == [
        ("inside the request", "req-1"),
        ("after the request", None),
    ]


API_KEY = "pgk_Zx81nQ0aLmT3vWb5yC7dE9fGhJkLpRsT2uV4wX6yZ8a"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLWJ5dGVz"


def test_secret_named_fields_keep_only_a_short_prefix() -> None:
    event = {
        "token": "fcm-token-0123456789abcdef",
        "p256dh": "BEl62iUYgUivxIkv69yViEuiBIa",
        "Authorization": "Bearer whatever-it-is",
        "webhook_secret": "whsec_abcdefghijklmnop",
        "credentials": {"private_key": "x" * 40},
        "database_dsn": "postgresql://u:p@h/db",
        "auth": "short",
        "tokens": 12,
        "idempotency_key": "order-1",
    }
    masked = {k: masking.mask(v, k) for k, v in event.items()}
    assert masked == {
        "token": "fcm-…",
        "p256dh": "BEl6…",
        "Authorization": "Bear…",
        "webhook_secret": "whse…",
        "credentials": "…",
        "database_dsn": "post…",
        "auth": "…",
        "tokens": 12,
        "idempotency_key": "order-1",
    }


def test_secret_shaped_text_is_masked_anywhere() -> None:
    text = (
        f"key {API_KEY} refused; header Authorization: Bearer abcdef0123456789;"
        f" jwt {JWT}; url amqp://guest:hunter22@127.0.0.1:5672/; auth=Zm9vYmFyYmF6"
        " -----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----"
    )
    masked = masking.mask_text(text)
    for secret in (API_KEY, "abcdef0123456789", JWT, "hunter22", "Zm9vYmFyYmF6", "MIGHAgEA"):
        assert secret not in masked
    assert "pgk_Zx81…" in masked
    assert "amqp://guest:…@127.0.0.1" in masked


def test_json_lines_of_structlog_and_the_standard_library_alike() -> None:
    stream = io.StringIO()
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    real = sys.stderr
    sys.stderr = stream
    try:
        logs.configure(LogSettings(format="json", level="INFO"))
        structlog.get_logger("fresh").info("from structlog", token="device-token-123456789")
        logging.getLogger("uvicorn.error").info("from uvicorn with %s", f"Bearer {API_KEY}")
        logging.getLogger("alembic.runtime.migration").warning("from alembic")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("from a library's warning", UserWarning, stacklevel=1)
    finally:
        sys.stderr = real
        logging.captureWarnings(False)
        structlog.configure(**saved)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines[:3]] == [
        "from structlog",
        f"from uvicorn with Bearer {API_KEY[:8]}…",
        "from alembic",
    ]
    assert "from a library's warning" in lines[3]["event"]
    assert lines[3]["logger"] == "py.warnings"
    assert lines[0]["token"] == "devi…"
    assert lines[1]["logger"] == "uvicorn.error"
    assert {line["level"] for line in lines} == {"info", "warning"}
    assert all("timestamp" in line for line in lines)
    assert API_KEY not in stream.getvalue()
