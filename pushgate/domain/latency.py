"""End-to-end latency histograms: the fixed, log-spaced buckets the analytics rollups count
into, and percentiles read back from those counts.

Bucket 0 holds latencies under 10 ms; bucket k (1..39) holds [10 ms * 1.25^(k-1), 10 ms *
1.25^k); bucket 40 holds everything from 10 ms * 1.25^39 (about 60.2 s) on. A percentile is
found in the bucket that holds its rank and interpolated inside it geometrically (linearly in
bucket 0), so the estimate always lies in the same bucket as the true value: between 10 ms and
60 s it is off by at most a factor of 1.25 (25 %), in practice a few percent; under 10 ms by
at most 10 ms; past 60 s it is reported as the bucket's lower bound (a floor, not an estimate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FIRST_MS = 10.0
RATIO = 1.25
BUCKETS = 41
# Lower bound of each bucket in milliseconds (bucket 0 starts at 0).
LOWER = (0.0, *(FIRST_MS * RATIO ** (k - 1) for k in range(1, BUCKETS)))
_LOG_RATIO = math.log(RATIO)


def bucket_of(milliseconds: float) -> int:
    """The bucket counting a latency of `milliseconds` (negative counts as 0)."""
    if milliseconds < FIRST_MS:
        return 0
    k = int(math.log(milliseconds / FIRST_MS) / _LOG_RATIO) + 1
    return min(k, BUCKETS - 1)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The `q` quantile (0 < q <= 1) in milliseconds of the latencies counted in `counts` (one
    count per bucket), or None when there are none."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for k, count in enumerate(counts):
        if count <= 0:
            continue
        if seen + count >= rank:
            share = min(max((rank - seen) / count, 0.0), 1.0)
            if k == 0:
                return round(FIRST_MS * share, 3)
            if k == BUCKETS - 1:
                return round(LOWER[k], 3)
            return round(LOWER[k] * math.pow(RATIO, share), 3)
        seen += count
    return round(LOWER[BUCKETS - 1], 3)  # rounding left the rank past the end


def percentiles(counts: Sequence[int]) -> dict[str, float | None]:
    """p50, p95 and p99 of a histogram, as the analytics answers give them."""
    return {
        "p50": percentile(counts, 0.50),
        "p95": percentile(counts, 0.95),
        "p99": percentile(counts, 0.99),
    }
