"""A device's or a raw-token send's token, checked and normalised by its platform's provider
(Web Push subscriptions are the standard's, checked by `domain.subscription`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushgate.domain.subscription import PushAddress
from pushgate.errors import InvalidInputError
from pushgate.providers.base import DeliveryProvider


def token_address(
    providers: Mapping[str, DeliveryProvider[Any]], platform: str, token: str
) -> PushAddress:
    """The address of a token on `platform`.

    Raises:
        InvalidInputError: the provider refuses the token (code `invalid_token`), or no
            provider of that name runs in this process.
    """
    provider = providers.get(platform)
    if provider is None:
        # Requests name installed platforms: one installed after this process started.
        raise InvalidInputError(f"no {platform} provider in this process", field="platform")
    return PushAddress(platform=platform, token=provider.address(token))
