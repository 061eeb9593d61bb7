"""Background work in a clean context: nothing inherited from the run that started it.

A task created with ``asyncio.create_task`` copies the context it was created in. The
runtime is often started, and manual runs are often requested, from inside a user's run
(a graph factory, a tool, a server request), whose context holds LangChain's child
config (callbacks, tags, metadata), LangSmith's tracing parent, OpenTelemetry spans and
the server's log context (``run_id``, ``request_id``). Scheduled turns are runs of their
own: they start from an empty context, so none of that leaks into them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["call_clean", "spawn_clean"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


def spawn_clean(coro: Coroutine[Any, Any, _T], *, name: str | None = None) -> asyncio.Task[_T]:
    """Run ``coro`` as a task whose context starts empty (not a copy of the caller's)."""
    # A task copies the context current at its creation; inside Context().run that is
    # the fresh, empty one (Python 3.10 has no create_task(context=...)).
    return contextvars.Context().run(_create_task, coro, name)


def _create_task(coro: Coroutine[Any, Any, _T], name: str | None) -> asyncio.Task[_T]:
    return asyncio.get_running_loop().create_task(coro, name=name)


def call_clean(fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Call ``fn`` in an empty context: callbacks it schedules (timers) start from there."""
    return contextvars.Context().run(fn, *args, **kwargs)
