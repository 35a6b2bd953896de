"""Accept notifications: validate what needs I/O, apply idempotency keys, store, and hand the
due ones to dispatch. Used by the API (single and bulk) and the `push.queue` ingress.

The API's single accepts store through `group`: the accepts of concurrent requests joined into
one INSERT and one batched publish (see `group_commit`); the others store their own batch.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate import netguard, outages
from pushgate.broker import base as broker_base
from pushgate.domain import message as messages
from pushgate.domain import subscription
from pushgate.domain.notification import NotificationStatus
from pushgate.domain.request import NotificationCreate
from pushgate.errors import (
    ConflictError,
    InvalidInputError,
    PayloadTooLargeError,
    PushgateError,
    UnavailableError,
)
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import addresses, jobs, templates
from pushgate.sending.group_commit import GroupCommit
from pushgate.store import apps, db, notifications
from pushgate.store.held import HeldConnection
from pushgate.store.tables import Notification, utcnow

log = get_logger(__name__)

# How long a request holding an idempotency key may take before another with the same key is
# let through. Short: the lock outlives a crashed API process, and until it expires the
# client's retry is a 409 (tests/faults/test_process_faults.py). Letting a repeat through
# while a slow first request still runs is safe: the database's unique key answers it (replay).
IN_PROGRESS_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted notification: `stored` answers without building the ORM object."""

    stored: notifications.Created

    @property
    def notification(self) -> Notification:
        """The stored row as an ORM object (built on first use, attached to no session)."""
        return self.stored.row

    @property
    def replayed(self) -> bool:
        return self.stored.replayed


async def validate(
    runtime: Runtime, request: NotificationCreate, rendered: templates.Rendered | None = None
) -> messages.Message:
    """Checks that need settings or DNS: payload size (of every variant a template rendered),
    raw tokens and their endpoints.

    Returns:
        The message to store (built once: accept is on the API's hot path).

    Raises:
        PushgateError: 413 naming the field that makes the payload too large, 422 naming the
            bad token field.
    """
    if rendered is None:
        message = request.message()
        _check_size(message)
    else:
        message = rendered.message
        for locale, variant in rendered.messages.items():
            _check_size(variant, locale=locale)
    for index, token in enumerate(request.tokens or ()):
        try:
            if token.subscription is not None:
                sub = token.subscription
                subscription.webpush_address(
                    endpoint=sub.endpoint,
                    p256dh=sub.keys.p256dh,
                    auth=sub.keys.auth,
                    expiration_time=sub.expirationTime,
                )
                await netguard.check_endpoint(sub.endpoint, runtime.settings.webpush)
            else:
                addresses.token_address(runtime.providers, token.platform, token.token or "")
        except InvalidInputError as exc:
            # Name the item: `tokens.3.subscription.keys.auth`, not just `keys.auth`.
            field = exc.field or "token"
            exc.field = f"tokens.{index}.{field}"
            exc.details = {"field": exc.field}
            raise
    return message


def _check_size(message: messages.Message, *, locale: str | None = None) -> None:
    try:
        messages.check_webpush_payload(message)
    except PayloadTooLargeError as exc:
        exc.details = {**(exc.details or {}), "field": _largest_field(message)}
        if locale is not None:
            exc.details["locale"] = locale
        raise


def _largest_field(message: messages.Message) -> str:
    """The request field that weighs most in an oversized Web Push payload: the one to shorten."""
    sizes = {
        name: len(orjson.dumps(getattr(message, name)))
        for name in ("title", "body", "icon", "image", "badge", "url", "tag")
        if getattr(message, name)
    }
    if message.actions:
        sizes["actions"] = len(orjson.dumps(list(message.actions)))  # dataclasses: as objects
    if message.data:
        sizes["data"] = len(orjson.dumps(dict(message.data)))
    if message.webpush:
        sizes["webpush"] = len(orjson.dumps(dict(message.webpush)))
    return max(sizes, key=sizes.__getitem__) if sizes else "body"


