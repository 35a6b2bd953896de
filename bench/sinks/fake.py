"""The test suite's fake Web Push service as a sink process with added latency, for the
correctness-under-load scenario: it checks each request's VAPID JWT and headers and decrypts its
payload like a push service would, and answers every request only after `--delay` seconds.

Run by the bench as ``python -m bench.sinks.fake --count N --delay 0.05 --dir DIR``: it writes
`DIR/subscriptions.json` (origin, CA, the subscriptions) once it listens, and on SIGTERM writes
`DIR/summary.json` (requests, statuses, per-subscription counts, payloads that did not read)
and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from tests.fakes.webpush_server import FakeWebPushService

# A bound on the process's life whatever happens to the bench that started it.
MAX_LIFETIME = 3600.0


async def _serve(count: int, delay: float, directory: Path, decrypt: bool, marker: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeWebPushService(decrypt=decrypt)
    async with fake:
        subscriptions = [fake.new_subscription() for _ in range(count)]
        fake.script(None, delay=delay, times=None)
        ca = directory / "fake-ca.pem"
        shutil.copy(fake.ca_pem_path, ca)
        ready = {"origin": fake.origin, "ca": str(ca), "subscriptions": subscriptions}
        tmp = directory / "subscriptions.json.tmp"
        tmp.write_text(json.dumps(ready))
        tmp.rename(directory / "subscriptions.json")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MAX_LIFETIME)
        counts = Counter(r.subscription_id for r in fake.received)
        unreadable = 0
        if decrypt:
            unreadable = sum(1 for r in fake.received if marker.encode() not in r.plaintext)
        summary: dict[str, Any] = fake.stats() | {
            "counts": dict(counts),
            "unreadable_payloads": unreadable,
            "decrypted": decrypt,
        }
        (directory / "summary.json").write_text(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--no-decrypt", action="store_true")
    parser.add_argument("--marker", default="mixed_latency", help="text every payload holds")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_serve(args.count, args.delay, args.dir, not args.no_decrypt, args.marker))


if __name__ == "__main__":
    main()
