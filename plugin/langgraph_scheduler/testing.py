"""Test helpers shipped with the package: a clock moved by hand, and the scripted model.

Example:
    >>> clock = FakeClock(datetime(2027, 3, 14, 6, 0, tzinfo=timezone.utc))
    >>> async with SchedulerRuntime(graph, database="sqlite://", clock=clock) as rt:
    ...     await rt.create_task(name="t", schedule=Interval(seconds=60), trigger="hi")
    ...     await clock.advance(60)   # the fire is claimed at the new "now"
    ...     await rt.wait_idle()      # its turn ran and its outcome is recorded
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta, timezone

from ._clock import Clock, SystemClock
from .scripted import HANG, ScriptedChatModel, tool_call

__all__ = ["HANG", "Clock", "FakeClock", "ScriptedChatModel", "SystemClock", "tool_call"]


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it.

    ``sleep`` returns once the clock has been advanced past its deadline, so loops that
    wait on this clock (the runtime's claim loop, lease upkeep, retries) run when a test
    moves time, not when real time passes.

    Args:
        start: the initial instant (aware); default: the real current time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError(f"FakeClock needs an aware start time, got {start!r}")
        self._now = start.astimezone(timezone.utc)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, secs: float) -> None:
        if secs <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + timedelta(seconds=secs)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def advance(self, secs: float = 0.0) -> None:
        """Move time forward by ``secs`` and let every sleeper due by then run."""
        if secs < 0:
            raise ValueError(f"a clock cannot go back: advance({secs})")
        await self.set(self._now + timedelta(seconds=secs))

    async def set(self, when: datetime) -> None:
        """Move time forward to ``when`` (aware) and let the sleepers due by then run."""
        when = when.astimezone(timezone.utc)
        if when < self._now:
            raise ValueError(f"a clock cannot go back: {when} is before {self._now}")
        self._now = when
        while self._sleepers and self._sleepers[0][0] <= when:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        # Let woken coroutines run up to their next wait.
        for _ in range(3):
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
