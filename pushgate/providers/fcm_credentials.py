"""An app's Firebase service account (`FCMCredentials`): the key file checked on the way in (so
a tenant's upload is refused with the reason) and the fields google-auth needs to mint access
tokens (`fcm_tokens.py`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pushgate.errors import InvalidInputError
from pushgate.provider_settings import FCMSettings
from pushgate.providers.base import StoredCredentials
from pushgate.settings import Settings

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
# Where Google's service-account keys send the JWT-bearer grant (older keys name the second).
# The token_uri comes from an app's uploaded JSON, so any other is refused unless the operator
# allows it: otherwise a tenant could make us POST to an internal https service (SSRF) and read
# its answer back in the delivery's error text.
GOOGLE_TOKEN_URIS = (GOOGLE_TOKEN_URI, "https://accounts.google.com/o/oauth2/token")


@dataclass(frozen=True, slots=True)
class FCMCredentials:
    """An app's Firebase service account: what FCM needs to mint access tokens and address
    the project. Hashable, so the provider keys its token cache on it.

    Build it with `from_service_account`, which validates; the fields are the service-account
    JSON's own names.
    """

    platform: ClassVar[str] = "fcm"

    project_id: str
    client_email: str
    private_key: str = field(repr=False)
    token_uri: str = GOOGLE_TOKEN_URI
    private_key_id: str | None = None

    @classmethod
    def from_service_account(cls, source: Mapping[str, Any] | str) -> FCMCredentials:
        """Check a service-account key (the JSON the Firebase console downloads) given as
        content: never a path, so a tenant's upload cannot make the server read its files
        (the operator's files go through `from_file`).

        Args:
            source: the parsed JSON, or the JSON text itself.

        Raises:
            InvalidInputError: not JSON, not a service account, or a field is missing or
                malformed; the message names the problem (`field` is `service_account`).
        """
        info = _parse_service_account(source)
        kind = info.get("type", "service_account")
        if kind != "service_account":
            _bad(f'"type" is {kind!r}, not "service_account"')
        values: dict[str, str] = {}
        for name in ("project_id", "client_email", "private_key"):
            value = info.get(name)
            if not isinstance(value, str) or not value.strip():
                _bad(f'"{name}" is missing or empty')
            if not _storable(value):
                _bad(f'"{name}" holds a NUL character or a lone surrogate')
            values[name] = value.strip()
        token_uri = info.get("token_uri") or GOOGLE_TOKEN_URI
        if not isinstance(token_uri, str) or urlsplit(token_uri).scheme != "https":
            _bad('"token_uri" must be an https URL')
        key_id = info.get("private_key_id")
        if key_id is not None and not isinstance(key_id, str):
            _bad('"private_key_id" must be a string')
        if "@" not in values["client_email"]:
            _bad('"client_email" is not an e-mail address')
        private_key = values["private_key"]
        # Keys pasted into environment variables often arrive with literal "\n" sequences.
        if "\\n" in private_key and "\n" not in private_key:
            private_key = private_key.replace("\\n", "\n")
        _check_private_key(private_key)
        return cls(
            project_id=values["project_id"],
            client_email=values["client_email"],
            private_key=private_key + ("" if private_key.endswith("\n") else "\n"),
            token_uri=token_uri,
            private_key_id=key_id or None,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FCMCredentials:
        """Read and check the service-account file at `path`: for the operator (the CLI and
        the settings), never for anything a tenant sends.

        Raises:
            InvalidInputError: unreadable, or not a usable service account.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            _bad(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return cls.from_service_account(text)

    def service_account_info(self) -> dict[str, str]:
        """The fields google-auth's `from_service_account_info` reads."""
        info = {
            "type": "service_account",
            "project_id": self.project_id,
            "client_email": self.client_email,
            "private_key": self.private_key,
            "token_uri": self.token_uri,
        }
        if self.private_key_id:
            info["private_key_id"] = self.private_key_id
        return info

    def record(self) -> tuple[str, dict[str, str | None]]:
        secret = json.dumps(self.service_account_info(), sort_keys=True)
        return secret, {"project_id": self.project_id, "client_email": self.client_email}

    def check(self, settings: Settings) -> None:
        """Refuse a token_uri the provider would refuse at every send (`allowed_token_uris`)."""
        if self.token_uri not in allowed_token_uris(settings):
            raise InvalidInputError(
                f"the FCM service account is not usable: its token_uri {self.token_uri} is"
                " not Google's OAuth endpoint (an operator may allow others with"
                " PUSHGATE_FCM__TOKEN_URIS)",
                field="service_account.token_uri",
            )


def allowed_token_uris(settings: Settings) -> tuple[str, ...]:
    """The OAuth token endpoints a service account may name: Google's, and the settings'."""
    return (*GOOGLE_TOKEN_URIS, *settings.fcm.token_uris)


class FCMStoredCredentials(StoredCredentials[FCMCredentials]):
    """An app's service account as stored (the JSON, sorted), or the settings' one."""

    def __init__(self, settings: FCMSettings) -> None:
        self._settings = settings

    def read(self, secret: str | Mapping[str, Any], metadata: Mapping[str, Any]) -> FCMCredentials:
        return FCMCredentials.from_service_account(secret)

    def from_settings(self) -> FCMCredentials | None:
        if self._settings.service_account_json is not None:
            text = self._settings.service_account_json.get_secret_value()
            account = FCMCredentials.from_service_account(text)
        elif self._settings.service_account_path is not None:
            account = FCMCredentials.from_file(self._settings.service_account_path)
        else:
            return None
        if self._settings.project_id:
            account = dataclasses.replace(account, project_id=self._settings.project_id)
        return account

    def how_to_set(self, app_name: str) -> str:
        return (
            f"`pushgate credentials set-fcm --app {app_name} --service-account FILE`, or"
            " PUT /v1/apps/current/credentials/fcm with an admin key"
        )


def _bad(problem: str) -> NoReturn:
    raise InvalidInputError(
        f"the FCM service account is not usable: {problem}", field="service_account"
    )


def _parse_service_account(source: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    if not isinstance(source, str):
        # A Path here would be a caller meaning `from_file`: refuse rather than guess.
        raise TypeError("a service account is given as JSON text or a mapping; use from_file")
    try:
        document = json.loads(source)
    except json.JSONDecodeError as exc:
        _bad(f"not JSON ({exc.msg} at line {exc.lineno})")
    if not isinstance(document, dict):
        _bad("the JSON is not an object")
    return document


def _storable(text: str) -> bool:
    """Text a database column takes: PostgreSQL refuses NUL and lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_private_key(pem: str) -> None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        _bad('"private_key" is not an unencrypted PEM private key')
    # google-auth signs the grant with RS256; Google issues RSA keys for service accounts.
    if not isinstance(key, rsa.RSAPrivateKey):
        _bad('"private_key" is not an RSA key')
