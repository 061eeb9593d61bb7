"""The runtime: scheduler, channel, workers and stores wired around one LangGraph graph."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from .bridge import STOPPED, TaskExecutorBridge
from .channel import (
    ConversationRequest,
    ConversationResponse,
    Error,
    Interrupted,
    Skipped,
    Success,
    Timeout,
)
from .checkpointers import open_checkpointer
from .errors import InvalidSchedule, InvalidTask, NotRunning, QuotaExceeded, TaskNotFound
from .locks import AdvisoryThreadLocks, ThreadBusy, ThreadLocks
from .models import Task, TaskEvent, TaskOptions, TaskRunRecord, TaskState
from .schedules import Interval, Schedule, check_timezone
from .store import Store
from .trigger import ConversationTrigger
from .views import RunHistory, TaskList, Transcript, load_transcript

__all__ = ["SchedulerRuntime"]

logger = logging.getLogger("langgraph_scheduler")

DEFAULT_DATABASE = "sqlite:///langgraph-scheduler.db"
_JOB_FUNC = "langgraph_scheduler.bridge:fire_task"

GraphInput = Pregel[Any, Any, Any, Any] | StateGraph[Any, Any, Any, Any]
RunListener = Callable[[TaskRunRecord], Awaitable[None] | None]
EventListener = Callable[[TaskEvent], Awaitable[None] | None]

_DIED = "the process running this turn stopped before it finished"
_NO_GRAPH = (
    "this runtime manages tasks only (graph=None): it runs no turns; pass a graph to run them"
)
_PURGE_EVERY_SECS = 600.0


class SchedulerRuntime:
    """Runs scheduled conversation turns on a LangGraph graph.

    Owns an APScheduler ``AsyncIOScheduler``, the bounded request queue, the bridge, a
    pool of workers and the task/run store. Use it as an async context manager, or call
    :meth:`start` and :meth:`stop` yourself (also inside a running loop, as in Jupyter).

    Args:
        graph: a compiled graph, or a ``StateGraph`` builder (compiled here with the
            runtime's checkpointer). A compiled graph without a checkpointer is given one.
            May also be a function of the runtime returning either, for graphs whose tools
            need the runtime: ``SchedulerRuntime(lambda rt: build_agent(rt))``. None makes
            a runtime that only manages tasks (CLI, admin scripts): no scheduler runs in
            it, and the runtimes that run turns on the same database follow its changes.
        database: ``sqlite:///file.db`` (default ``sqlite:///langgraph-scheduler.db``),
            ``sqlite://`` for memory, or ``postgresql://…`` (extra ``postgres``).
        checkpointer: use this checkpointer instead of the default one on ``database``.
        timezone: IANA zone for schedules that name none.
        max_concurrency: turns running at once (one worker each).
        queue_size: requests waiting for a worker; fires beyond it are recorded ``skipped``.
        default_timeout_secs: turn timeout when the trigger sets none.
        drain_timeout_secs: how long :meth:`stop` lets in-flight turns finish.
        lease_secs: how long a claimed fire stays owned without renewal; a crashed
            process's running fires are recorded ``interrupted`` once it expires.
        history_limit: run records kept per task (None keeps all); older finished ones
            are trimmed by the runtime's upkeep, within ``lease_secs / 3`` of a finish.
        history_max_age_days: finished run records older than this are purged.
        store_retry_secs: how long a fire keeps retrying a failing database call.
        sync_interval_secs: how often task changes made by other processes are polled
            (PostgreSQL also pushes them at once with LISTEN/NOTIFY).
        on_run: called with every finished run record.
        on_event: called with task events (auto-paused, completed).

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
        Fires are claimed in the database, so a fire runs at most once even when several
        processes share it. Turns on one thread never overlap inside this process.
    """

    def __init__(
        self,
        graph: GraphInput | Callable[[SchedulerRuntime], GraphInput] | None,
        *,
        database: str = DEFAULT_DATABASE,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        timezone: str = "UTC",
        max_concurrency: int = 4,
        queue_size: int = 100,
        default_timeout_secs: float = 300.0,
        drain_timeout_secs: float = 30.0,
        lease_secs: float = 30.0,
        history_limit: int | None = 1000,
        history_max_age_days: float | None = None,
        store_retry_secs: float = 60.0,
        sync_interval_secs: float = 2.0,
        on_run: RunListener | None = None,
        on_event: EventListener | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidTask(f"max_concurrency must be at least 1, got {max_concurrency}")
        if queue_size < 1:
            raise InvalidTask(f"queue_size must be at least 1, got {queue_size}")
        self._graph_in = graph
        self._checkpointer_in = checkpointer
        self.database = database
        self.timezone = _check_zone(timezone)
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.default_timeout_secs = default_timeout_secs
        self.drain_timeout_secs = drain_timeout_secs
        self.lease_secs = lease_secs
        self.history_limit = history_limit
        self.history_max_age_days = history_max_age_days
        self.store_retry_secs = store_retry_secs
        self.sync_interval_secs = sync_interval_secs
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._listeners: list[RunListener] = [on_run] if on_run else []
        self._event_listeners: list[EventListener] = [on_event] if on_event else []
        self._thread_locks = ThreadLocks()
        self._task_locks = ThreadLocks()
        self._replica_locks: AdvisoryThreadLocks | None = None
        self._known_changes: dict[str, datetime] = {}
        self._state = "new"
        self._stack: contextlib.AsyncExitStack | None = None
        self._fires: set[asyncio.Task[Any]] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._current: dict[asyncio.Task[None], ConversationRequest] = {}
        self._store: Store | None = None
        self._graph: Pregel[Any, Any, Any, Any] | None = None
        self._bridge: TaskExecutorBridge | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._queue: asyncio.Queue[Any] | None = None

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
        return self._state == "running"

    async def start(self) -> None:
        """Open the stores, rebuild jobs from the task store and start firing."""
        if self._state != "new":
            raise NotRunning(f"runtime cannot start from state {self._state!r}; make a new one")
        self._state = "starting"
        stack = contextlib.AsyncExitStack()
        try:
            # Turns on PostgreSQL hold a connection each for their thread's advisory lock.
            store = Store(self.database, pool_size=self.max_concurrency + 2)
            stack.push_async_callback(store.close)
            async with store.setup_lock():
                await store.setup()
                self._store = store
                if self._graph_in is None:  # manages tasks only: no scheduler, no turns
                    self._stack = stack
                    self._state = "running"
                    return
                self._graph = await self._bind_graph(stack)
            if store.dialect == "postgresql":
                assert store.async_engine is not None
                self._replica_locks = AdvisoryThreadLocks(store.async_engine)
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._scheduler = AsyncIOScheduler(
                timezone=timezone.utc,
                job_defaults={"coalesce": False, "misfire_grace_time": None},
            )
            self._scheduler.add_executor(_BridgeExecutor(self._spawn_fire), alias="default")
            self._bridge = TaskExecutorBridge(
                store=store,
                queue=self._queue,
                scheduler=self._scheduler,
                holder=self.holder,
                lease_secs=self.lease_secs,
                default_timeout_secs=self.default_timeout_secs,
                started_at=_utcnow(),
                on_record=self._emit,
                on_event=self._emit_event,
                store_retry_secs=self.store_retry_secs,
                spawn=self._spawn,
                resync=self._sync_job,
                claim_batch=max(8, self.max_concurrency),
            )
            stack.callback(self._bridge.unregister)
            dead = [h for h in await store.running_holders() if _holder_is_dead(h)]
            recovered = await store.interrupt_expired(now=_utcnow(), reason=_DIED, holders=dead)
            async for task in store.iter_tasks(states=["active"]):
                self._add_job(task, next_run_time=task.next_run_at)
            self._workers = [
                asyncio.create_task(self._worker(), name=f"langgraph-scheduler-worker-{i}")
                for i in range(self.max_concurrency)
            ]
            self._workers.append(
                asyncio.create_task(self._keep_leases(), name="langgraph-scheduler-leases")
            )
            self._workers.append(
                asyncio.create_task(self._follow_changes(), name="langgraph-scheduler-sync")
            )
            self._scheduler.start()
            for record in recovered:
                await self._emit(record)
                await self._bridge.recover(record)
        except BaseException:
            self._state = "stopped"
            await stack.aclose()
            raise
        self._stack = stack
        self._state = "running"
        logger.info("scheduler runtime %s started on %s", self.holder, self.database)

    async def stop(self, *, drain_timeout_secs: float | None = None) -> None:
        """Stop firing, let in-flight turns finish up to the deadline, record the rest
        ``interrupted`` and close the stores."""
        if self._state != "running":
            return
        self._state = "stopping"
        assert self._stack is not None
        if self._scheduler is None:  # a task-management runtime (graph=None)
            await self._stack.aclose()
            self._state = "stopped"
            return
        assert self._bridge and self._queue
        deadline = self.drain_timeout_secs if drain_timeout_secs is None else drain_timeout_secs
        self._scheduler.shutdown(wait=False)
        self._bridge.close()
        if self._fires:
            await asyncio.wait(set(self._fires), timeout=deadline)
        # Past the deadline: interrupt what is still running or waiting.
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if isinstance(request, ConversationRequest) and not request.reply.done():
                request.reply.set_result(Interrupted("runtime stopped before the turn started"))
        if self._fires:
            await asyncio.wait(set(self._fires), timeout=10)
        for fire in list(self._fires):
            fire.cancel()
        await asyncio.gather(*self._fires, return_exceptions=True)
        await self._bridge.drain()
        await self._stack.aclose()
        self._state = "stopped"
        logger.info("scheduler runtime %s stopped", self.holder)

    # -- properties ------------------------------------------------------------------

    @property
    def graph(self) -> Pregel[Any, Any, Any, Any]:
        """The graph scheduled turns run on (with the runtime's checkpointer)."""
        if self._graph is None:
            if self._graph_in is None:
                raise NotRunning(_NO_GRAPH)
            raise NotRunning("the runtime is not started; use 'async with SchedulerRuntime(...)'")
        return self._graph

    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any] | None:
        cp = self.graph.checkpointer
        return cp if isinstance(cp, BaseCheckpointSaver) else None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise NotRunning("the runtime is not started; use 'async with SchedulerRuntime(...)'")
        return self._store

    def add_listener(self, listener: RunListener) -> None:
        """Call ``listener(record)`` with every finished run record."""
        self._listeners.append(listener)

    def add_event_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` with every task event (auto-pause, completion)."""
        self._event_listeners.append(listener)

    # -- task API --------------------------------------------------------------------

    async def create_task(
        self,
        *,
        name: str,
        schedule: Schedule,
        trigger: ConversationTrigger | Mapping[str, Any] | str,
        thread_id: str | None = None,
        owner: str = "default",
        max_runs: int | None = None,
        options: TaskOptions | None = None,
        paused: bool = False,
        max_active: int | None = None,
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
            options: misfire and busy-thread policy.
            paused: create it paused.
            max_active: refuse when the owner already has this many active tasks (checked
                atomically with the insert, so concurrent creations cannot overshoot).

        Raises:
            QuotaExceeded: ``max_active`` refused the task.
            InvalidSchedule: the schedule cannot fire (bad zone, a date in the past, …).
            InvalidPayload: the trigger is invalid.
            InvalidTask: another argument is invalid.
        """
        self._require_running()
        now = _utcnow()
        parsed_trigger = _as_trigger(trigger)
        schedule = _pin_start(schedule.with_default_tz(self.timezone), now)
        schedule.check(now)
        name = _check_name(name)
        if max_runs is not None and max_runs < 1:
            raise InvalidTask(f"max_runs must be at least 1, got {max_runs}")
        if thread_id is not None and not thread_id.strip():
            raise InvalidTask("thread_id must not be blank; pass None for isolated runs")
        state: TaskState = "paused" if paused else "active"
        task = Task(
            id=uuid.uuid4().hex[:16],
            name=name,
            owner=owner,
            schedule=schedule,
            payload=parsed_trigger.to_payload(),
            thread_mode="continue" if thread_id else "isolated",
            thread_id=thread_id,
            state=state,
            options=options or TaskOptions(),
            max_runs=max_runs,
            next_run_at=None if paused else _first_fire(schedule, now),
            created_at=now,
            updated_at=now,
        )
        if not await self.store.insert_task(
            task, max_active=max_active if state == "active" else None
        ):
            raise QuotaExceeded(
                f"quota reached: owner {owner!r} already has {max_active} active tasks; delete "
                "or pause a task that is no longer needed, then try again"
            )
        if state == "active":
            self._add_job(task, next_run_time=task.next_run_at)
        return task

    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """The task with this id (of this owner, when given).

        Raises:
            TaskNotFound: no such task, or it belongs to another owner.
        """
        task = await self.store.get_task(task_id, owner=owner)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        state: TaskState | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskList:
        """Tasks, oldest first; filter by owner and state, page with limit/offset."""
        page = await self.store.list_tasks(
            owner=owner, states=[state] if state else None, limit=limit, offset=offset
        )
        return TaskList(page.tasks)

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
        options: TaskOptions | None = None,
    ) -> Task:
        """Change a task; a new schedule takes effect from now.

        Raises:
            TaskNotFound, InvalidSchedule, InvalidPayload, InvalidTask.
        """
        self._require_running()
        task = await self.get_task(task_id, owner=owner)
        now = _utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if name is not None:
            values["name"] = _check_name(name)
        new_trigger: ConversationTrigger | None = None
        if trigger is not None:
            new_trigger = _as_trigger(trigger)
        if timeout_secs is not None:
            base = new_trigger or task.trigger
            new_trigger = ConversationTrigger.model_validate(
                base.to_payload() | {"timeout_secs": timeout_secs}
            )
        if new_trigger is not None:
            values["payload"] = new_trigger.to_payload()
        if max_runs is not None:
            if max_runs < 1:
                raise InvalidTask(f"max_runs must be at least 1, got {max_runs}")
            values["max_runs"] = max_runs
        if options is not None:
            values["options"] = options
        reschedule = schedule is not None or (
            max_runs is not None and task.state == "completed" and task.run_count < max_runs
        )
        new_schedule = task.schedule
        if schedule is not None:
            new_schedule = _pin_start(
                schedule.with_default_tz(task.schedule.tz or self.timezone), now
            )
            new_schedule.check(now)
            values["schedule"] = new_schedule
        if reschedule and task.state != "paused":
            values["state"] = "active"
            values["next_run_at"] = _first_fire(new_schedule, now)
        updated = await self.store.update_task(task_id, **values)
        if updated is None:
            raise TaskNotFound(task_id)
        if reschedule and updated.state == "active":
            self._add_job(updated, next_run_time=updated.next_run_at)
        return updated

    async def pause_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """Stop firing until resumed (a run in flight finishes)."""
        self._require_running()
        task = await self.get_task(task_id, owner=owner)
        if task.state != "active":
            return task
        self._remove_job(task_id)
        updated = await self.store.update_task(
            task_id, state="paused", next_run_at=None, updated_at=_utcnow()
        )
        if updated is None:
            raise TaskNotFound(task_id)
        return updated

    async def resume_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """Fire again from the next occurrence after now (missed ones are not replayed).

        Raises:
            InvalidSchedule: the schedule has no occurrence left.
        """
        self._require_running()
        task = await self.get_task(task_id, owner=owner)
        if task.state == "active":
            return task
        now = _utcnow()
        if task.max_runs is not None and task.run_count >= task.max_runs:
            raise InvalidTask(
                f"task {task_id!r} already ran its max_runs={task.max_runs}; raise max_runs "
                "to resume it"
            )
        task.schedule.check(now)
        next_run = _first_fire(task.schedule, now)
        updated = await self.store.update_task(
            task_id, state="active", next_run_at=next_run, updated_at=now
        )
        if updated is None:
            raise TaskNotFound(task_id)
        self._add_job(updated, next_run_time=next_run)
        return updated

    async def delete_task(self, task_id: str, *, owner: str | None = None) -> Task:
        """Delete a task and its history; returns what was deleted."""
        self._require_running()
        task = await self.get_task(task_id, owner=owner)
        self._remove_job(task_id)
        await self.store.delete_task(task_id)
        return task

    async def run_now(
        self, task_id: str, *, owner: str | None = None, wait: bool = True
    ) -> TaskRunRecord:
        """Fire a task now, outside its schedule (paused tasks too).

        Args:
            wait: return the finished record; with False return the running one.
        """
        self._require_running()
        if self._bridge is None:
            raise NotRunning(_NO_GRAPH)
        task = await self.get_task(task_id, owner=owner)
        record = await self._bridge.claim(task, _utcnow(), trigger="manual")
        if record is None:  # pragma: no cover - a fresh uuid-based fire cannot collide
            raise NotRunning("could not claim a manual run")
        execution = self._spawn(self._bridge.execute(task, record))
        if not wait:
            return record
        return await asyncio.shield(execution)

    async def history(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        before: datetime | None = None,
    ) -> RunHistory:
        """A task's run records, newest first; page with ``before=records[-1].started_at``."""
        task = await self.get_task(task_id, owner=owner)
        records = await self.store.history(task_id, limit=limit, before=before)
        return RunHistory(records, task_names={task.id: task.name})

    async def transcript(self, thread_id: str) -> Transcript:
        """The thread's conversation, task-triggered turns labelled with their task and run."""
        return await load_transcript(self, thread_id)

    async def get_run(self, run_id: str) -> TaskRunRecord | None:
        return await self.store.get_run(run_id)

    async def next_run_times(
        self, task_id: str, n: int = 5, *, owner: str | None = None
    ) -> list[datetime]:
        """The task's next ``n`` fire times in its own timezone (empty when not active)."""
        return (await self.get_task(task_id, owner=owner)).upcoming_runs(n)

    # -- user turns ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def thread_lock(
        self, thread_id: str, *, timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Hold a thread against scheduled turns (wrap your own turns on that thread).

        On PostgreSQL the hold also covers scheduled turns of other replicas.

        Raises:
            ThreadBusy: the thread stayed busy longer than ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self._thread_locks.hold(thread_id, timeout=timeout):
            if self._replica_locks is None:
                yield
                return
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            async with self._replica_locks.hold(thread_id, timeout=remaining):
                yield

    async def ainvoke(self, input: Any, config: RunnableConfig) -> Any:
        """Run a user turn on the graph without interleaving with scheduled turns."""
        thread_id = str(config.get("configurable", {}).get("thread_id", ""))
        if not thread_id:
            raise InvalidTask("config['configurable']['thread_id'] is required")
        if isinstance(input, dict) and "task_source" not in input:
            input = {**input, "task_source": None}
        async with self.thread_lock(thread_id):
            return await self.graph.ainvoke(input, config)

    # -- internals -------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._state != "running":
            raise NotRunning(
                f"the runtime is {self._state}; use 'async with SchedulerRuntime(...)' or "
                "await runtime.start() first"
            )

    async def _bind_graph(self, stack: contextlib.AsyncExitStack) -> Pregel[Any, Any, Any, Any]:
        graph = self._graph_in
        if not isinstance(graph, (StateGraph, Pregel)) and callable(graph):
            graph = graph(self)
        if isinstance(graph, StateGraph):
            saver = self._checkpointer_in or await self._open_checkpointer(stack)
            return graph.compile(checkpointer=saver)
        if isinstance(graph, Pregel):
            if self._checkpointer_in is not None:
                return graph.copy(update={"checkpointer": self._checkpointer_in})
            if isinstance(graph.checkpointer, BaseCheckpointSaver):
                return graph
            saver = await self._open_checkpointer(stack)
            return graph.copy(update={"checkpointer": saver})
        raise InvalidTask(
            f"graph must be a compiled LangGraph graph or a StateGraph, got {type(graph).__name__}"
        )

    async def _open_checkpointer(
        self, stack: contextlib.AsyncExitStack
    ) -> BaseCheckpointSaver[Any]:
        return await open_checkpointer(
            self.database, stack, max_connections=self.max_concurrency + 1
        )

    def _add_job(self, task: Task, *, next_run_time: datetime | None) -> None:
        if self._scheduler is None or self._bridge is None:
            return  # graph=None: the runtimes that run turns follow the store
        kwargs: dict[str, Any] = {}
        if next_run_time is not None:
            kwargs["next_run_time"] = next_run_time
        self._scheduler.add_job(
            _JOB_FUNC,
            trigger=task.schedule.shared_trigger(),
            args=[self._bridge.key, task.id],
            id=task.id,
            name=task.name,
            replace_existing=True,
            **kwargs,
        )

    def _remove_job(self, task_id: str) -> None:
        if self._scheduler is not None and self._scheduler.get_job(task_id) is not None:
            self._scheduler.remove_job(task_id)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._fires.add(task)
        task.add_done_callback(self._fires.discard)
        return task

    def _spawn_fire(self, job: Job, run_times: list[datetime]) -> None:
        self._spawn(job.func(*job.args, scheduled_times=run_times))

    async def _emit(self, record: TaskRunRecord) -> None:
        await _call_all(self._listeners, record)

    async def _emit_event(self, event: TaskEvent) -> None:
        await _call_all(self._event_listeners, event)

    async def _worker(self) -> None:
        assert self._queue is not None
        me = asyncio.current_task()
        assert me is not None
        while True:
            request = await self._queue.get()
            self._current[me] = request
            try:
                response = await self._run_turn(request)
            except asyncio.CancelledError:
                if not request.reply.done():
                    request.reply.set_result(Interrupted(STOPPED))
                raise
            finally:
                self._current.pop(me, None)
            if not request.reply.done():
                request.reply.set_result(response)

    async def _run_turn(self, request: ConversationRequest) -> ConversationResponse:
        wait = 0.0 if request.on_busy == "skip" else request.max_wait_secs
        waited = f" for more than {wait:g}s" if wait else ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        try:
            async with self._task_locks.hold(request.task_id, timeout=wait):
                remaining = max(deadline - loop.time(), 0.0) if wait else 0.0
                try:
                    async with self.thread_lock(request.thread_id, timeout=remaining):
                        return await self._invoke(request)
                except ThreadBusy:
                    return Skipped(
                        f"thread {request.thread_id!r} was busy with another turn{waited}"
                    )
        except ThreadBusy:
            return Skipped(f"the task's previous run was still going{waited}")

    async def _invoke(self, request: ConversationRequest) -> ConversationResponse:
        graph = self.graph
        source = request.source
        message = HumanMessage(
            content=request.prompt,
            additional_kwargs={"task_source": dict(source)},
        )
        config: RunnableConfig = {
            # The task's owner is the user of its turns: tools and memory keyed on
            # user_id see the same user as in the conversation that made the task.
            "configurable": {"thread_id": request.thread_id, "user_id": request.owner},
            "run_name": f"scheduled:{source['task_name']}",
            "run_id": uuid.UUID(request.run_id),
            "tags": ["langgraph-scheduler", f"task:{request.task_id}"],
            "metadata": {
                "task_id": request.task_id,
                "task_name": source["task_name"],
                "run_id": request.run_id,
                "scheduled_for": source["scheduled_for"],
                "source": "scheduler",
            },
        }
        timeout = request.timeout_secs or self.default_timeout_secs
        try:
            result = await _within(
                graph.ainvoke({"messages": [message], "task_source": source}, config), timeout
            )
        except _TurnTimedOut:
            return Timeout(timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("scheduled turn of task %s failed: %r", request.task_id, exc)
            return Error(f"{type(exc).__name__}: {exc}")
        checkpoint_id = None
        saver = graph.checkpointer
        if isinstance(saver, BaseCheckpointSaver):
            # The latest checkpoint's id only: aget_tuple, not aget_state, which also
            # rebuilds the state snapshot and its pending tasks.
            with contextlib.suppress(Exception):
                latest = await saver.aget_tuple(
                    {"configurable": {"thread_id": request.thread_id, "checkpoint_ns": ""}}
                )
                if latest is not None:
                    checkpoint_id = latest.config["configurable"].get("checkpoint_id")
        return Success(_final_text(result), checkpoint_id=checkpoint_id)

    def _sync_job(self, task: Task | None, task_id: str | None = None) -> None:
        """Make this process's job match the stored task (changed by another replica)."""
        if task is None or task.state != "active" or task.next_run_at is None:
            self._remove_job(task.id if task is not None else str(task_id))
            return
        job = self._scheduler.get_job(task.id) if self._scheduler else None
        if job is None or job.next_run_time != task.next_run_at or job.name != task.name:
            self._add_job(task, next_run_time=task.next_run_at)

    async def _resync(self, task_id: str) -> None:
        self._sync_job(await self.store.get_task(task_id), task_id)

    async def _follow_changes(self) -> None:
        """Apply task changes made by other processes: LISTEN/NOTIFY on PostgreSQL (within
        a moment), and a poll of ``updated_at`` on every backend as the safety net."""
        listener = None
        if self.store.dialect == "postgresql":
            listener = asyncio.ensure_future(self._listen_for_changes())
        since = _utcnow()
        try:
            while True:
                await asyncio.sleep(self.sync_interval_secs)
                try:
                    # Overlap the window: writers' clocks and commit order may lag a little.
                    now = _utcnow()
                    for task_id, changed in await self.store.changed_since(
                        since - timedelta(seconds=5)
                    ):
                        if self._known_changes.get(task_id) != changed:
                            self._known_changes[task_id] = changed
                            await self._resync(task_id)
                    since = now
                except Exception:
                    logger.exception("following task changes failed; retrying")
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _listen_for_changes(self) -> None:
        import psycopg

        from .store import TASK_CHANGES_CHANNEL

        url = self.store.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {TASK_CHANGES_CHANNEL}")
                    async for note in conn.notifies():
                        try:
                            await self._resync(note.payload)
                        except Exception:
                            logger.exception("applying change of task %s failed", note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("task change listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _keep_leases(self) -> None:
        """Renew this process's claims and record others' expired ones as interrupted."""
        assert self._bridge is not None
        interval = max(self.lease_secs / 3, 0.05)
        next_purge = _utcnow()
        while True:
            await asyncio.sleep(interval)
            try:
                now = _utcnow()
                until = now + timedelta(seconds=self.lease_secs)
                await self.store.renew_leases(list(self._bridge.in_flight), until=until)
                for record in await self.store.interrupt_expired(
                    now=now,
                    reason="the process running this turn stopped renewing its claim",
                ):
                    await self._emit(record)
                    await self._bridge.recover(record)
                if self.history_limit is not None and self._bridge.finished_tasks:
                    finished = set(self._bridge.finished_tasks)
                    self._bridge.finished_tasks.clear()
                    await self.store.trim_history(finished, keep=self.history_limit)
                if self.history_max_age_days is not None and now >= next_purge:
                    cutoff = now - timedelta(days=self.history_max_age_days)
                    await self.store.purge_history(finished_before=cutoff)
                    next_purge = now + timedelta(seconds=_PURGE_EVERY_SECS)
            except Exception:
                logger.exception("lease upkeep failed; retrying")


class _BridgeExecutor(BaseExecutor):  # type: ignore[misc]
    """Hands due jobs to the runtime with their scheduled times.

    APScheduler's own executors drop the scheduled time and apply misfire and instance
    limits silently; the bridge records those cases instead, so it needs the times.
    """

    def __init__(self, spawn: Callable[[Job, list[datetime]], None]) -> None:
        super().__init__()
        self._spawn_fire = spawn

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._spawn_fire(job, list(run_times))

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._spawn_fire(job, list(run_times))


class _TurnTimedOut(Exception):
    """The turn's own deadline passed (not a TimeoutError raised inside the turn)."""


async def _within(awaitable: Awaitable[Any], secs: float) -> Any:
    """Await with a deadline; :class:`_TurnTimedOut` only when that deadline passed."""
    if hasattr(asyncio, "timeout"):  # Python 3.11+: no extra task per turn
        budget = asyncio.timeout(secs)
        try:
            async with budget:
                return await awaitable
        except TimeoutError:
            if budget.expired():
                raise _TurnTimedOut from None
            raise
    try:
        return await asyncio.wait_for(awaitable, secs)
    except asyncio.TimeoutError:
        raise _TurnTimedOut from None


def _final_text(result: Any) -> str:
    messages = result.get("messages") if isinstance(result, dict) else None
    if messages:
        for message in reversed(messages):
            if isinstance(message, AIMessage):
                return message.text
        last = messages[-1]
        if isinstance(last, BaseMessage):
            return last.text
    return "" if result is None else str(result)


def _as_trigger(trigger: ConversationTrigger | Mapping[str, Any] | str) -> ConversationTrigger:
    if isinstance(trigger, str):
        trigger = {"prompt": trigger}
    return ConversationTrigger.from_task_payload(
        dict(trigger) if isinstance(trigger, Mapping) else trigger
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidTask("task name must not be empty")
    if len(name) > 200:
        raise InvalidTask(f"task name is {len(name)} characters; the limit is 200")
    return name


def _check_zone(tz: str) -> str:
    check_timezone(tz)  # raises InvalidSchedule naming the zone
    return tz


def _pin_start(schedule: Schedule, now: datetime) -> Schedule:
    """Give an Interval without start its first fire time, so restarts keep its phase."""
    if isinstance(schedule, Interval) and schedule.start is None:
        first = now + timedelta(seconds=schedule.seconds)
        return schedule.model_copy(update={"start": first.astimezone(schedule.zone)})
    return schedule


def _first_fire(schedule: Schedule, now: datetime) -> datetime:
    times = schedule.next_fire_times(1, after=now)
    if not times:
        raise InvalidSchedule(f"schedule {schedule.describe()} has no fire time after now")
    return times[0].astimezone(timezone.utc)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _holder_is_dead(holder: str) -> bool:
    """True if ``holder`` names a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _call_all(listeners: list[Callable[[Any], Any]], item: Any) -> None:
    for listener in listeners:
        try:
            maybe = listener(item)
            if maybe is not None:
                await maybe
        except Exception:
            logger.exception("listener %r failed", listener)
