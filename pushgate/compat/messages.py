"""Legacy messages on the ingress queue (`push.queue`), recognised by their shape with no
setting: each queue shape says whether a decoded message is one of its own (`matches`, pure,
by the fields only that shape sends) and turns it into the `/v1` request it means
(`translate`, which may register the devices the message names for its user first).

A message no shape claims is read as pushgate's own format (sending/ingress.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pushgate.domain.request import NotificationCreate
from pushgate.runtime import Runtime


@dataclass(frozen=True, slots=True)
class MessageShape:
    name: str
    # Whether a decoded JSON object is this shape's: pure, by fields pushgate's own format
    # does not have, so a pushgate message is never claimed.
    matches: Callable[[dict[str, Any]], bool]
    # The request it means, for the app `app_id`. Raises ValueError (or a PushgateError) for
    # a message that can never be accepted: it is dead-lettered with that reason.
    translate: Callable[[Runtime, uuid.UUID, dict[str, Any]], Awaitable[NotificationCreate]]


MESSAGE_SHAPES: list[MessageShape] = []


def register(shape: MessageShape) -> None:
    MESSAGE_SHAPES.append(shape)


def recognise(data: dict[str, Any]) -> MessageShape | None:
    """The legacy shape `data` is in, or None for pushgate's own format."""
    for shape in MESSAGE_SHAPES:
        if shape.matches(data):
            return shape
    return None