async def accept_many(
    runtime: Runtime,
    *,
    app_id: uuid.UUID,
    requests: Sequence[NotificationCreate],
    now: datetime | None = None,
    publish: bool = True,
    session: AsyncSession | None = None,
    group: Group | None = None,
    source: str = "api",
) -> list[Accepted | PushgateError]:
    """Accept a batch; one result per request, in order. Bad items do not sink good ones.

    Stored notifications are durable before this returns; their dispatch jobs are published
    after the commit (unless `publish` is False: send-immediate dispatches in the request), and
    if that fails the sweeper publishes them later. Through a `group`, the publish is under
    way when this returns, not done.

    Args:
        session: the API request's own session, if it has one; it is committed here. Without
            one, sessions are opened as needed.
        group: store through this group commit (see `group`), joined with the accepts of
            other requests in flight; `session` is then used only for idempotency reads.
        source: where the requests came from (`api` or `queue`), for the metrics.

    Raises:
        UnavailableError: the group's flush failed for a reason other than this request's
            content (the database or its connection); nothing of this request was stored.
    """
    now = now or utcnow()
    results: list[Accepted | PushgateError | None] = [None] * len(requests)
    valid: list[tuple[int, NotificationCreate, messages.Message, templates.Rendered | None]] = []
    locks: set[str] = set()
    loader: templates.Loader | None = None
    try:
        for index, request in enumerate(requests):
            try:
                rendered = None
                if request.template_code is not None:
                    loader = loader or templates.Loader(runtime, app_id, session)
                    rendered = await loader.render(request)
                message = await validate(runtime, request, rendered)
            except PushgateError as exc:
                results[index] = exc
                continue
            key = request.idempotency_key
            if key is not None:
                lock = f"idem:{app_id}:{key}"
                # A key repeated inside this batch is ours already: the store answers the
                # repeats (replay or reused) in the same flush, instead of a 409 against itself.
                if lock not in locks:
                    taken = await _lock(runtime, lock)
                    if taken is False:
                        results[index] = await _busy_or_replay(runtime, session, app_id, request)
                        continue
                    if taken:
                        locks.add(lock)
            valid.append((index, request, message, rendered))
        if valid:
            items = [
                _new(app_id, request, message, now, rendered)
                for _, request, message, rendered in valid
            ]
            created = await _stored_once(runtime, items, session, group, publish)
            for (index, *_), outcome in zip(valid, created, strict=True):
                results[index] = (
                    outcome if isinstance(outcome, PushgateError) else Accepted(outcome)
                )
            await _count(runtime, app_id, valid, created, source)
    finally:
        # Released only after the commit, so a retry either finds the row or takes the lock.
        await _unlock(runtime, locks)
    return [r for r in results if r is not None]


async def _lock(runtime: Runtime, lock: str) -> bool | None:
    """Take an idempotency key's in-progress lock: True taken, False held by another request,
    None when the key-value store is out of reach. The lock only turns a concurrent repeat
    into a 409 instead of a wait; the database row is the idempotency record (a unique key
    per app), so without the lock the send goes on, and the store answers a repeat."""
    try:
        return await runtime.kv.add(lock, b"1", ttl=IN_PROGRESS_SECONDS)
    except Exception as exc:
        if outages.backend_of(exc) is None:
            raise
        log.warning("idempotency lock unavailable; the database decides", error=repr(exc))
        return None


async def _unlock(runtime: Runtime, locks: set[str]) -> None:
    """Release the locks. Never raises: by now the notifications may be committed, and their
    answer is the 202; a lock left behind expires within IN_PROGRESS_SECONDS, and a repeat
    meanwhile is answered from the stored row."""
    for lock in locks:
        try:
            await runtime.kv.delete(lock)
        except Exception as exc:
            log.warning("idempotency lock not released; it expires", lock=lock, error=repr(exc))


async def _stored_once(
    runtime: Runtime,
    items: list[notifications.NewNotification],
    session: AsyncSession | None,
    group: Group | None,
    publish: bool,
) -> list[Stored]:
    """Store `items` (see `accept_many`). An idempotency key another request stored between
    this one's read of the keys and its INSERT (two API processes, the lock out of reach)
    fails the INSERT on the key's unique index; the second attempt reads that row, and
    answers the replay (or `idempotency_key_reused`)."""

    async def attempt() -> list[Stored]:
        if group is not None and publish:
            return await _through(group, items)
        return await store(runtime, items, session=session, publish=publish)

    try:
        return await attempt()
    except IntegrityError:
        if not any(item.idempotency_key for item in items):
            raise
        log.info("an idempotency key was stored meanwhile; reading it", count=len(items))
    return await attempt()


Stored = notifications.Created | InvalidInputError
Group = GroupCommit[notifications.NewNotification, Stored]


def group(runtime: Runtime) -> Group:
    """A group commit for accepting: concurrent accepts stored with one INSERT (see
    `group_commit`), each answered once its row is committed. Their dispatch jobs are
    published after the commit by a second group, batched across flushes, and the answer does
    not wait for them: the database is the source of truth, and a job lost on the way (a
    broker outage, a crash) is the sweeper's to publish again. Close it before the runtime:
    that also waits for the publishes under way."""

    # On PostgreSQL a flush writes with one statement, an executemany that asyncpg makes atomic
    # (one implicit transaction), so it needs no BEGIN/COMMIT round trips, and goes straight
    # to asyncpg; SQLite's executemany is not atomic without a transaction.
    postgres = db.is_postgres(runtime.engine)
    held = HeldConnection(runtime.engine, autocommit=postgres)

    async def publish(ids: list[uuid.UUID]) -> list[None]:
        await _publish(runtime, ids)
        return [None] * len(ids)

    publisher: GroupCommit[uuid.UUID, None] = GroupCommit(publish)

    async def flush(items: list[notifications.NewNotification]) -> list[Stored]:
        async with held.transaction() as connection:
            created = await notifications.create_many(
                session=connection, items=items, direct=postgres
            )
        publisher.add(_due(created))
        return created

    async def close() -> None:
        await held.close()
        await publisher.close()

    return GroupCommit(flush, isolate=_refused_for_content, on_close=close)


def _refused_for_content(error: BaseException) -> bool:
    """Whether the database refused a flush for what it held (a row it will not take) rather
    than for being out of reach: only then is it worth storing the submissions one by one."""
    if isinstance(error, OperationalError | InterfaceError):
        return False
    if isinstance(error, DBAPIError):
        return not error.connection_invalidated
    return isinstance(error, StatementError)  # a value its column type refused to bind


async def _through(group: Group, items: list[notifications.NewNotification]) -> list[Stored]:
    try:
        return await group.submit(items)
    except Exception as exc:
        if _refused_for_content(exc):
            raise  # this request's own rows: a bug in validation, reported as such
        log.error("storing accepted notifications failed", error=repr(exc))
        raise UnavailableError(
            "could not store the notification (the database is unavailable); nothing was"
            " accepted: try again",
            code="store_unavailable",
            headers={"Retry-After": "1"},
        ) from exc


async def _count(
    runtime: Runtime,
    app_id: uuid.UUID,
    valid: Sequence[tuple[Any, NotificationCreate, Any, Any]],
    created: Sequence[Stored],
    source: str,
) -> None:
    """Count the notifications stored now (not replays) by app name (read once per app and
    process) and category."""
    counts: dict[str | None, int] = {}
    for (_, request, *_), outcome in zip(valid, created, strict=True):
        if isinstance(outcome, notifications.Created) and not outcome.replayed:
            counts[request.category] = counts.get(request.category, 0) + 1
    if not counts:
        return
    metrics = runtime.metrics
    name = metrics.app_names.get(app_id)
    if name is None:
        try:
            async with runtime.sessions() as session:
                name = (await apps.get(session=session, app_id=app_id)).name
        except Exception:  # counted under the id this time; the name is read again next time
            name = str(app_id)
        else:
            metrics.app_names[app_id] = name
    metrics.count_accepted(name, counts, source)


def _new(
    app_id: uuid.UUID,
    request: NotificationCreate,
    message: messages.Message,
    now: datetime,
    rendered: templates.Rendered | None = None,
) -> notifications.NewNotification:
    options = request.options()
    if rendered is not None:
        options = {**(options or {}), "template": rendered.template}
    return notifications.NewNotification(
        app_id=app_id,
        target=request.target(),
        message=jobs.encode_message(message),
        category=request.category,
        metadata=request.metadata,
        send_at=request.scheduled_at(now),
        expires_at=request.expires_at(now),
        idempotency_key=request.idempotency_key,
        request_hash=request.request_hash() if request.idempotency_key else None,
        accepted_at=now,
        options=options,
        renders=rendered.renders() if rendered is not None else None,
    )


async def store(
    runtime: Runtime,
    items: Sequence[notifications.NewNotification],
    *,
    session: AsyncSession | None = None,
    publish: bool = True,
) -> list[Stored]:
    """Store `items` (of any apps) in one transaction and commit, then publish the dispatch
    jobs of those due now. A failed publish is logged: the sweeper publishes them later."""
    async with _session(runtime, session) as current:
        try:
            created = await notifications.create_many(session=current, items=items)
            await current.commit()
        except Exception:
            await current.rollback()  # a given session stays usable (see `_stored_once`)
            raise
    if publish:
        await _publish(runtime, _due(created))
    return created


def _due(created: Sequence[Stored]) -> list[uuid.UUID]:
    """The notifications just stored that are for dispatch now (not scheduled, not replays)."""
    return [
        outcome.id
        for outcome in created
        if isinstance(outcome, notifications.Created)
        and not outcome.replayed
        and outcome.status == NotificationStatus.ACCEPTED
    ]


async def _publish(runtime: Runtime, due: list[uuid.UUID]) -> None:
    """Publish their dispatch jobs. A failure is logged: they are stored, and the sweeper
    publishes what is left undispatched."""
    if not due:
        return
    try:
        await runtime.broker.publish(broker_base.DISPATCH, [jobs.dispatch_job(i) for i in due])
    except Exception as exc:
        log.warning(
            "dispatch publish failed; the sweeper will retry", count=len(due), error=str(exc)
        )


@contextlib.asynccontextmanager
async def _session(runtime: Runtime, given: AsyncSession | None) -> AsyncIterator[AsyncSession]:
    # Reusing the request's session matters twice: no second pooled connection per request (as
    # many concurrent requests as the pool has connections would otherwise each hold one and
    # wait for another, until the pool timeout), and no extra checkout round trip.
    if given is not None:
        yield given
    else:
        async with runtime.sessions() as session:
            yield session


async def _busy_or_replay(
    runtime: Runtime, given: AsyncSession | None, app_id: uuid.UUID, request: NotificationCreate
) -> Accepted | PushgateError:
    key = request.idempotency_key or ""
    async with _session(runtime, given) as session:
        try:
            row = await notifications.get_by_idempotency_key(
                session=session, app_id=app_id, key=key
            )
        except PushgateError:
            return ConflictError(
                f"a request with idempotency key {key!r} is in progress",
                code="idempotency_in_progress",
                headers={"Retry-After": "1"},
            )
    if row.request_hash != request.request_hash():
        return notifications.key_reused(key)
    return Accepted(notifications.Created(row=row, replayed=True))
