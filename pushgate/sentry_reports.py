"""Error reports to Sentry, when `sentry.dsn` is set: unhandled errors of the API and the
worker (the FastAPI, Starlette and asyncio integrations) and error log lines, with secrets
masked (pushgate/masking.py) before an event leaves the process and no personal data
(`send_default_pii=False`)."""

from __future__ import annotations

import sys
from typing import Any

from pushgate import masking
from pushgate.settings import SentrySettings


def configure(settings: SentrySettings, *, release: str) -> bool:
    """Start reporting; False (and nothing imported) when no DSN is set."""
    if settings.dsn is None or not settings.dsn.get_secret_value():
        return False
    import sentry_sdk
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    sentry_sdk.init(
        dsn=settings.dsn.get_secret_value(),
        environment=settings.environment,
        release=f"pushgate@{release}",
        traces_sample_rate=settings.traces_sample_rate,
        send_default_pii=False,
        # The asyncio integration needs the running loop: `watch_tasks`, once it runs.
        integrations=[StarletteIntegration(), FastApiIntegration()],
        before_send=before_send,  # type: ignore[arg-type]
        before_send_transaction=before_send,  # type: ignore[arg-type]
        before_breadcrumb=before_breadcrumb,
    )
    return True


def watch_tasks() -> None:
    """Report errors that end asyncio tasks too (the worker's loops): called inside the
    running loop, since that is what Sentry's asyncio integration patches. Nothing without
    a DSN (Sentry not even imported)."""
    if "sentry_sdk" not in sys.modules:
        return
    import sentry_sdk
    from sentry_sdk.integrations.asyncio import enable_asyncio_integration

    if sentry_sdk.get_client().is_active():
        enable_asyncio_integration()


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """The event with every secret-named field and secret-shaped text masked, everywhere in
    it: messages, exception values, request headers, stack frames' local variables."""
    masked: dict[str, Any] = masking.mask(event)
    return masked


def before_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    masked: dict[str, Any] = masking.mask(crumb)
    return masked
