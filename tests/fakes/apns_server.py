"""A fake APNs (HTTP/2 provider API, token auth) on 127.0.0.1 over TLS, for tests and benchmarks.

Written directly on the `h2` library and asyncio rather than hypercorn: an ASGI app cannot send a
GOAWAY in the middle of a batch, nor control stream limits, flow-control windows or PING answers,
and those are what the client must survive. It checks what APNs checks (the ES256 provider token
against the test key: `kid`, `iss`, `iat` at most an hour old; the `apns-*` headers; a hex device
token in the path; the payload size), records what arrived, answers scripted reasons, can send
GOAWAY after N streams, and counts TLS handshakes, JWTs and PINGs so tests can prove reuse.

In a test::

    async with FakeAPNs() as fake:
        fake.script("BadDeviceToken", token=token)  # the next request for token answers 400
        ...  # send with key fake.key_pem, ids fake.key_id / fake.team_id, topic fake.topic,
        ...  # trusting fake.ca_pem_path, to fake.url
        assert fake.received[0].payload["aps"]["alert"] == {...}

Standalone (benchmarks): ``python -m tests.fakes.apns_server --port 8443`` prints the URL, the CA
path and the key file to sign with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import jwt
import orjson
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hyperframe.frame import GoAwayFrame

TOKEN_MAX_AGE_SECONDS = 3600  # Apple refuses provider tokens older than one hour
MAX_PAYLOAD = 4096
MAX_VOIP_PAYLOAD = 5120
PUSH_TYPES = {
    "alert": "",
    "background": "",
    "voip": ".voip",
    "liveactivity": ".push-type.liveactivity",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "location": ".location-query",
    "pushtotalk": ".voip-ptt",
    "mdm": "",
}
# Apple's documented status for each reason (handling-notification-responses-from-apns).
REASON_STATUS = {
    "BadCollapseId": 400,
    "BadDeviceToken": 400,
    "BadExpirationDate": 400,
    "BadMessageId": 400,
    "BadPriority": 400,
    "BadTopic": 400,
    "DeviceTokenNotForTopic": 400,
    "DuplicateHeaders": 400,
    "IdleTimeout": 400,
    "InvalidPushType": 400,
    "MissingDeviceToken": 400,
    "MissingTopic": 400,
    "PayloadEmpty": 400,
    "TopicDisallowed": 400,
    "BadCertificate": 403,
    "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403,
    "Forbidden": 403,
    "InvalidProviderToken": 403,
    "MissingProviderToken": 403,
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}


@dataclass(frozen=True)
class Received:
    """One notification the fake accepted (answered 200)."""

    token: str
    headers: dict[str, str]
    payload: Any
    claims: dict[str, Any]
    connection: int  # index into FakeAPNs.connections
    stream_id: int


@dataclass
class Rule:
    reason: str | None  # None: answer normally, after `delay`
    status: int
    timestamp: int | None = None
    delay: float = 0.0
    remaining: int | None = 1  # None: always


@dataclass
class ConnectionStats:
    index: int
    streams: int = 0
    open_streams: int = 0
    max_open_streams: int = 0
    max_open_before_success: int = 0
    succeeded: bool = False
    goaway_sent: bool = False


@dataclass
class _Pending:
    headers: dict[str, str]
    body: list[bytes] = field(default_factory=list)


class FakeAPNs:
    """The fake APNs. Use as an async context manager, or `start()` / `stop()`.

    Args:
        host: address to listen on.
        port: 0 picks a free port.
        clock: wall-clock seconds, to judge a token's `iat` (tests share it with the client).
        max_concurrent_streams: the SETTINGS value sent to clients.
        initial_window_size: the stream flow-control window clients may fill before a
            WINDOW_UPDATE (small values make clients wait for window updates).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        max_concurrent_streams: int = 1000,
        initial_window_size: int = 65_535,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.clock = clock
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.team_id = "TEAM123456"
        self.key_id = "KEY1234567"
        self.topic = "com.example.shop"
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self.key_pem = self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self._public_keys: dict[str, ec.EllipticCurvePublicKey] = {
            self.key_id: self._private_key.public_key()
        }
        self.received: list[Received] = []
        self.answers: list[tuple[str, int, str]] = []  # (token, status, reason)
        self.jwts: set[str] = set()
        self.pings = 0
        self.tls_handshakes = 0
        self.connections: list[ConnectionStats] = []
        self._rules: dict[str | None, list[Rule]] = {}
        self._signatures: dict[str, dict[str, Any] | str] = {}
        self._goaway_countdown = 0
        self._protocols: list[_ServerProtocol] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-apns-")
        self.ca = trustme.CA()
        self.ca_pem_path = Path(self._tmp.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self._server: asyncio.Server | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.set_alpn_protocols(["h2"])
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerProtocol(self), self.host, self._requested_port, ssl=context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for protocol in self._protocols:
                protocol.abort()
            await self._server.wait_closed()
            self._server = None
        self._tmp.cleanup()

    async def __aenter__(self) -> FakeAPNs:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- scripting ---------------------------------------------------------------------------

    def script(
        self,
        reason: str | None,
        *,
        token: str | None = None,
        status: int | None = None,
        times: int | None = 1,
        timestamp: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests (None: all) for `token` (None: any) with `reason`.

        Args:
            reason: an APNs reason (its status comes from Apple's table), or None to answer
                normally after `delay`.
            status: overrides the status.
            timestamp: ms since the epoch, sent with 410 answers.
        """
        code = 200 if reason is None else status or REASON_STATUS[reason]
        rule = Rule(reason, code, timestamp, delay, times)
        self._rules.setdefault(token.lower() if token else None, []).append(rule)

    def goaway_after(self, streams: int) -> None:
        """When the `streams`-th request from now has arrived, send GOAWAY on its connection
        (before answering it), answer the streams up to that one, drop the others, close."""
        self._goaway_countdown = streams

    def freeze(self) -> None:
        """Stop reading on every open connection: PINGs go unanswered, as on a dead link."""
        for protocol in self._protocols:
            protocol.freeze()

    def add_key(self, key_id: str) -> str:
        """A second signing key the fake accepts; returns its PEM."""
        private_key = ec.generate_private_key(ec.SECP256R1())
        self._public_keys[key_id] = private_key.public_key()
        return private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def received_for(self, token: str) -> list[Received]:
        return [r for r in self.received if r.token == token.lower()]

    def _next_rule(self, token: str) -> Rule | None:
        for key in (token, None):
            rules = self._rules.get(key)
            if rules:
                rule = rules[0]
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        rules.pop(0)
                return rule
        return None

    # --- what APNs checks --------------------------------------------------------------------

    def _verify_token(self, authorization: str | None) -> dict[str, Any] | str:
        """The provider token's claims, or the 403 reason refusing it."""
        if not authorization:
            return "MissingProviderToken"
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "InvalidProviderToken"
        checked = self._signatures.get(token)
        if checked is None:
            # A signature check costs ~0.1 ms; the same token arrives thousands of times.
            checked = self._signatures[token] = self._verify_signature(token)
        if isinstance(checked, str):
            return checked
        age = self.clock() - checked["iat"]
        if age > TOKEN_MAX_AGE_SECONDS:
            return "ExpiredProviderToken"
        if age < -60:
            return "InvalidProviderToken"
        return checked

    def _verify_signature(self, token: str) -> dict[str, Any] | str:
        try:
            header = jwt.get_unverified_header(token)
            public_key = self._public_keys.get(str(header.get("kid")))
            if header.get("alg") != "ES256" or public_key is None:
                return "InvalidProviderToken"
            claims: dict[str, Any] = jwt.decode(
                token,
                public_key,
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": False},
            )
        except jwt.PyJWTError:
            return "InvalidProviderToken"
        if claims["iss"] != self.team_id or not isinstance(claims["iat"], int):
            return "InvalidProviderToken"
        return claims

    def _check(  # noqa: C901 (a checklist, in Apple's order)
        self, headers: dict[str, str], body: bytes
    ) -> str | tuple[str, Any]:
        """The refusing reason, or ("", payload)."""
        if headers.get(":method") != "POST":
            return "MethodNotAllowed"
        path = headers.get(":path", "")
        if not path.startswith("/3/device/"):
            return "BadPath"
        token = path.removeprefix("/3/device/")
        if not token:
            return "MissingDeviceToken"
        if not all(c in "0123456789abcdefABCDEF" for c in token):
            return "BadDeviceToken"
        topic = headers.get("apns-topic")
        if not topic:
            return "MissingTopic"
        push_type = headers.get("apns-push-type", "alert")
        if push_type not in PUSH_TYPES:
            return "InvalidPushType"
        if topic != self.topic + PUSH_TYPES[push_type]:
            return "TopicDisallowed" if not topic.startswith(self.topic) else "InvalidPushType"
        priority = headers.get("apns-priority", "10")
        if priority not in ("5", "10", "1") or (push_type == "background" and priority == "10"):
            return "BadPriority"
        if not headers.get("apns-expiration", "0").isdigit():
            return "BadExpirationDate"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return "BadCollapseId"
        if "apns-id" in headers:
            try:
                uuid.UUID(headers["apns-id"])
            except ValueError:
                return "BadMessageId"
        limit = MAX_VOIP_PAYLOAD if push_type == "voip" else MAX_PAYLOAD
        if len(body) > limit:
            return "PayloadTooLarge"
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "PayloadEmpty"
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return "PayloadEmpty"
        return "", payload

    def _answer(
        self, headers: dict[str, str], body: bytes, connection: int, stream_id: int
    ) -> tuple[int, str, int | None, float]:
        """(status, reason, timestamp, delay) for one request; records accepted ones."""
        token = headers.get(":path", "").removeprefix("/3/device/").lower()
        authorization = headers.get("authorization")
        if authorization:
            self.jwts.add(authorization.partition(" ")[2])
        rule = self._next_rule(token)
        delay = rule.delay if rule is not None else 0.0
        if rule is not None and rule.reason is not None:
            answer = (rule.status, rule.reason, rule.timestamp, delay)
        else:
            claims = self._verify_token(authorization)
            checked = self._check(headers, body) if not isinstance(claims, str) else claims
            if isinstance(checked, str):
                answer = (REASON_STATUS[checked], checked, None, delay)
            else:
                assert isinstance(claims, dict)
                self.received.append(
                    Received(token, headers, checked[1], claims, connection, stream_id)
                )
                answer = (200, "", None, delay)
        self.answers.append((token, answer[0], answer[1]))
        return answer


class _ServerProtocol(asyncio.Protocol):
    """One client connection to the fake."""

    def __init__(self, fake: FakeAPNs) -> None:
        self.fake = fake
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: fake.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: fake.initial_window_size,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.stats = ConnectionStats(len(fake.connections))
        self.pending: dict[int, _Pending] = {}
        self.last_stream_id: int | None = None
        self.unanswered: set[int] = set()
        self.protocol_error = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # asyncio calls this once the TLS handshake has completed.
        self.fake.tls_handshakes += 1
        self.fake.connections.append(self.stats)
        self.fake._protocols.append(self)
        self.transport = transport
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self.fake._protocols.remove(self)

    def freeze(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error = repr(exc)
            self.flush()
            self.abort()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._opened(event.stream_id, dict(event.headers or []))
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                pending = self.pending.get(event.stream_id)
                if pending is not None:
                    pending.body.append(event.data or b"")
            elif isinstance(event, h2.events.StreamEnded):
                self._request_complete(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self._closed_stream(event.stream_id)
            elif isinstance(event, h2.events.PingReceived):
                self.fake.pings += 1
        self.flush()

    def _opened(self, stream_id: int, headers: Any) -> None:
        if self.last_stream_id is not None and stream_id > self.last_stream_id:
            return  # after our GOAWAY: not processed, as promised
        self.pending[stream_id] = _Pending({str(k): str(v) for k, v in headers.items()})
        self.stats.streams += 1
        self.stats.open_streams += 1
        self.stats.max_open_streams = max(self.stats.max_open_streams, self.stats.open_streams)
        if not self.stats.succeeded:
            self.stats.max_open_before_success = max(
                self.stats.max_open_before_success, self.stats.open_streams
            )

    def _request_complete(self, stream_id: int) -> None:
        pending = self.pending.pop(stream_id, None)
        if pending is None:
            return
        if self.fake._goaway_countdown:
            self.fake._goaway_countdown -= 1
            if not self.fake._goaway_countdown:
                self._send_goaway(stream_id)
        status, reason, timestamp, delay = self.fake._answer(
            pending.headers, b"".join(pending.body), self.stats.index, stream_id
        )
        self.unanswered.add(stream_id)
        # Answered after the whole read is processed (call_later(0) is call_soon), as a server
        # working on streams concurrently would: streams that arrived together are open together.
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._respond, stream_id, pending, status, reason, timestamp)

    def _send_goaway(self, last_stream_id: int) -> None:
        # Written by hand: h2 would refuse to send the answers to streams at or below
        # last_stream_id after its own GOAWAY, and answering after it is what APNs may do.
        self.last_stream_id = last_stream_id
        self.stats.goaway_sent = True
        self.flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        if self.transport is not None:
            self.transport.write(frame.serialize())
        # Requests above last_stream_id already received are dropped unanswered.
        for stream_id in [s for s in self.pending if s > last_stream_id]:
            self.pending.pop(stream_id)
            self.stats.open_streams -= 1

    def _respond(
        self,
        stream_id: int,
        pending: _Pending,
        status: int,
        reason: str,
        timestamp: int | None,
    ) -> None:
        if stream_id not in self.unanswered:
            return  # the client reset it (its timeout) while we waited
        self.unanswered.discard(stream_id)
        self.stats.open_streams -= 1
        if self.transport is None or self.transport.is_closing():
            return
        if status == 200:
            self.stats.succeeded = True
        apns_id = pending.headers.get("apns-id") or str(uuid.uuid4()).upper()
        headers = [(":status", str(status)), ("apns-id", apns_id)]
        body = b""
        if reason:
            document: dict[str, Any] = {"reason": reason}
            if timestamp is not None:
                document["timestamp"] = timestamp
            body = orjson.dumps(document)
            headers.append(("content-type", "application/json"))
        try:
            self.h2.send_headers(stream_id, headers, end_stream=not body)
            if body:
                self.h2.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.H2Error:
            return  # the client reset the stream (its timeout)
        self.flush()
        if self.last_stream_id is not None and not self.unanswered:
            self.transport.close()

    def _closed_stream(self, stream_id: int) -> None:
        if self.pending.pop(stream_id, None) is not None or stream_id in self.unanswered:
            self.stats.open_streams -= 1
        self.unanswered.discard(stream_id)
        if self.last_stream_id is not None and not self.unanswered and self.transport:
            self.transport.close()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def _main(port: int, host: str) -> None:
    fake = FakeAPNs(host=host, port=port)
    async with fake:
        key_path = Path(fake._tmp.name) / "key.p8"
        key_path.write_text(fake.key_pem)
        print(
            f"fake APNs on {fake.url}; CA: {fake.ca_pem_path}; key: {key_path}"
            f" (key id {fake.key_id}, team {fake.team_id}, topic {fake.topic})",
            flush=True,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port, args.host))


if __name__ == "__main__":
    main()
