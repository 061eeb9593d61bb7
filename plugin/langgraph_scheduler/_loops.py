"""Calling a runtime from another thread or another event loop.

A runtime's store, locks and timers belong to the event loop it was started on. Work
from anywhere else (a sync script, a sync tool call, an async tool awaited on a second
loop) is handed to that loop and waited for, with the caller's context variables (so
LangGraph's ``interrupt()`` and run config still work inside), never run beside it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._context import acting_for, caller

__all__ = ["LOOP_GRACE_SECS", "call_blocking", "call_on_loop", "running_loop_of"]

_T = TypeVar("_T")

LOOP_GRACE_SECS = 10.0
"""How long a blocking call waits for the runtime's loop to take up its work. A loop that
does not take it up in this time is blocked, most likely by the caller itself (a sync
``graph.invoke`` on the thread that runs the loop): the call fails instead of hanging."""


def running_loop_of(runtime: Any) -> asyncio.AbstractEventLoop | None:
    """The loop a started runtime runs on; None when there is none to hand work to."""
    loop: asyncio.AbstractEventLoop | None = getattr(runtime, "loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


async def call_on_loop(
    loop: asyncio.AbstractEventLoop | None, work: Callable[[], Awaitable[_T]]
) -> _T:
    """Await ``work()`` on ``loop``: here when it is the current loop (or None), else
    handed over. Cancelling the caller cancels the work."""
    if loop is None or loop is asyncio.get_running_loop():
        return await work()
    future = asyncio.run_coroutine_threadsafe(_call(work, caller()), loop)
    return await asyncio.wrap_future(future)


def call_blocking(
    loop: asyncio.AbstractEventLoop | None,
    work: Callable[[], Awaitable[_T]],
    *,
    what: str,
    grace_secs: float | None = None,
) -> _T:
    """Run ``work()`` on ``loop`` and block this thread until it is done.

    With no loop (the runtime is not running) the work runs on a loop of its own, where it
    fails with the runtime's own :class:`~langgraph_scheduler.errors.NotRunning` message.

    Args:
        loop: the runtime's loop.
        work: makes the coroutine; called on ``loop``.
        what: the caller's name for error messages ("the list_tasks tool").
        grace_secs: how long ``loop`` may take to start the work (default
            :data:`LOOP_GRACE_SECS`).

    Raises:
        RuntimeError: called on the thread that runs ``loop`` (blocking it would deadlock),
            or ``loop`` did not start the work within ``grace_secs``; the message names
            the fix.
    """
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is None:
        if current is None:
            return asyncio.run(_call(work))
        # A loop runs here (not the runtime's): run the work on a loop of its own thread.
        context = contextvars.copy_context()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(context.run, asyncio.run, _call(work)).result()
    if loop is current:
        raise RuntimeError(
            f"{what} was called synchronously on the thread that runs the scheduler's event "
            "loop, which it would block for good: there, use the async API ('await "
            "graph.ainvoke(...)', 'await tool.ainvoke(...)', 'await runtime...'), or run the "
            "scheduler with SyncSchedulerRuntime, whose loop has a thread of its own"
        )
    grace = LOOP_GRACE_SECS if grace_secs is None else grace_secs
    handed_by = caller()
    gate = threading.Lock()
    started = threading.Event()
    abandoned = False

    async def guarded() -> _T:
        with gate:
            if abandoned:
                raise asyncio.CancelledError
            started.set()
        with acting_for(handed_by):
            return await work()

    future = asyncio.run_coroutine_threadsafe(guarded(), loop)
    try:
        taken_up = started.wait(grace)
    except BaseException:  # e.g. Ctrl-C before the loop took the work up: never run it
        with gate:
            abandoned = not started.is_set()
        future.cancel()
        raise
    if not taken_up:
        with gate:
            abandoned = not started.is_set()
        if abandoned:
            raise RuntimeError(
                f"{what} waited {grace:g}s for the scheduler's event loop, which did not "
                "respond: something blocks it, most likely this very call (a sync "
                "'graph.invoke' or tool call made from the thread that runs the loop, as in "
                "a Jupyter cell or an async handler). Use 'await graph.ainvoke(...)' there, "
                "or SyncSchedulerRuntime. Nothing was done."
            )
    try:
        return future.result()
    except BaseException:
        future.cancel()  # e.g. Ctrl-C while waiting: stop the work too
        raise


async def _call(work: Callable[[], Awaitable[_T]], handed_by: object = None) -> _T:
    """``work()``, on the loop it was handed to, as ``handed_by``'s (see
    :func:`~._context.acting_for`)."""
    if handed_by is None:
        return await work()
    with acting_for(handed_by):
        return await work()
