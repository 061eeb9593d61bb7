"""Group commit: what fires due together share, and what one bad item may not spoil."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from langgraph_scheduler._batching import Batcher


class Recorder:
    """A batch function that records the batches it was given."""

    def __init__(self, *, fail_on: int | None = None, pause: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.pause = pause

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if self.pause:
            await asyncio.sleep(self.pause)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [item * 10 for item in items]


async def test_requests_made_together_share_one_batch_and_get_their_own_result() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_a_lone_request_is_not_held_back_and_later_ones_form_the_next_batch() -> None:
    run = Recorder(pause=0.05)
    batcher: Batcher[int, int] = Batcher(run)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)  # the first batch is running now
    later = await asyncio.gather(batcher.submit(2), batcher.submit(3))
    assert await first == 10 and later == [20, 30]
    assert run.batches == [[1], [2, 3]]


async def test_one_bad_item_fails_only_its_own_caller() -> None:
    run = Recorder(fail_on=2)
    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert results[0] == 0 and results[1] == 10 and results[3] == 30
    assert isinstance(results[2], ValueError) and "bad item 2" in str(results[2])
    # The batch failed as a whole, then each item ran alone.
    assert run.batches == [[0, 1, 2, 3], [0], [1], [2], [3]]


async def test_batches_are_capped() -> None:
    run = Recorder()
    batcher: Batcher[int, int] = Batcher(run, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert run.batches == [[0, 1], [2, 3], [4]]


async def test_a_cancelled_flush_leaves_no_caller_waiting_forever() -> None:
    run = Recorder(pause=10)
    batcher: Batcher[int, int] = Batcher(run)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    flusher = batcher._flusher
    assert flusher is not None
    flusher.cancel()
    done, pending = await asyncio.wait(waiting, timeout=1)
    assert not pending
    for future in done:
        with pytest.raises(asyncio.CancelledError):
            future.result()
