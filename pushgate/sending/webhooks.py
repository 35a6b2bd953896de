"""The webhook sender, a loop in every worker: takes due events from the outbox
(`webhook_events`, store/webhooks.py) under a lease, signs each per the Standard Webhooks spec
(domain/webhooks.py), POSTs it, and records the answer.

A 2xx is `sent`. Anything else is tried again with exponential backoff until
`webhooks.retry_for_seconds` after the event was made, then `failed`. Events of one (webhook,
ordering key) go out in order: the claim skips an event while an earlier one for its key is
unsent, so a receiver down for a while gets them all, in order, once it is back. A webhook
failing `webhooks.disable_after_failures` attempts in a row is disabled with the reason; its
events wait until an admin enables it again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from pushgate.domain import webhooks as rules
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.store import webhooks as stored
from pushgate.store.tables import utcnow

log = get_logger(__name__)

CONCURRENCY = 20


class Poster(Protocol):
    def post(
        self, url: str, headers: Mapping[str, str], body: bytes
    ) -> Awaitable[tuple[int | None, str | None]]: ...


class WebhookSender:
    """Sends what is due, one batch per `send_once`.

    Args:
        clock: now, as a UTC datetime (tests move it instead of sleeping).
    """

    def __init__(
        self, runtime: Runtime, poster: Poster, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.webhooks
        self.poster = poster
        self.clock = clock
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def send_once(self) -> int:
        """Send one batch of due events; how many were attempted."""
        now = self.clock()
        lease = self.settings.timeout_seconds * 2 + 30
        async with self.runtime.sessions() as session:
            due = await stored.claim(
                session=session, now=now, lease_seconds=lease, limit=self.settings.batch_size
            )
            await session.commit()
        if not due:
            return 0
        answers = await asyncio.gather(*(self._attempt(event, now) for event in due))
        counts = {"sent": 0, "retry": 0, "failed": 0}
        async with self.runtime.sessions() as session:
            for event, (code, error) in zip(due, answers, strict=True):
                ok = code is not None and 200 <= code < 300
                next_attempt_at = None if ok else self._next_attempt(event, now)
                counts["sent" if ok else "retry" if next_attempt_at else "failed"] += 1
                await stored.record(
                    session=session,
                    due=event,
                    now=now,
                    status_code=code,
                    error=error,
                    ok=ok,
                    next_attempt_at=next_attempt_at,
                    disable_after=self.settings.disable_after_failures,
                )
            await session.commit()
        for outcome, n in counts.items():
            if n:
                self.runtime.metrics.webhook_attempt(outcome, n)
        return len(due)

    async def _attempt(self, event: stored.Due, now: datetime) -> tuple[int | None, str | None]:
        box = self.runtime.credentials.box()
        secrets = [box.open(event.secret)]
        if (
            event.previous_secret
            and event.previous_secret_until
            and event.previous_secret_until > now
        ):
            secrets.append(box.open(event.previous_secret))
        body = rules.body(event.type, event.created_at, event.payload)
        headers = rules.headers(secrets, rules.message_id(event.id), int(now.timestamp()), body)
        async with self._slots:
            return await self.poster.post(event.url, headers, body)

    def _next_attempt(self, event: stored.Due, now: datetime) -> datetime | None:
        """When to try again, or None: the event has been tried long enough."""
        wait = rules.backoff(
            event.attempts,
            base=self.settings.backoff_base_seconds,
            cap=self.settings.backoff_max_seconds,
        )
        at = now + timedelta(seconds=wait)
        if at > event.created_at + timedelta(seconds=self.settings.retry_for_seconds):
            return None
        return at


async def run(sender: WebhookSender, *, stop: asyncio.Event) -> None:
    """Send until `stop` is set: at once again after a full batch, else every `poll_seconds`.
    Errors are logged, never fatal."""
    while not stop.is_set():
        sent = 0
        try:
            sent = await sender.send_once()
        except Exception:
            log.exception("webhook sending failed; trying again")
        if sent >= sender.settings.batch_size:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), sender.settings.poll_seconds)
