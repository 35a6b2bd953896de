"""The `DeliveryProvider` port: send one message to one device, get one `Outcome` back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, TypeVar

from pushgate.domain.message import Message
from pushgate.domain.outcome import Outcome

Platform = Literal["fcm", "apns", "webpush"]

CredentialsT_contra = TypeVar("CredentialsT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery goes.

    Attributes:
        token: the FCM registration token, the APNs device token, or the Web Push
            subscription endpoint URL.
        p256dh: Web Push only: the subscription's base64url P-256 public key.
        auth: Web Push only: the subscription's base64url 16-byte authentication secret.
    """

    token: str
    p256dh: str | None = None
    auth: str | None = None


class DeliveryProvider(Protocol[CredentialsT_contra]):
    """One push technology. Implementations subclass this explicitly.

    A provider owns its connections (opened lazily, reused across sends, closed by `close`)
    and is shared by every app; per-app secrets arrive with each send as `credentials`.
    """

    platform: ClassVar[Platform]

    async def send(
        self, target: Target, message: Message, credentials: CredentialsT_contra
    ) -> Outcome:
        """Send one message to one device.

        Safe to call concurrently. Never raises for a vendor answer, a timeout or a
        connection failure: those are outcomes (`retry_later` for the last two).

        Args:
            target: the device.
            message: what to send.
            credentials: the sending app's credentials for this provider.

        Returns:
            The outcome, mapped as in PROTOCOLS.md.
        """
        ...

    async def close(self) -> None:
        """Close connections; in-flight sends should have finished."""
        ...
