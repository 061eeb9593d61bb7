"""The one source of "now": a clock object every part of the runtime reads.

The default :class:`SystemClock` reads the wall clock and sleeps on the event loop,
ending its waits on time to about 0.1 ms; tests pass
:class:`~langgraph_scheduler.testing.FakeClock` to move time by hand.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]

_TIMER_GRAIN = 1e-3
"""The event loop's timer waits in whole milliseconds (``epoll``) and so ends up to one
late: :meth:`SystemClock.sleep` waits its last millisecond in the kernel instead."""


@runtime_checkable
class Clock(Protocol):
    """What the runtime needs of time: the current instant and a way to wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    async def sleep(self, secs: float) -> None:
        """Wait ``secs`` seconds of this clock's time."""
        ...


class SystemClock:
    """The wall clock (UTC) and ``asyncio.sleep``, ended on time.

    A fire's turn waits for its instant with :meth:`sleep`; ``asyncio.sleep`` alone
    would end it 0–1 ms late (the loop's timer rounds its wait up to whole
    milliseconds), which is half the lateness budget of a fire.
    """

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, secs: float) -> None:
        """Wait ``secs`` seconds on the loop, all but the last fraction of a millisecond,
        which is slept in the kernel (``time.sleep`` ends within about 0.1 ms); never
        returns before ``secs`` passed on the loop's monotonic clock.

        Holding the loop for that fraction is the cheaper way to be on time: yielding
        to the loop until the deadline instead would spin and keep the GIL from the
        threads the store and the checkpointer work in.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + secs
        await asyncio.sleep(max(secs - _TIMER_GRAIN, 0.0))
        left = deadline - loop.time()
        if left > 0:
            time.sleep(left)

    def __repr__(self) -> str:
        return "SystemClock()"
