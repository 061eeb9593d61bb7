"""The runtime for code without asyncio: scripts, Flask or Django views, sync agents.

:class:`SyncSchedulerRuntime` starts a :class:`~langgraph_scheduler.runtime.SchedulerRuntime`
on an event loop of its own, in a background thread, and offers the same methods as plain
functions: each call is handed to that loop and waited for.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from ._context import holding
from ._loops import LOOP_GRACE_SECS, call_blocking
from ._service import check_id
from .errors import NotRunning
from .runtime import (
    EventListener,
    GraphInput,
    RunListener,
    SchedulerRuntime,
    _check_seconds,
    refuse_waiting_for_itself,
)

__all__ = ["SyncSchedulerRuntime"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _blocking(
    method: Callable[Concatenate[SchedulerRuntime, _P], Coroutine[Any, Any, _R]],
    *,
    run: bool = False,
) -> Callable[Concatenate[SyncSchedulerRuntime, _P], _R]:
    """The sync twin of a runtime method: same arguments, same result, same errors.
    ``run``: the method waits for a run, which a stop ends (see ``_runs``)."""

    @functools.wraps(method)
    def call(self: SyncSchedulerRuntime, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        runtime = self.runtime
        return self._call(lambda: method(runtime, *args, **kwargs), method.__name__, run=run)

    call.__qualname__ = f"SyncSchedulerRuntime.{method.__name__}"
    return call


class SyncSchedulerRuntime:
    """A :class:`~langgraph_scheduler.runtime.SchedulerRuntime` for synchronous code.

    The runtime runs on an event loop in a background thread, started and stopped with
    this object; every method below is the runtime's method of the same name, called as
    a plain function (``invoke`` is ``ainvoke``). It works where no event loop runs
    (scripts, WSGI apps) and where one does (Jupyter): the runtime never uses the
    caller's loop.

    Args:
        graph: what :class:`SchedulerRuntime` takes (a factory receives the async
            runtime), or a ``SchedulerRuntime`` not yet started, to run it this way.
        **options: the keyword arguments of :class:`SchedulerRuntime` (``database``,
            ``timezone``, ``max_concurrency``, ``on_run``, …).

    Example:
        >>> with SyncSchedulerRuntime(graph, database="sqlite:///scheduler.db") as rt:
        ...     task = rt.create_task(
        ...         name="standup",
        ...         schedule=Cron("0 9 * * 1-5", tz="Europe/Berlin"),
        ...         trigger="Summarise yesterday's notes",
        ...         thread_id="alice-main",
        ...     )
        ...     record = rt.run_now(task.id)

    Note:
        Listeners (``on_run``, ``on_event``) and the graph's async nodes and tools run on
        the runtime's thread. Keep them short, and call the async runtime there
        (``await rt.runtime.get_task(...)``): a blocking method of this object called
        from that thread would block the loop it waits for, so it raises instead. Sync
        nodes and tools run on the loop's worker threads, where this object's methods
        work (but for a turn, a ``thread_lock`` or a waited ``run_now`` of a task on the
        node's own conversation thread, which would wait for the turn the node is in, and
        a waited ``run_now`` no turn slot could come free for, as with
        ``max_concurrency=1``: they raise ``RuntimeError`` at once;
        ``run_now(..., wait=False)`` works).

    Warning:
        Call :meth:`stop` (or use ``with``): it lets running turns finish, the runtime's
        and the calls other threads are making through this object. A runtime still
        running when the interpreter exits is stopped then, the same way. A process
        forked from this one (``multiprocessing`` on Linux) has no copy of the
        runtime's thread: calls there raise :class:`NotRunning`, and its exit leaves the
        runtime to this process.
    """

    def __init__(
        self,
        graph: GraphInput | Callable[[SchedulerRuntime], GraphInput] | SchedulerRuntime | None,
        **options: Any,
    ) -> None:
        if isinstance(graph, SchedulerRuntime):
            if options:
                raise TypeError(
                    "pass either a SchedulerRuntime or a graph with options, not both: "
                    f"got options {sorted(options)}"
                )
            self.runtime = graph
        else:
            self.runtime = SchedulerRuntime(graph, **options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        """The process that started the runtime (a forked child has no copy of its thread)."""
        self._stopped = False
        # One start or stop at a time: a second stop() waits for the first to finish.
        self._lifecycle = threading.Lock()
        self._lifecycle_owner: int | None = None
        """The thread in :meth:`start` or :meth:`stop` now: a stop re-entered on it (from a
        signal handler) cannot wait for that call, which resumes only after it."""
        # Guards the two below: calls are admitted, and counted, until a stop begins.
        self._gate = threading.Condition()
        self._stopping = False
        self._starting = False
        """A start is under way: calls from other threads wait for it to end."""
        self._admitted = 0
        # On the loop only: the work of the calls under way (and threads held), each with
        # the thread it was called from, which a stop waits for; and whether it has
        # stopped waiting.
        self._calls: dict[asyncio.Task[Any], int] = {}
        self._holding: set[asyncio.Task[Any]] = set()
        """The calls above that hold a thread (``thread_lock``)."""
        self._runs: set[asyncio.Task[Any]] = set()
        """The calls above that wait for a run (``run_now``): the runtime's stop ends
        that run, and they then raise its error, naming the run."""
        self._drained = False

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> SyncSchedulerRuntime:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._forked() and self.runtime.running

    def start(self) -> None:
        """Start the event loop's thread and the runtime on it. Calls other threads make
        meanwhile wait for the start to end (a web app may take requests while it opens
        the store).

        Raises:
            NotRunning: this object was started before (make a new one).
        """
        with self._lifecycle:
            self._lifecycle_owner = threading.get_ident()
            try:
                self._start()
            finally:
                self._lifecycle_owner = None

    def _start(self) -> None:
        if self._thread is not None or self._stopped:
            raise NotRunning("this SyncSchedulerRuntime was started before; make a new one")
        with self._gate:
            self._starting = True
        try:
            self._start_runtime()
        finally:
            with self._gate:
                self._starting = False
                self._gate.notify_all()

    def _start_runtime(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=_serve, args=(loop, ready), name="langgraph-scheduler", daemon=True
        )
        thread.start()
        ready.wait()
        with self._gate:
            # A stop from a signal handler on this thread, before the loop was ours to
            # stop, marked this object stopped: the runtime must not start after it.
            cut_short = self._stopped
            if not cut_short:
                self._thread, self._loop, self._pid = thread, loop, os.getpid()
        if cut_short:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            raise NotRunning(_STOPPED_WHILE_STARTING)
        try:
            asyncio.run_coroutine_threadsafe(self.runtime.start(), loop).result()
        except BaseException as error:
            cut_short = self._loop is None  # by a stop from a signal handler, just now
            self._close_loop()
            if cut_short and isinstance(error, concurrent.futures.CancelledError):
                raise NotRunning(_STOPPED_WHILE_STARTING) from None
            raise
        _stop_at_exit(self)

    def stop(self, *, drain_timeout_secs: float | None = None) -> None:
        """Stop the runtime, then its loop and thread.

        Calls other threads are making through this object (``invoke``, ``run_now``, a
        held ``thread_lock``, …) and the runtime's turns may finish up to the drain
        timeout (the runtime's ``drain_timeout_secs`` unless given); calls still running
        then are cancelled and raise :class:`NotRunning`, as do calls made once the stop
        began. A stop called meanwhile from another thread waits for this one, and one
        called while another thread runs :meth:`start` waits for the start, then stops
        what it started; one called on this thread (a signal handler's, Ctrl-C again)
        cuts it short, as does one called during :meth:`start` there, which then raises
        :class:`NotRunning`; calling it after does nothing, as does calling it in a
        process forked from the one that started the runtime (the runtime runs on
        there). ``math.inf`` waits for the calls and turns however long they take.

        Raises:
            InvalidTask: ``drain_timeout_secs`` is no number of seconds, 0 or more (the
                runtime runs on).
        """
        if drain_timeout_secs is not None:
            _check_seconds("drain_timeout_secs", drain_timeout_secs)
        if self._forked():
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "SyncSchedulerRuntime.stop() was called on the runtime's own thread (from a "
                "listener or a node), where it would wait for itself: call it from elsewhere, "
                "or 'await rt.runtime.stop()' there"
            )
        if self._lifecycle_owner == threading.get_ident():
            # A signal handler's stop (Ctrl-C again) while this thread's start or stop
            # waits: that call resumes only once this returns, so cut it short now (the
            # runtime's stop, cancelled, records its turns interrupted and closes the store).
            self._close_loop(settle=False)
            return
        # A start under way on another thread holds the lock until it ends (its loop may
        # not exist yet): this stop waits for it, then stops what it started.
        with self._lifecycle:
            loop = self._loop
            if loop is None:
                return
            self._lifecycle_owner = threading.get_ident()
            with self._gate:
                self._stopping = True
            _RUNNING.discard(self)
            drained = False
            try:
                drain = self._drain(drain_timeout_secs, threading.get_ident())
                asyncio.run_coroutine_threadsafe(drain, loop).result()
                drained = True
            except concurrent.futures.CancelledError:
                if self._loop is not None:
                    raise
                # cut short by a stop from a signal handler: stopped, as asked
            finally:
                self._lifecycle_owner = None
                self._close_loop(settle=drained)

    async def _drain(self, drain_timeout_secs: float | None, stopper: int) -> None:
        """On the loop: let the calls under way finish up to the deadline, cancel the
        rest, then stop the runtime with the time left (the store must outlive them).
        A thread the stopping thread holds itself is not waited for: it cannot end."""
        loop = asyncio.get_running_loop()
        secs = self.runtime.drain_timeout_secs if drain_timeout_secs is None else drain_timeout_secs
        deadline = loop.time() + secs
        while (others := {call for call, caller in self._calls.items() if caller != stopper}) and (
            left := deadline - loop.time()
        ) > 0:
            await asyncio.wait(others, timeout=left)
        self._drained = True
        # A thread another thread still holds is left held: its block may still run, so
        # the runtime's stop keeps it taken until its lease runs out (cancelled with
        # the loop, it frees nothing once the store is closed).
        late = {
            c for c, caller in self._calls.items() if c not in self._holding or caller == stopper
        }
        runs = late & self._runs  # the runtime's stop interrupts their runs and says which
        for call in late - runs:
            call.cancel()
        await asyncio.gather(*(late - runs), return_exceptions=True)
        await self.runtime.stop(drain_timeout_secs=max(0.0, deadline - loop.time()))
        for call in runs:  # not answered by the stop (its run not claimed yet)
            call.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def _close_loop(self, *, settle: bool = True) -> None:
        """Stop the loop and join its thread. With ``settle``, first wait for the calls
        still under way (all answered or cancelled by now, but one may not have reached
        the loop yet), so none is handed to a loop that is closing."""
        loop, thread = self._loop, self._thread
        with self._gate:
            self._stopping = True
            if settle:
                self._gate.wait_for(lambda: self._admitted == 0, timeout=LOOP_GRACE_SECS)
            self._loop, self._stopped = None, True
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    # -- the runtime's methods, as plain functions -------------------------------------

    create_task = _blocking(SchedulerRuntime.create_task)
    get_task = _blocking(SchedulerRuntime.get_task)
    list_tasks = _blocking(SchedulerRuntime.list_tasks)
    update_task = _blocking(SchedulerRuntime.update_task)
    pause_task = _blocking(SchedulerRuntime.pause_task)
    resume_task = _blocking(SchedulerRuntime.resume_task)
    delete_task = _blocking(SchedulerRuntime.delete_task)
    run_now = _blocking(SchedulerRuntime.run_now, run=True)
    history = _blocking(SchedulerRuntime.history)
    transcript = _blocking(SchedulerRuntime.transcript)
    get_run = _blocking(SchedulerRuntime.get_run)
    deliveries = _blocking(SchedulerRuntime.deliveries)
    next_run_times = _blocking(SchedulerRuntime.next_run_times)
    wait_idle = _blocking(SchedulerRuntime.wait_idle)
    run_due = _blocking(SchedulerRuntime.run_due)

    def invoke(self, input: Any, config: RunnableConfig, *, context: Any = None) -> Any:
        """Run a user turn on the graph without interleaving with scheduled turns (the
        sync twin of :meth:`SchedulerRuntime.ainvoke`)."""
        runtime = self.runtime
        self._refuse_own_hold(str((config.get("configurable") or {}).get("thread_id", "")))
        return self._call(lambda: runtime.ainvoke(input, config, context=context), "invoke")

    @contextlib.contextmanager
    def thread_lock(self, thread_id: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold a thread against scheduled turns while the block runs.

        Raises:
            ThreadBusy: the thread stayed busy longer than ``timeout`` seconds.
            InvalidTask: ``thread_id`` is no string, or a blank one.
            RuntimeError: no ``timeout``, and this calling thread holds the thread already,
                or runs inside a turn on it (a sync node or tool of it) or inside a run a
                turn or hold of it waits for: this hold, or :meth:`invoke`, would wait for
                itself.
            NotRunning: the runtime stopped while the block ran, and cut the hold short
                (a block that raised raises its own error instead).
        """
        check_id("thread_id", thread_id)  # before it keys the holds
        caller = threading.get_ident()
        if timeout is None:
            self._refuse_own_hold(thread_id)
        taken: list[_Hold] = []
        try:
            hold = self._call(lambda: self._hold(thread_id, timeout, caller, taken), "thread_lock")
        except BaseException:  # e.g. Ctrl-C as the hold's answer came: never keep it
            if taken:
                with contextlib.suppress(Exception):
                    self._call(taken[0].release, "thread_lock", releasing=True)
            raise
        try:
            # The hold lives in a task on the loop: this calling thread is marked as the
            # one holding the thread (a turn or hold of it here would wait for itself).
            with holding(self.runtime.store.lock_scope, thread_id, turn=False):
                yield
        except BaseException:
            # A hold the stop cut short says so only when the block raised nothing: the
            # block's own error is what its caller must see (as with the async runtime).
            with contextlib.suppress(NotRunning):
                self._call(hold.release, "thread_lock", releasing=True)
            raise
        self._call(hold.release, "thread_lock", releasing=True)

    def _refuse_own_hold(self, thread_id: str) -> None:
        """Refuse, here in the calling thread, a turn or hold of ``thread_id`` from inside
        this thread's own hold of it, or from a node of a turn on it (a sync node runs in
        a worker thread with a copy of its turn's context)."""
        store = self.runtime._store
        if thread_id and store:
            refuse_waiting_for_itself(
                store.lock_scope,
                thread_id,
                turn="'rt.graph.invoke(...)', for a graph whose nodes are sync",
                outside="invoke",
            )

    @property
    def graph(self) -> Pregel[Any, Any, Any, Any]:
        """The compiled graph with the runtime's checkpointer (its sync ``get_state``
        works from any thread but the runtime's)."""
        return self.runtime.graph

    def verify_task_source(self, source: Any, thread_id: str | None) -> bool:
        """The runtime's :meth:`SchedulerRuntime.verify_task_source` (no I/O: any thread),
        for ``trigger_node(state, verify=rt.verify_task_source)`` in a graph this facade
        runs."""
        return self.runtime.verify_task_source(source, thread_id)

    def add_listener(self, listener: RunListener) -> None:
        """Call ``listener(record)`` with every finished run record, on the runtime's
        thread."""
        self.runtime.add_listener(listener)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` with every task event, on the runtime's thread."""
        self.runtime.add_event_listener(listener)

    # -- internals -------------------------------------------------------------------

    def _call(
        self,
        work: Callable[[], Coroutine[Any, Any, _R]],
        name: str,
        *,
        releasing: bool = False,
        run: bool = False,
    ) -> _R:
        """Run ``work()`` on the runtime's loop as a call under way, which a stop waits
        for; ``releasing`` (a thread_lock ending) is let through while the stop drains;
        ``run``: it waits for a run (see ``_runs``)."""
        if self._forked():  # before any lock: another thread may have held it at the fork
            raise NotRunning(
                f"this SyncSchedulerRuntime runs in process {self._pid}, which this process "
                "was forked from: its thread was not copied here; make a new "
                "SyncSchedulerRuntime in this process"
            )
        with self._gate:
            # Not on the runtime's thread (the start may call here), nor on the thread in
            # start() (a signal handler's call there): the start resumes only after it.
            here = threading.current_thread()
            if here is not self._thread and here.ident != self._lifecycle_owner:
                self._gate.wait_for(lambda: not self._starting)
            loop = self._loop
            if loop is None:
                state = "stopped" if self._stopped else "not started"
                fix = (
                    "make a new SyncSchedulerRuntime"
                    if self._stopped
                    else "use 'with SyncSchedulerRuntime(...) as rt:' or call rt.start() first"
                )
                raise NotRunning(f"the runtime is {state}: {fix}")
            if self._stopping and not releasing:
                raise NotRunning(_STOPPING)
            self._admitted += 1
        caller = threading.get_ident()
        try:
            return call_blocking(
                loop,
                lambda: self._tracked(work, caller, run=run),
                what=f"SyncSchedulerRuntime.{name}",
            )
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            if not self._stopping:
                raise
            raise NotRunning(
                f"SyncSchedulerRuntime.{name} was cut short: the runtime was stopped while "
                "it ran, and it did not finish within the drain timeout"
            ) from None
        finally:
            with self._gate:
                self._admitted -= 1
                self._gate.notify_all()

    def _forked(self) -> bool:
        """Whether this process is a fork of the one that started the runtime."""
        return self._pid is not None and self._pid != os.getpid()

    async def _tracked(
        self, work: Callable[[], Coroutine[Any, Any, _R]], caller: int, *, run: bool = False
    ) -> _R:
        """On the loop: ``work()`` as a call under way (refused once a stop drained);
        ``run``: it waits for a run (see ``_runs``)."""
        if self._drained:
            raise NotRunning(_STOPPING)
        task = asyncio.current_task()
        assert task is not None
        self._track(task, caller)
        if run:
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        return await work()

    def _track(self, task: asyncio.Task[Any], caller: int) -> None:
        self._calls[task] = caller
        task.add_done_callback(lambda done: self._calls.pop(done, None))

    async def _hold(
        self, thread_id: str, timeout: float | None, caller: int, taken: list[_Hold]
    ) -> _Hold:
        """On the loop: hold the thread in a task of its own, under way until released;
        ``taken`` gets it as soon as it is held, for a caller who gave up meanwhile."""
        hold = _Hold(self.runtime.thread_lock(thread_id, timeout=timeout))
        self._track(hold.task, caller)
        self._holding.add(hold.task)
        hold.task.add_done_callback(self._holding.discard)
        await hold.acquired()
        taken.append(hold)
        return hold


_STOPPING = "the runtime is stopping: make a new SyncSchedulerRuntime"
_STOPPED_WHILE_STARTING = (
    "the runtime was stopped while it started: make a new SyncSchedulerRuntime"
)


class _Hold:
    """A thread held through the facade: a task on the runtime's loop keeps the runtime's
    ``thread_lock`` until :meth:`release` (or until a stop cancels it at its deadline)."""

    def __init__(self, lock: contextlib.AbstractAsyncContextManager[None]) -> None:
        self._held = asyncio.Event()
        self._done = asyncio.Event()
        self.task = asyncio.create_task(self._keep(lock))

    async def _keep(self, lock: contextlib.AbstractAsyncContextManager[None]) -> None:
        async with lock:
            self._held.set()
            await self._done.wait()

    async def acquired(self) -> None:
        """Wait until the thread is held; raises the lock's error (``ThreadBusy``)."""
        held = asyncio.ensure_future(self._held.wait())
        try:
            await asyncio.wait({self.task, held}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the caller gave up (Ctrl-C): never hold the thread
            self.task.cancel()
            raise
        finally:
            held.cancel()
        if not self._held.is_set():
            await self.task

    async def release(self) -> None:
        """Free the thread; raises CancelledError when a stop already cut the hold short."""
        self._done.set()
        await self.task


_RUNNING: set[SyncSchedulerRuntime] = set()
_exit_hook = threading.Lock()
_exit_hooked = False


def _stop_at_exit(rt: SyncSchedulerRuntime) -> None:
    """Stop ``rt`` when the interpreter exits, if nobody did.

    threading's exit hooks run before ``concurrent.futures`` refuses new work (which
    ``atexit`` callbacks run after), so the runtime can still drain and record its turns.
    """
    global _exit_hooked
    with _exit_hook:
        _RUNNING.add(rt)
        if not _exit_hooked:
            register = getattr(threading, "_register_atexit", atexit.register)
            register(_stop_all)
            _exit_hooked = True


def _forget_at_fork() -> None:
    """In a forked child: the runtimes running are the parent's (their threads were not
    copied), so the child's exit must not wait to stop them."""
    _RUNNING.clear()


os.register_at_fork(after_in_child=_forget_at_fork)


def _stop_all() -> None:
    for rt in list(_RUNNING):
        try:
            rt.stop()
        except Exception:  # exiting anyway: the next runtime records what was cut short
            pass


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    """The background thread: run the loop until stopped, then close it cleanly."""
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending (a stop cut short) and let them end, as
    ``asyncio.run`` does: every call waiting on one is answered, and no generator is
    closed while it runs."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
