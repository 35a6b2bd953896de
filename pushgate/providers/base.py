"""The `DeliveryProvider` port: send one message to one device, get one `Outcome` back; and
what the use cases need to know of a provider (its capabilities, how it checks a token, where
its per-app credentials come from). Built-in and plugin providers implement the same port."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pushgate.domain.message import Message
from pushgate.domain.outcome import Outcome
from pushgate.settings import Settings

CredentialsT = TypeVar("CredentialsT")
CredentialsT_co = TypeVar("CredentialsT_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery goes.

    Attributes:
        token: the FCM registration token, the APNs device token, the Web Push subscription
            endpoint URL, or a plugin provider's address.
        p256dh: Web Push only: the subscription's base64url P-256 public key.
        auth: Web Push only: the subscription's base64url 16-byte authentication secret.
        registered_at: when the device last registered; given only to providers whose
            capabilities ask for it (`registration_time`).
    """

    token: str
    p256dh: str | None = None
    auth: str | None = None
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do beyond `send`; sending/ reads them once, when it starts.

    Attributes:
        dry_run: `send` honours `message.dry_run` itself (the vendor validates the message
            without delivering it, as FCM's `validate_only`). Without it, a dry run never
            reaches the provider's `send`: sending/ calls `check` and contacts no one.
        registration_time: `send` reads `target.registered_at` (APNs: a 410 older than the
            device's last registration must not deactivate it).
        topics: the provider has `send_to_topic` (FCM topics and conditions).
        vapid: the per-app credentials are the app's own VAPID identity
            (`domain.vapid.VapidCredentials`), not a stored secret.
    """

    dry_run: bool = False
    registration_time: bool = False
    topics: bool = False
    vapid: bool = False


class StoredCredentials(Protocol[CredentialsT_co]):
    """How a provider's per-app secret is read: from an `app_credentials` row or an admin's
    input (secret + metadata), or, for apps that stored none, from the settings."""

    def read(self, secret: str | Mapping[str, Any], metadata: Mapping[str, Any]) -> CredentialsT_co:
        """The credentials, checked.

        Raises:
            InvalidInputError: unusable; `field` names what.
        """
        ...

    def from_settings(self) -> CredentialsT_co | None:
        """The single-tenant credentials the settings name, or None when they name none.

        Raises:
            InvalidInputError: the settings name unusable ones.
            OSError: a file they name cannot be read.
        """
        ...

    def how_to_set(self, app_name: str) -> str:
        """How an admin gives the app its credentials (a command and an API route)."""
        ...


@runtime_checkable
class Storable(Protocol):
    """Checked credentials, ready to be kept in `app_credentials`."""

    platform: ClassVar[str]

    def record(self) -> tuple[str, dict[str, str | None]]:
        """(secret, metadata) to store."""
        ...

    def check(self, settings: Settings) -> None:
        """Refuse credentials the provider would refuse at every send with these settings.

        Raises:
            InvalidInputError: says why and names the field.
        """
        ...


@runtime_checkable
class DeliveryProvider(Protocol[CredentialsT]):
    """One push technology. Implementations subclass this explicitly; a plugin's factory (an
    entry point in the `pushgate.providers` group) takes the `Settings` and returns one.

    A provider owns its connections (opened lazily, reused across sends, closed by `close`)
    and is shared by every app; per-app secrets arrive with each send as `credentials`.

    Attributes:
        name: the platform name devices give (`fcm`), unique among installed providers.
        capabilities: what it can do beyond `send`.
        credentials: how its per-app credentials are read when they are a stored secret;
            None when it takes the app's VAPID identity (`capabilities.vapid`) or needs no
            credentials (sends then get None).
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    credentials: StoredCredentials[CredentialsT] | None = None

    async def send(self, target: Target, message: Message, credentials: CredentialsT) -> Outcome:
        """Send one message to one device.

        Safe to call concurrently. Never raises for a vendor answer, a timeout or a
        connection failure: those are outcomes (`retry_later` for the last two).

        Args:
            target: the device.
            message: what to send.
            credentials: the sending app's credentials for this provider.

        Returns:
            The outcome, mapped as in docs/protocols.md#outcomes.
        """
        ...

    def address(self, token: str) -> str:
        """A device's token as registered and sent to: checked and normalised.

        Raises:
            InvalidInputError: code `invalid_token`, field `token`.
        """
        ...

    def origin(self, token: str) -> str:
        """The upstream a delivery to `token` goes to: one circuit breaker per (app, provider,
        origin). One origin for the whole provider unless it sends to many hosts."""
        return self.name

    def credential_key(self, app_id: str, origin: str, credentials: CredentialsT) -> str:
        """Which sending quota a send with `credentials` to `origin` uses up: deliveries with
        the same key share one pace (`pacing.per_credential` names it `<provider>:<key>`),
        across apps and workers. By default the app and the origin: a push service that
        throttles a sender counts per sender and per service."""
        return f"{app_id}:{origin}"

    def check(self, target: Target, message: Message, credentials: CredentialsT) -> str | None:
        """A dry run for a provider without `capabilities.dry_run`: build the request as a
        send would, contact no one, and say why a send would be refused (None: it would go)."""
        return None

    async def send_to_topic(
        self, destination: str, message: Message, credentials: CredentialsT
    ) -> Outcome:
        """Send to a topic or condition (`capabilities.topics`); `message.dry_run` asks the
        vendor to validate only. Providers without topics never receive one."""
        return Outcome.rejected(f"{self.name} cannot send to topics")

    async def close(self) -> None:
        """Close connections; in-flight sends should have finished."""
        ...
