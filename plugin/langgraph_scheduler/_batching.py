"""Group commit: requests made in the same moment share one database transaction.

A burst of due fires (a thousand reminders at 09:00) would otherwise pay a transaction
each for loading its task, claiming the fire and recording the outcome. A
:class:`Batcher` adds no wait to a lone request: with nothing in flight it runs at once,
in its caller's task (no task to start, no turn of the event loop to wait for), and
whatever arrives while it runs goes into the next batch, which a flush task runs.
A run stuck for longer than a patience (a row another session holds locked) no longer
holds up what arrives behind it: each such item runs alone, beside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

logger = logging.getLogger("langgraph_scheduler")

_I = TypeVar("_I")
_O = TypeVar("_O")
_T = TypeVar("_T")


class Batcher(Generic[_I, _O]):
    """Collects items and runs them through ``run`` together, one result per item.

    If a batch of several items fails, each item is retried alone, so one bad item
    cannot fail the others; a lone item's exception goes to its caller.

    Args:
        run: handles a batch; returns one result per item, in order.
        max_batch: most items per call of ``run``.
        patience: seconds a queued item waits for a run in flight that started longer
            ago than that before it runs alone, beside it (None: it waits for it).
    """

    def __init__(
        self,
        run: Callable[[Sequence[_I]], Awaitable[Sequence[_O]]],
        *,
        max_batch: int = 500,
        patience: float | None = None,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._patience = patience
        self._pending: list[tuple[_I, asyncio.Future[_O]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._alone = False
        """A lone item is running in its caller's task."""
        self._since = 0.0
        """When the run the queue waits for (the lone item's, or the flush's) started."""

    async def submit(self, item: _I) -> _O:
        """Run ``item`` at once if nothing is in flight, else queue it for the next batch;
        wait for its result either way."""
        if self._flusher is None and not self._alone:
            self._alone = True
            self._since = asyncio.get_running_loop().time()
            try:
                (result,) = await self._run([item])
                return result
            finally:
                self._alone = False
                if self._pending:  # what arrived meanwhile
                    self._flusher = asyncio.ensure_future(self._flush())
        # A flush or a lone item is in flight: it starts the flush of this one.
        queued: tuple[_I, asyncio.Future[_O]] = (item, asyncio.get_running_loop().create_future())
        self._pending.append(queued)
        if self._patience is None or not await self._outwaited(queued):
            return await queued[1]
        (result,) = await self._run([item])  # beside the stuck run, which it does not time
        return result

    async def _outwaited(self, queued: tuple[_I, asyncio.Future[_O]]) -> bool:
        """Wait until ``queued`` leaves the queue: True if it left it to run alone, the
        run in flight having started longer ago than the patience; False if a batch
        took it."""
        assert self._patience is not None
        loop = asyncio.get_running_loop()
        try:
            while (at := _index(self._pending, queued)) is not None:
                left = self._since + self._patience - loop.time()
                if left <= 0:
                    del self._pending[at]
                    logger.debug("a run in flight is stuck; running an item beside it")
                    return True
                await asyncio.wait([queued[1]], timeout=left)
        except asyncio.CancelledError:
            queued[1].cancel()  # as a cancelled wait for it would (its batch still runs it)
            raise
        return False

    async def aclose(self) -> None:
        """Wait for the batch in flight (if any) to finish (a lone item's is its
        caller's to wait for)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        batch: list[tuple[_I, asyncio.Future[_O]]] = []
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._run_batch(batch)
        except asyncio.CancelledError:
            # The loop is going away: nobody may wait forever for a batch that never runs.
            for _, future in batch + self._pending:
                future.cancel()
            self._pending.clear()
            raise
        finally:
            self._flusher = None

    async def _run_batch(self, batch: list[tuple[_I, asyncio.Future[_O]]]) -> None:
        self._since = asyncio.get_running_loop().time()
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            logger.debug("batch of %d failed (%r); running its items one by one", len(batch), exc)
            for single in batch:
                await self._run_batch([single])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _index(items: list[_T], wanted: _T) -> int | None:
    """Where ``wanted`` itself (not an equal item) is in ``items``; None: nowhere."""
    return next((i for i, item in enumerate(items) if item is wanted), None)


def _settle(
    future: asyncio.Future[_O], *, result: _O | None = None, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller gave up waiting (cancelled)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
