"""The one source of "now": a clock object every part of the runtime reads.

The default :class:`SystemClock` reads the wall clock and sleeps on the event loop;
tests pass :class:`~langgraph_scheduler.testing.FakeClock` to move time by hand.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


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
    """The wall clock (UTC) and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, secs: float) -> None:
        await asyncio.sleep(max(secs, 0.0))

    def __repr__(self) -> str:
        return "SystemClock()"
