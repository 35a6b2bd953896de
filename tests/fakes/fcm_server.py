"""A fake FCM HTTP v1 service and its OAuth2 token endpoint, on 127.0.0.1 over TLS, for tests
and benchmarks.

It checks what Google checks: the JWT-bearer grant at `POST /token` (RS256 signature by a
service account the fake issued, `iss`, `aud`, `scope`, `iat`/`exp`), the bearer token on
`POST /v1/projects/{project}/messages:send` (issued by it, unexpired, for that project), and the
message (exactly one of token/topic/condition, string-only data, known fields, a plausible
token); it records what it accepted and can be scripted to answer any FCM error in the real
format (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode). It speaks HTTP/2 and
HTTP/1.1 (ALPN) through hypercorn, with certificates from trustme, and counts TLS handshakes and
token requests.

In a test::

    async with FakeFCMService() as fake:
        account = fake.service_account()  # the JSON; token_uri points at the fake
        token = fake.new_token()  # a registration token the fake accepts
        fake.script("UNREGISTERED", token=token)  # the next send to it answers 404 UNREGISTERED
        ...  # send with base_url=fake.origin and a client trusting fake.ca_pem_path
        assert fake.received[0].message["notification"] == {...}

Standalone (benchmarks): ``python -m tests.fakes.fcm_server --port 8444`` prints the origin, the
CA path and the path of a service-account file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.hosting import Scope, Send, TLSServer

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600  # Google refuses grant assertions valid for more than an hour
MAX_MESSAGE_BYTES = 4096
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"

_SEND_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_MESSAGE_FIELDS = {
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "fid",
    "topic",
    "condition",
}
_SECTION_FIELDS = {
    "notification": {"title", "body", "image"},
    "android": {
        "collapse_key",
        "priority",
        "ttl",
        "restricted_package_name",
        "data",
        "notification",
        "fcm_options",
        "direct_boot_ok",
        "bandwidth_constrained_ok",
        "restricted_satellite_ok",
    },
    "apns": {"headers", "payload", "fcm_options", "live_activity_token"},
    "webpush": {"headers", "data", "notification", "fcm_options"},
    "fcm_options": {"analytics_label"},
}

# name: (HTTP status, google.rpc status, FcmError errorCode or None, message)
ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "INVALID_TOKEN": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "INVALID_PAYLOAD": (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
    ),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
    ),
    # QUOTA_EXCEEDED saying which quota, in a google.rpc.QuotaFailure detail (QUOTA_VIOLATIONS).
    "QUOTA_EXCEEDED_DEVICE": (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Device message rate exceeded.",
    ),
    "QUOTA_EXCEEDED_PROJECT": (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "THIRD_PARTY_AUTH_ERROR": (
        401,
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
        "Auth error from APNS or Web Push Service",
    ),
    # Google's front end, not FCM: no FcmError detail.
    "EXPIRED_TOKEN": (
        401,
        "UNAUTHENTICATED",
        None,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login"
        " cookie or other valid authentication credential.",
    ),
    "PERMISSION_DENIED": (
        403,
        "PERMISSION_DENIED",
        None,
        "Permission 'cloudmessaging.messages.create' denied on resource (or it may not exist).",
    ),
}
# What fcm.googleapis.com answers on a path it does not know, such as the shut-down legacy
# `/fcm/send`.
LEGACY_404 = (
    b"<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error 404 (Not Found)!!1</title>"
    b"<p><b>404.</b> <ins>That\xe2\x80\x99s an error.</ins><p>The requested URL"
    b" <code>/fcm/send</code> was not found on this server."
)

Answer = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Received:
    """One message the fake accepted (answered 200)."""

    project_id: str
    message: dict[str, Any]
    validate_only: bool
    name: str
    headers: dict[str, str]  # names lowercased
    http_version: str
    client: tuple[str, int]
    received_at: float


@dataclass
class Rule:
    """A scripted answer: a canned error name (`ERRORS`, or `LEGACY_404`), or a raw answer
    when `status` is set; neither answers normally (after `delay`)."""

    error: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    remaining: int | None = 1  # None: always


# RSA keys made so far in this process, reused by later fakes: making a 2048-bit key takes
# 0.1 to 1 s of CPU, and tests ask for a few hundred service accounts a run. Within one fake
# every account still has a key of its own (the n-th account the n-th key), so a test never
# meets two accounts sharing a key; accounts of earlier tests lived in other fakes.
_RSA_KEYS: list[rsa.RSAPrivateKey] = []


def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    while len(_RSA_KEYS) <= index:
        _RSA_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA_KEYS[index]


@dataclass
class _Account:
    client_email: str
    project_id: str
    key_id: str
    public_key: rsa.RSAPublicKey
    disabled: bool = False


class FakeFCMService(TLSServer):
    """The fake FCM service. Use as an async context manager, or `start()` / `stop()`.

    Args:
        host: address to listen on.
        port: 0 picks a free port.
        token_lifetime: the `expires_in` of issued access tokens (Google's is 3599).
        keep_alive_timeout: seconds an idle connection stays open.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = 3599,
        keep_alive_timeout: float = 75.0,
    ) -> None:
        super().__init__(
            host=host, port=port, keep_alive_timeout=keep_alive_timeout, name="fake-fcm"
        )
        self.token_lifetime = token_lifetime
        self.received: list[Received] = []
        self.requests = 0
        self.token_requests = 0
        self.status_counts: Counter[int] = Counter()
        self.http_versions: Counter[str] = Counter()
        self.bearer_tokens_seen: list[str] = []
        self._clients: set[tuple[str, int]] = set()
        self._accounts: dict[str, _Account] = {}
        self._access_tokens: dict[str, tuple[str, float]] = {}  # token: (email, expires_at)
        self._unregistered: set[str] = set()
        self._rules: dict[str | None, list[Rule]] = {}
        self._token_rules: list[Rule] = []

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    @property
    def connections(self) -> int:
        """Distinct client connections that sent at least one message."""
        return len(self._clients)

    # --- accounts, tokens and scripting ------------------------------------------------------

    def service_account(self, project_id: str = "pushgate-test") -> dict[str, Any]:
        """A new service account of `project_id`, as the Firebase console's JSON download;
        `token_uri` points at the fake. The fake keeps the public key."""
        key = _rsa_key(len(self._accounts))
        key_id = secrets.token_hex(20)
        email = f"firebase-adminsdk-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
        self._accounts[email] = _Account(email, project_id, key_id, key.public_key())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**21)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/x",
            "universe_domain": "googleapis.com",
        }

    def disable_account(self, account: Mapping[str, Any] | str) -> None:
        """The account's grants are refused from now on (a deleted key or account)."""
        email = account if isinstance(account, str) else account["client_email"]
        self._accounts[email].disabled = True

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401)."""
        self._access_tokens.clear()

    @staticmethod
    def new_token() -> str:
        """A registration token in the shape FCM issues (`<instance id>:APA91b<...>`)."""
        return f"{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(105)}"

    def unregister(self, token: str) -> None:
        """Every later send to `token` answers UNREGISTERED (the app was uninstalled)."""
        self._unregistered.add(token)

    def script(
        self,
        error: str | None = None,
        *,
        token: str | None = None,
        times: int | None = 1,
        retry_after: str | int | None = None,
        delay: float = 0.0,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next `times` sends (None: all) with a canned error after `delay` seconds.

        Args:
            error: a name in `ERRORS` or `"LEGACY_404"`; None with no `status` answers
                normally (only later).
            token: only sends to this registration token; None: any send.
            retry_after: sent as the `Retry-After` header (seconds or an HTTP date).
            status, headers, body: a raw answer instead of a canned one.
        """
        if error is not None and error not in ERRORS and error != "LEGACY_404":
            raise ValueError(f"unknown error {error!r}")
        rule_headers = dict(headers or {})
        if retry_after is not None:
            rule_headers["Retry-After"] = str(retry_after)
        rule = Rule(error, status, rule_headers, body, delay, times)
        self._rules.setdefault(token, []).append(rule)

    def script_token_endpoint(
        self, status: int, body: dict[str, Any], *, times: int | None = 1
    ) -> None:
        """Answer the next `times` token requests with `status` and the JSON `body`."""
        self._token_rules.append(Rule(None, status, {}, orjson.dumps(body), 0.0, times))

    def received_for(self, token: str) -> list[Received]:
        return [r for r in self.received if r.message.get("token") == token]

    def _next_rule(self, rules_by_key: list[str | None]) -> Rule | None:
        for key in rules_by_key:
            rules = self._rules.get(key)
            if rules:
                return _take(rules)
        return None

    # --- the ASGI app ------------------------------------------------------------------------

    async def _http(self, scope: Scope, body: bytes, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        match = _SEND_PATH.match(path)
        if method == "POST" and path == "/token":
            status, headers, content = self._token(body)
        elif method == "POST" and match:
            status, headers, content = await self._send(scope, match["project"], body)
        elif method == "GET" and path == "/_fake/stats":
            status, headers, content = 200, _JSON, orjson.dumps(self.stats())
        else:
            status, headers, content = 404, {"Content-Type": "text/html"}, LEGACY_404
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
            "token_requests": self.token_requests,
            "statuses": {str(k): v for k, v in self.status_counts.items()},
            "tls_handshakes": self.tls_handshakes,
            "connections": self.connections,
            "http_versions": dict(self.http_versions),
        }

    # --- POST /token -------------------------------------------------------------------------

    def _token(self, body: bytes) -> Answer:
        """RFC 7523 JWT-bearer grant, as Google's token endpoint checks it."""
        self.token_requests += 1
        if self._token_rules:
            rule = _take(self._token_rules)
            return rule.status or 500, _JSON, rule.body
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "Invalid JWT")
        account = self._accounts.get(str(unverified.get("iss")))
        if account is None or account.disabled:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        if header.get("kid") not in (None, account.key_id):
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                # google-auth always signs Google's endpoint as `aud`, whatever token_uri says.
                audience=[GOOGLE_TOKEN_URI, self.token_uri],
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME:
            return _oauth_error("invalid_grant", "Invalid JWT: expiration too far in the future")
        if SCOPE not in str(claims["scope"]).split():
            return _oauth_error("invalid_scope", "the firebase.messaging scope is missing")
        access_token = f"ya29.fake-{secrets.token_urlsafe(32)}"
        self._access_tokens[access_token] = (
            account.client_email,
            time.time() + self.token_lifetime,
        )
        document = {
            "access_token": access_token,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
        }
        return 200, _JSON, orjson.dumps(document)

    # --- POST /v1/projects/{project}/messages:send ---------------------------------------------

    async def _send(self, scope: Scope, project: str, body: bytes) -> Answer:
        self.requests += 1
        client = tuple(scope.get("client") or ("", 0))
        self._clients.add((str(client[0]), int(client[1])))
        self.http_versions[scope["http_version"]] += 1
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        answer = await self._answer(scope, project, body, headers)
        self.status_counts[answer[0]] += 1
        return answer

    async def _answer(
        self, scope: Scope, project: str, body: bytes, headers: dict[str, str]
    ) -> Answer:
        refused = self._check_bearer(headers.get("authorization", ""), project)
        if refused is not None:
            return _fcm_error(refused)
        document = _json_object(body)
        message = document.get("message") if document else None
        token = message.get("token") if isinstance(message, dict) else None
        rule = self._next_rule([token if isinstance(token, str) else None, None])
        if rule is not None and rule.delay:
            # Interrupted by stop(), so a slow answer never holds up the test's teardown.
            assert self._stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), rule.delay)
        if rule is not None and rule.status is not None:
            return rule.status, rule.headers, rule.body
        if rule is not None and rule.error == "LEGACY_404":
            return 404, {"Content-Type": "text/html; charset=UTF-8"}, LEGACY_404
        if rule is not None and rule.error is not None:
            status, answer_headers, content = _fcm_error(rule.error)
            return status, answer_headers | rule.headers, content
        return self._accept(scope, project, document, body, headers)

    def _check_bearer(self, authorization: str, project: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "EXPIRED_TOKEN"
        self.bearer_tokens_seen.append(token)
        issued = self._access_tokens.get(token)
        if issued is None or issued[1] <= time.time():
            return "EXPIRED_TOKEN"
        account = self._accounts[issued[0]]
        if account.project_id != project:
            return "PERMISSION_DENIED"
        return None

    def _accept(
        self,
        scope: Scope,
        project: str,
        document: dict[str, Any] | None,
        body: bytes,
        headers: dict[str, str],
    ) -> Answer:
        if document is None:
            return _invalid("Invalid JSON payload received.", "")
        problem = _check_body(document)
        if problem is not None:
            return _invalid(*problem)
        message: dict[str, Any] = document["message"]
        token = message.get("token")
        if token is not None:
            if not _TOKEN_SHAPE.match(token):
                return _fcm_error("INVALID_TOKEN")
            if token in self._unregistered:
                return _fcm_error("UNREGISTERED")
        if len(orjson.dumps(message)) > MAX_MESSAGE_BYTES:
            return _fcm_error("INVALID_PAYLOAD")
        validate_only = bool(document.get("validate_only", False))
        # Dry runs answer a fixed placeholder id, as FCM does.
        message_id = "fake_message_id" if validate_only else uuid.uuid4().hex
        name = f"projects/{project}/messages/{message_id}"
        client = scope.get("client") or ("", 0)
        self.received.append(
            Received(
                project_id=project,
                message=message,
                validate_only=validate_only,
                name=name,
                headers=headers,
                http_version=scope["http_version"],
                client=(str(client[0]), int(client[1])),
                received_at=time.time(),
            )
        )
        return 200, _JSON, orjson.dumps({"name": name})


_JSON = {"Content-Type": "application/json; charset=UTF-8"}


def _take(rules: list[Rule]) -> Rule:
    rule = rules[0]
    if rule.remaining is not None:
        rule.remaining -= 1
        if rule.remaining <= 0:
            rules.pop(0)
    return rule


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def _check_body(document: dict[str, Any]) -> tuple[str, str] | None:
    """What the v1 API refuses before looking at the token: (description, field) or None."""
    unknown = set(document) - {"message", "validate_only"}
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{min(unknown)}"', min(unknown)
    if not isinstance(document.get("validate_only", False), bool):
        return "validate_only must be a boolean", "validate_only"
    message = document.get("message")
    if not isinstance(message, dict):
        return "message is required", "message"
    unknown = set(message) - _MESSAGE_FIELDS
    if unknown:
        name = min(unknown)
        return f"Invalid JSON payload received. Unknown name \"{name}\" at 'message'", name
    targets = [t for t in ("token", "fid", "topic", "condition") if t in message]
    if len(targets) != 1:
        return "Exactly one of token, fid, topic or condition must be set", "message"
    if not isinstance(message[targets[0]], str) or not message[targets[0]]:
        return f"{targets[0]} must be a non-empty string", f"message.{targets[0]}"
    for section, allowed in _SECTION_FIELDS.items():
        value = message.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            return f"{section} must be an object", f"message.{section}"
        unknown = set(value) - allowed
        if unknown:
            name = min(unknown)
            return f"Unknown name \"{name}\" at 'message.{section}'", f"message.{section}.{name}"
    return _check_values(message)


def _check_values(message: dict[str, Any]) -> tuple[str, str] | None:
    string_maps = [
        ("message.data", message.get("data")),
        ("message.android.data", message.get("android", {}).get("data")),
        ("message.apns.headers", message.get("apns", {}).get("headers")),
        ("message.webpush.headers", message.get("webpush", {}).get("headers")),
        ("message.webpush.data", message.get("webpush", {}).get("data")),
    ]
    for where, value in string_maps:
        if value is None:
            continue
        if not isinstance(value, dict):
            return f"{where} must be a map of strings", where
        for key, item in value.items():
            if not isinstance(item, str):
                return f"Invalid value at '{where}[{key}]' (TYPE_STRING)", f"{where}[{key}]"
    android = message.get("android", {})
    ttl = android.get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and _TTL.match(ttl)):
        return "Invalid value at 'message.android.ttl' (google.protobuf.Duration)", "ttl"
    if android.get("priority") not in (None, "normal", "high", "NORMAL", "HIGH"):
        return "Invalid value at 'message.android.priority'", "message.android.priority"
    link = message.get("webpush", {}).get("fcm_options", {}).get("link")
    if link is not None and not str(link).startswith("https://"):
        return "The link must be an HTTPS URL", "message.webpush.fcm_options.link"
    return None


