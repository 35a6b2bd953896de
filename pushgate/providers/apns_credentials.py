"""An app's APNs token-auth identity (`APNSCredentials`): the .p8 signing key, key id, team
id, bundle id and environment, checked when built. The JWTs signed with it are
`apns_tokens.py`'s.

Apple's documentation, cited below as [token]:
- [token] https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from pushgate.errors import InvalidInputError
from pushgate.provider_settings import APNSSettings
from pushgate.providers.base import StoredCredentials
from pushgate.settings import Settings

APNSEnvironment = Literal["production", "sandbox"]

_ID_RE = re.compile(r"[A-Z0-9]{10}")


@functools.lru_cache(maxsize=1024)
def _signing_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The parsed .p8 key. Parsing costs ~50 µs; credentials are rebuilt per job, keys rarely."""
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"the APNs key is not a PEM private key (paste the whole .p8 file): {exc}",
            field="key",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InvalidInputError(
            "the APNs key must be an EC P-256 private key (the .p8 file from Apple)", field="key"
        )
    return key


@dataclass(frozen=True, slots=True)
class APNSCredentials:
    """An app's APNs token-auth identity ([token]).

    Attributes:
        key: the .p8 signing key, PEM text (EC P-256 private key).
        key_id: the key's 10-character id (the JWT `kid`).
        team_id: the 10-character developer team id (the JWT `iss`).
        topic: the app's bundle id; push-type suffixes are added per request.
        environment: `production` or `sandbox` (development builds).

    Raises:
        InvalidInputError: a malformed field; `field` names it.
    """

    platform: ClassVar[str] = "apns"

    key: str = field(repr=False)
    key_id: str
    team_id: str
    topic: str
    environment: APNSEnvironment = "production"

    def __post_init__(self) -> None:
        if not _ID_RE.fullmatch(self.key_id):
            raise InvalidInputError(
                "the APNs key id must be 10 capital letters or digits", field="key_id"
            )
        if not _ID_RE.fullmatch(self.team_id):
            raise InvalidInputError(
                "the APNs team id must be 10 capital letters or digits", field="team_id"
            )
        # Not printable: NUL and lone surrogates, which no bundle id has and PostgreSQL refuses.
        if not self.topic or any(
            c.isspace() or c == "/" or not c.isprintable() for c in self.topic
        ):
            raise InvalidInputError("the APNs topic must be the app's bundle id", field="topic")
        if self.environment not in ("production", "sandbox"):
            raise InvalidInputError(
                "the APNs environment must be production or sandbox", field="environment"
            )
        _signing_key(self.key)

    @property
    def signing_key(self) -> ec.EllipticCurvePrivateKey:
        return _signing_key(self.key)

    def record(self) -> tuple[str, dict[str, str | None]]:
        return self.key.strip() + "\n", {
            "key_id": self.key_id,
            "team_id": self.team_id,
            "topic": self.topic,
            "environment": self.environment,
        }

    def check(self, settings: Settings) -> None:
        """Nothing in the settings makes a checked key unusable."""


class APNSStoredCredentials(StoredCredentials[APNSCredentials]):
    """An app's signing key as stored (the .p8 text; its ids as metadata), or the settings'."""

    def __init__(self, settings: APNSSettings) -> None:
        self._settings = settings

    def read(self, secret: str | Mapping[str, Any], metadata: Mapping[str, Any]) -> APNSCredentials:
        if not isinstance(secret, str):
            raise InvalidInputError("the APNs key is the .p8 file's text", field="key")
        return APNSCredentials(
            key=secret,
            key_id=metadata.get("key_id") or "",
            team_id=metadata.get("team_id") or "",
            topic=metadata.get("topic") or "",
            environment="sandbox" if metadata.get("environment") == "sandbox" else "production",
        )

    def from_settings(self) -> APNSCredentials | None:
        apns = self._settings
        if apns.key_path is None:
            return None
        return APNSCredentials(
            key=apns.key_path.read_text(encoding="utf-8"),
            key_id=apns.key_id or "",
            team_id=apns.team_id or "",
            topic=apns.topic or "",
            environment=apns.environment,
        )

    def how_to_set(self, app_name: str) -> str:
        return (
            f"`pushgate credentials set-apns --app {app_name} --key FILE --key-id ..."
            " --team-id ... --topic ...`, or PUT /v1/apps/current/credentials/apns with an"
            " admin key"
        )
