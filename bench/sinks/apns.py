"""nginx answering as APNs: HTTP/2 over TLS, `POST /3/device/<token>` gets `200` with an
`apns-id` header (the request id, shaped as a UUID) and no body, as Apple accepting a
notification.

APNs speaks only HTTP/2, so the log records each request's protocol and any request that came
over HTTP/1.1 is a failure. After the run the log also proves that every request carried the
run's `apns-topic` and a provider token (ES256 JWT) signed by the run's .p8 key with its key id
and team id. The device token is in the path, so no request body needs reading here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import ClassVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import seed
from bench.harness import ScenarioError
from bench.sinks.nginx import Arrivals, NginxSink
from bench.sinks.tls import TLSFiles

KEY_ID = "BENCHKEY01"
TEAM_ID = "BENCHTEAM1"
TOPIC = "com.example.pushgate.bench"
DEVICE_PATH = "/3/device/"

HTTP = """\
    map $request_id $apns_id {
        "~^(?<a>.{8})(?<b>.{4})(?<c>.{4})(?<d>.{4})(?<e>.{12})$" "$a-$b-$c-$d-$e";
    }"""
LOCATIONS = """\
        location /3/device/ {
            add_header apns-id $apns_id always;
            return 200 "";
        }"""


class APNsSink(NginxSink):
    platform: ClassVar[str] = "apns"
    FIELDS = (
        "msec",
        "status",
        "request_method",
        "uri",
        "connection",
        "server_protocol",
        "http_authorization",
        "http_apns_topic",
    )
    HTTP2 = True

    def __init__(self, directory: Path, tls: TLSFiles, *, workers: int = 1) -> None:
        super().__init__(directory, tls, workers=workers)
        self.key_path = directory / f"AuthKey_{KEY_ID}.p8"
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._tokens: Counter[str] = Counter()

    def http_block(self) -> str:
        return HTTP

    def locations(self) -> str:
        return LOCATIONS

    def prepare(self) -> None:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key_path.write_bytes(pem)

    def settings(self) -> dict[str, str]:
        return {
            "PUSHGATE_APNS__PRODUCTION_URL": self.origin,
            "PUSHGATE_APNS__SANDBOX_URL": self.origin,
            "PUSHGATE_APNS__CA_BUNDLE": str(self.tls.ca),
            "PUSHGATE_APNS__KEY_PATH": str(self.key_path),
            "PUSHGATE_APNS__KEY_ID": KEY_ID,
            "PUSHGATE_APNS__TEAM_ID": TEAM_ID,
            "PUSHGATE_APNS__TOPIC": TOPIC,
        }

    def addresses(self, tag: str, n: int) -> tuple[list[seed.Address], list[str]]:
        """N distinct device tokens of 64 lowercase hex characters (the key each arrives
        under, since pushgate sends the token lowercased in the path)."""
        tokens = [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]
        if len(set(tokens)) != n:
            raise ScenarioError("device tokens collided")
        return [seed.Address("apns", token) for token in tokens], tokens

    # --- reading the log -------------------------------------------------------------------------

    def arrivals(self) -> Arrivals:
        self._tokens = Counter()
        return super().arrivals()

    def record(self, found: Arrivals, line: dict[str, str]) -> None:
        found.seen(line)
        if line["request_method"] != "POST" or not line["uri"].startswith(DEVICE_PATH):
            found.problems["not an APNs send"] += 1
            return
        if line["server_protocol"] != "HTTP/2.0":
            found.problems[f"sends over {line['server_protocol']}"] += 1
        if line["http_apns_topic"] != TOPIC:
            found.problems["sends without the run's apns-topic"] += 1
        self._tokens[line["http_authorization"]] += 1
        if line["status"] == "200":
            found.add(line["uri"].removeprefix(DEVICE_PATH), float(line["msec"]))

    def finish(self, found: Arrivals) -> None:
        found.figures["provider_tokens"] = float(len(self._tokens))
        unsigned = sum(n for value, n in self._tokens.items() if not self._signed(value))
        if unsigned:
            found.problems["sends without a provider token signed by the run's key"] += unsigned

    def _signed(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["ES256"],
                options={"verify_iat": False, "require": ["iat", "iss"]},
            )
        except jwt.PyJWTError:
            return False
        return header.get("kid") == KEY_ID and claims.get("iss") == TEAM_ID
