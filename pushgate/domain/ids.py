"""Time-ordered identifiers (UUIDv7), so keyset pagination on the id follows creation order."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime


def new_id(now_ms: int | None = None) -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, version 7, then 74 random bits (RFC 9562)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `moment`'s millisecond: every id made before it is smaller, so
    `id < floor(t)` finds rows created before `t` through the primary key."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=((ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | (0b10 << 62))
