"""The group commit on its own: which submissions share a flush, how each is answered, what a
failed flush does. The flush here is a plain function recording its calls (the real one, on
the database and the broker, is exercised in tests/integration/test_accept_group_commit.py)."""

from __future__ import annotations

import asyncio

import pytest

from pushgate.sending.group_commit import ClosedError, GroupCommit


class Recorder:
    """A flush that answers each item with its double, records its batches, and can be held
    (to let submissions pile up behind it) or made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.refuse: set[int] = set()  # items whose presence fails the whole flush
        self.error: BaseException | None = None  # fails every flush

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        if self.refuse & set(items):
            raise ValueError(f"refused {sorted(self.refuse & set(items))}")
        return [2 * i for i in items]


async def test_concurrent_submissions_share_one_flush_and_each_gets_its_own_results() -> None:
    # Given
    recorder = Recorder()
    group = GroupCommit(recorder.flush)

    # When 20 callers submit in the same turn of the loop
    results = await asyncio.gather(*(group.submit([i, 100 + i]) for i in range(20)))

    # Then one flush carried them all, and each caller got the results of its own items
    assert len(recorder.batches) == 1
    assert results == [[2 * i, 200 + 2 * i] for i in range(20)]
    assert group.flushes == 1


async def test_submissions_made_during_a_flush_go_together_in_the_next() -> None:
    # Given a flush in flight
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCommit(recorder.flush)
    first = asyncio.ensure_future(group.submit([1]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert recorder.batches == [[1]]

    # When three more arrive before it is done
    later = [asyncio.ensure_future(group.submit([i])) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.gate.set()

    # Then they wait for it, and share the next flush
    assert await first == [2]
    assert [await f for f in later] == [[4], [6], [8]]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_an_idle_group_flushes_a_lone_submission_at_once() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush)

    assert await group.submit([5]) == [10]
    assert await group.submit([6]) == [12]
    assert recorder.batches == [[5], [6]]


async def test_a_failed_flush_answers_every_waiting_submission_with_its_error() -> None:
    # Given a flush that fails (the database is out of reach)
    recorder = Recorder()
    recorder.error = ConnectionError("database unreachable")
    group = GroupCommit(recorder.flush, isolate=lambda error: isinstance(error, ValueError))

    # When several wait on it
    outcomes = await asyncio.gather(*(group.submit([i]) for i in range(5)), return_exceptions=True)

    # Then every one is answered with the error, after one attempt (not one per submission)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert len(recorder.batches) == 1

    # And the group keeps working once the database is back
    recorder.error = None
    assert await group.submit([7]) == [14]


async def test_a_flush_refused_for_its_content_is_retried_submission_by_submission() -> None:
    # Given a flush whose content one submission spoils
    recorder = Recorder()
    recorder.refuse = {3}
    group = GroupCommit(recorder.flush, isolate=lambda error: isinstance(error, ValueError))

    # When
    outcomes = await asyncio.gather(*(group.submit([i]) for i in range(5)), return_exceptions=True)

    # Then only that one fails; the others are answered from their own flushes
    assert outcomes[:3] == [[0], [2], [4]]
    assert isinstance(outcomes[3], ValueError)
    assert outcomes[4] == [8]
    assert recorder.batches == [[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]


async def test_a_caller_that_gives_up_does_not_cancel_the_flush_of_the_others() -> None:
    # Given two submissions waiting on one held flush
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCommit(recorder.flush)
    leaving = asyncio.ensure_future(group.submit([1]))
    staying = asyncio.ensure_future(group.submit([2]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)

    # When one caller is cancelled (its client went away)
    leaving.cancel()
    await asyncio.sleep(0)
    recorder.gate.set()

    # Then the flush still completes for the other
    assert await staying == [4]
    assert leaving.cancelled()
    assert recorder.batches == [[1, 2]]


async def test_flushes_are_bounded_in_size_without_splitting_a_submission() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, max_batch=4)

    await asyncio.gather(group.submit([1, 2, 3]), group.submit([4, 5]), group.submit([6]))

    assert recorder.batches == [[1, 2, 3], [4, 5, 6]]


async def test_close_answers_those_waiting_then_refuses_new_submissions() -> None:
    # Given a submission waiting on a held flush
    recorder = Recorder()
    recorder.gate.clear()
    closed: list[bool] = []

    async def on_close() -> None:
        closed.append(True)

    group = GroupCommit(recorder.flush, on_close=on_close)
    waiting = asyncio.ensure_future(group.submit([1]))
    await asyncio.sleep(0)

    # When the group is closed while it is in flight
    closing = asyncio.ensure_future(group.close())
    await asyncio.sleep(0)
    assert not closing.done()
    recorder.gate.set()
    await closing

    # Then the waiting one was answered before close returned, and nothing more is taken
    assert waiting.done()
    assert await waiting == [2]
    assert closed == [True]
    with pytest.raises(ClosedError):
        await group.submit([2])


async def test_a_flush_giving_the_wrong_number_of_results_fails_its_submissions() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    group = GroupCommit(short)

    with pytest.raises(RuntimeError, match="2 results for 3 items"):
        await group.submit([1, 2, 3])


async def test_added_items_share_the_flushes_and_close_waits_for_them() -> None:
    # Given a flush in flight
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCommit(recorder.flush)
    group.add([1])
    await asyncio.sleep(0)

    # When more are added, and a caller submits, meanwhile
    group.add([2, 3])
    waiting = asyncio.ensure_future(group.submit([4]))
    await asyncio.sleep(0)
    recorder.gate.set()

    # Then they went in the next flush together, and the caller got its own results
    assert await waiting == [8]
    assert recorder.batches == [[1], [2, 3, 4]]

    # And close flushes what is still added
    recorder.gate.clear()
    group.add([5])
    closing = asyncio.ensure_future(group.close())
    await asyncio.sleep(0)
    assert not closing.done()
    recorder.gate.set()
    await closing
    assert recorder.batches[-1] == [5]
    with pytest.raises(ClosedError):
        group.add([6])


async def test_a_failed_flush_of_added_items_troubles_no_one() -> None:
    recorder = Recorder()
    recorder.error = ConnectionError("broker unreachable")
    group = GroupCommit(recorder.flush)

    group.add([1])
    await group.close()

    assert recorder.batches == [[1]]
