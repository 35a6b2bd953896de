"""`python -m bench.http_clients`: the HTTP client choice for Web Push and FCM, measured.

Sends the same Web Push-shaped POST (headers and a 300-byte body) N times, 200 in flight, to
the bench's nginx TLS sink, alternately through aiohttp (keep-alive pool, what pushgate used
before) and through pushgate's `providers.http1.HTTP1Pool`, in one run and one process on
uvloop as the worker runs; prints requests/s and CPU microseconds per request for each round
and the ratio. Every request must answer 201.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

from bench.sinks import tls as bench_tls
from bench.sinks.webpush import WebPushSink
from pushgate.providers import http1
from pushgate.providers.tls import LazyContext

HEADERS = {
    "TTL": "60",
    "Urgency": "normal",
    "Content-Encoding": "aes128gcm",
    "Content-Type": "application/octet-stream",
    "Authorization": "vapid t=" + "x" * 300 + ", k=" + "y" * 87,
}
BODY = b"z" * 300
IN_FLIGHT = 200

Send = Callable[[int], Awaitable[int]]


async def _measure(send: Send, n: int) -> tuple[float, float]:
    """(requests/s, CPU µs per request) for n sends, after a warm-up that opens the pool."""
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int) -> int:
        async with slots:
            return await send(i)

    await asyncio.gather(*(one(i) for i in range(IN_FLIGHT * 2)))
    cpu, wall = time.process_time(), time.perf_counter()
    statuses = await asyncio.gather(*(one(i) for i in range(n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if set(statuses) != {201}:
        raise SystemExit(f"unexpected answers: {sorted(set(statuses))}")
    return n / wall, cpu / n * 1e6


async def _aiohttp(origin: str, context: ssl.SSLContext, n: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, limit_per_host=IN_FLIGHT, ssl=context)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def send(i: int) -> int:
            async with session.post(
                f"{origin}/push/a{i}", data=BODY, headers=HEADERS, allow_redirects=False
            ) as response:
                await response.read()
                return response.status

        return await _measure(send, n)


async def _http1(origin: str, context: ssl.SSLContext, n: int) -> tuple[float, float]:
    pool = http1.HTTP1Pool(
        tls=LazyContext(alpn=["http/1.1"], context=context),
        request_timeout=10,
        limit=IN_FLIGHT,
        limit_per_host=IN_FLIGHT,
    )
    try:

        async def send(i: int) -> int:
            answer = await pool.request("POST", f"{origin}/push/b{i}", headers=HEADERS, body=BODY)
            return answer.status

        return await _measure(send, n)
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    files = bench_tls.make(work / "tls")
    sink = WebPushSink(work / "nginx", files)
    sink.start()
    try:
        context = ssl.create_default_context(cafile=str(files.ca))
        results: dict[str, list[tuple[float, float]]] = {"aiohttp": [], "http1": []}
        for _ in range(args.rounds):
            results["aiohttp"].append(uvloop.run(_aiohttp(sink.origin, context, args.n)))
            results["http1"].append(uvloop.run(_http1(sink.origin, context, args.n)))
    finally:
        sink.stop()
    for name, rows in results.items():
        for rate, cpu in rows:
            print(f"{name:8s} {rate:9,.0f} requests/s  {cpu:6.1f} µs CPU per request")
    median = {name: sorted(c for _, c in rows)[len(rows) // 2] for name, rows in results.items()}
    print(f"median CPU per request: aiohttp / http1 = {median['aiohttp'] / median['http1']:.1f}x")


if __name__ == "__main__":
    main()
