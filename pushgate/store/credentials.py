"""Apps' provider credentials (FCM service accounts, APNs signing keys): queries, and the
Fernet box that keeps their secrets, and the apps' VAPID private keys, encrypted at rest.

The key comes from `secrets.key` (`PUSHGATE_SECRETS__KEY`). The embedded profile makes one on
first use in `<data_dir>/secrets.key` (mode 0600): a single node keeps its key beside its
database. Anywhere else a missing key is an error, because every API and worker process must
decrypt with the same key and a key made by one of them would strand the others.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.errors import ConfigError
from pushgate.settings import Settings
from pushgate.store.tables import AppCredential, utcnow

PLATFORMS = ("fcm", "apns")
KEY_FILE = "secrets.key"
GENERATE_HINT = (
    "generate one with: python -c 'from cryptography.fernet import Fernet;"
    " print(Fernet.generate_key().decode())'"
)
# The non-secret columns a caller may set.
METADATA_FIELDS = ("project_id", "client_email", "key_id", "team_id", "topic", "environment")


class SecretBox:
    """Encrypts and decrypts credential secrets. Several keys: the first encrypts, any
    decrypts, so a key can be rotated by putting the new one first."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "PUSHGATE_SECRETS__KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                + GENERATE_HINT
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for these settings.

        Raises:
            ConfigError: no key is set and the database is not the embedded one, or the key
                is malformed.
        """
        if settings.secrets.key is not None:
            keys = [k for k in settings.secrets.key.get_secret_value().split(",") if k.strip()]
            if keys:
                return cls(keys)
        if not settings.is_embedded_database:
            raise ConfigError(
                "PUSHGATE_SECRETS__KEY must be set to store or read provider credentials and"
                " VAPID keys (the same key on every pushgate process); " + GENERATE_HINT,
                code="secrets_key_missing",
            )
        return cls([_local_key(Path(settings.data_dir) / KEY_FILE)])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret.

        Raises:
            ConfigError: none of the keys decrypts it (the key changed since it was stored).
        """
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigError(
                "stored credentials or VAPID keys cannot be decrypted with PUSHGATE_SECRETS__KEY"
                " (was the key changed? keep the old key after the new one until they are set"
                " again)",
                code="secrets_key_mismatch",
            ) from None


def _local_key(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        # O_EXCL: two processes starting together must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key.decode()


def fingerprint(secret: str) -> str:
    """The first 16 hex digits of the secret's SHA-256: tells keys apart, reveals nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


async def put(
    *,
    session: AsyncSession,
    box: SecretBox,
    app_id: uuid.UUID,
    platform: str,
    secret: str,
    metadata: Mapping[str, str | None],
) -> AppCredential:
    """Set (or replace) an app's credentials for `platform`; the caller commits."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}")
    fields = {name: metadata.get(name) for name in METADATA_FIELDS}
    now = utcnow()
    row = await get(session=session, app_id=app_id, platform=platform)
    if row is None:
        row = AppCredential(
            app_id=app_id,
            platform=platform,
            secret=box.seal(secret),
            fingerprint=fingerprint(secret),
            created_at=now,
            updated_at=now,
            **fields,
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row
        except IntegrityError:
            # A concurrent first set won the insert: replace what it stored.
            row = await get(session=session, app_id=app_id, platform=platform)
            if row is None:
                raise
    row.secret = box.seal(secret)
    row.fingerprint = fingerprint(secret)
    row.updated_at = now
    for name, value in fields.items():
        setattr(row, name, value)
    await session.flush()
    return row


async def get(*, session: AsyncSession, app_id: uuid.UUID, platform: str) -> AppCredential | None:
    query = select(AppCredential).where(
        AppCredential.app_id == app_id, AppCredential.platform == platform
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_for_app(*, session: AsyncSession, app_id: uuid.UUID) -> list[AppCredential]:
    query = (
        select(AppCredential).where(AppCredential.app_id == app_id).order_by(AppCredential.platform)
    )
    return list((await session.execute(query)).scalars())


async def remove(*, session: AsyncSession, app_id: uuid.UUID, platform: str) -> bool:
    """Delete an app's credentials for `platform`; False when there were none."""
    result = await session.execute(
        delete(AppCredential).where(
            AppCredential.app_id == app_id, AppCredential.platform == platform
        )
    )
    return bool(getattr(result, "rowcount", 0))
