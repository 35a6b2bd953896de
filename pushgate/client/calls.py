"""What a client call is, before any I/O: `Call` (the HTTP request, how to read its answer,
whether it may be retried) and `Exchange`, the retry loop as a generator that the sync and the
async client drive with their own transport and sleep. Both clients share all of this."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from pushgate.client import errors
from pushgate.client.models import Request

T = TypeVar("T")

RETRIED_STATUSES = frozenset({429, 503})


def _none(response: httpx.Response) -> None:
    return None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request, how to read its answer, and whether resending it is safe
    (reads, deletes and puts are; a send is once it carries an idempotency key)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        params = {k: _param(v) for k, v in self.params.items() if v is not None}
        return http.build_request(
            self.method, self.path, params=params, json=self.json, headers=dict(self.headers)
        )

    def at(self, cursor: str) -> Call[T]:
        """The same call for the page after `cursor`."""
        return replace(self, params={**self.params, "cursor": cursor})


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def model(kind: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda response: kind.model_validate_json(response.content)


def call(method: str, path: str, kind: type[BaseModel] | None, **kwargs: Any) -> Call[Any]:
    read = _none if kind is None else model(kind)
    return Call(method, path, read, **kwargs)


def body(value: Request | Mapping[str, Any], kind: type[Request]) -> dict[str, Any]:
    """The JSON body of a request given as the client's model or a plain dict."""
    given = value if isinstance(value, Request) else kind.model_validate(dict(value))
    return given.payload()


def keyed(json: dict[str, Any], idempotency_key: str | None) -> dict[str, str]:
    """The Idempotency-Key header for a send: the caller's, the body's, or a fresh uuid4 (so a
    send resent after a lost answer is not sent twice)."""
    key = idempotency_key or json.pop("idempotency_key", None) or str(uuid.uuid4())
    return {"Idempotency-Key": key}


@dataclass(frozen=True)
class Retries:
    """How hard to try: at most `attempts` sends, waiting at most `max_wait` seconds in all.

    429 and 503 are retried after their `Retry-After` (else `backoff` doubling); a connection
    error only for idempotent calls, since the request may have been applied."""

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    # How to wait: None is time.sleep (sync) or asyncio.sleep (async); tests record instead.
    sleep: Callable[[float], Any] | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Finished(Generic[T]):
    value: T


Step = httpx.Request | Sleep
Outcome = httpx.Response | httpx.TransportError | None
Exchange = Generator[Step, Outcome, T]


def exchange(call: Call[T], request: httpx.Request, retries: Retries) -> Exchange[T]:
    """Yield the request to send (and sleeps between tries); receive its response or transport
    error; return the call's result or raise a client error."""
    waited = 0.0
    for attempt in range(1, retries.attempts + 1):
        outcome = yield request
        last = attempt == retries.attempts
        if isinstance(outcome, httpx.Response):
            if outcome.status_code < 400:
                return call.read(outcome)
            if outcome.status_code not in RETRIED_STATUSES or last:
                raise errors.from_response(outcome)
            delay = errors.retry_after(outcome)
        elif isinstance(outcome, httpx.TransportError):
            if not call.idempotent or last:
                raise errors.PushgateConnectionError(str(outcome) or repr(outcome)) from outcome
            delay = None
        else:  # pragma: no cover - the drivers always send an outcome
            raise TypeError(f"unexpected outcome {outcome!r}")
        delay = retries.backoff * 2 ** (attempt - 1) if delay is None else delay
        if waited + delay > retries.max_wait:
            if isinstance(outcome, httpx.Response):
                raise errors.from_response(outcome)
            raise errors.PushgateConnectionError(str(outcome) or repr(outcome)) from outcome
        waited += delay
        yield Sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def advance(walk: Exchange[T], outcome: Outcome) -> Step | Finished[T]:
    """Send `outcome` into the exchange: its next step, or its result."""
    try:
        return walk.send(outcome)
    except StopIteration as stop:
        return Finished(stop.value)
