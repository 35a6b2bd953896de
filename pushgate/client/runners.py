"""The two drivers of `calls.exchange`: the only code that differs between the sync and the
async client (how to send, how to sleep, how to walk pages)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol, TypeVar

import httpx

from pushgate.client.calls import Call, Finished, Outcome, Retries, Sleep, Step, advance, exchange
from pushgate.client.models import Page

T = TypeVar("T")


class Runner(Protocol):
    def run(self, call: Call[Any]) -> Any: ...
    def iterate(self, first: Call[Page[Any]]) -> Any: ...


class SyncRunner:
    def __init__(self, http: httpx.Client, retries: Retries) -> None:
        self.http, self.retries = http, retries
        self.sleep = retries.sleep or time.sleep

    def run(self, call: Call[T]) -> T:
        walk = exchange(call, call.request(self.http), self.retries)
        step: Step | Finished[T] = next(walk)
        while not isinstance(step, Finished):
            step = advance(walk, self._wait(step) if isinstance(step, Sleep) else self._send(step))
        return step.value

    def _wait(self, step: Sleep) -> Outcome:
        self.sleep(step.seconds)
        return None  # a wait has no outcome: the exchange sends the request again

    def _send(self, request: httpx.Request) -> Outcome:
        try:
            return self.http.send(request)
        except httpx.TransportError as exc:
            return exc

    def iterate(self, first: Call[Page[T]]) -> Iterator[T]:
        page = self.run(first)
        yield from page.items
        while page.next_cursor is not None:
            page = self.run(first.at(page.next_cursor))
            yield from page.items


class AsyncRunner:
    def __init__(self, http: httpx.AsyncClient, retries: Retries) -> None:
        self.http, self.retries = http, retries
        self.sleep = retries.sleep or asyncio.sleep

    async def run(self, call: Call[T]) -> T:
        walk = exchange(call, call.request(self.http), self.retries)
        step: Step | Finished[T] = next(walk)
        while not isinstance(step, Finished):
            outcome = await (self._wait(step) if isinstance(step, Sleep) else self._send(step))
            step = advance(walk, outcome)
        return step.value

    async def _wait(self, step: Sleep) -> Outcome:
        await self.sleep(step.seconds)
        return None

    async def _send(self, request: httpx.Request) -> Outcome:
        try:
            return await self.http.send(request)
        except httpx.TransportError as exc:
            return exc

    async def iterate(self, first: Call[Page[T]]) -> AsyncIterator[T]:
        page = await self.run(first)
        for item in page.items:
            yield item
        while page.next_cursor is not None:
            page = await self.run(first.at(page.next_cursor))
            for item in page.items:
                yield item
