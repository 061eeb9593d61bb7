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
import contextlib
import heapq
import itertools
import math
import threading
from datetime import datetime, timedelta, timezone

from ._clock import Clock, SystemClock
from ._validated import kind_of
from .scripted import HANG, ScriptedChatModel, tool_call

__all__ = ["HANG", "Clock", "FakeClock", "ScriptedChatModel", "SystemClock", "tool_call"]


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it.

    ``sleep`` returns once the clock has been advanced past its deadline, so loops that
    wait on this clock (the runtime's claim loop, lease upkeep, retries) run when a test
    moves time, not when real time passes. It may be moved from another thread than the
    one its sleepers wait on: a test of a ``SyncSchedulerRuntime`` moves it with
    ``asyncio.run(clock.advance(60))``.

    Args:
        start: the initial instant (aware); default: the real current time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(timezone.utc)
        self._now = _aware(start, "FakeClock needs an aware start time")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        # The sleepers wait on the runtime's loop; a test may move time from its own thread.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, secs: float) -> None:
        if math.isnan(secs):
            raise ValueError(f"sleep({secs}) is not a number of seconds")
        if secs <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            try:
                deadline = self._now + timedelta(seconds=secs)
            except OverflowError:  # past the year 9999: no advance ever reaches it
                deadline = datetime.max.replace(tzinfo=timezone.utc)
            heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def advance(self, secs: float | timedelta = 0.0) -> None:
        """Move time forward by ``secs`` (seconds, or a ``timedelta``) and let every
        sleeper due by then run.

        Raises:
            TypeError: ``secs`` is neither a number nor a ``timedelta``.
            ValueError: ``secs`` is negative, not a finite number, or moves the clock
                past the year 9999.
        """
        if isinstance(secs, bool) or not isinstance(secs, int | float | timedelta):
            shown = "" if secs is None else f" {secs!r}"
            raise TypeError(
                f"FakeClock.advance takes seconds (a number) or a timedelta, got "
                f"{kind_of(secs)}{shown}"
            )
        if not isinstance(secs, timedelta) and not math.isfinite(secs):
            raise ValueError(f"advance({secs}) is not a number of seconds")
        if (secs < timedelta(0)) if isinstance(secs, timedelta) else (secs < 0):
            raise ValueError(f"a clock cannot go back: advance({secs})")
        try:
            when = self._now + (secs if isinstance(secs, timedelta) else timedelta(seconds=secs))
        except OverflowError:
            raise ValueError(
                f"advance({secs}) moves the clock past the year 9999, the end of datetime"
            ) from None
        await self.set(when)

    async def set(self, when: datetime) -> None:
        """Move time forward to ``when`` (aware) and let the sleepers due by then run.

        Raises:
            TypeError: ``when`` is not a datetime.
            ValueError: ``when`` is naive, or before the clock's time.
        """
        when = _aware(when, "FakeClock.set needs an aware time")
        with self._lock:
            if when < self._now:
                raise ValueError(f"a clock cannot go back: {when} is before {self._now}")
            self._now = when
            due = []
            while self._sleepers and self._sleepers[0][0] <= when:
                due.append(heapq.heappop(self._sleepers)[2])
        for future in due:
            _wake(future)
        # Let woken coroutines run up to their next wait.
        for _ in range(3):
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


def _aware(when: datetime, what: str) -> datetime:
    """``when`` in UTC; a naive time is refused (it would be read in the machine's zone)."""
    if not isinstance(when, datetime):
        shown = "" if when is None else f" {when!r}"  # "None" says it all
        raise TypeError(f"{what}: a datetime, got {kind_of(when)}{shown}")
    if when.utcoffset() is None:
        raise ValueError(f"{what}, got {when!r}: add tzinfo=timezone.utc")
    return when.astimezone(timezone.utc)


def _wake(future: asyncio.Future[None]) -> None:
    """End a sleep, on its own loop's thread when that is not this one."""
    loop = future.get_loop()
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if loop is here:
        if not future.done():
            future.set_result(None)
        return
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits on it
        loop.call_soon_threadsafe(_end, future)


def _end(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