QUOTA_VIOLATIONS = {
    "QUOTA_EXCEEDED_DEVICE": {
        "subject": "device",
        "description": "Message rate exceeded for a single device.",
    },
    "QUOTA_EXCEEDED_PROJECT": {
        "subject": "project",
        "description": "Message rate exceeded for the project.",
    },
}


def _fcm_error(name: str) -> Answer:
    status, rpc_status, code, text = ERRORS[name]
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    if name == "INVALID_TOKEN":
        violation = {"field": "message.token", "description": "Invalid registration token"}
        details.append({"@type": BAD_REQUEST, "fieldViolations": [violation]})
    if name in QUOTA_VIOLATIONS:
        details.append({"@type": QUOTA_FAILURE, "violations": [QUOTA_VIOLATIONS[name]]})
    error: dict[str, Any] = {"code": status, "message": text, "status": rpc_status}
    if details:
        error["details"] = details
    headers = dict(_JSON)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return status, headers, orjson.dumps({"error": error})


def _invalid(description: str, where: str) -> Answer:
    """An INVALID_ARGUMENT from the API's request parsing: a BadRequest detail, no FcmError."""
    error = {
        "code": 400,
        "message": description,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [{"field": where, "description": description}],
            }
        ],
    }
    return 400, dict(_JSON), orjson.dumps({"error": error})


def _oauth_error(error: str, description: str) -> Answer:
    return 400, dict(_JSON), orjson.dumps({"error": error, "error_description": description})


async def _main(port: int, host: str) -> None:
    async with FakeFCMService(host=host, port=port) as fake:
        account_path = Path(fake._tmp.name) / "service-account.json"
        account_path.write_text(json.dumps(fake.service_account()))
        print(
            f"fake FCM on {fake.origin}; CA: {fake.ca_pem_path}; service account: {account_path}",
            flush=True,
        )
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8444)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.port, args.host))


if __name__ == "__main__":
    main()
