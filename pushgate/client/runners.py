"""The two drivers of `calls.exchange`: the only code that differs between the sync and the
async client (how to send, how to sleep, how to walk pages)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

import httpx

from pushgate.client.calls import Call, Outcome, Retries, Sleep, exchange
from pushgate.client.models import Page

T = TypeVar("T")


class Runner(Protocol):
    def run(self, call: Call[Any]) -> Any: ...
    def iterate(self, first: Call[Page[Any]]) -> Any: ...


class SyncRunner:
    def __init__(
        self, http: httpx.Client, retries: Retries, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.http, self.retries, self.sleep = http, retries, sleep

    def run(self, call: Call[T]) -> T:
        walk = exchange(call, call.request(self.http), self.retries)
        step = next(walk)
        while True:
            outcome: Outcome = None
            if isinstance(step, Sleep):
                self.sleep(step.seconds)
            else:
                try:
                    outcome = self.http.send(step)
                except httpx.TransportError as exc:
                    outcome = exc
            try:
                step = walk.send(outcome)
            except StopIteration as stop:
                result: T = stop.value
                return result

    def iterate(self, first: Call[Page[T]]) -> Iterator[T]:
        page = self.run(first)
        yield from page.items
        while page.next_cursor is not None:
            page = self.run(first.at(page.next_cursor))
            yield from page.items


class AsyncRunner:
    def __init__(
        self,
        http: httpx.AsyncClient,
        retries: Retries,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http, self.retries, self.sleep = http, retries, sleep

    async def run(self, call: Call[T]) -> T:
        walk = exchange(call, call.request(self.http), self.retries)
        step = next(walk)
        while True:
            outcome: Outcome = None
            if isinstance(step, Sleep):
                await self.sleep(step.seconds)
            else:
                try:
                    outcome = await self.http.send(step)
                except httpx.TransportError as exc:
                    outcome = exc
            try:
                step = walk.send(outcome)
            except StopIteration as stop:
                result: T = stop.value
                return result

    async def iterate(self, first: Call[Page[T]]) -> AsyncIterator[T]:
        page = await self.run(first)
        for item in page.items:
            yield item
        while page.next_cursor is not None:
            page = await self.run(first.at(page.next_cursor))
            for item in page.items:
                yield item
