"""Background work in a clean context: nothing inherited from the run that started it.

A task created with ``asyncio.create_task`` copies the context it was created in. The
runtime is often started, and manual runs are often requested, from inside a user's run
(a graph factory, a tool, a server request), whose context holds LangChain's child
config (callbacks, tags, metadata), LangSmith's tracing parent, OpenTelemetry spans and
the server's log context (``run_id``, ``request_id``). Scheduled turns are runs of their
own: they start from an empty context, so none of that leaks into them. The one thing
they carry is whose work they are (:func:`work_of`), so a runtime can tell a call made
from inside its own turns and loops, which its stop would wait for.

A turn or hold marks the conversation thread it holds in the context too
(:func:`holding`): a node of the turn waiting for that thread (another turn on it, a run
of a task talking there) would wait for its own turn for good, and is refused instead
(:func:`threads_held_here`). A turn of a runtime marks the turn slot it holds the same way
(:func:`mark_slot`): a node of it waiting for a run that needs a slot may wait for its own
turn's (see :func:`slot_here`), and a run it waits for marks the turns waiting for it
(see :func:`turns_waiting_here`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import threading
from collections.abc import Callable, Coroutine, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

__all__ = [
    "acting_for",
    "call_clean",
    "caller",
    "holding",
    "mark_slot",
    "slot_here",
    "spawn_clean",
    "threads_held_here",
    "turns_waiting_here",
    "waiting_in",
    "work_of",
]

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


HeldBy = Literal["turn", "hold", "waiting"]
"""Who holds a thread the caller waiting for it would wait for itself: a turn the caller
runs inside (a node or tool of it), the caller's own ``thread_lock``, or a turn or hold
waiting for the run whose turn the caller runs inside (or for a run waiting for it...)."""


@dataclass(eq=False, slots=True)
class _Held:
    """A conversation thread held by a turn or a hold, while ``live``."""

    scope: Hashable
    thread_id: str
    turn: bool
    by: object
    live: bool


_HELD: contextvars.ContextVar[tuple[_Held, ...]] = contextvars.ContextVar(
    "langgraph_scheduler_held", default=()
)
"""The threads held by the turns and holds the current context runs inside. A context
variable flows where a turn's work goes: the child tasks of its async nodes, and the
worker threads of its sync nodes (LangGraph copies the context into them)."""


@contextlib.contextmanager
def holding(scope: Hashable, thread_id: str, *, turn: bool) -> Iterator[None]:
    """Mark ``thread_id`` held while the block runs, against the runtimes whose stores'
    ``lock_scope`` is ``scope`` (every runtime on one PostgreSQL database).

    Args:
        turn: held by a turn, which waits for everything run in its context (its nodes);
            else by a hold, which only its own caller (task, or OS thread) waits inside: a
            task started inside a hold waits for it as any other caller does.
    """
    held = _Held(scope, thread_id, turn, caller(), True)
    token = _HELD.set((*_HELD.get(), held))
    try:
        yield
    finally:
        held.live = False  # for copies of this context that outlive the block
        with contextlib.suppress(ValueError):  # ended in another context: left, not live
            _HELD.reset(token)


def threads_held_here(scope: Hashable) -> dict[str, HeldBy]:
    """The threads of lock scope ``scope`` (a store's ``lock_scope``) that a turn or hold
    the caller runs inside holds now, or one waiting for the run whose turn the caller
    runs inside (see :class:`Wait`), which a wait of the caller for them would wait for
    itself."""
    held: dict[str, HeldBy] = {}
    me: object = None
    for mark in _HELD.get():
        if not mark.live or mark.scope != scope:
            continue
        if mark.turn:
            held[mark.thread_id] = "turn"
        elif mark.by is (me := me or caller()):
            held.setdefault(mark.thread_id, "hold")
    for slot in _waited_chain(_SLOT.get()):
        wait = slot.waited_by
        for mark in wait.held if wait is not None and wait.live else ():
            if mark.live and mark.scope == scope:
                held.setdefault(mark.thread_id, "waiting")
    return held


@dataclass(eq=False, slots=True)
class Slot:
    """A turn slot of ``owner`` (a runtime's bridge), held by a turn of the task
    ``task_id`` while ``live``; ``waiting``: the callers inside that turn waiting for a
    run meanwhile; ``waited_by``: the wait of a caller inside another turn for this
    turn's run (a waited ``run_now``), or None."""

    owner: object
    task_id: str
    live: bool = True
    waiting: int = 0
    waited_by: Wait | None = None


@dataclass(eq=False, slots=True)
class Wait:
    """A caller inside the turn holding ``slot`` waiting for a run, while ``live``;
    ``held``: the threads that turn, and the caller's own holds, keep held meanwhile."""

    slot: Slot
    live: bool = True
    held: tuple[_Held, ...] = ()


def waiting_in(slot: Slot) -> Wait:
    """The wait of the caller, inside the turn holding ``slot``, for a run (see
    :class:`Wait`): the threads held that the run's turn would wait for."""
    me = caller()
    return Wait(slot, held=tuple(m for m in _HELD.get() if m.turn or m.by is me))


_SLOT: contextvars.ContextVar[Slot | None] = contextvars.ContextVar(
    "langgraph_scheduler_slot", default=None
)
"""The turn slot held by the turn the current context runs inside (a turn starts from a
clean context: it runs inside no other), flowing to its nodes as :data:`_HELD` does."""


def mark_slot(owner: object, task_id: str, *, waited_by: Wait | None = None) -> Slot:
    """Mark the current task as a turn of the task ``task_id`` holding a turn slot of
    ``owner`` (its run waited for by ``waited_by``) and give the mark, to end (``live``
    False) when the turn does. Called in a turn's own task, whose context nothing else
    runs in: nothing to reset."""
    slot = Slot(owner, task_id, waited_by=waited_by)
    _SLOT.set(slot)
    return slot


def slot_here(owner: object) -> Slot | None:
    """The turn slot of ``owner`` that the turn the caller runs inside holds now, or None
    (the caller is in no turn of ``owner``, or the turn ended)."""
    slot = _SLOT.get()
    return slot if slot is not None and slot.live and slot.owner is owner else None


def turns_waiting_here(owner: object) -> list[str]:
    """The tasks whose turns of ``owner`` end only after the caller's wait: the turn it
    runs inside (see :func:`slot_here`) first, then the turn waiting for that turn's run,
    and so on; none outside a turn of ``owner``."""
    return [slot.task_id for slot in _waited_chain(slot_here(owner))]


def _waited_chain(slot: Slot | None) -> Iterator[Slot]:
    """``slot`` (while live), then the slot of the turn waiting for its turn's run (see
    :class:`Wait`), and so on."""
    while slot is not None and slot.live:
        yield slot
        wait = slot.waited_by
        slot = wait.slot if wait is not None and wait.live else None


_FOR: contextvars.ContextVar[tuple[object, asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "langgraph_scheduler_for", default=None
)
"""The caller (see :func:`caller`) that handed the current task its work on the runtime's
loop, with that task (the tasks it starts are callers of their own)."""


@contextlib.contextmanager
def acting_for(handed_by: object) -> Iterator[None]:
    """While entered, the current task, running work handed over to the runtime's loop,
    is ``handed_by`` (the :func:`caller` that handed it) for the holds: a sync
    ``thread_lock`` holds its thread for the calling thread, whose calls run on the loop."""
    task = asyncio.current_task()
    token = _FOR.set(None if task is None else (handed_by, task))
    try:
        yield
    finally:
        _FOR.reset(token)


def caller() -> object:
    """The asyncio task running the caller, or its OS thread outside any task; for work
    handed to the runtime's loop, the caller that handed it over (see :func:`acting_for`)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop runs here
        task = None
    if task is None:
        return threading.current_thread()
    handed = _FOR.get()
    return handed[0] if handed is not None and handed[1] is task else task
