"""The runtime's listeners (``on_run``, ``on_event``), told without holding up a fire.

A plain function is called on the spot, on the runtime's loop, when a record or event is
stored (keep it short: it holds the loop). A coroutine function's call runs as a task of
its own: a listener that waits (a push service that does not answer) delays itself,
never the turn slot, the claim pass or the upkeep that told it. :meth:`Listeners.drain`,
at a stop, waits for those calls up to a deadline, then cancels what still runs and logs
what it was not told.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._context import spawn_clean
from .models import TaskEvent, TaskRunRecord

__all__ = ["LISTENER_GRACE_SECS", "EventListener", "Listeners", "RunListener"]

logger = logging.getLogger("langgraph_scheduler")

RunListener = Callable[[TaskRunRecord], Awaitable[None] | None]
EventListener = Callable[[TaskEvent], Awaitable[None] | None]

LISTENER_GRACE_SECS = 1.0
"""How long a stop waits at least for listener calls in flight, past its drain deadline
if need be: a record the stop itself makes (a turn it interrupted) is still told to a
quick coroutine listener with ``drain_timeout_secs=0``."""


class Listeners:
    """The runtime's run and event listeners, and their coroutine calls in flight.

    Args:
        of: the runtime's holder id: listener calls are its work (see
            :func:`~._context.work_of`), so a stop called from one raises.
    """

    def __init__(self, *, of: str) -> None:
        self.runs: list[RunListener] = []
        self.events: list[EventListener] = []
        self._of = of
        self._calls: dict[asyncio.Task[Any], tuple[Callable[[Any], Any], Any]] = {}
        """Coroutine calls in flight, each with its listener and what it is told."""
        self._on_call_done = self._call_done
        """One bound method for every call's done callback, not one per call."""

    def tell_run(self, record: TaskRunRecord) -> None:
        """Tell the run listeners of a finished record."""
        self._tell(self.runs, record)

    def tell_event(self, event: TaskEvent) -> None:
        """Tell the event listeners of a task event."""
        self._tell(self.events, event)

    def _tell(self, listeners: list[Any], item: TaskRunRecord | TaskEvent) -> None:
        for listener in listeners:
            try:
                answer = listener(item)
            except Exception:
                logger.exception("listener %r failed", listener)
                continue
            if inspect.isawaitable(answer):
                coro = answer if inspect.iscoroutine(answer) else _awaited(answer)
                task = spawn_clean(coro, of=self._of, on_done=self._on_call_done)
                self._calls[task] = (listener, item)

    def _call_done(self, task: asyncio.Task[Any]) -> None:
        listener, _ = self._calls.pop(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("listener %r failed", listener, exc_info=exc)

    @property
    def busy(self) -> bool:
        """True while a coroutine listener call runs."""
        return bool(self._calls)

    async def wait(self) -> None:
        """Wait until no coroutine listener call runs (those they lead to included)."""
        while self._calls:
            await asyncio.wait(set(self._calls))

    async def drain(self, secs: float) -> None:
        """Wait up to ``secs`` (at least :data:`LISTENER_GRACE_SECS`) for the calls in
        flight to end, then cut short those still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(secs, LISTENER_GRACE_SECS)
        while self._calls and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._calls), timeout=left)
        if self._calls:
            self.cut_short()
            await asyncio.sleep(0)  # each call meets its cancellation before the store closes

    def cut_short(self) -> None:
        """Cancel the calls still running, logging which records and events they were
        not told (the store has them all)."""
        running = {task: told for task, told in self._calls.items() if not task.done()}
        if not running:  # ended meanwhile, their done callbacks still to come
            return
        told = [item for _, item in running.values()]
        runs = sorted({i.run_id for i in told if isinstance(i, TaskRunRecord)})
        events = sorted({f"{i.kind} of {i.task_id}" for i in told if isinstance(i, TaskEvent)})
        logger.warning(
            "the runtime stopped with %d listener call(s) still running, now cancelled: "
            "not told of runs %s, nor of events %s (their records are stored)",
            len(running),
            ", ".join(runs) or "(none)",
            ", ".join(events) or "(none)",
        )
        for task in running:
            task.cancel()


async def _awaited(answer: Awaitable[Any]) -> None:
    """A listener's answer that is awaitable but no coroutine (a future), as one."""
    await answer
