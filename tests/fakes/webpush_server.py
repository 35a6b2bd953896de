"""A fake Web Push service (RFC 8030/8291/8292) on 127.0.0.1 over TLS, for tests and benchmarks.

It checks what a real push service checks (the VAPID JWT against `k`, `aud` = its own origin, `exp`
in the future and at most 24 h ahead, `sub`; `TTL`; `Content-Encoding: aes128gcm`), decrypts each
message with the subscription's private key, records what arrived, and can be scripted to fail.
It speaks HTTP/2 and HTTP/1.1 (ALPN) through hypercorn, with certificates from trustme, and counts
TLS handshakes so tests can prove connection reuse.

In a test::

    async with FakeWebPushService() as fake:
        subscription = fake.new_subscription()  # a browser's PushSubscription.toJSON()
        fake.script(410, subscription=subscription)  # the next request answers 410
        ...  # send with a client trusting fake.ca_pem_path
        assert fake.received[0].payload == {...}

Standalone (benchmarks): ``python -m tests.fakes.webpush_server --port 8443`` prints the origin
and the CA path; ``POST /_fake/subscriptions`` creates a subscription, ``GET /_fake/stats`` counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.ece import DecryptionError, Receiver, b64u, unb64u
from tests.fakes.hosting import TLSServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 4096  # RFC 8030 section 7.2: push services must accept at least this much
MAX_EXP_AHEAD_SECONDS = 24 * 3600  # RFC 8292 section 2


@dataclass(frozen=True)
class Received:
    """One message the fake accepted (answered 201)."""

    subscription_id: str
    plaintext: bytes
    headers: dict[str, str]  # names lowercased
    claims: dict[str, Any]
    http_version: str
    client: tuple[str, int]
    received_at: float

    @property
    def payload(self) -> Any:
        """The plaintext as JSON (what a service worker's `event.data.json()` returns)."""
        return orjson.loads(self.plaintext)


@dataclass
class Rule:
    """A scripted answer. `status` None answers normally (after `delay`)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    remaining: int | None = 1  # None: always


class FakeWebPushService(TLSServer):
    """The fake push service. Use as an async context manager, or `start()` / `stop()`.

    Args:
        host: address to listen on.
        port: 0 picks a free port.
        decrypt: False skips decryption (benchmarks: the fake should not be the bottleneck);
            `Received.plaintext` is then the encrypted body.
        keep_alive_timeout: seconds an idle connection stays open.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        decrypt: bool = True,
        keep_alive_timeout: float = 75.0,
    ) -> None:
        super().__init__(
            host=host, port=port, keep_alive_timeout=keep_alive_timeout, name="fake-webpush"
        )
        self.decrypt = decrypt
        self.received: list[Received] = []
        self.requests = 0
        self.status_counts: Counter[int] = Counter()
        self.http_versions: Counter[str] = Counter()
        self._clients: set[tuple[str, int]] = set()
        self._subscriptions: dict[str, Receiver] = {}
        self._rules: dict[str | None, list[Rule]] = {}
        self._verified: dict[str, dict[str, Any]] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def origins(self) -> list[str]:
        """Every origin a client may use to reach the fake (the JWT `aud` must be one)."""
        return [self.origin, f"https://localhost:{self.port}"]

    @property
    def connections(self) -> int:
        """Distinct client connections that sent at least one request."""
        return len(self._clients)

    # --- subscriptions and scripting ---------------------------------------------------------

    def new_subscription(self) -> dict[str, Any]:
        """A browser-side PushSubscription (`toJSON()` shape); the fake keeps its private key."""
        subscription_id = uuid.uuid4().hex
        receiver = Receiver.generate()
        self._subscriptions[subscription_id] = receiver
        return {
            "endpoint": f"{self.origin}/push/{subscription_id}",
            "expirationTime": None,
            "keys": {"p256dh": b64u(receiver.public_key), "auth": b64u(receiver.auth_secret)},
        }

    def script(
        self,
        status: int | None,
        *,
        subscription: dict[str, Any] | str | None = None,
        times: int | None = 1,
        retry_after: str | int | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next `times` requests (None: all) with `status`, after `delay` seconds.

        Args:
            status: the HTTP status, or None to answer normally (only slower).
            subscription: one subscription (its JSON, endpoint or id); None: any request.
            retry_after: sent as the `Retry-After` header (seconds or an HTTP date).
        """
        rule_headers = dict(headers or {})
        if retry_after is not None:
            rule_headers["Retry-After"] = str(retry_after)
        rule = Rule(status, rule_headers, body, delay, times)
        self._rules.setdefault(self._subscription_key(subscription), []).append(rule)

    def clear_script(self) -> None:
        self._rules.clear()

    def received_for(self, subscription: dict[str, Any] | str) -> list[Received]:
        key = self._subscription_key(subscription)
        return [r for r in self.received if r.subscription_id == key]

    @staticmethod
    def _subscription_key(subscription: dict[str, Any] | str | None) -> str | None:
        if subscription is None:
            return None
        endpoint = subscription["endpoint"] if isinstance(subscription, dict) else subscription
        return str(endpoint).rstrip("/").rsplit("/", 1)[-1]

    def _next_rule(self, subscription_id: str) -> Rule | None:
        for key in (subscription_id, None):
            rules = self._rules.get(key)
            if rules:
                rule = rules[0]
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.pop(0)
                return rule
        return None

    # --- the ASGI app ------------------------------------------------------------------------

    async def _http(self, scope: Scope, body: bytes, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if method == "POST" and path.startswith("/push/"):
            status, headers, content = await self._push(scope, path.removeprefix("/push/"), body)
        elif method == "POST" and path == "/_fake/subscriptions":
            status, headers, content = 201, {}, orjson.dumps(self.new_subscription())
        elif method == "GET" and path == "/_fake/stats":
            status, headers, content = 200, {}, orjson.dumps(self.stats())
        else:
            status, headers, content = 404, {}, b'{"reason": "no such resource"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": content})

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "received": len(self.received),
            "statuses": {str(k): v for k, v in self.status_counts.items()},
            "tls_handshakes": self.tls_handshakes,
            "connections": self.connections,
            "http_versions": dict(self.http_versions),
        }

    async def _push(
        self, scope: Scope, subscription_id: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests += 1
        client = tuple(scope.get("client") or ("", 0))
        self._clients.add((str(client[0]), int(client[1])))
        self.http_versions[scope["http_version"]] += 1
        rule = self._next_rule(subscription_id)
        if rule is not None and rule.delay:
            # Interrupted by stop(), so a slow answer never holds up the test's teardown.
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), rule.delay)
        if rule is not None and rule.status is not None:
            answer = (rule.status, rule.headers, rule.body)
        else:
            answer = self._accept(scope, subscription_id, body)
        self.status_counts[answer[0]] += 1
        return answer

    def _accept(
        self, scope: Scope, subscription_id: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        receiver = self._subscriptions.get(subscription_id)
        if receiver is None:
            return _error(404, "no such subscription")
        claims = self._verify_vapid(headers.get("authorization", ""))
        if isinstance(claims, str):
            return _error(401, claims)
        ttl = headers.get("ttl", "")
        if not ttl.isdigit():
            return _error(400, "TTL header missing or not a non-negative integer")
        if headers.get("content-encoding") != "aes128gcm":
            return _error(415, "Content-Encoding must be aes128gcm")
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "payload too large")
        plaintext = body
        if self.decrypt:
            try:
                plaintext = receiver.decrypt(body)
            except DecryptionError as exc:
                return _error(400, f"cannot decrypt: {exc}")
        client = scope.get("client") or ("", 0)
        self.received.append(
            Received(
                subscription_id=subscription_id,
                plaintext=plaintext,
                headers=headers,
                claims=claims,
                http_version=scope["http_version"],
                client=(str(client[0]), int(client[1])),
                received_at=time.time(),
            )
        )
        message_id = uuid.uuid4().hex
        return 201, {"Location": f"{self.origin}/message/{message_id}", "TTL": ttl}, b""

    def _verify_vapid(self, authorization: str) -> dict[str, Any] | str:
        """The JWT's claims, or why they are refused (RFC 8292 sections 2 and 3)."""
        cached = self._verified.get(authorization)
        if cached is not None and cached["exp"] > time.time():
            return cached
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return "Authorization must use the vapid scheme"
        values = dict(p.strip().partition("=")[::2] for p in params.split(","))
        token, key = values.get("t"), values.get("k")
        if not token or not key:
            return "vapid needs t= and k="
        try:
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
            claims: dict[str, Any] = jwt.decode(
                token,
                public_key,
                algorithms=["ES256"],
                audience=self.origins,
                options={"require": ["aud", "exp", "sub"]},
            )
        except (ValueError, jwt.PyJWTError) as exc:
            return f"bad VAPID JWT: {exc}"
        if claims["exp"] > time.time() + MAX_EXP_AHEAD_SECONDS:
            return "exp is more than 24 hours ahead"
        if not str(claims["sub"]).startswith(("mailto:", "https:")):
            return "sub must be a mailto: or https: URL"
        self._verified[authorization] = claims
        return claims


def _error(status: int, reason: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, orjson.dumps({"reason": reason})


async def _main(port: int, host: str, decrypt: bool) -> None:
    fake = FakeWebPushService(host=host, port=port, decrypt=decrypt)
    async with fake:
        print(f"fake Web Push service on {fake.origin}; CA: {fake.ca_pem_path}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--no-decrypt", action="store_true", help="skip decryption (benchmarks)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port, args.host, not args.no_decrypt))


if __name__ == "__main__":
    main()
