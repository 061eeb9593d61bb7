"""The one source of "now": a clock object every part of the runtime reads.

The default :class:`SystemClock` reads the wall clock and sleeps on the event loop,
ending its waits on time to about 0.1 ms; tests pass
:class:`~langgraph_scheduler.testing.FakeClock` to move time by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]

_TIMER_GRAIN = 3e-3
"""How much of a wait :meth:`SystemClock.sleep` leaves to its thread. The event loop's
timer waits in whole milliseconds (``epoll``, libuv), rounded up, and its wake-ups come
later still on a busy or virtual machine: measured here, 0.8 ms late at the median and
1.6–1.8 ms at the 90th percentile, so with one millisecond left to the thread a third
of the waits had already overrun their deadline when the loop woke."""

_THREAD_LEAD = 4e-4
"""How long before the deadline the thread is asked to wake the loop: a little more than
that wake-up takes (a timed wait's return, ``call_soon_threadsafe``, the loop's turn).
Measured here: asked 0.1 ms ahead, the loop woke 0.15 ms after the deadline at the
median (0.23 ms at the 90th percentile); asked 0.4 ms ahead, 6 µs after it (10 µs). What
is left when the loop runs again is yielded away in passes of the loop, which run
whatever else is ready meanwhile."""


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
    would end it 0–2 ms late (the loop's timer rounds its wait up to whole
    milliseconds, and wakes later still on a busy machine), which is the whole lateness
    budget of a fire.
    """

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, secs: float) -> None:
        """Wait ``secs`` seconds: on the loop's timer up to the last few milliseconds
        (:data:`_TIMER_GRAIN`), then on :data:`_DEADLINES`, whose thread wakes the loop
        just before the deadline (:data:`_THREAD_LEAD`), then yielding to the loop for
        whatever is left. Never returns before ``secs`` passed (monotonic clock); never
        blocks the loop (a blocking sleep on it is refused under ``langgraph dev``, and
        a longer spin would keep the GIL from the store's and the checkpointer's
        threads)."""
        deadline = time.monotonic() + secs
        if secs > _TIMER_GRAIN:
            await asyncio.sleep(secs - _TIMER_GRAIN)
        elif secs <= 0:
            await asyncio.sleep(0)
            return
        if time.monotonic() < deadline - _THREAD_LEAD:
            await _DEADLINES.wait(deadline - _THREAD_LEAD)
        while time.monotonic() < deadline:  # at most the thread's lead, on time or so
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return "SystemClock()"


class _Deadlines:
    """One daemon thread that ends waits at monotonic deadlines, to well under a
    millisecond: it sleeps on a queue with a timeout (the kernel's precision, not the
    loop's) and wakes each waiter's loop with ``call_soon_threadsafe``. Waiters hand
    their deadlines over through a lock-free queue, so the loop never waits on a lock."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[tuple[float, int, asyncio.Future[None]]]
        self._order = itertools.count()

    def wait(self, deadline: float) -> asyncio.Future[None]:
        """A future of the running loop, done once ``time.monotonic()`` reaches
        ``deadline`` (cancelling it is allowed)."""
        if self._thread is None or not self._thread.is_alive():
            # First use, a forked child (its copy of the thread reads as stopped), or a
            # thread that died: a new thread with a new inbox.
            self._inbox = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._run, args=(self._inbox,), name="lgs-clock", daemon=True
            )
            self._thread.start()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.put((deadline, next(self._order), future))
        return future

    @staticmethod
    def _run(inbox: queue.SimpleQueue[tuple[float, int, asyncio.Future[None]]]) -> None:
        waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        while True:
            timeout = max(waiting[0][0] - time.monotonic(), 0.0) if waiting else None
            with contextlib.suppress(queue.Empty):
                heapq.heappush(waiting, inbox.get(timeout=timeout))
            now = time.monotonic()
            while waiting and waiting[0][0] <= now:
                future = heapq.heappop(waiting)[2]
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    future.get_loop().call_soon_threadsafe(_end_wait, future)


def _end_wait(future: asyncio.Future[None]) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(None)


_DEADLINES = _Deadlines()
"""The process's deadline thread (started on first use)."""
