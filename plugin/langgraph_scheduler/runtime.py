"""The runtime: the composition root that wires store, service, timer, bridge and turns
around one LangGraph graph, and the public methods users call."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Mapping, Sequence
from datetime import datetime, tzinfo
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from ._attribution import KEY_NAME, AttributionKey, check_messages_key
from ._bridge import CLAIM_AHEAD, TaskExecutorBridge
from ._clock import Clock, SystemClock
from ._context import HeldBy, call_clean, holding, spawn_clean, threads_held_here, work_of
from ._jobs import DueTimer
from ._listeners import EventListener as EventListener  # re-exported for the sync twin
from ._listeners import Listeners
from ._listeners import RunListener as RunListener
from ._loops import call_on_loop, running_loop_of
from ._remote import LangGraphServer, ServerTurnRunner
from ._service import TaskService, check_id, check_zone, task_key
from ._turns import GraphTurnRunner, TurnRunner
from ._upkeep import Upkeep, dead_holders, process_host
from ._validated import is_whole, kind_of
from .errors import InvalidGraph, InvalidTask, NotRunning, TaskNotFound
from .models import Task, TaskOptions, TaskRunRecord, TaskState
from .schedules import Schedule
from .store import CallAnswer, Store, TaskChange, open_store
from .trigger import ConversationTrigger
from .views import RunHistory, TaskList, Transcript, load_transcript
from .webhooks import Webhook, WebhookDelivery, WebhookDispatcher

__all__ = ["SchedulerRuntime"]

logger = logging.getLogger("langgraph_scheduler")

DEFAULT_DATABASE = "sqlite:///langgraph-scheduler.db"

GraphInput = Pregel[Any, Any, Any, Any] | StateGraph[Any, Any, Any, Any]

_NO_GRAPH = (
    "this runtime manages tasks only (graph=None): it runs no turns; pass a graph to run them"
)
_NOT_STARTED = "the runtime is not started; use 'async with SchedulerRuntime(...)'"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_its_loop(
    method: Callable[Concatenate[SchedulerRuntime, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[SchedulerRuntime, _P], Coroutine[Any, Any, _R]]:
    """The method, run on the runtime's loop even when awaited on another (another
    thread's ``asyncio.run``): its store, locks and queues belong to that loop."""

    @functools.wraps(method)
    async def call(self: SchedulerRuntime, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        loop = running_loop_of(self)
        if loop is None or loop is asyncio.get_running_loop():
            return await method(self, *args, **kwargs)
        return await call_on_loop(loop, lambda: method(self, *args, **kwargs))

    return call


class SchedulerRuntime:
    """Runs scheduled conversation turns on a LangGraph graph.

    The task table decides what is due. The runtime keeps timers only for the fires due
    within ``window_secs``, claims due fires as far as it has free turn slots
    (``max_concurrency``), runs each as a turn of the graph and records its outcome. A
    fire that finds no free slot waits in the table, not in memory, and starts when a
    slot frees — here or in another replica sharing the database. Use it as an async
    context manager, or call :meth:`start` and :meth:`stop` (also inside a running loop,
    as in Jupyter). Its methods awaited on another event loop (another thread's
    ``asyncio.run``) are handed to the loop it runs on and waited for.

    Args:
        graph: a compiled graph, or a ``StateGraph`` builder (compiled here with the
            runtime's checkpointer). A compiled graph without a checkpointer is given one.
            May also be a function of the runtime returning either, for graphs whose tools
            need the runtime: ``SchedulerRuntime(lambda rt: build_agent(rt))``. None makes
            a runtime that only manages tasks (CLI, admin scripts): it claims no fires,
            and the runtimes that run turns on the same database follow its changes;
            with ``server`` it runs them on that server.
        server: run scheduled turns as runs of a LangGraph server instead of in this
            process (``graph`` must then be None): ``server=LangGraphServer(
            assistant_id="agent")`` inside the server (see
            :mod:`langgraph_scheduler.served`), or with ``url=`` from elsewhere.
        database: ``sqlite:///file.db`` (default ``sqlite:///langgraph-scheduler.db``),
            ``sqlite://`` for memory, or ``postgresql://…`` (extra ``postgres``).
        checkpointer: use this checkpointer instead of the default one on ``database``.
        messages_key: the state key the graph keeps its conversation under (as in
            ``ToolNode(messages_key=...)``): each scheduled turn's message is sent
            there, its run record's summary and the transcripts are read from there.
            A graph whose input is known to lack it is refused at :meth:`start`; it
            cannot be ``"task_source"``, where each turn puts its attribution.
        timezone: IANA zone for schedules that name none: a name or a named ``ZoneInfo``
            (kept as its name; one naming no zone raises ``InvalidSchedule``).
        max_concurrency: turns running at once; due fires beyond it wait in the table.
        default_timeout_secs: turn timeout when the trigger sets none.
        drain_timeout_secs: how long :meth:`stop` lets in-flight turns finish
            (``math.inf``: however long they take).
        lease_secs: how long a claimed fire, or a thread held on PostgreSQL, stays
            owned without renewal; a crashed process's running fires are recorded
            ``interrupted`` once it expires (a turn still running on a LangGraph server
            is followed to its end instead), and its threads are free again. Keep it
            well above the longest stall of the event loop (blocking code in a node)
            and the clock skew between replicas: another replica records a turn whose
            lease lapsed ``interrupted`` even if it is still running, and the late
            finish is then dropped (logged). A runtime never takes its own live turns
            for dead. On PostgreSQL, a runtime on the system clock warns (at start,
            and once a minute after) when its clock and the database server's differ
            by more than a quarter of ``lease_secs`` (at least 1 s). At most 100 years,
            as ``window_secs``.
        history_limit: run records kept per task (None keeps all); older finished ones
            are trimmed by the runtime's upkeep, within ``lease_secs / 3`` of a finish.
        history_max_age_days: finished run records older than this are purged.
        store_retry_secs: how long a store call is retried while the database is down,
            how long a start waits for a SQLite file's write lock that another process
            holds, and how long a PostgreSQL transaction waits for a lock another session
            holds (a table locked by hand, say); each wait is logged every 5 s, naming
            the session holding the lock on PostgreSQL.
        sync_interval_secs: how often the runtime looks for due fires and task changes
            without being told (on PostgreSQL, changes are pushed at once with
            LISTEN/NOTIFY, and polled no more often than every 5 s).
        window_secs: how far ahead due times are held in memory as timers.
        clock: the source of "now" (default: the system clock; tests pass a
            :class:`~langgraph_scheduler.testing.FakeClock`).
        on_run: called with every finished run record, once it is stored: a plain
            function there and then, on the runtime's loop (keep it short); a coroutine
            function's call as a task of its own, which holds no turn slot (a slow one
            delays itself, not the schedule, nor the :meth:`run_now` that made the
            record). :meth:`stop` waits for such calls up to its drain deadline (at least
            1 s), then cancels them, logging the runs they were not told of.
        on_event: called with task events (auto-paused, completed, quarantined), the
            same way.
        context: the ``context`` of each scheduled turn and manual run, for a graph made
            with a ``context_schema`` (``create_agent(context_schema=...)``), which its
            nodes, tools and middleware read as ``runtime.context``: a value, or a plain
            function of the fire's :class:`Task` returning one, called at each fire
            (``context=lambda task: Context(user_id=task.owner)``), on the runtime's
            loop: keep it quick (no blocking I/O), it holds every fire. A function that
            raises (anything, even a ``BaseException``) or returns an awaitable records
            the fire ``error`` without running it. None: turns run
            without one. Not with ``server``: a LangGraph server takes no ``configurable``
            beside a run's context, and the scheduler's tools read the task's owner from
            there (``user_id``); give the server's assistant its context instead.
        webhook: POST every finished run record to ``webhook.url`` and to its task's
            ``TaskOptions.webhook_url``, signed with ``webhook.secret``, retried with
            backoff, in the background (see :mod:`langgraph_scheduler.webhooks`); each
            delivery's outcome is kept (:meth:`deliveries`). Without it, nothing is sent.

    Example:
        >>> async with SchedulerRuntime(graph, database="sqlite:///scheduler.db") as rt:
        ...     task = await rt.create_task(
        ...         name="standup",
        ...         schedule=Cron("0 9 * * 1-5", tz="Europe/Berlin"),
        ...         trigger=ConversationTrigger(prompt="Summarise yesterday's notes"),
        ...         thread_id="alice-main",
        ...     )
        ...     run = await rt.run_now(task.id)

    Note:
        A fire ``(task_id, scheduled_for, attempt)`` is claimed by one atomic write, so
        it runs at most once even when several processes share the database. Turns on
        one thread never overlap (across replicas on PostgreSQL).
    """

    def __init__(
        self,
        graph: GraphInput | Callable[[SchedulerRuntime], GraphInput] | None,
        *,
        database: str = DEFAULT_DATABASE,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        server: LangGraphServer | None = None,
        messages_key: str = "messages",
        timezone: str | tzinfo = "UTC",
        max_concurrency: int = 4,
        default_timeout_secs: float = 300.0,
        drain_timeout_secs: float = 30.0,
        lease_secs: float = 30.0,
        history_limit: int | None = 1000,
        history_max_age_days: float | None = None,
        store_retry_secs: float = 60.0,
        sync_interval_secs: float = 2.0,
        window_secs: float = 60.0,
        clock: Clock | None = None,
        on_run: RunListener | None = None,
        on_event: EventListener | None = None,
        webhook: Webhook | None = None,
        context: Any = None,
    ) -> None:
        _check_options(
            max_concurrency=max_concurrency,
            default_timeout_secs=default_timeout_secs,
            drain_timeout_secs=drain_timeout_secs,
            lease_secs=lease_secs,
            history_limit=history_limit,
            history_max_age_days=history_max_age_days,
            store_retry_secs=store_retry_secs,
            sync_interval_secs=sync_interval_secs,
            window_secs=window_secs,
        )
        check_messages_key(messages_key)
        if server is not None and not isinstance(server, LangGraphServer):
            raise InvalidTask(
                f"server must be a LangGraphServer(url=..., assistant_id=...), got "
                f"{kind_of(server)}"
            )
        if server is not None and graph is not None:
            raise InvalidTask(
                "pass graph=None with server=...: scheduled turns run on the server's "
                f"assistant {server.assistant_id!r}, not on a graph in this process"
            )
        self._graph_in = graph
        self._checkpointer_in = checkpointer
        self.server = server
        self.messages_key = messages_key
        self.database = database
        self.timezone = check_zone(timezone)
        self.max_concurrency = max_concurrency
        self.default_timeout_secs = default_timeout_secs
        self.drain_timeout_secs = drain_timeout_secs
        self.lease_secs = lease_secs
        self.history_limit = history_limit
        self.history_max_age_days = history_max_age_days
        self.store_retry_secs = store_retry_secs
        self.sync_interval_secs = sync_interval_secs
        self.window_secs = window_secs
        self.clock: Clock = clock or SystemClock()
        if inspect.iscoroutinefunction(context) or (
            callable(context)
            and not isinstance(context, type)
            and inspect.iscoroutinefunction(type(context).__call__)
        ):
            raise InvalidTask(
                "context must be a value or a plain function of the task returning one, "
                "not a coroutine function: each fire calls it as its turn is built"
            )
        if server is not None and context is not None:
            raise InvalidTask(
                "context is not sent to a LangGraph server: the server takes no "
                "configurable beside a run's context (it copies the context there, "
                "keeping only what the graph's context schema declares), and the "
                "scheduler's tools read the task's owner there as user_id; give the "
                "server's assistant its context (assistants.create(..., context=...)), "
                "which its runs take"
            )
        self.context = context
        self.holder = f"{process_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._listeners = Listeners(of=self.holder)
        if on_run:
            self._listeners.runs.append(on_run)
        if on_event:
            self._listeners.events.append(on_event)
        if webhook is not None and not isinstance(webhook, Webhook):
            raise InvalidTask(
                "webhook must be a Webhook, e.g. webhook=Webhook(url='https://…', "
                f"secret=...) from langgraph_scheduler.webhooks; got {kind_of(webhook)}"
            )
        self.webhook = webhook
        self._webhooks: WebhookDispatcher | None = None
        self._state = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None
        self._store: Store | None = None
        self._attribution: AttributionKey | None = None
        self._service: TaskService | None = None
        self._graph: Pregel[Any, Any, Any, Any] | None = None
        self._bridge: TaskExecutorBridge | None = None
        self._timer: DueTimer | None = None
        self._holding: dict[asyncio.Task[Any] | None, int] = {}
        """Threads held through :meth:`thread_lock` (and :meth:`ainvoke`) right now, counted
        by the task that entered the hold (a stop by that task cannot wait for its own:
        they end only after it)."""
        self._hold_ended = asyncio.Event()
        self._started = asyncio.Event()
        """Set once a start has ended, the runtime started or not (what a stop called
        meanwhile waits for)."""
        self._stopped = asyncio.Event()
        """Set once a stop has closed the store (what a second stop waits for)."""

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> SchedulerRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """True between a finished :meth:`start` and the beginning of :meth:`stop`."""
        return self._state == "running"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the runtime runs on while started (None before and after).

        Other threads hand it work with ``asyncio.run_coroutine_threadsafe``; the scheduler
        tools and :class:`~langgraph_scheduler.sync.SyncSchedulerRuntime` do.
        """
        return self._loop

    async def start(self) -> None:
        """Open the store (migrating it if needed), set timers for the fires due within
        the window, take over crashed processes' claims and start claiming.

        A start that fails stops what it began, last begun first, as a stop with no
        drain does: the server runs it began to follow (a dead process's turns) are
        cancelled and recorded ``interrupted``, and the store is closed.

        Raises:
            NotRunning: the runtime was started before.
            StoreUnavailable: the database could not be reached (retry later), or
                another process held a SQLite file's write lock, or another
                PostgreSQL replica's start-up its start-up lock, for longer than
                ``store_retry_secs``.
            StoreError: any other database failure, at once (a newer schema, a
                privilege the role lacks, a database or role that does not exist, a
                SQLite file this process may not write).
            InvalidGraph: ``graph`` is no graph, or its input has no ``messages_key``.
            SchedulerError: ``LangGraphServer(url=None)`` outside a LangGraph server.
        """
        if self._state != "new":
            raise NotRunning(f"runtime cannot start from state {self._state!r}; make a new one")
        self._state = "starting"
        stack = contextlib.AsyncExitStack()
        try:
            store = open_store(self.database, lock_patience=self.store_retry_secs)
            stack.push_async_callback(store.close)
            stack.callback(self._listeners.cut_short)  # before the store closes
            store.hold_threads_as(self.holder, clock=self.clock, lease_secs=self.lease_secs)
            async with store.setup_lock(patience=self.store_retry_secs):
                await store.setup()
                self._store = store
                self._attribution = AttributionKey(await store.secret(KEY_NAME))
                if self._graph_in is not None:
                    self._graph = await self._bind_graph(stack, store)
            self._service = TaskService(
                store, clock=self.clock, timezone=self.timezone, on_change=self._task_changed
            )
            if self._graph is not None or self.server is not None:
                await self._start_engine(store, stack)
            else:  # no turns of its own: its upkeep frees and renews threads only
                upkeep = Upkeep(
                    store,
                    None,
                    clock=self.clock,
                    lease_secs=self.lease_secs,
                    history_limit=None,
                    history_max_age_days=None,
                )
                await upkeep.check_clock()  # before lapsed leases are read by this clock
                await upkeep.recover(dead_holders(await store.running_holders(), mine=self.holder))
                self._loops = [self._spawn(upkeep.run(), "langgraph-scheduler-upkeep")]
        except BaseException:
            self._state = "stopped"
            await stack.aclose()
            raise
        else:
            self._stack = stack
            self._loop = asyncio.get_running_loop()
            self._state = "running"
            self._watch = spawn_clean(self._stop_with_loop(), name="langgraph-scheduler-watch")
            logger.info("scheduler runtime %s started on %s", self.holder, store.safe_url)
        finally:
            self._started.set()

    async def _start_engine(self, store: Store, stack: contextlib.AsyncExitStack) -> None:
        turns: TurnRunner
        assert self._attribution is not None
        if self.server is not None:
            turns = ServerTurnRunner(
                self.server, store, self._attribution, messages_key=self.messages_key
            )
        else:
            assert self._graph is not None
            turns = GraphTurnRunner(
                self._graph, store, self._attribution, messages_key=self.messages_key
            )
        await turns.open()
        stack.push_async_callback(turns.close)
        started_at = self.clock.now()
        timer = DueTimer(
            store,
            clock=self.clock,
            window_secs=self.window_secs,
            poll_secs=self.sync_interval_secs,
            wake=lambda due: self._wake(due),
            ahead=CLAIM_AHEAD,
            told=lambda change: self._heard(change),
        )
        bridge = TaskExecutorBridge(
            store=store,
            turns=turns,
            clock=self.clock,
            holder=self.holder,
            capacity=self.max_concurrency,
            lease_secs=self.lease_secs,
            default_timeout_secs=self.default_timeout_secs,
            context_of=_context_of(self.context),
            started_at=started_at,
            poll_secs=self.sync_interval_secs,
            store_retry_secs=self.store_retry_secs,
            on_record=self._emit,
            on_event=self._listeners.tell_event,
            on_due=lambda when: call_clean(timer.at, when),
        )
        self._timer, self._bridge = timer, bridge
        upkeep = Upkeep(
            store,
            bridge,
            clock=self.clock,
            lease_secs=self.lease_secs,
            history_limit=self.history_limit,
            history_max_age_days=self.history_max_age_days,
        )
        # The runtime is often started inside someone's run (a graph factory, a request):
        # its timers and loops start from an empty context, so nothing of that run (its
        # callbacks, tracing parent, config, log context) reaches scheduled turns.
        call_clean(timer.start)
        stack.callback(timer.shutdown)
        if self.webhook is not None:  # before recover: its records are delivered too
            self._webhooks = WebhookDispatcher(
                store,
                self.webhook,
                holder=self.holder,
                clock=self.clock,
                sweep_secs=self.lease_secs,
                drain_secs=min(self.drain_timeout_secs, self.webhook.timeout_secs),
            )
            await self._webhooks.start()
            stack.push_async_callback(self._webhooks.close)
        # The recovery may begin turns (server runs it follows): a start failing after
        # it stops them as a stop does, first (a stop has drained it already: its second
        # close does nothing).
        stack.push_async_callback(bridge.close, 0)
        await upkeep.check_clock()  # before lapsed leases are read by this clock
        await upkeep.recover(dead_holders(await store.running_holders(), mine=self.holder))
        await timer.load_window()
        self._loops = [
            self._spawn(bridge.run(), "langgraph-scheduler-claims"),
            self._spawn(timer.run(), "langgraph-scheduler-timer"),
            self._spawn(upkeep.run(), "langgraph-scheduler-upkeep"),
            # Not awaited before firing: they only make reads faster (the webhook sweep,
            # the purge by age; the due reads after a migration from 0.1.0, on a small
            # table), and a build takes minutes on millions of runs: fires would be late
            # past their grace, and a start killed by a health check cut it short.
            self._spawn(upkeep.indexes(), "langgraph-scheduler-indexes"),
        ]
        bridge.wake()  # what fell due while no runtime was up

    @_on_its_loop
    async def stop(self, *, drain_timeout_secs: float | None = None) -> None:
        """Stop claiming (a claim pass in flight ends first, its fires recorded
        ``interrupted``), let in-flight turns finish up to the deadline, record the rest
        ``interrupted`` (retried per policy by the next runtime) and close the store.

        Recording those outcomes may take up to 30 s past the deadline while the
        database does not answer (down, or its connections all taken); what is still
        unrecorded then is left to its lease, and the next runtime records it
        ``interrupted``. Then the coroutine listener calls still running (told of those
        records too) may end in what is left of the deadline, or within 1 s past it;
        those still running then are cancelled, the runs and events they were not told
        of logged.

        Threads held through :meth:`thread_lock` or :meth:`ainvoke` are waited for up
        to the same deadline (new holds are refused meanwhile), but those of the task
        calling the stop from inside them, which end only after it; a hold that outlives
        the stop keeps its thread taken until its lease runs out (logged), so no turn on
        another replica starts beside it.

        A stop called while the runtime starts waits for the start to end, then stops
        what it started; one called while another stop runs waits for that one. A stop
        awaited on another event loop (another thread's ``asyncio.run``) is handed to the
        runtime's loop and waited for. A stop that is cancelled (the task owning ``async
        with`` cancelled, Ctrl-C in ``asyncio.run``) cuts its drain short, as if its
        deadline had come, and still closes the store before the cancellation goes on.

        Args:
            drain_timeout_secs: how long in-flight turns and holds may take to end (the
                runtime's ``drain_timeout_secs`` unless given); ``math.inf`` waits for
                them however long they take.

        Raises:
            InvalidTask: ``drain_timeout_secs`` is no number of seconds, 0 or more (the
                runtime runs on).
            RuntimeError: called from the runtime's own work (a node or tool of its
                turn, a listener), which the stop would wait for.
        """
        if drain_timeout_secs is not None:
            _check_seconds("drain_timeout_secs", drain_timeout_secs)
        if self._state == "starting":
            await self._started.wait()
        if self._state in ("running", "stopping") and work_of() == self.holder:
            raise RuntimeError(
                "SchedulerRuntime.stop() was called from the runtime's own turn or listener, "
                "which the stop waits for: stop it from the code that started it (a listener "
                "can set an asyncio.Event that code awaits)"
            )
        if self._state == "stopping":
            await self._stopped.wait()
            return
        if self._state != "running":
            return
        self._state = "stopping"
        deadline = self.drain_timeout_secs if drain_timeout_secs is None else drain_timeout_secs
        own = self._holding.get(asyncio.current_task(), 0)
        try:
            await self._drain(deadline, own_holds=own)
        except asyncio.CancelledError:
            await _to_the_end(self._close(cut_short=True))
            raise
        await _to_the_end(self._close(cut_short=False))

    async def _drain(self, secs: float, *, own_holds: int = 0) -> None:
        """Stop the timer and let turns and thread holds end, up to ``secs`` (but the
        stopping task's ``own_holds``); what still runs then is interrupted and recorded.
        The listener calls still running may end in what is left of ``secs`` (at least
        :data:`~._listeners.LISTENER_GRACE_SECS`); the rest are cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + secs
        if self._timer is not None:
            self._timer.shutdown()
        drains = [self._holds_released(secs, own=own_holds)]
        if self._bridge is not None:
            drains.append(self._bridge.close(secs))
        await asyncio.gather(*drains)
        await self._listeners.drain(deadline - loop.time())

    async def _close(self, *, cut_short: bool) -> None:
        """End the runtime's loops and close the store; ``cut_short``: the drain was
        cancelled, so what still runs is interrupted first."""
        assert self._stack is not None
        try:
            if cut_short:
                await self._drain(0)
            for loop in self._loops:
                loop.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
            await self._stack.aclose()
        finally:
            self._state = "stopped"
            self._loop = None
            self._stopped.set()
            if self._watch is not None:
                self._watch.cancel()
        logger.info("scheduler runtime %s stopped", self.holder)

    async def _stop_with_loop(self) -> None:
        """Wait for the end of the loop: a runtime whose loop cancels its tasks before it
        was stopped (``asyncio.run`` returning or interrupted first) stops then, its turns
        recorded ``interrupted`` and its store closed, whose threads would otherwise keep
        the interpreter from exiting."""
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        except asyncio.CancelledError:
            await self.stop(drain_timeout_secs=0)
            raise

    # -- properties ------------------------------------------------------------------

    @property
    def graph(self) -> Pregel[Any, Any, Any, Any]:
        """The graph scheduled turns run on (with the runtime's checkpointer)."""
        if self._graph is None:
            if self.server is not None:
                raise NotRunning(
                    f"this runtime runs its turns on {self.server.where} (server=...): its "
                    "threads live there; read them with langgraph-sdk (client.threads)"
                )
            if self._graph_in is None:
                raise NotRunning(_NO_GRAPH)
            raise NotRunning(_NOT_STARTED)
        if self._state == "stopped":
            raise self._not_running()
        return self._graph

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any] | None:
        """The checkpointer of :attr:`graph` (which raises ``NotRunning`` when the
        runtime has no graph, or is not started)."""
        cp = self.graph.checkpointer
        return cp if isinstance(cp, BaseCheckpointSaver) else None

    @property
    def store(self) -> Store:
        """The task and run store (reads; tasks are written through the runtime's methods)."""
        if self._store is None:
            raise NotRunning(_NOT_STARTED)
        if self._state == "stopped":
            raise self._not_running()
        return self._store

    def verify_task_source(self, source: Any, thread_id: str | None) -> bool:
        """True when ``source`` is an attribution a runtime on this store made for a turn
        on ``thread_id`` (signed with the store's shared key); never raises.

        The trigger node uses it (``trigger_node(state, verify=rt.verify_task_source)``):
        a ``task_source`` that a client put in a message is not trusted. False until the
        runtime has started (the key is read from the store then).
        """
        key = self._attribution
        return key is not None and key.verify(source, thread_id)

    @property
    def tasks(self) -> TaskService:
        """The task service: the one writer of tasks, which the methods below call."""
        if self._service is None or self._state != "running":
            raise self._not_running()
        return self._service

    def add_listener(self, listener: RunListener) -> None:
        """Call ``listener(record)`` with every finished run record (a coroutine
        function's call runs beside the turns, see ``on_run``)."""
        self._listeners.runs.append(listener)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` with every task event (auto-paused, completed,
        quarantined)."""
        self._listeners.events.append(listener)

    # -- task API (through the task service) ------------------------------------------

    @_on_its_loop
    async def create_task(
        self,
        *,
        name: str,
        schedule: Schedule,
        trigger: ConversationTrigger | Mapping[str, Any] | str,
        thread_id: str | None = None,
        owner: str = "default",
        max_runs: int | None = None,
        options: TaskOptions | Mapping[str, Any] | None = None,
        paused: bool = False,
        max_active: int | None = None,
        task_id: str | None = None,
    ) -> Task:
        """Create a task and schedule it.

        Args:
            name: a short label, shown in transcripts and history.
            schedule: ``Cron``, ``Interval`` or ``Once``; without ``tz`` the runtime's zone.
            trigger: what to say when it fires (a ``ConversationTrigger``, its dict, or a
                prompt string).
            thread_id: the conversation to continue; None runs each fire in a fresh thread.
            owner: whose task it is (tools set this from the run config).
            max_runs: stop after this many scheduled fires.
            options: misfire, busy-thread and retry policy (a ``TaskOptions`` or its dict).
            paused: create it paused.
            max_active: refuse when the owner already has this many active tasks (checked
                atomically with the insert, so concurrent creations cannot overshoot).
            task_id: the task's id (default: a random one). A task already stored under
                it for this owner is returned as it is when the call gives its definition
                (``name``, ``schedule``, ``trigger``, ``thread_id``, ``options``,
                ``max_runs``), so repeating a create with the same id stores one task.
                A cron line is compared by the times it fires, not as written
                (``"0 9 * * MON"`` is the stored ``"0 9 * * 1"``; the stored one is kept).
                State and counts are not compared: a task paused or resumed since is
                returned as it is (``paused`` applies only to a new task).

        Raises:
            QuotaExceeded: ``max_active`` refused the task.
            TaskConflict: a task is stored under ``task_id`` with another definition
                (also one changed by ``update_task`` since); its ``fields`` name what
                differs. Change it with ``update_task``, or use another id.
            InvalidSchedule: the schedule cannot fire (bad zone, a date in the past, …).
            InvalidPayload: the trigger is invalid.
            InvalidTask: another argument is invalid.
        """
        return await self.tasks.create(
            name=name,
            schedule=schedule,
            trigger=trigger,
            thread_id=thread_id,
            owner=owner,
            max_runs=max_runs,
            options=options,
            paused=paused,
            max_active=max_active,
            task_id=task_id,
        )

    @_on_its_loop
    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """The task with this id (of this owner, when given).

        Raises:
            TaskNotFound: no such task, or it belongs to another owner.
        """
        return await self.tasks.get(task_id, owner=owner)

    @_on_its_loop
    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        state: TaskState | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskList:
        """Tasks, oldest first; filter by owner, state and the thread they continue, page
        with limit/offset. A row that cannot be read is in state ``quarantined``, whatever
        state it holds."""
        return TaskList(
            await self.tasks.find(
                owner=owner, state=state, thread_id=thread_id, limit=limit, offset=offset
            )
        )

    @_on_its_loop
    async def update_task(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        name: str | None = None,
        schedule: Schedule | None = None,
        trigger: ConversationTrigger | Mapping[str, Any] | str | None = None,
        timeout_secs: int | None = None,
        max_runs: int | None = None,
        options: TaskOptions | Mapping[str, Any] | None = None,
        max_active: int | None = None,
    ) -> Task:
        """Change a task; a new schedule takes effect from now, retries waiting for
        their backoff are dropped, and ``max_runs`` at or below the runs done completes
        it at once.

        Raises:
            TaskNotFound, QuotaExceeded, InvalidSchedule, InvalidPayload, InvalidTask.
        """
        return await self.tasks.update(
            task_id,
            owner=owner,
            name=name,
            schedule=schedule,
            trigger=trigger,
            timeout_secs=timeout_secs,
            max_runs=max_runs,
            options=options,
            max_active=max_active,
        )

    @_on_its_loop
    async def pause_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """Stop firing until resumed; waiting retries are dropped (a run in flight
        finishes)."""
        return await self.tasks.pause(task_id, owner=owner)

    @_on_its_loop
    async def resume_task(
        self, task_id: str, *, owner: str | None = None, max_active: int | None = None
    ) -> Task:
        """Fire again from the next occurrence after now (missed ones are not replayed).

        Raises:
            QuotaExceeded: the owner already has ``max_active`` active tasks.
            InvalidSchedule: the schedule has no occurrence left.
        """
        return await self.tasks.resume(task_id, owner=owner, max_active=max_active)

    @_on_its_loop
    async def delete_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """Delete a task, its history and its waiting retries; returns what was deleted.

        A turn of it under way is not stopped (as a removed APScheduler job's run is
        not): it finishes and posts its reply, unrecorded; no later fire runs.
        """
        return (await self.tasks.delete(task_id, owner=owner)).task

    @_on_its_loop
    async def run_now(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        wait: bool = True,
        max_per_task: int | None = None,
        max_per_owner: int | None = None,
        per_secs: float = 3600.0,
        answer: Callable[[TaskRunRecord], CallAnswer] | None = None,
    ) -> TaskRunRecord:
        """Fire a task now, outside its schedule (paused tasks too). The run takes the
        next free turn slot: runs waiting for one take freed slots in the order they were
        asked for, before due scheduled fires. A caller cancelled once it asked (while
        the run is claimed, waits or runs) leaves the run to run.

        Args:
            wait: return the finished record, once it is stored and the plain
                listeners were called (coroutine listeners are told beside it:
                :meth:`wait_idle` waits for them too); with False return the running one.
            max_per_task: refuse when the task already ran by hand this often within
                ``per_secs`` (the tools set it; counted atomically with the claim).
            max_per_owner: the same over all the owner's tasks.
            answer: the tools' hook: their call's answer for the running record, kept in
                the claim's transaction so a re-run of the call does not run it again.

        Raises:
            TaskNotFound: no such task, or it belongs to another owner.
            NotAllowed: a manual-run limit is reached.
            CallAnswered: ``answer``'s call was answered already; nothing was claimed.
            NotRunning: the runtime is not running; or, with ``wait``, it stopped while
                the run's turn ran, past its drain timeout (the run is recorded
                ``interrupted``). A run the stop kept from beginning is not cut short: its
                record, ``interrupted`` and saying so, is returned.
            RuntimeError: ``wait``, and the task's thread is held by the turn the caller
                runs inside (a node or tool of a turn on it), by the calling task's own
                :meth:`thread_lock`, or by a turn or hold waiting for the run whose turn
                the caller runs inside: the run would wait for it (``on_busy="wait"``), and
                the caller for the run. Nothing was claimed; ``wait=False`` starts the
                run once the thread is free. Likewise inside a turn of the task itself
                (its runs never overlap) or of a run a turn of the task waits for
                (itself, or through the runs it waits for), and when the caller runs
                inside a turn of this runtime (a node or tool of a scheduled fire or
                manual run), whose turn slot frees only after the run, and no other slot
                can free first: each is held by a turn waiting for a run this way (with
                ``max_concurrency=1``, the caller's turn holds the only one);
                ``wait=False`` starts the run once a slot is free.
        """
        key = task_key(task_id, owner)
        _check_manual_limits(max_per_task, max_per_owner, per_secs)
        if self._state != "running":
            raise self._not_running()
        bridge = self._bridge
        if bridge is None:
            raise NotRunning(_NO_GRAPH)
        held = threads_held_here(self.store.lock_scope) if wait else {}
        waiting = bridge.turns_waiting_here() if wait else []
        own = waiting[: waiting.index(key) + 1] if key in waiting else []
        if held or own:  # a turn or hold the caller is in
            await self._refuse_waiting_for_a_run(task_id, owner, held, own=own)
        with bridge.waiting_for_a_run(task_id) if wait else contextlib.nullcontext() as waited:
            try:
                record, execution = await bridge.run_now(
                    key,
                    owner=owner,
                    max_per_task=max_per_task,
                    max_per_owner=max_per_owner,
                    per_secs=per_secs,
                    answer=answer,
                    waited_by=waited,
                )
            except TaskNotFound:
                raise TaskNotFound(task_id) from None  # as given, as the other methods say it
            if not wait:
                return record
            await asyncio.wait({execution})  # a caller cancelled leaves the run to finish
        if execution.cancelled():
            raise NotRunning(
                f"the runtime stopped while run {record.run_id} ran, past its drain timeout; "
                "the run is recorded interrupted"
            )
        return execution.result()

    async def _refuse_waiting_for_a_run(
        self,
        task_id: str,
        owner: str | None,
        held: Mapping[str, HeldBy],
        *,
        own: Sequence[str],
    ) -> None:
        """Refuse to wait for a run of ``task_id`` whose turn would wait for the turn or
        hold the caller is in (``held``: the threads those hold; ``own``: the tasks of the
        turns from the caller's to a turn of that task waiting for it, whose runs never
        overlap, or none; a task that skips a busy thread or run records it at once).

        Raises:
            RuntimeError: saying what to do instead.
            TaskNotFound: no such task, or it belongs to another owner.
        """
        task = await self.tasks.get(task_id, owner=owner)
        options = task.options
        if options.on_busy == "skip" or not options.max_wait_secs:
            return
        if len(own) == 1:
            raise RuntimeError(_IN_OWN_TASK.format(task=task_id))
        if own:
            raise RuntimeError(_WAITED_BY_ITS_TASK.format(turn=own[0], task=task_id))
        if task.thread_id is None:
            return
        by = held.get(task.thread_id)
        if by is not None:
            call = f"waiting for a run of task {task_id!r}, which talks on that thread,"
            fix = "call run_now(task_id, wait=False): the run starts once the hold ends"
            raise waits_for_itself(by, task.thread_id, call, fix=fix)

    @_on_its_loop
    async def history(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        before: datetime | None = None,
    ) -> RunHistory:
        """A task's run records, newest first; page with ``before=records[-1].started_at``."""
        task, records = await self.tasks.history(task_id, owner=owner, limit=limit, before=before)
        return RunHistory(records, task_names={task.id: task.name})

    @_on_its_loop
    async def transcript(self, thread_id: str) -> Transcript:
        """The thread's conversation, task-triggered turns labelled with their task and run.

        Raises:
            InvalidTask: ``thread_id`` is no string.
        """
        return await load_transcript(self, check_id("thread_id", thread_id, blank=True))

    @_on_its_loop
    async def get_run(self, run_id: str, *, owner: str | None = None) -> TaskRunRecord | None:
        """A run record by its id; None if there is none, if ``owner`` is given and the
        run is of another owner's task (as ``get_task(owner=)`` refuses one), or if its
        stored row cannot be read (written by hand; logged), as histories leave such a row
        out.

        Raises:
            InvalidTask: ``run_id`` is no string, or a blank one.
        """
        return await self.store.get_run(check_id("run_id", run_id), owner=owner)

    @_on_its_loop
    async def deliveries(self, run_id: str, *, owner: str | None = None) -> list[WebhookDelivery]:
        """The webhook deliveries of a run, one per URL: status (``pending``,
        ``delivered``, ``failed``), attempts and the last error; none if ``owner`` is
        given and the run is of another owner's task.

        Raises:
            InvalidTask: ``run_id`` is no string, or a blank one.
        """
        return await self.store.deliveries(run_id=check_id("run_id", run_id), owner=owner)

    @_on_its_loop
    async def next_run_times(
        self, task_id: str, n: int = 5, *, owner: str | None = None
    ) -> list[datetime]:
        """The task's next ``n`` fire times in its own timezone (empty when not active).

        Raises:
            InvalidTask: ``n`` is no whole number from 0 to :data:`~.models.MAX_UPCOMING`.
        """
        return (await self.get_task(task_id, owner=owner)).upcoming_runs(n)

    @_on_its_loop
    async def wait_idle(self) -> None:
        """Wait until no claim, no turn and no coroutine listener call of this runtime
        is in flight (tests, scripts): a listener that never returns keeps it waiting."""
        while True:
            if self._bridge is not None:
                await self._bridge.wait_idle()
            if not self._listeners.busy:
                return
            await self._listeners.wait()

    @_on_its_loop
    async def run_due(self) -> int:
        """Claim and start what is due now, as far as free slots allow, without waiting
        for a timer; returns how many fires were claimed (a fake clock's tests call this
        after moving time)."""
        if self._state != "running":
            raise self._not_running()
        if self._bridge is None:
            raise NotRunning(_NO_GRAPH)
        return await self._bridge.claim_now()

    # -- user turns ------------------------------------------------------------------

    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a thread against scheduled turns (wrap your own turns on that thread).

        On PostgreSQL the hold also covers scheduled turns of other replicas: the thread
        is a row leased to this runtime, renewed every ``lease_secs / 3`` while held.

        Raises:
            ThreadBusy: the thread stayed busy longer than ``timeout`` seconds.
            InvalidTask: ``thread_id`` is no string, or a blank one (no scheduled turn
                runs on one); ``timeout`` is no number of seconds, 0 or more.
            RuntimeError: no ``timeout``, and the thread is held by the calling task's
                own hold, by the turn the caller runs inside (a node or tool of a
                scheduled turn, or of :meth:`ainvoke`'s), or by a turn or hold waiting for
                that turn's run: the hold would wait for itself.
        """
        return self._hold(thread_id, timeout, turn=False)

    @contextlib.asynccontextmanager
    async def _hold(
        self, thread_id: str, timeout: float | None, *, turn: bool
    ) -> AsyncIterator[None]:
        """:meth:`thread_lock`, for the caller's own block or (``turn``) for a turn of
        :meth:`ainvoke`, whose nodes run in child tasks."""
        check_id("thread_id", thread_id)
        if timeout is not None:
            _check_seconds("timeout", timeout)
        if self._state != "running":
            raise self._not_running()
        if timeout is None:
            refuse_waiting_for_itself(
                self.store.lock_scope,
                thread_id,
                turn="'await rt.graph.ainvoke(...)'",
                outside="ainvoke",
            )
        task = asyncio.current_task()
        self._holding[task] = self._holding.get(task, 0) + 1
        try:
            async with self.store.thread_lock(thread_id, timeout=timeout):
                with holding(self.store.lock_scope, thread_id, turn=turn):
                    yield
        finally:
            self._holding[task] -= 1
            if not self._holding[task]:
                del self._holding[task]
            self._hold_ended.set()

    async def _holds_released(self, secs: float, *, own: int = 0) -> None:
        """Wait up to ``secs`` for the threads held through :meth:`thread_lock` to be
        released (the stop's drain), but the ``own`` holds of the stopping task, which
        end only after the stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + secs
        while self._held() > own and (left := deadline - loop.time()) > 0:
            self._hold_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hold_ended.wait(), timeout=left)
        if outliving := self._held():
            logger.warning(
                "%d thread hold(s) (runtime.thread_lock, runtime.ainvoke) outlive the stop: "
                "their threads stay taken until their lease runs out",
                outliving,
            )

    def _held(self) -> int:
        """Threads held through :meth:`thread_lock` right now."""
        return sum(self._holding.values())

    @_on_its_loop
    async def ainvoke(self, input: Any, config: RunnableConfig, *, context: Any = None) -> Any:
        """Run a user turn on the graph without interleaving with scheduled turns.

        Args:
            input: the turn's input, as for ``graph.ainvoke``.
            config: its config; ``configurable.thread_id`` is required.
            context: the run's context, for a graph with a ``context_schema`` (as for
                ``graph.ainvoke``). Scheduled turns run without one.

        Raises:
            NotRunning: the runtime is not running, or stopped while the turn ran (its
                drain timeout passed first).
            RuntimeError: the thread is held by the calling task's own
                :meth:`thread_lock`, by the turn the caller runs inside (a node or tool
                of a turn on that thread), or by a turn or hold waiting for that turn's
                run, which this turn would wait for.
        """
        thread_id = str(config.get("configurable", {}).get("thread_id", ""))
        if not thread_id:
            raise InvalidTask("config['configurable']['thread_id'] is required")
        if isinstance(input, dict) and "task_source" not in input:
            input = {**input, "task_source": None}
        async with self._hold(thread_id, None, turn=True):
            try:
                return await self.graph.ainvoke(input, config, context=context)
            except Exception as exc:
                if self._state == "running":
                    raise
                raise NotRunning(
                    f"the runtime stopped while this turn ran, past its drain timeout ({exc})"
                ) from exc

    # -- internals -------------------------------------------------------------------

    def _not_running(self) -> NotRunning:
        if self._state == "stopped":
            return NotRunning(
                "the runtime is stopped, and a stopped runtime does not start again: make a "
                "new SchedulerRuntime (or keep calls inside 'async with SchedulerRuntime(...)')"
            )
        state = "not started" if self._state == "new" else self._state
        return NotRunning(
            f"the runtime is {state}; use 'async with SchedulerRuntime(...)' or "
            "await runtime.start() first"
        )

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """One of the runtime's loops, from an empty context (see :mod:`._context`)."""
        return spawn_clean(work, name=name, of=self.holder)

    def _wake(self, due: datetime | None) -> None:
        if self._bridge is not None:
            self._bridge.wake(due)

    def _heard(self, change: TaskChange) -> None:
        """A task changed in another process (the change feed)."""
        if self._bridge is not None:
            self._bridge.task_changed(change.task_id, change.state)

    def _task_changed(self, task_id: str, task: Task | None) -> None:
        """A task written in this process: set its timer at once (no feed round trip),
        and stop a fire of it claimed ahead of its instant if it no longer fires."""
        if self._bridge is not None:
            self._bridge.task_changed(task_id, task.state if task is not None else None)
        if self._timer is not None and task is not None and task.state == "active":
            if task.next_run_at is not None:
                # Often called inside a user's run (a tool): the timer's callbacks must
                # not carry that run's context.
                call_clean(self._timer.at, task.next_run_at)

    async def _bind_graph(
        self, stack: contextlib.AsyncExitStack, store: Store
    ) -> Pregel[Any, Any, Any, Any]:
        graph = self._graph_in
        if not isinstance(graph, (StateGraph, Pregel)) and callable(graph):
            graph = graph(self)
        if isinstance(graph, StateGraph):
            saver = self._checkpointer_in or await self._open_checkpointer(stack, store)
            return graph.compile(checkpointer=saver)
        if isinstance(graph, Pregel):
            if self._checkpointer_in is not None:
                return graph.copy(update={"checkpointer": self._checkpointer_in})
            if isinstance(graph.checkpointer, BaseCheckpointSaver):
                return graph
            saver = await self._open_checkpointer(stack, store)
            return graph.copy(update={"checkpointer": saver})
        raise InvalidGraph(
            f"graph must be a compiled LangGraph graph or a StateGraph, got {kind_of(graph)}"
        )

    async def _open_checkpointer(
        self, stack: contextlib.AsyncExitStack, store: Store
    ) -> BaseCheckpointSaver[Any]:
        saver: BaseCheckpointSaver[Any] = await store.open_checkpointer(
            stack, max_connections=min(self.max_concurrency + 1, 2)
        )
        return saver

    def _emit(self, record: TaskRunRecord) -> None:
        if self._webhooks is not None:
            self._webhooks.submit(record)  # never waits: delivery runs in the background
        self._listeners.tell_run(record)


_SELF_HOLD = (
    "this caller holds thread {thread!r} already (thread_lock), so {call} would wait for "
    "itself: {fix}"
)
"""The refusal of a wait for a thread inside the caller's own hold of it."""

_TURN_IN_HOLD = (
    "inside the hold, run the turn on the graph itself ({turn}), or make it outside the "
    "hold ({outside} holds the thread for its own turn)"
)
"""What to do instead of a turn or hold inside the caller's own hold of its thread."""

_IN_TURN = (
    "this call runs inside a turn on thread {thread!r} (a node or tool of it), which holds "
    "the thread until the turn ends, so {call} would wait for itself: from inside the "
    "turn, start a run without waiting for it (run_now(task_id, wait=False): it runs once "
    "this turn ends), or use another thread_id"
)
"""The refusal of a wait for a thread from inside a turn on that thread."""

_WAITED_FROM_THREAD = (
    "this call runs inside a turn that a turn or hold of thread {thread!r} waits for (a "
    "node or tool of a run waited for from there, itself or through the runs it waits "
    "for), so {call} would wait for that turn or hold, and it for this turn: start the "
    "run without waiting for it there (run_now(task_id, wait=False)), or use another "
    "thread_id here"
)
"""The refusal of a wait for a thread held by a turn or hold waiting for the caller's."""

_IN_OWN_TASK = (
    "this call runs inside a turn of task {task!r} (a node or tool of it), and a task's "
    "runs never overlap: a run of it waited for here would wait for this turn to end, and "
    "this turn for the run. From inside the turn, start the run without waiting for it "
    "(run_now(task_id, wait=False): it runs once this turn ends)"
)
"""The refusal of a wait for a run of the task whose turn the caller runs inside."""

_WAITED_BY_ITS_TASK = (
    "this call runs inside a turn of task {turn!r} (a node or tool of it), whose run a "
    "turn of task {task!r} waits for (itself or through the runs it waits for), and a "
    "task's runs never overlap: a run of {task!r} waited for here would wait for that "
    "turn to end, and that turn for this one. From inside the turn, start the run without "
    "waiting for it (run_now(task_id, wait=False): it runs once that turn ends)"
)
"""The refusal of a wait for a run of a task whose turn waits for the caller's turn."""

_TURN_OR_HOLD = "a turn or another hold of it without a timeout"


def refuse_waiting_for_itself(scope: Hashable, thread_id: str, *, turn: str, outside: str) -> None:
    """Refuse a turn or hold of ``thread_id`` (of lock scope ``scope``) from inside a turn
    or hold of it (``turn``, ``outside``: how to make the turn inside the caller's own
    hold instead, for the async runtime or its sync twin).

    Raises:
        RuntimeError: the caller's own hold, the turn it runs inside, or a turn or hold
            waiting for that turn's run, holds it.
    """
    held = threads_held_here(scope).get(thread_id)
    if held is not None:
        fix = _TURN_IN_HOLD.format(turn=turn, outside=outside)
        raise waits_for_itself(held, thread_id, _TURN_OR_HOLD, fix=fix)


def waits_for_itself(held: HeldBy, thread_id: str, call: str, *, fix: str) -> RuntimeError:
    """The error refusing ``call``, a wait for ``thread_id`` that would never end: the
    caller's own hold of it, the turn on it the caller runs inside, or a turn or hold
    waiting for the run of that turn (``held``), waits for the caller. ``fix``: what to
    do instead inside the caller's own hold."""
    if held == "turn":
        return RuntimeError(_IN_TURN.format(thread=thread_id, call=call))
    if held == "waiting":
        return RuntimeError(_WAITED_FROM_THREAD.format(thread=thread_id, call=call))
    return RuntimeError(_SELF_HOLD.format(thread=thread_id, call=call, fix=fix))


def _context_of(context: Any) -> Callable[[Task], Any] | None:
    """The function making each turn's context from its task (see the runtime's
    ``context``): the one given, or one returning the value given."""
    if context is None or callable(context):
        return cast(Callable[[Task], Any] | None, context)
    return lambda task: context


def _check_seconds(label: str, value: object) -> None:
    """Refuse a wait that is no number of seconds, 0 or more (NaN, negative, text);
    ``math.inf`` is a wait without end.

    Raises:
        InvalidTask: saying which option and what it got.
    """
    if not _number(value) or not value >= 0:  # type: ignore[operator]
        raise InvalidTask(f"{label} must be 0 or more seconds, got {value!r}")


def _check_manual_limits(
    max_per_task: int | None, max_per_owner: int | None, per_secs: float
) -> None:
    """Refuse manual-run limits that are no count (negative, a fraction, text; 0 allows
    none) and a window that is no span of time.

    Raises:
        InvalidTask: saying which limit and what it got.
    """
    for label, limit in (("max_per_task", max_per_task), ("max_per_owner", max_per_owner)):
        if limit is not None and (not is_whole(limit) or limit < 0):
            raise InvalidTask(
                f"{label} must be a whole number of manual runs, 0 or more (None: no "
                f"limit), got {limit!r}"
            )
    if not _number(per_secs) or not 0 < per_secs < math.inf:
        raise InvalidTask(
            f"per_secs must be a positive, finite number of seconds, got {per_secs!r}"
        )


def _number(value: object) -> bool:
    return is_whole(value) or isinstance(value, float)


_MAX_CONCURRENCY = 1_000_000
"""The most turns at once a runtime takes: more than any process runs, and well within
the integers a database counts the free turn slots in."""


_MAX_SPAN_SECS = 100 * 31_557_600
"""The longest lease and window (100 years): added to now they are stored and compared as
times, which end with the year 9999."""


def _check_options(
    *,
    max_concurrency: int,
    default_timeout_secs: float,
    drain_timeout_secs: float,
    lease_secs: float,
    history_limit: int | None,
    history_max_age_days: float | None,
    store_retry_secs: float,
    sync_interval_secs: float,
    window_secs: float,
) -> None:
    """Refuse the runtime's numeric options that it cannot run with (a fraction of a
    turn slot, an endless lease), which would otherwise fail every claim pass later."""

    if not is_whole(max_concurrency):
        raise InvalidTask(f"max_concurrency must be a whole number, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise InvalidTask(f"max_concurrency must be at least 1, got {max_concurrency}")
    if max_concurrency > _MAX_CONCURRENCY:  # a claim pass's LIMIT: a database integer
        raise InvalidTask(
            f"max_concurrency must be at most {_MAX_CONCURRENCY:,}, got {max_concurrency}"
        )
    for label, value in (("lease_secs", lease_secs), ("window_secs", window_secs)):
        if not _number(value) or not 0 < value <= _MAX_SPAN_SECS:
            raise InvalidTask(
                f"{label} must be a positive, finite number of seconds, up to 100 years "
                f"({_MAX_SPAN_SECS:,}), got {value!r}"
            )
    if not _number(sync_interval_secs) or not 0 < sync_interval_secs < math.inf:
        raise InvalidTask(
            "sync_interval_secs must be a positive, finite number of seconds, got "
            f"{sync_interval_secs!r}"
        )
    if not _number(default_timeout_secs) or not default_timeout_secs > 0:
        raise InvalidTask(f"default_timeout_secs must be positive, got {default_timeout_secs!r}")
    _check_seconds("drain_timeout_secs", drain_timeout_secs)
    _check_seconds("store_retry_secs", store_retry_secs)
    if history_limit is not None and (not is_whole(history_limit) or history_limit < 0):
        raise InvalidTask(
            f"history_limit must be a whole number of run records, 0 or more (None keeps "
            f"all), got {history_limit!r}"
        )
    if history_max_age_days is not None and (
        not _number(history_max_age_days) or not history_max_age_days > 0
    ):
        raise InvalidTask(
            "history_max_age_days must be a positive number of days (None keeps records of "
            f"any age), got {history_max_age_days!r}"
        )


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Await ``work`` to its end even when the caller is cancelled meanwhile (a second
    Ctrl-C), then let the caller's cancellation through."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError
