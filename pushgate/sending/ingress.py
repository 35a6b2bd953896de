"""The `push.queue` ingress: other services publish the same JSON as `POST /v1/notifications`
(plus `app` or `app_id` to say whose it is, and the fields older systems send), or a message of
one of the legacy shapes pushgate replaces (pushgate/compat/messages.py: recognised by its
fields, translated into the same request). A message that cannot be accepted goes to the
dead-letter queue with the reason; it never blocks the others."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from pushgate.broker import base as broker_base
from pushgate.compat import messages as legacy_messages
from pushgate.compat import registry as legacy_registry
from pushgate.domain import storable
from pushgate.domain.request import NotificationCreate
from pushgate.errors import NotFoundError, PushgateError
from pushgate.logs import get_logger
from pushgate.runtime import Runtime
from pushgate.sending import accept
from pushgate.store import apps

log = get_logger(__name__)

ENVELOPE_FIELDS = ("app", "app_id")
# Attempts of a message whose accept keeps raising (not a refusal: an outage) before it is
# parked in the dead-letter queue; with the growing delay, about ten minutes.
MAX_ATTEMPTS = 12


class Ingress:
    def __init__(self, runtime: Runtime, *, default_app: str = "default") -> None:
        self.runtime = runtime
        self.default_app = default_app
        self._app_ids: dict[str, uuid.UUID] = {}
        legacy_registry.load()

    async def handle(self, batch: list[broker_base.IncomingMessage]) -> None:
        by_app: dict[uuid.UUID, list[tuple[broker_base.IncomingMessage, NotificationCreate]]] = {}
        for message in batch:
            try:
                app_id, request = await self._read(message)
            except (ValueError, PushgateError) as exc:
                message.dead_letter(_reason(exc))
                continue
            except Exception as exc:  # looking up the app failed: the database is unwell
                _failed(message, exc)
                continue
            by_app.setdefault(app_id, []).append((message, request))
        for app_id, items in by_app.items():
            await self._accept(app_id, items)

    async def _accept(
        self,
        app_id: uuid.UUID,
        items: list[tuple[broker_base.IncomingMessage, NotificationCreate]],
    ) -> None:
        try:
            results = await accept.accept_many(
                self.runtime, app_id=app_id, requests=[r for _, r in items], source="queue"
            )
        except Exception as exc:  # the store refused the batch, or is unreachable
            if len(items) > 1:
                # One message the database refuses must not hold back the others: accept
                # them one by one, so only the bad one fails.
                for item in items:
                    await self._accept(app_id, [item])
                return
            [(message, _)] = items
            _failed(message, exc)
            return
        for (message, _), result in zip(items, results, strict=True):
            if isinstance(result, PushgateError) and result.status_code == 409:
                message.retry(1.0, result.message)  # the same key is being accepted now
            elif isinstance(result, PushgateError):
                message.dead_letter(_reason(result))
            else:
                message.ack()

    async def _read(
        self, message: broker_base.IncomingMessage
    ) -> tuple[uuid.UUID, NotificationCreate]:
        data = decode(message.body)
        legacy = legacy_messages.recognise(data)
        if legacy is None:
            app_ref, request = parse_object(data)
            app_id = await self._app_id(app_ref or message.headers.get("app", self.default_app))
            return app_id, request
        app_ref = _app_ref(data)
        app_id = await self._app_id(app_ref or message.headers.get("app", self.default_app))
        return app_id, await legacy.translate(self.runtime, app_id, data)

    async def _app_id(self, ref: str) -> uuid.UUID:
        cached = self._app_ids.get(ref)
        if cached is not None:
            return cached
        async with self.runtime.sessions() as session:
            try:
                row = await apps.get(session=session, app_id=uuid.UUID(ref))
            except ValueError:
                row = await apps.get_by_name(session=session, name=ref)
            except NotFoundError:
                raise
        self._app_ids[ref] = row.id
        return row.id


def parse(body: bytes) -> tuple[str | None, NotificationCreate]:
    """A message's app (`app` or `app_id`; None when it names none) and its request. Pure.

    Raises:
        ValueError: the message is not a JSON object, or not a valid request (a pydantic
            ValidationError naming the field); nothing else, whatever the body.
    """
    return parse_object(decode(body))


def decode(body: bytes) -> dict[str, Any]:
    """A message's JSON object.

    Raises:
        ValueError: not JSON, or not an object.
    """
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the message must be a JSON object")
    return data


def parse_object(data: dict[str, Any]) -> tuple[str | None, NotificationCreate]:
    """`parse` of a decoded object (which it consumes)."""
    app_ref = _app_ref(data)
    return app_ref, NotificationCreate.model_validate(data)


def _app_ref(data: dict[str, Any]) -> str | None:
    """The app a message names (`app` or `app_id`, removed from `data`), None when none.

    Raises:
        ValueError: the name holds text no app name can hold.
    """
    app_ref = data.pop("app", None) or data.pop("app_id", None)
    data.pop("app_id", None)
    if not app_ref:
        return None
    problem = storable.text_problem(str(app_ref))
    if problem is not None:
        raise ValueError(f"invalid_input: app: must not contain {problem}")
    return str(app_ref)


def _failed(message: broker_base.IncomingMessage, exc: Exception) -> None:
    """A message whose accept raised: refused data goes to the dead-letter queue at once;
    anything else (an outage) is retried with a growing delay, and parked after a while so a
    message that keeps failing cannot circulate forever."""
    reason = f"accept failed: {type(exc).__name__}: {_first_line(exc)}"[:500]
    if _refused(exc) or message.attempts >= MAX_ATTEMPTS:
        log.warning("ingress message dead-lettered", reason=reason, attempts=message.attempts)
        message.dead_letter(reason)
        return
    log.warning("ingress message will be retried", reason=reason, attempts=message.attempts)
    message.retry(min(2.0**message.attempts, 60.0), reason)


def _refused(exc: BaseException) -> bool:
    """The message's data itself was refused, so trying again cannot help: a validation error
    raised past the parser (a value out of range, text a driver cannot encode: ValueError and
    OverflowError, also when SQLAlchemy wraps them in a StatementError), or the database's
    own refusal (SQLSTATE class 22, data exception). Outages raise none of these."""
    if isinstance(exc, ValueError | OverflowError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith("22")
    if isinstance(exc, StatementError) and exc.orig is not None:
        return _refused(exc.orig)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else ""


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        return f"invalid_input: {where}: {first.get('msg')}"[:500]
    if isinstance(exc, PushgateError):
        return f"{exc.code}: {exc.message}"[:500]
    return str(exc)[:500]
