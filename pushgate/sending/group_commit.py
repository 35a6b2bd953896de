"""Group commit: the writes of concurrent callers joined into one flush (one INSERT, one commit,
one batched publish for accepting notifications), so a busy API pays a round trip per flush
instead of per request.

There is no timer: a submission that finds no flush running starts one at once (on the next
turn of the event loop, so the submissions of the same turn go together); submissions made
while a flush is in flight wait for it and go in the next one, together. The busier the
process, the larger the flushes; an idle one flushes each submission alone, without delay.

Each submission is answered only from its own flush's outcome: results when the flush
returned (for accepting: after the commit), or the flush's error. A flush refused because of
its content (`isolate` says so: a row the database rejects) is tried again submission by
submission, so one bad submission does not fail the others. Items given with `add` instead
of `submit` are flushed the same way, and nobody waits for them (fire and forget: the flush
reports its own failures).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pushgate.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Items per flush at most: bounds one INSERT and the time the first submission waits for it.
MAX_BATCH = 500


class ClosedError(RuntimeError):
    """Submitted after close()."""


@dataclass(eq=False, slots=True)
class _Submission(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]] | None = field(repr=False)  # None: nobody waits

    def answer(self, results: list[R]) -> None:
        if self.future is not None and not self.future.done():  # its caller may have left
            self.future.set_result(results)

    def fail(self, error: BaseException) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_exception(error)


class GroupCommit(Generic[T, R]):
    """Runs `flush(items)` for the items of concurrent `submit` calls, one flush at a time.

    `flush` returns one result per item, in order. `isolate(error)` says whether a failed
    flush of several submissions is worth repeating one submission at a time (the error came
    from the data, not from the database being unreachable). `on_close` releases what the
    flushes hold, once the last one is done.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        isolate: Callable[[BaseException], bool] = lambda _error: False,
        max_batch: int = MAX_BATCH,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._flush_items = flush
        self._on_close = on_close
        self._isolate = isolate
        self._max_batch = max_batch
        self._waiting: deque[_Submission[T, R]] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self.flushes = 0  # flushes run: what a test or a metric reads

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results of `items`, once the flush that carried them is done.

        Raises:
            Exception: the flush's error (after `isolate`d retries).
            ClosedError: after close().
        """
        if self._closed:
            raise ClosedError("the group commit is closed")
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Submission(items, future))
        # Shielded: a caller that gives up must not cancel the flush others are waiting on.
        return await asyncio.shield(future)

    def add(self, items: Sequence[T]) -> None:
        """Flush `items` with the next flush, without waiting for it (call it from the event
        loop). Its results and errors go nowhere.

        Raises:
            ClosedError: after close().
        """
        if self._closed:
            raise ClosedError("the group commit is closed")
        if items:
            self._enqueue(_Submission(items, None))

    def _enqueue(self, submission: _Submission[T, R]) -> None:
        self._waiting.append(submission)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Refuse new submissions and wait until the waiting ones (and those added) are
        flushed."""
        self._closed = True
        if self._runner is not None:
            await asyncio.shield(self._runner)
        if self._on_close is not None:
            await self._on_close()

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                try:
                    await self._flush(batch)
                except BaseException:  # cancelled: nobody may be left waiting
                    error = ClosedError("the group commit stopped during a flush")
                    for submission in batch:
                        submission.fail(error)
                    raise
        finally:
            self._runner = None
            if self._waiting:
                # Cancelled with submissions still waiting: fail them rather than hang.
                error = ClosedError("the group commit stopped")
                for submission in self._waiting:
                    submission.fail(error)
                self._waiting.clear()

    def _take(self) -> list[_Submission[T, R]]:
        batch: list[_Submission[T, R]] = []
        count = 0
        while self._waiting and (
            not batch or count + len(self._waiting[0].items) <= self._max_batch
        ):
            submission = self._waiting.popleft()
            batch.append(submission)
            count += len(submission.items)
        return batch

    async def _flush(self, batch: list[_Submission[T, R]]) -> None:
        items = [item for submission in batch for item in submission.items]
        self.flushes += 1
        try:
            results = await self._flush_items(items)
        except Exception as exc:
            if len(batch) > 1 and self._isolate(exc):
                log.warning(
                    "group flush refused; trying its submissions one by one",
                    submissions=len(batch),
                    error=repr(exc),
                )
                for submission in batch:
                    await self._flush([submission])
                return
            for submission in batch:
                submission.fail(exc)
            return
        if len(results) != len(items):
            error = RuntimeError(f"flush gave {len(results)} results for {len(items)} items")
            for submission in batch:
                submission.fail(error)
            return
        start = 0
        for submission in batch:
            end = start + len(submission.items)
            submission.answer(results[start:end])
            start = end
