"""baseline: what plain scripts do, against the same nginx sinks, in the same run, so each
pushgate figure is also a ratio.

- Web Push (profile `pywebpush`): a synchronous loop calling pywebpush's `webpush()` once per
  subscription, once opening a connection per call (`per_call`), once through a keep-alive
  `requests.Session` (`keep_alive`). The fastest is what `webpush_e2e` is compared with.
- FCM (profile `requests`): a hand-rolled firebase-admin style loop: an access token fetched
  once with google-auth from the sink's token endpoint, then one FCM v1 `messages:send` POST per
  registration token through a keep-alive `requests.Session`, reading each answer's message
  name. What `fcm_e2e` is compared with.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import google.auth.transport.requests
import requests  # type: ignore[import-untyped,unused-ignore]
from cryptography.hazmat.primitives.asymmetric import ec
from google.oauth2 import service_account

from bench import seed
from bench.harness import Context, Result, Sampler, load1, wait_quiet
from bench.sinks.fcm import SCOPE, FCMSink
from bench.sinks.nginx import NginxSink
from bench.sinks.webpush import WebPushSink

DEFAULT_N = 3000
TIME_LIMIT = 60.0
PAYLOAD = '{"title": "bench", "body": "baseline"}'
T = TypeVar("T")
# What firebase-admin's messaging client sends besides the body.
FCM_HEADERS = {"X-GOOG-API-FORMAT-VERSION": "2", "X-FIREBASE-CLIENT": "fire-admin-python/bench"}


def run(ctx: Context) -> list[Result]:
    # The bench's own dependencies (bench/requirements.txt) are imported where they are used:
    # the test suite imports the bench's judge without them installed.
    from py_vapid import Vapid

    n = min(ctx.size(DEFAULT_N), DEFAULT_N)
    vapid = Vapid(private_key=ec.generate_private_key(ec.SECP256R1()))
    results = []
    with _trusting(str(ctx.ca.ca)):
        for mode in ("per_call", "keep_alive"):
            webpush_sink = WebPushSink(ctx.workdir / "baseline" / mode, ctx.ca)
            try:
                webpush_sink.start()
                results.append(_pywebpush_loop(ctx, webpush_sink, vapid, mode, n))
            finally:
                webpush_sink.stop()
        fcm_sink = FCMSink(ctx.workdir / "baseline" / "fcm", ctx.ca)
        try:
            fcm_sink.start()
            results.append(_fcm_loop(ctx, fcm_sink, n))
        finally:
            fcm_sink.stop()
    return results


@contextmanager
def _trusting(ca: str) -> Iterator[None]:
    """Trust the bench CA in every `requests` call: pywebpush makes its own when given no
    session, and requests prefers REQUESTS_CA_BUNDLE from the environment over a session's
    `verify` (so a session's setting alone is not enough where the variable is set)."""
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous


@dataclass
class _Loop:
    """One timed loop: how many items were sent and failed, in how long, with how much CPU of
    the loop's own process (the figure that holds up on a busy machine)."""

    sent: int
    failed: int
    seconds: float
    cpu_seconds: float
    sampler: Sampler
    quiet: bool
    load: tuple[float, float]


def _timed(
    ctx: Context, sink: NginxSink, items: Sequence[T], send: Callable[[int, T], bool]
) -> _Loop:
    """Call `send(i, item)` for each item until done or TIME_LIMIT."""
    quiet = wait_quiet(ctx)
    load_start = load1()
    sent = failed = 0
    with Sampler({f"nginx{i}": p for i, p in enumerate(sink.worker_pids())}) as sampler:
        began, cpu = time.perf_counter(), time.process_time()
        for index, item in enumerate(items):
            failed += not send(index, item)
            sent += 1
            if time.perf_counter() - began > TIME_LIMIT:
                break
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return _Loop(sent, failed, elapsed, cpu, sampler, quiet, (load_start, load1()))


def _pywebpush_loop(ctx: Context, sink: WebPushSink, vapid: Any, mode: str, n: int) -> Result:
    from pywebpush import webpush

    addresses, paths = sink.addresses(uuid.uuid4().hex[:8], n)
    session = requests.Session() if mode == "keep_alive" else None
    if session is not None:
        session.verify = str(ctx.ca.ca)

    def send(_: int, address: seed.Address) -> bool:
        response = webpush(
            {"endpoint": address.token, "keys": {"p256dh": address.p256dh, "auth": address.auth}},
            data=PAYLOAD,
            vapid_private_key=vapid,
            vapid_claims={"sub": "mailto:bench@pushgate.example.com"},
            ttl=60,
            requests_session=session,
        )
        return bool(response.status_code == 201)

    loop = _timed(ctx, sink, addresses, send)
    if session is not None:
        session.close()
    sink.stop()
    return _row(sink, "pywebpush", mode, paths[: loop.sent], loop)


def _fcm_loop(ctx: Context, sink: FCMSink, n: int) -> Result:
    _, tokens = sink.addresses(uuid.uuid4().hex[:8], n)
    session = requests.Session()
    session.verify = str(ctx.ca.ca)
    # The access token, fetched once before the loop as such a script does at start-up.
    account = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        sink.service_account(), scopes=[SCOPE]
    )
    account.refresh(google.auth.transport.requests.Request(session))
    headers = FCM_HEADERS | {"Authorization": f"Bearer {account.token}"}

    def send(index: int, token: str) -> bool:
        message: dict[str, Any] = {
            "token": token,
            "notification": {"title": "bench", "body": "baseline"},
            "data": {"n": str(index)},
        }
        response = session.post(
            sink.send_url, json={"message": message}, headers=headers, timeout=10
        )
        return response.status_code == 200 and bool(response.json().get("name"))

    loop = _timed(ctx, sink, tokens, send)
    session.close()
    sink.stop()
    return _row(sink, "requests", "fcm_keep_alive", tokens[: loop.sent], loop)


def _row(sink: NginxSink, profile: str, mode: str, sent: list[str], loop: _Loop) -> Result:
    """The row of one loop: correct when every call succeeded and every item sent arrived at
    the sink once, nothing else did, and the sink found nothing wrong (FCM: the grant signed
    by the service account, its access token on every send)."""
    ok, verdict, duplicates = sink.arrivals().check(sent)
    return Result(
        scenario="baseline",
        profile=profile,
        params={"n": len(sent), "mode": mode},
        figures={
            "deliveries_per_s": len(sent) / loop.seconds,
            "loop_cpu_ms": 1000 * loop.cpu_seconds / max(1, len(sent)),
            "duplicates": float(duplicates),
        },
        headline="deliveries_per_s",
        unit="/s",
        target="-",
        met=None,
        correct=ok and loop.failed == 0,
        check=f"{verdict}; {loop.failed} failed call(s)",
        load=loop.load,
        quiet=loop.quiet,
        cpu_seconds=loop.sampler.cpu_seconds(),
    )
