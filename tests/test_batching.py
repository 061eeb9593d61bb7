"""Group commit: what fires due together share, and what one bad item may not spoil."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from langgraph_scheduler._batching import Batcher

from .helpers import until


class Recorder:
    """A batch function that records the batches it was given, and the task each ran in.
    It always yields to the event loop once, as a store call on a file or a server does."""

    def __init__(
        self,
        *,
        fail_on: int | None = None,
        pause: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.batches: list[list[int]] = []
        self.tasks: list[asyncio.Task[object] | None] = []
        self.fail_on = fail_on
        self.pause = pause
        self.gate = gate
        """If given, each batch waits for it to be set (after its pause)."""

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(self.pause)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item * 10 for item in items]


async def test_a_lone_request_runs_at_once_in_its_callers_task() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    caller = asyncio.ensure_future(batcher.submit(7))
    assert await caller == 70
    assert run.batches == [[7]] and run.tasks == [caller]


async def test_requests_made_while_one_runs_share_the_next_batch() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert run.batches == [[0], [1, 2, 3, 4]]


async def test_a_lone_request_is_not_held_back_and_later_ones_form_the_next_batch() -> None:
    release = asyncio.Event()
    run = Recorder(gate=release)
    batcher: Batcher[int, int] = Batcher(run)
    first = asyncio.ensure_future(batcher.submit(1))
    await until(lambda: run.batches, "the first batch running")
    later = asyncio.gather(batcher.submit(2), batcher.submit(3))
    await until(lambda: len(batcher._pending) == 2, "the later requests queued behind it")
    release.set()
    assert await first == 10 and list(await later) == [20, 30]
    assert run.batches == [[1], [2, 3]]


async def test_one_bad_item_fails_only_its_own_caller() -> None:
    run = Recorder(fail_on=2)
    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[1] == 10 and results[3] == 30
    assert isinstance(results[2], ValueError) and "bad item 2" in str(results[2])
    # The batch failed as a whole, then each of its items ran alone.
    assert run.batches == [[0], [1, 2, 3], [1], [2], [3]]


async def test_a_lone_bad_item_fails_its_caller_and_not_the_next_batch() -> None:
    run = Recorder(fail_on=0)
    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert isinstance(results[0], ValueError) and results[1:] == [10, 20]
    assert run.batches == [[0], [1, 2]]


async def test_batches_are_capped() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert run.batches == [[0], [1, 2], [3, 4]]


async def test_a_cancelled_flush_leaves_no_caller_waiting_forever() -> None:
    run = Recorder(pause=10)
    batcher: Batcher[int, int] = Batcher(run)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(4)]
    await asyncio.sleep(0.01)
    assert run.batches == [[0]] and batcher._flusher is None  # the lone one, in its caller
    waiting[0].cancel()  # its caller goes: the requests queued meanwhile get their flush
    await asyncio.sleep(0.01)
    flusher = batcher._flusher
    assert flusher is not None and run.batches == [[0], [1, 2, 3]]
    flusher.cancel()
    done, pending = await asyncio.wait(waiting, timeout=1)
    assert not pending
    for future in done:
        with pytest.raises(asyncio.CancelledError):
            future.result()


async def test_requests_queued_behind_a_stuck_run_run_beside_it_after_the_patience() -> None:
    # A run that waits (a task's row another session holds locked) held up every
    # request behind it. With a patience, each runs alone beside it once the stuck run
    # has been in flight that long; the stuck one still gets its own result.
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if 1 in items:
            await release.wait()
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(run, patience=0.05)
    stuck = asyncio.ensure_future(batcher.submit(1))
    while not batches:  # the stuck run is in flight
        await asyncio.sleep(0)
    behind = asyncio.gather(batcher.submit(2), batcher.submit(3))
    assert list(await asyncio.wait_for(behind, 30)) == [20, 30]
    assert not stuck.done()
    release.set()
    assert await stuck == 10
    assert sorted(batches) == [[1], [2], [3]]  # each alone, in whichever order
