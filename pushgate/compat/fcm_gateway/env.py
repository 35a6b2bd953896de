"""The old gateway's rate limits, `RATE_LIMIT_PER_MINUTE` and `RATE_LIMIT_PER_HOUR` (requests
per API key), as pushgate's per-key limits of the send and device-write route classes
(`rate_limits.key_send`, `rate_limits.key_subscribe`).

pushgate has one bucket per key and route class, so with both names set the stricter rate is
kept (the lower sustained rate: `60` a minute and `1000` an hour make `1000/hour`). `0` is no
limit from that name. Imports nothing of the API or runtime: read while the settings load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pushgate.errors import ConfigError

PER_MINUTE = "RATE_LIMIT_PER_MINUTE"
PER_HOUR = "RATE_LIMIT_PER_HOUR"
NAMES = (PER_MINUTE, PER_HOUR)
_PERIODS = {PER_MINUTE: ("minute", 60), PER_HOUR: ("hour", 3600)}


def translate(environ: Mapping[str, str]) -> dict[str, Any]:
    """`{"rate_limits": {"key_send": ..., "key_subscribe": ...}}` when either name is set.

    Raises:
        ConfigError: a value that is not a whole number of requests.
    """
    given: list[tuple[float, int, str]] = []
    for name, (period, seconds) in _PERIODS.items():
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            raise ConfigError(f"invalid setting {name}: {raw!r} is not a whole number of requests")
        count = int(raw)
        if count:
            # Sorted by sustained rate, then by burst: equal rates keep the smaller bucket.
            given.append((count / seconds, count, f"{count}/{period}"))
    if not given and not any(environ.get(n, "").strip() for n in NAMES):
        return {}
    rate = min(given)[2] if given else "off"
    return {"rate_limits": {"key_send": rate, "key_subscribe": rate}}
