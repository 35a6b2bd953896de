"""`pushgate queues`: each queue's depth, consumers, messages in flight and rate, as
`GET /v1/queues` answers (queue_stats.py)."""

from __future__ import annotations

from typing import Any

from pushgate import queue_stats
from pushgate.cli.common import (
    ConfigOption,
    JsonOption,
    run,
    settings_from,
    show_rows,
    with_runtime,
)
from pushgate.runtime import Runtime


def queues(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Each queue's depth, and the consumers, in-flight messages and rate the live workers
    report (their heartbeats in Redis; without Redis only `serve` sees its own)."""
    settings = settings_from(config)

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        stats = await queue_stats.read(runtime.kv, runtime.broker)
        return [
            {
                "name": s.name,
                "depth": s.depth,
                "consumers": s.consumers,
                "in_flight": s.in_flight,
                "rate_per_second": s.rate_per_second,
            }
            for s in stats
        ]

    show_rows(
        run(with_runtime(settings, work, broker=True)),
        as_json,
        key="queues",
        columns={
            "queue": "name",
            "depth": "depth",
            "consumers": "consumers",
            "in flight": "in_flight",
            "per second": "rate_per_second",
        },
    )
