"""Background work in a clean context: nothing inherited from the run that started it.

A task created with ``asyncio.create_task`` copies the context it was created in. The
runtime is often started, and manual runs are often requested, from inside a user's run
(a graph factory, a tool, a server request), whose context holds LangChain's child
config (callbacks, tags, metadata), LangSmith's tracing parent, OpenTelemetry spans and
the server's log context (``run_id``, ``request_id``). Scheduled turns are runs of their
own: they start from an empty context, so none of that leaks into them. The one thing
they carry is whose work they are (:func:`work_of`), so a runtime can tell a call made
from inside its own turns and loops, which its stop would wait for.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["call_clean", "spawn_clean", "work_of"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


_WORK_OF: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "langgraph_scheduler_work_of", default=None
)


def spawn_clean(
    coro: Coroutine[Any, Any, _T],
    *,
    name: str | None = None,
    of: str | None = None,
    on_done: Callable[[asyncio.Task[_T]], object] | None = None,
) -> asyncio.Task[_T]:
    """Run ``coro`` as a task whose context starts empty (not a copy of the caller's),
    as work of the runtime whose holder id is ``of``; ``on_done`` is called with the
    task when it is done, in the task's own context (a callback added without one
    would keep a copy of the caller's context as long as the task runs)."""
    # A copy of one context per runtime: its variables are shared with the template
    # until the task sets its own, so a turn in flight keeps one object for them, not
    # three (see benchmarks/analysis.md, figure 4).
    context = _clean_context(of).copy()
    if sys.version_info >= (3, 11):
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
    else:
        # A task copies the context current at its creation; inside Context().run that
        # is the given one (Python 3.10 has no create_task(context=...)).
        task = context.run(_create_task, coro, name)
    if on_done is not None:
        task.add_done_callback(on_done, context=context)
    return task


_CLEAN: dict[str | None, contextvars.Context] = {}
"""Per holder id, an empty context but for whose work it is: what clean tasks copy."""


def _clean_context(of: str | None) -> contextvars.Context:
    context = _CLEAN.get(of)
    if context is None:
        context = contextvars.Context()
        if of is not None:
            context.run(_WORK_OF.set, of)
        if len(_CLEAN) >= 64:  # runtimes come and go (tests): keep the newest only
            _CLEAN.pop(next(iter(_CLEAN)))
        _CLEAN[of] = context
    return context


def work_of() -> str | None:
    """The holder id of the runtime whose turn or loop the caller runs in (its graph's
    nodes and tools, its listeners), or None."""
    return _WORK_OF.get()


def _create_task(coro: Coroutine[Any, Any, _T], name: str | None) -> asyncio.Task[_T]:
    return asyncio.get_running_loop().create_task(coro, name=name)


def call_clean(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Call ``fn`` in an empty context: callbacks it schedules (timers) start from there."""
    return contextvars.Context().run(fn, *args, **kwargs)
