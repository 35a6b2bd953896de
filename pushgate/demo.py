"""`pushgate demo`: a first notification with no cloud account.

Starts a throwaway pushgate (embedded backends in a temporary directory, API on a loopback
port, worker in the same process) and a local Web Push receiver standing in for a browser's
push service (HTTPS with its own certificate authority, RFC 8291 decryption). Then, through
the real HTTP API, it registers the receiver's subscription, sends a notification, waits for
it, and prints what the receiver decrypted and the status pushgate reports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from pushgate.domain.vapid import b64url_encode

SUBJECT = "mailto:demo@pushgate.example.com"


# --- the receiver: what a browser's push service and the browser do together -----------------


@dataclass
class Subscription:
    """A browser-side subscription: the private key stays here, the JSON goes to pushgate."""

    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    def public_json(self, origin: str) -> dict[str, Any]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{origin}/push/{self.id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 section 3.4 with RFC 8188's aes128gcm record, as a browser decrypts."""
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21 : 21 + id_length]
        ciphertext = body[21 + id_length :]
        if len(ciphertext) > record_size:
            raise ValueError("more than one record")
        receiver_point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        shared = self.private_key.exchange(
            ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        )
        ikm = _hkdf(self.auth, shared, b"WebPush: info\x00" + receiver_point + sender, 32)
        key = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(key).decrypt(nonce, ciphertext, None)
        text = padded.rstrip(b"\x00")
        if not text.endswith(b"\x02"):
            raise ValueError("not the last record")
        return text[:-1]


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _certificates(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A one-off CA and a certificate for 127.0.0.1 signed by it: the CA file is what pushgate
    is told to trust, exactly as for a private push service."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushgate demo CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "demo-ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "demo-receiver.pem"
    cert_path.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path)
    return ca_path, context


class Receiver:
    """The stand-in push service: answers 201 and hands each decrypted message to a queue."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.arrived: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.origin = ""
        self._runner: web.AppRunner | None = None

    def subscribe(self) -> Subscription:
        sub = Subscription(
            id=b64url_encode(os.urandom(9)),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
        )
        self.subscriptions[sub.id] = sub
        return sub

    async def start(self, context: ssl.SSLContext) -> None:
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock, ssl_context=context)
        await site.start()
        self.origin = f"https://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _push(self, request: web.Request) -> web.Response:
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return web.Response(status=410)
        plaintext = sub.decrypt(await request.read())
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("ttl", "urgency")}
        await self.arrived.put((headers, plaintext))
        return web.Response(
            status=201, headers={"Location": f"{self.origin}/m/{os.urandom(4).hex()}"}
        )


# --- the demo ----------------------------------------------------------------------------------


async def run(say: Callable[[str], None], *, patience: float = 30.0) -> dict[str, Any]:
    """Run the demo end to end; returns what arrived and the final status (for tests)."""
    from pushgate import bootstrap
    from pushgate.api.app import create_app
    from pushgate.runtime import running
    from pushgate.settings import load_settings
    from pushgate.store import migrate

    with tempfile.TemporaryDirectory(prefix="pushgate-demo-") as tmp:
        directory = Path(tmp)
        ca_path, server_context = _certificates(directory)
        receiver = Receiver()
        await receiver.start(server_context)
        settings = load_settings(
            data_dir=directory / "data",
            server={"host": "127.0.0.1", "port": _free_port()},
            webpush={
                "extra_hosts": ["127.0.0.1"],
                "allow_private_addresses": True,
                "ca_bundle": ca_path,
                "vapid_subject": SUBJECT,
            },
            log={"level": "WARNING"},
        )
        async with running(settings, start_broker=False) as runtime:
            await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
            created = await bootstrap.ensure_default_app(runtime)
        if created is None:  # pragma: no cover - a fresh directory has no app
            raise RuntimeError("the demo database was not empty")
        server = _uvicorn(create_app(settings, with_worker=True), settings)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:  # noqa: ASYNC110 (uvicorn exposes only this flag)
                await asyncio.sleep(0.02)
            base = f"http://{settings.server.host}:{settings.server.port}"
            say(f"pushgate is running at {base} (embedded backends in {directory})")
            say(f"a local Web Push receiver is listening at {receiver.origin}")
            return await _walkthrough(say, base, created.admin_key, receiver, patience)
        finally:
            server.should_exit = True
            await serving
            await receiver.stop()


async def _walkthrough(
    say: Callable[[str], None], base: str, key: str, receiver: Receiver, patience: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    subscription = receiver.subscribe().public_json(receiver.origin)
    async with aiohttp.ClientSession(base_url=base, headers=headers) as http:
        async with http.post(
            "/v1/devices",
            json={"platform": "webpush", "user_id": "demo-user", "subscription": subscription},
        ) as response:
            device = await _json(response, 201)
        say(f"registered a Web Push subscription as device {device['id']}")
        notification = {
            "user_ids": ["demo-user"],
            "title": "Hello from pushgate",
            "body": "Encrypted with RFC 8291, signed with VAPID, delivered over TLS.",
            "url": "https://pushgate.example.com/welcome",
            "data": {"demo": "true"},
        }
        async with http.post("/v1/notifications", json=notification) as response:
            accepted = await _json(response, 202)
        say(f"sent notification {accepted['id']} (status {accepted['status']})")
        headers_seen, plaintext = await asyncio.wait_for(receiver.arrived.get(), patience)
        say("the receiver decrypted:")
        say(orjson.dumps(orjson.loads(plaintext), option=orjson.OPT_INDENT_2).decode())
        status = await _final_status(http, accepted["id"], patience)
        say(f"pushgate reports: {status['status']}, counts {_nonzero(status['counts'])}")
    return {"payload": orjson.loads(plaintext), "headers": headers_seen, "status": status}


async def _final_status(
    http: aiohttp.ClientSession, notification_id: str, patience: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        async with http.get(f"/v1/notifications/{notification_id}") as response:
            status = await _json(response, 200)
        if status["status"] not in ("accepted", "scheduled", "dispatching"):
            return status
        if loop.time() > deadline:
            raise TimeoutError(f"notification still {status['status']} after {patience}s")
        await asyncio.sleep(0.05)


async def _json(response: aiohttp.ClientResponse, expected: int) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    if response.status != expected:
        raise RuntimeError(f"{response.method} {response.url.path}: {response.status} {body}")
    return body


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _uvicorn(app: Any, settings: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    return uvicorn.Server(config)
