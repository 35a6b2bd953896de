"""nginx answering as FCM HTTP v1 and as Google's OAuth2 token endpoint.

- `POST /v1/projects/<project>/messages:send` answers `200 {"name":
  "projects/<project>/messages/<id>"}` (application/json), as FCM accepting a message.
- `POST /token` answers `{"access_token": "bench-<id>", "expires_in": 3600, "token_type":
  "Bearer"}`, so google-auth gets an access token for the service account made per run (a real
  RSA key; its JSON names this endpoint as `token_uri`).

nginx cannot parse JSON, so the registration token a message went to is read back from the
logged request body (the echo module reads the body, which `return` alone would discard;
`client_body_in_single_buffer` keeps it in one piece), and parsed in Python. After the run the
log also proves that every OAuth grant was a JWT signed by the service account's key for the
FCM scope, and that every send carried an access token this endpoint issued.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import seed
from bench.sinks.nginx import Arrivals, NginxSink
from bench.sinks.tls import TLSFiles

PROJECT_ID = "pushgate-bench"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The grant's audience is Google's token endpoint whatever `token_uri` says: google-auth writes
# it so, and it is what Google checks.
GRANT_AUDIENCE = "https://oauth2.googleapis.com/token"
MESSAGE_PATH = re.compile(r"/v1/projects/(?P<project>[^/]+)/messages:send")
# Not a secret: the prefix of the access tokens this fake endpoint makes up.
ACCESS_TOKEN_PREFIX = "bench-"  # noqa: S105

HTTP = "    client_body_in_single_buffer on;"
LOCATIONS = """\
        location ~ ^/v1/projects/(?<project>[^/]+)/messages:send$ {
            echo_read_request_body;
            echo_exec @sent;
        }
        location @sent {
            default_type application/json;
            return 200 '{"name": "projects/$project/messages/$request_id"}';
        }
        location = /token {
            echo_read_request_body;
            echo_exec @token;
        }
        location @token {
            default_type application/json;
            return 200 '{"access_token": "bench-$request_id", "expires_in": 3600, \
"token_type": "Bearer"}';
        }"""


def _body(logged: str) -> str:
    """The request body from its `escape=json` log field (a JSON string without quotes)."""
    return str(json.loads(f'"{logged}"'))


class FCMSink(NginxSink):
    platform: ClassVar[str] = "fcm"
    FIELDS = (
        "msec",
        "status",
        "request_method",
        "uri",
        "connection",
        "request_id",
        "http_authorization",
        "request_body",
    )
    ESCAPE = "json"
    NEEDS = ("ngx_http_echo_module.so",)

    def __init__(self, directory: Path, tls: TLSFiles, *, workers: int = 1) -> None:
        super().__init__(directory, tls, workers=workers)
        self.project_id = PROJECT_ID
        self.client_email = f"bench@{PROJECT_ID}.iam.gserviceaccount.com"
        self.key_id = secrets.token_hex(20)
        self.account_path = directory / "service-account.json"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._issued: set[str] = set()
        self._bearers: Counter[str] = Counter()

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    @property
    def send_url(self) -> str:
        return f"{self.origin}/v1/projects/{self.project_id}/messages:send"

    def service_account(self) -> dict[str, str]:
        """The service-account JSON the Firebase console would download, pointing here."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1",
            "token_uri": self.token_uri,
        }

    def http_block(self) -> str:
        return HTTP

    def locations(self) -> str:
        return LOCATIONS

    def prepare(self) -> None:
        self.account_path.write_text(json.dumps(self.service_account(), indent=2))

    def settings(self) -> dict[str, str]:
        return {
            "PUSHGATE_FCM__BASE_URL": self.origin,
            "PUSHGATE_FCM__CA_BUNDLE": str(self.tls.ca),
            "PUSHGATE_FCM__TOKEN_URIS": self.token_uri,
            "PUSHGATE_FCM__SERVICE_ACCOUNT_PATH": str(self.account_path),
            "PUSHGATE_FCM__PROJECT_ID": self.project_id,
        }

    def addresses(self, tag: str, n: int) -> tuple[list[seed.Address], list[str]]:
        """N distinct registration tokens shaped like FCM's (~160 characters); each is also
        the key its delivery arrives under."""
        tokens = [f"{tag}{i:07d}:APA91b{secrets.token_urlsafe(105)}" for i in range(n)]
        return [seed.Address("fcm", token) for token in tokens], tokens

    # --- reading the log -------------------------------------------------------------------------

    def arrivals(self) -> Arrivals:
        self._issued = set()
        self._bearers = Counter()
        return super().arrivals()

    def record(self, found: Arrivals, line: dict[str, str]) -> None:
        at = float(line["msec"])
        if line["uri"] == "/token":
            self._grant(found, line, at)
            return
        found.seen(line)
        match = MESSAGE_PATH.fullmatch(line["uri"])
        if line["request_method"] != "POST" or match is None:
            found.problems["not an FCM send"] += 1
            return
        if match["project"] != self.project_id:
            found.problems["sends to another project"] += 1
        self._bearers[line["http_authorization"]] += 1
        if line["status"] != "200":
            return
        message = _message(_body(line["request_body"]))
        if message is None:
            found.problems["bodies without a message.token"] += 1
            return
        if message.get("validate_only"):
            found.problems["dry runs (validate_only)"] += 1
        found.add(message["message"]["token"], at)

    def _grant(self, found: Arrivals, line: dict[str, str], at: float) -> None:
        found.figures["token_requests"] = found.figures.get("token_requests", 0.0) + 1
        if line["request_method"] != "POST" or line["status"] != "200":
            found.problems["failed token requests"] += 1
            return
        if not self._signed_grant(_body(line["request_body"]), at):
            found.problems["OAuth grants not signed by the service account"] += 1
            return
        self._issued.add(f"Bearer {ACCESS_TOKEN_PREFIX}{line['request_id']}")

    def _signed_grant(self, body: str, at: float) -> bool:
        """A JWT-bearer grant signed (RS256) by the service account's key (its key id), issued
        by its e-mail, for the FCM scope, valid at the time it arrived."""
        form = urllib.parse.parse_qs(body)
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return False
        assertion = form["assertion"][0]
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=GRANT_AUDIENCE,
                options={"verify_exp": False, "verify_iat": False, "require": ["iat", "exp"]},
            )
        except jwt.PyJWTError:
            return False
        return (
            header.get("kid") == self.key_id
            and claims.get("iss") == self.client_email
            and SCOPE in str(claims.get("scope", "")).split()
            and float(claims["iat"]) - 60 <= at <= float(claims["exp"])
        )

    def finish(self, found: Arrivals) -> None:
        strangers = sum(n for bearer, n in self._bearers.items() if bearer not in self._issued)
        if strangers:
            found.problems["sends with an access token the sink never issued"] += strangers


def _message(body: str) -> dict[str, Any] | None:
    """The parsed send request, if it is `{"message": {"token": "<non-empty>", ...}, ...}`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = document.get("message") if isinstance(document, dict) else None
    token = message.get("token") if isinstance(message, dict) else None
    return document if isinstance(token, str) and token else None
