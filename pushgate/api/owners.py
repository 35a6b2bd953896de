"""What an end user signed in with a JWT may do with devices: only its own (`Caller.user_id`).

API-key callers pass through every function here unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.api.deps import Caller
from pushgate.errors import ConflictError, PermissionDeniedError
from pushgate.store import devices


def another_users() -> PermissionDeniedError:
    return PermissionDeniedError(
        "this device belongs to another user", code="device_of_another_user"
    )


def own(caller: Caller, record: devices.DeviceRecord) -> devices.DeviceRecord:
    """`record`, if the caller may see it.

    Raises: PermissionDeniedError `device_of_another_user`.
    """
    if caller.user_id is not None and record.device.user_id != caller.user_id:
        raise another_users()
    return record


async def check(caller: Caller, session: AsyncSession, device_id: uuid.UUID) -> None:
    """Raises PermissionDeniedError when an end user addresses a device not its own (and
    NotFoundError when there is no such device)."""
    if caller.user_id is not None:
        own(caller, await devices.get(session=session, app_id=caller.app_id, device_id=device_id))


def user_filter(caller: Caller, user_id: str | None) -> str | None:
    """The user whose devices a listing shows: an end user's own, whatever it asks.

    Raises: PermissionDeniedError when an end user asks for another user's devices.
    """
    if caller.user_id is None:
        return user_id
    if user_id is not None and user_id != caller.user_id:
        raise another_users()
    return caller.user_id


def profile(caller: Caller, fields: dict[str, Any]) -> dict[str, Any]:
    """The profile to store: an end user's devices are its own (`user_id` is its `sub`).

    Raises: PermissionDeniedError when an end user names another user.
    """
    if caller.user_id is None:
        return fields
    if fields.get("user_id", caller.user_id) != caller.user_id:
        raise PermissionDeniedError(
            "an end-user token registers devices for its own user only (its `sub`)",
            code="device_of_another_user",
        )
    return fields | {"user_id": caller.user_id}


@contextmanager
def taken_token(caller: Caller) -> Iterator[None]:
    """Turn "this device has another user" into 409 for an end user: the token is someone
    else's (an admin or send key can reassign it). The caller's session must roll back."""
    try:
        yield
    except PermissionDeniedError as exc:
        if caller.user_id is None or exc.code != "device_user_locked":
            raise
        raise ConflictError(
            "this token is registered to another user", code="device_taken"
        ) from None
