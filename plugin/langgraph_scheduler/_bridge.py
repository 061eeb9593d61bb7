"""From a due fire to a recorded outcome: claim → turn → record.

:class:`TaskExecutorBridge` claims due fires from the store only as far as it has free
turn slots; a fire nobody has room for stays due in the table and is claimed as soon as a
slot frees, here or in another replica. A timer wakes the bridge :data:`CLAIM_AHEAD`
before an instant; the fires claimed then have their turns built and wait for it, so
each turn begins on time.
Each claimed fire runs as a turn (:class:`~._turns.TurnRunner`) and ends in exactly one
recorded outcome; what the outcome does to its task (a retry row, the failure streak, an
auto-pause) is decided in the same transaction by the fire policy. The flow goes one
way: timers and the change feed wake the bridge; the bridge calls the store and the turn
runner, and tells listeners (which never make it wait: see :mod:`._listeners`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from ._batching import Batcher
from ._clock import Clock
from ._context import Slot, Wait, mark_slot, slot_here, spawn_clean, turns_waiting_here, waiting_in
from ._logs import Repeats
from ._turns import (
    ConversationRequest,
    ConversationResponse,
    Error,
    Interrupted,
    ServerRun,
    Skipped,
    Success,
    Timeout,
    TurnRunner,
    exception_text,
)
from .errors import InvalidPayload, NotAllowed, StoreError, StoreUnavailable, TaskNotFound
from .models import Task, TaskEvent, TaskEventKind, TaskRunRecord, TaskSource, storable_text
from .store import CallAnswer, Claimed, Finish, Finished, Store, isolated_thread_id
from .trigger import ConversationTrigger

__all__ = ["TaskExecutorBridge", "to_finish"]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

SUMMARY_MAX_CHARS = 2_000
"""Longest summary kept in a run record (the full answer stays in the thread)."""

ERROR_MAX_CHARS = 4_000
"""Longest error kept in a run record: an exception's message comes from outside (a
provider's reply, a tool's output) and may be megabytes long (the log has it whole)."""

STOPPED = "runtime stopped before the turn finished"

_NOT_STARTED = Interrupted("runtime is stopping: the turn was not started")
_PASS_GRACE_SECS = 5.0
"""How long a stopping runtime waits at least for a claim pass in flight to end."""
_RECORD_GRACE_SECS = 30.0
"""How long a stopping runtime waits for the outcomes of its turns to be recorded."""
_STUCK_FINISH_SECS = 1.0
"""How long a recording of outcomes may be in flight before the outcomes queued behind
it are recorded beside it, each alone: one waiting for a task's row that another
session holds locked must not hold up the others' (a batch takes milliseconds)."""
_NO_TURNS = Error("this runtime runs no turns (graph=None)")
_TRIGGERS_KEPT = 4096
"""Most parsed triggers a bridge keeps (as many as the store keeps validated tasks)."""

CLAIM_AHEAD = timedelta(milliseconds=25)
"""How long before a due instant its timer wakes the bridge: the fire is claimed then,
and its turn begins at the instant itself instead of after the claim."""

_EARLY_WAKE = 2 * CLAIM_AHEAD
"""How far ahead of the clock a timer's due instant is still trusted."""

RecordListener = Callable[[TaskRunRecord], None]
EventListener = Callable[[TaskEvent], None]


class TaskExecutorBridge:
    """Claims due fires up to its free slots, runs their turns and records outcomes.

    Args:
        store: tasks, runs and retries.
        turns: runs a claimed fire's turn.
        clock: the source of "now".
        holder: this process's id, written on its claims.
        capacity: turns running at once.
        lease_secs: how long a claim stays valid without renewal.
        default_timeout_secs: turn timeout when the trigger sets none.
        context_of: the ``context`` of a fire's turn, made from its task (None: none).
        started_at: when the runtime started (fires due before were due while it was down).
        poll_secs: how often to look for due fires without being woken (the safety net
            for another replica's claims and clock skew).
        store_retry_secs: how long a store call is retried while the database is down.
        on_record: told every finished record, once it is stored (it must not wait:
            the turn slot and the claim pass that tell it go on at once).
        on_event: told every task event, the same way.
        on_due: told each future due time the bridge learns of (to set a timer).
    """

    def __init__(
        self,
        *,
        store: Store,
        turns: TurnRunner | None,
        clock: Clock,
        holder: str,
        capacity: int,
        lease_secs: float,
        default_timeout_secs: float,
        context_of: Callable[[Task], Any] | None = None,
        started_at: datetime,
        poll_secs: float,
        store_retry_secs: float,
        on_record: RecordListener,
        on_event: EventListener,
        on_due: Callable[[datetime], None],
    ) -> None:
        self.store = store
        self.turns = turns
        self.clock = clock
        self.holder = holder
        self.capacity = capacity
        self.lease_secs = lease_secs
        self.default_timeout_secs = default_timeout_secs
        self.context_of = context_of
        self.started_at = started_at
        self.poll_secs = poll_secs
        self.store_retry_secs = store_retry_secs
        self._store_failures = Repeats(clock.now)
        """The store failures its retries said lately (see :func:`retrying`)."""
        self.on_record = on_record
        self.on_event = on_event
        self.on_due = on_due
        self.in_flight: dict[str, TaskRunRecord] = {}
        """Running fires of this process, by run id (their leases are renewed)."""
        self._finishing: set[str] = set()
        """Run ids whose outcome this process is sending to the store right now."""
        self.finished_tasks: set[str] = set()
        """Tasks with runs finished since the upkeep last trimmed their history."""
        self.closed = False
        self._busy = 0
        self._reserved = 0
        """Slots a claim pass keeps for the fires it is claiming while the store answers:
        a manual run asking for a slot meanwhile queues, so the pass's fires and that run
        never hold more than ``capacity`` slots together."""
        self._slot_queue: deque[tuple[str | None, asyncio.Future[None]]] = deque()
        """Manual runs waiting for a turn slot (their task's id, and what their wait
        awaits), longest waiting first: a slot freed while they wait is handed to the
        first (see :meth:`_hand_on`), so no run that asks for one as it frees takes it
        ahead of them."""
        self._waiting_tasks: Counter[str] = Counter()
        """Per task, the slots whose turns of it have a caller (a node or tool) waiting
        for a run (see :meth:`waiting_for_a_run`): each frees only after that run, which
        needs a slot; and a run of such a task given a slot would hold it waiting for
        that turn to end (a task's runs never overlap)."""
        self._woken = False
        """A claim pass was asked for since the last one began."""
        self._wakeup: asyncio.Future[None] | None = None
        """What the idle claim loop awaits (done by :meth:`_poke`)."""
        self._as_of: datetime | None = None
        self._turn_tasks: set[asyncio.Task[Any]] = set()
        self._recording: set[asyncio.Task[Any] | None] = set()
        """Turn tasks whose turn is over and whose outcome is being recorded."""
        self._triggers: dict[str, tuple[Any, ConversationTrigger]] = {}
        """Per task id, its payload as last parsed and the trigger parsed from it: a task
        whose row is unchanged comes back from the store with the same payload object,
        so its trigger is not validated again at every fire (see :meth:`_trigger`)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_turn_done = self._turn_done
        """One bound method for every turn task's done callback, not one per turn."""
        self._claiming = 0
        self._backlog = False
        self._claim_lock = asyncio.Lock()
        self._manual_claims: set[asyncio.Task[Any]] = set()
        """Manual runs' claims the store is writing (see :meth:`run_now`): the stop waits
        for them as for a claim pass, so each claimed run is recorded."""
        self._finishes: Batcher[Finish, Finished | None] = Batcher(
            self._finish_batch, patience=_STUCK_FINISH_SECS
        )
        self._stopped: dict[str, datetime] = {}
        """Tasks paused or deleted lately (by anyone this process heard of), and when."""

    # -- waking and claiming ----------------------------------------------------------

    def wake(self, due: datetime | None = None) -> None:
        """Look for due fires now; ``due`` is the instant a timer fired for (a fire due
        then is claimed even if the wall clock reads a hair earlier)."""
        if due is not None and (self._as_of is None or due > self._as_of):
            self._as_of = due
        self._poke()

    def _poke(self) -> None:
        """Ask the claim loop for a pass: at once if it is idle, else after this one."""
        self._woken = True
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def task_changed(self, task_id: str, state: str | None) -> None:
        """A task was written (``state`` None: deleted). A fire of it claimed ahead of its
        instant does not begin if the task stopped firing meanwhile."""
        if state in ("active", "completed"):
            self._stopped.pop(task_id, None)
            return
        now = self.clock.now()
        self._stopped[task_id] = now
        if len(self._stopped) > 256:  # only the last moments matter
            horizon = now - 4 * _EARLY_WAKE
            self._stopped = {k: at for k, at in self._stopped.items() if at >= horizon}

    @property
    def free(self) -> int:
        """Turn slots not taken (manual runs waiting for one come first)."""
        return max(self.capacity - self._busy - self._reserved - len(self._slot_queue), 0)

    async def run(self) -> None:
        """The claim loop: runs until cancelled. A pass runs when one is asked for (a
        timer, the change feed, a freed slot) and every ``poll_secs`` in any case."""
        loop = asyncio.get_running_loop()
        poll: asyncio.Future[None] | None = None
        repeats = Repeats(self.clock.now)
        """The errors of failed passes lately logged."""
        try:
            while not self.closed:
                if poll is None or poll.done():
                    # One poll timer at a time, not one per pass: a burst's passes come
                    # one per freed slot.
                    poll = asyncio.ensure_future(self.clock.sleep(self.poll_secs))
                    poll.add_done_callback(lambda _: self._poke())
                if self._woken:  # asked during the last pass: the loop's other work first
                    await asyncio.sleep(0)
                else:
                    self._wakeup = loop.create_future()
                    try:
                        await self._wakeup
                    finally:
                        self._wakeup = None
                self._woken = False
                try:
                    await self.claim_now()
                except StoreError as exc:
                    # The database refused, and not for a moment (a file made read-only,
                    # a dropped database): its message says what to fix. Each error said
                    # once a minute while it lasts, not with a trace each pass.
                    if repeats.new(str(exc)):
                        logger.error(
                            "claiming due fires failed (%s); trying again every %gs",
                            exc,
                            self.poll_secs,
                        )
                except Exception:
                    logger.exception("claiming due fires failed; trying again")
        finally:
            if poll is not None:
                poll.cancel()

    async def claim_now(self) -> int:
        """Claim and start what is due, as far as free slots allow; returns how many fires
        were claimed. A store that stays unreachable is logged, and the fires wait."""
        self._claiming += 1
        self._idle.clear()
        try:
            async with self._claim_lock:  # one pass at a time: free slots are counted once
                return await self._claim_passes()
        finally:
            self._claiming -= 1
            self._check_idle()

    async def _claim_passes(self) -> int:
        claimed = 0
        # Until a pass finds fewer due fires than it had room for, some may be waiting
        # for a slot: then a freed slot starts the next pass.
        self._backlog = True
        target: datetime | None = None
        while not self.closed and self.free > 0:
            as_of = self.clock.now()
            # A timer wakes CLAIM_AHEAD before its instant (and loop time and wall time
            # drift apart): claim what it woke for; each turn waits for its instant.
            # Never further ahead than that, so a timer running on another clock than
            # ours cannot claim fires long before they are due: an instant further off
            # goes back to the timer, which wakes us for it again. The instant holds
            # until a pass finds room for everything due by then.
            woken, self._as_of = self._as_of, None
            if woken is not None and (target is None or woken > target):
                target = woken
            if target is not None and as_of < target:
                if target <= as_of + _EARLY_WAKE:
                    as_of = target
                else:
                    self.on_due(target)
                    target = None
            limit = self._reserved = self.free
            try:
                batch = await self._retrying("claim due fires", self._claimer(as_of, limit))
                for claim in batch or ():
                    await self._start(claim)
            finally:
                self._reserved = 0
                self._hand_on()  # the slots the claim left over, to runs queued meanwhile
            if batch is None:
                break
            claimed += len(batch)
            if len(batch) < limit:
                self._backlog = False
                break
        if self._backlog and target is not None and target > self.clock.now():
            # Out of slots before every fire due by an instant still to come was claimed:
            # the pass a freed slot starts claims up to that instant too (its timer has
            # been and gone).
            self._as_of = max(target, self._as_of or target)
        return claimed

    def _claimer(self, as_of: datetime, limit: int) -> Callable[[], Awaitable[list[Claimed]]]:
        return lambda: self.store.claim_due(
            as_of=as_of,
            limit=limit,
            holder=self.holder,
            lease_until=self._lease_from(),
            started_at=self.started_at,
        )

    async def _start(self, claim: Claimed) -> None:
        for record in claim.finished:
            self._tell(record)
        if claim.event is not None:
            self._task_event(claim.task.id, claim.event, claim.reason)
        if claim.next_run_at is not None:
            self.on_due(claim.next_run_at)
        if claim.run is not None:
            self._busy += 1
            self.in_flight[claim.run.run_id] = claim.run
            again = claim.next_run_at is not None  # the task fires again after this
            self._spawn(
                self._execute(claim.task, claim.run, claimed_at=self.clock.now(), again=again)
            )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        # A clean context: a manual run requested from inside a user's run (a tool call)
        # must not inherit that run's callbacks, tracing parent or config.
        task = spawn_clean(coro, of=self.holder, on_done=self._on_turn_done)
        self._turn_tasks.add(task)
        self._idle.clear()
        return task

    def _turn_done(self, task: asyncio.Task[Any]) -> None:
        self._turn_tasks.discard(task)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._turn_tasks and self._claiming == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no claim pass and no turn of this bridge is in flight."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)
            if self._idle.is_set():
                return

    # -- manual runs ------------------------------------------------------------------

    async def run_now(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        max_per_task: int | None = None,
        max_per_owner: int | None = None,
        per_secs: float = 3600.0,
        answer: Callable[[TaskRunRecord], CallAnswer] | None = None,
        waited_by: Wait | None = None,
    ) -> tuple[TaskRunRecord, asyncio.Task[TaskRunRecord]]:
        """Claim a manual run of the task ``task_id`` (of ``owner``, when given) and start
        it as soon as a slot is free; returns the running record and the execution to
        await for the finished one. ``answer``: a tool call's answer for the running
        record, kept with the claim in one transaction; ``waited_by``: the wait of a
        caller inside a turn of this bridge for the run (see :meth:`waiting_for_a_run`).
        A caller cancelled meanwhile leaves the run to run.

        Raises:
            TaskNotFound: no such task, or it belongs to another owner.
            NotAllowed: a manual-run limit is reached.
            CallAnswered: ``answer``'s call was answered already; nothing was claimed.
        """
        # A caller cancelled while the claim is written (the store's transaction goes on
        # without it) leaves its run to run, as once the run waits: else the run would
        # stay claimed by no turn, running, until its lease ran out.
        claiming = asyncio.ensure_future(
            self._claim_manual(
                task_id,
                owner=owner,
                max_per_task=max_per_task,
                max_per_owner=max_per_owner,
                per_secs=per_secs,
                answer=answer,
                waited_by=waited_by,
            )
        )
        self._manual_claims.add(claiming)
        claiming.add_done_callback(self._manual_claims.discard)
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            claiming.add_done_callback(_unheard)
            raise

    async def _claim_manual(
        self,
        task_id: str,
        *,
        owner: str | None,
        max_per_task: int | None,
        max_per_owner: int | None,
        per_secs: float,
        answer: Callable[[TaskRunRecord], CallAnswer] | None,
        waited_by: Wait | None,
    ) -> tuple[TaskRunRecord, asyncio.Task[TaskRunRecord]]:
        """:meth:`run_now`'s claim and the start of its run."""
        now = self.clock.now()
        claimed = await self.store.claim_manual(
            task_id,
            owner=owner,
            at=now,
            holder=self.holder,
            lease_until=self._lease_from(),
            max_per_task=max_per_task,
            max_per_owner=max_per_owner,
            since=now - timedelta(seconds=per_secs),
            answer=answer,
        )
        if claimed is None:
            raise TaskNotFound(task_id)
        window = f"{per_secs / 60:g} minutes"
        who = "the task's owner" if owner is None else f"owner {owner!r}"
        # A limit of 0 turns manual runs off: no later call succeeds, so none is suggested.
        if claimed == "task" and not max_per_task:
            raise NotAllowed(
                f"task {task_id!r} may not be run by hand here (the limit is 0 manual runs "
                f"in {window}); wait for its schedule"
            )
        if claimed == "task":
            raise NotAllowed(
                f"task {task_id!r} was already run by hand {_times(max_per_task)} in the "
                f"last {window}; wait for its schedule or try again later"
            )
        if claimed == "owner" and not max_per_owner:
            raise NotAllowed(
                f"{who} may not run tasks by hand here (the limit is 0 manual runs in "
                f"{window}); wait for the tasks' schedules"
            )
        if claimed == "owner":
            raise NotAllowed(
                f"{who} already ran tasks by hand {_times(max_per_owner)} in the last "
                f"{window}; try again later"
            )
        task, record = claimed
        if record.outcome is not None:  # its payload cannot be read: quarantined instead
            return record, self._spawn(self._unrunnable(task, record))
        self.in_flight[record.run_id] = record
        return record, self._spawn(self._manual(task, record, waited_by))

    def turns_waiting_here(self) -> list[str]:
        """The tasks whose turns of this bridge end only after the caller's wait: the turn
        it runs inside (a node or tool of it) first, then the turn whose caller waits for
        that turn's run, and so on."""
        return turns_waiting_here(self)

    @contextlib.contextmanager
    def waiting_for_a_run(self, task_id: str) -> Iterator[Wait | None]:
        """While the block runs, the caller waits for a run of the task ``task_id``: from
        inside a turn of this bridge (a node or tool of it), the slot of that turn frees
        only after the run, which needs a slot of its own. Gives the wait, for the run's
        turn to know who waits for it (see :meth:`run_now`), or None outside a turn here.

        Raises:
            RuntimeError: the caller runs inside a turn of this bridge, and every slot
                would then be held by such a turn (its own with them): none frees before
                a run gets one, so the run could never begin. Raised on entering, before
                the caller claims the run.
        """
        slot = slot_here(self)
        if slot is None:  # outside any turn here: the turns it waits behind end
            yield None
            return
        if not slot.waiting:
            if self._waiting_tasks.total() + 1 >= self.capacity:
                raise _no_slot(task_id, self.capacity)
            self._waiting_tasks[slot.task_id] += 1
        slot.waiting += 1
        wait = waiting_in(slot)
        try:
            yield wait
        finally:
            wait.live = False
            if slot.waiting:  # else its turn ended first, and counted it out
                slot.waiting -= 1
                if not slot.waiting:
                    self._stopped_waiting(slot)
                    self._hand_on()  # to a run of its task, held back meanwhile

    async def _unrunnable(self, task: Task, record: TaskRunRecord) -> TaskRunRecord:
        """Tell listeners of a manual run recorded ``error`` by its claim, which found its
        task's payload unreadable and quarantined the task (``task``: as it was read)."""
        self.finished_tasks.add(record.task_id)
        self._tell(record)
        if task.state != "quarantined":
            self._task_event(task.id, "quarantined", record.error or "")
        return record

    async def _manual(
        self, task: Task, record: TaskRunRecord, waited_by: Wait | None
    ) -> TaskRunRecord:
        try:
            # A run that waits while its task's previous run goes on; one that skips a
            # busy task ends at once, and may be what a turn of its task waits for.
            waits = task.options.on_busy == "wait" and task.options.max_wait_secs > 0
            await self._take_slot(record.task_id if waits else None)
        except asyncio.CancelledError:
            await self._record(record, Interrupted(STOPPED))
            raise
        return await self._execute(task, record, waited_by=waited_by)

    async def _take_slot(self, task_id: str | None) -> None:
        """Take a turn slot for a manual run of the task ``task_id`` (None: a run that
        would not wait for its task's previous run): at once if one is free and no other
        run waits for one (or the runtime is stopping: the turn then records that it
        never began), else in the order the runs began waiting (see :meth:`_hand_on`)."""
        if self.closed:
            self._busy += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (task_id, turn)
        self._slot_queue.append(waiter)
        self._hand_on()
        try:
            await turn  # done by whoever frees a slot: it is ours, counted in _busy
        except asyncio.CancelledError:
            if not turn.cancelled():  # handed a slot as it was cancelled: hand it on
                self._free_slot()
            elif waiter in self._slot_queue:  # else a freed slot passed it over already
                self._slot_queue.remove(waiter)
            raise

    # -- executing --------------------------------------------------------------------

    async def _execute(
        self,
        task: Task,
        record: TaskRunRecord,
        *,
        claimed_at: datetime | None = None,
        again: bool = True,
        orphan: ServerRun | None = None,
        waited_by: Wait | None = None,
    ) -> TaskRunRecord:
        """Run a claimed fire's turn and record its outcome (``again``: the task fires
        again after this fire; ``orphan``: the turn is this server run, which another
        process began and this runtime follows, see :meth:`follow`; ``waited_by``: the
        wait of a caller inside another turn for this run).

        While the turn runs, this keeps its request and record, not its task (a burst's
        one-shot tasks are objects of their own): a long turn keeps alive all it holds,
        and the collector's full passes go over every such object again (see
        ``benchmarks/analysis.md``, figure 4)."""
        # A scheduled fire took its slot when it was claimed; a manual run, now; a
        # followed turn began in the process that claimed it.
        scheduled = record.trigger == "schedule"
        begun = record.started_at if scheduled or orphan else self.clock.now()
        slot = mark_slot(self, record.task_id, waited_by=waited_by)  # for its nodes' waits
        gate: _Gate | None = None
        recording: asyncio.Task[Any] | None = None
        try:
            try:
                # A followed turn runs already: a stop cancels it, as it does any turn.
                stopping = self.closed and orphan is None
                request = _NOT_STARTED if stopping else self._request(task, record, again=again)
                del task
                due = record.due_at or record.scheduled_for
                if scheduled and due > self.clock.now():  # claimed ahead of its instant
                    gate = _Gate(self, record.task_id, due, claimed_at)
                if isinstance(request, ConversationRequest):
                    assert self.turns is not None  # _request says why not otherwise
                    if orphan is not None:
                        elapsed = (self.clock.now() - record.started_at).total_seconds()
                        response = await self.turns.follow(request, orphan, elapsed_secs=elapsed)
                    else:
                        response = await self.turns.converse(request, begin=gate)
                elif gate is not None:  # not run, but not recorded before its instant either
                    response = await gate() or request
                else:
                    response = request
            except asyncio.CancelledError:
                if gate is not None and gate.begun is not None:
                    begun = gate.begun
                begun = min(begun, self.clock.now())  # stopped before its instant came
                where = self.turns.cut_short(record.run_id) if self.turns else None
                stopped = Interrupted(STOPPED, server_run=where)
                await self._record(record, stopped, started_at=begun)
                raise
            except Exception as exc:  # a fault of ours: the fire is still recorded
                logger.exception("run %s of task %s failed", record.run_id, record.task_id)
                response = Error(f"the run failed before its turn: {exc!r}")
            if gate is not None and gate.begun is not None:
                begun = gate.begun
            # The outcome is decided: a stop does not cut its recording short (the batch
            # would still write it, but no listener would hear of it).
            recording = asyncio.current_task()
            self._recording.add(recording)
            return await self._record(record, response, started_at=begun)
        finally:
            self._recording.discard(recording)
            slot.live = False
            if slot.waiting:  # callers it left running (tasks its nodes started) still wait
                slot.waiting = 0
                self._stopped_waiting(slot)
            self._free_slot()

    def _refusal(self, task_id: str, claimed_at: datetime | None) -> ConversationResponse | None:
        """Why a fire claimed ahead must not begin now its instant came (the runtime or
        its task stopped meanwhile), or None."""
        if self.closed:
            return _NOT_STARTED
        stopped = self._stopped.get(task_id)
        if stopped is not None and claimed_at is not None and stopped >= claimed_at:
            return Skipped("the task was paused or deleted before its turn began")
        return None

    def _free_slot(self) -> None:
        """Give up a turn slot: to the manual run that has waited longest for one, else
        to the claim loop (a due fire may be waiting for it)."""
        self._busy -= 1
        self._hand_on()
        if self.free and not self.closed and self._backlog:
            self._poke()  # a due fire is waiting for this slot

    def _hand_on(self) -> None:
        """Hand the free slots to the manual runs waiting longest for one: none beyond
        ``capacity`` (a followed turn's slot may be), nor those a claim pass keeps. A run
        of a task whose turn here waits for a run keeps its place without a slot: it
        would hold the slot waiting for that turn, which may wait for it."""
        held_back: list[tuple[str | None, asyncio.Future[None]]] = []
        while self._slot_queue and self._busy + self._reserved < self.capacity:
            task_id, turn = waiter = self._slot_queue.popleft()
            if turn.done():  # a cancelled waiter leaves the queue as it wakes
                continue
            if task_id is not None and self._waiting_tasks[task_id]:
                held_back.append(waiter)
                continue
            self._busy += 1
            turn.set_result(None)
        self._slot_queue.extendleft(reversed(held_back))

    def _stopped_waiting(self, slot: Slot) -> None:
        """The turn holding ``slot`` no longer waits for a run."""
        self._waiting_tasks[slot.task_id] -= 1
        if not self._waiting_tasks[slot.task_id]:
            del self._waiting_tasks[slot.task_id]

    def _request(
        self, task: Task, record: TaskRunRecord, *, again: bool
    ) -> ConversationRequest | ConversationResponse:
        """The turn of a claimed fire, or why it cannot run."""
        if self.turns is None:
            return _NO_TURNS
        try:
            trigger = self._trigger(task, keep=again)
        except InvalidPayload as exc:
            return Error(str(exc))
        context = None
        if self.context_of is not None:
            try:
                context = _made_context(self.context_of, task)
            except BaseException as exc:  # noqa: B036 - see _made_context
                logger.warning("the context of task %s's turn failed: %r", task.id, exc)
                return Error(f"the turn's context could not be made: {exception_text(exc)}")
        source = TaskSource(
            task_id=task.id,
            task_name=task.name,
            run_id=record.run_id,
            scheduled_for=record.scheduled_for.isoformat(),
            attempt=record.attempt,
            trigger=record.trigger,
            system_addon=trigger.system_addon,
        )
        return ConversationRequest(
            task_id=task.id,
            run_id=record.run_id,
            thread_id=record.thread_id or isolated_thread_id(task.id, record.run_id),
            prompt=trigger.prompt,
            source=source,
            owner=task.owner,
            system_addon=trigger.system_addon,
            timeout_secs=trigger.timeout_secs or self.default_timeout_secs,
            on_busy=task.options.on_busy,
            max_wait_secs=task.options.max_wait_secs,
            fresh_thread=record.thread_id == isolated_thread_id(task.id, record.run_id),
            context=context,
        )

    def _trigger(self, task: Task, *, keep: bool) -> ConversationTrigger:
        """``task.trigger``, parsed once per payload: the store's tasks on the fire path
        are shared and never changed in place, and a changed row is a new payload.
        ``keep``: the task fires again (a one-shot task's trigger is not kept)."""
        known = self._triggers.pop(task.id, None)
        if known is not None and known[0] is task.payload:
            trigger = known[1]
        else:
            trigger = task.trigger
        if keep:
            self._triggers[task.id] = (task.payload, trigger)
            if len(self._triggers) > _TRIGGERS_KEPT:
                del self._triggers[next(iter(self._triggers))]
        return trigger

    async def _record(
        self,
        record: TaskRunRecord,
        response: ConversationResponse,
        *,
        started_at: datetime | None = None,
    ) -> TaskRunRecord:
        """Record the outcome of a turn begun at ``started_at`` (None: never begun);
        returns the finished record (or what the store holds, if someone finished it
        before us)."""
        finish = to_finish(record, response, started_at=started_at)
        self._finishing.add(record.run_id)
        try:
            finished = await self._retrying(
                "record outcome",
                lambda: self._finishes.submit(finish),
                patience=max(self.store_retry_secs, 600.0),
            )
        except Exception:
            # Not recorded: stop renewing the lease, so a survivor records the fire
            # ``interrupted`` once it expires.
            logger.exception("recording run %s failed", record.run_id)
            finished = None
        finally:
            self.in_flight.pop(record.run_id, None)
            self._finishing.discard(record.run_id)
        self.finished_tasks.add(record.task_id)
        if finished is None:
            # Already finished elsewhere (lease expired and recorded interrupted, or the
            # task was deleted), taken over by another runtime (this one stalled past
            # its lease), or the store stayed down: the store keeps what it has.
            found = await self._retrying("read run", lambda: self.store.get_held_run(record.run_id))
            stored, holder = found or (None, None)
            if stored is not None and holder == self.holder and finish.recorded_in(stored):
                # Our own write, its answer lost and the finish sent again: listeners
                # still hear of it (what it did to its task, the retry's wake say, is
                # left to the window's reload). The same record written by a runtime
                # that took the claim over is that runtime's to tell.
                self._tell(stored)
                return stored
            if stored is not None and (stored.outcome is not None or holder != self.holder):
                self._late(stored, holder, finish.outcome)
            return stored or record.model_copy(
                update={"outcome": finish.outcome, "error": finish.error, "summary": finish.summary}
            )
        self.settle(finished)
        return finished.record

    async def record_orphan(self, record: TaskRunRecord, response: ConversationResponse) -> None:
        """Record how the turn of another process's lapsed claim, taken over by this
        runtime, ended without it (see :meth:`~._turns.TurnRunner.orphan_state`)."""
        await self._record(record, response, started_at=record.started_at)

    async def follow(self, record: TaskRunRecord, where: ServerRun) -> None:
        """Follow the server run ``where`` that another process began for the fire of
        ``record``, whose lapsed claim this runtime took over, as a turn of its own:
        the fire is in flight here (its lease renewed) until its outcome is recorded
        as every turn's is (retries, failure streak, auto-pause, listeners, webhooks).
        The timeout the turn began with (noted on the server run; the task's current
        one for a run made by an earlier version), counted from the claim's
        ``started_at``, bounds it (past it the server run is cancelled: ``timeout``),
        and a stop cancels it as it does this runtime's own turns (``interrupted``,
        naming the server run).

        It is not a new turn: no task or thread lock is taken, as the server orders the
        runs on its thread itself (a fire of that thread begun meanwhile queues behind
        it there). It takes a turn slot, beyond ``capacity`` if need be: the turn still
        runs, for this runtime, and ``capacity`` bounds the turns a runtime has going on
        the server; due fires wait for a slot here or go to another replica.

        A runtime that is stopping follows nothing: the server run goes on, and the
        next runtime to recover the claim, once the lease it was taken over with
        lapses, follows it or records how it ended. Cancelled and retried, the turn
        would run twice.
        """
        task = await self._retrying("read task", lambda: self.store.get_task(record.task_id))
        # No task: deleted with its runs, or the store is down. Either way, and when
        # this runtime began stopping meanwhile, the claim is left to its lease.
        if task is None or self.closed:
            return
        self._busy += 1
        self.in_flight[record.run_id] = record
        again = task.next_run_at is not None
        self._spawn(self._execute(task, record, again=again, orphan=where))

    def _late(self, stored: TaskRunRecord, holder: str | None, outcome: str) -> None:
        """Log a turn of this runtime that ended after its claim lapsed (this process
        stalled past ``lease_secs``, or another replica's clock runs ahead): another
        runtime recorded the fire, or took its claim over, meanwhile; the store keeps
        that, and this turn's outcome is dropped."""
        kept = stored.outcome or f"running, taken over by {holder}"
        logger.warning(
            "run %s of task %s ended here (%s) after its claim had lapsed (this runtime "
            "stalled past lease_secs, or another's clock runs ahead); the store keeps "
            "what another runtime recorded meanwhile (%s), and this outcome is dropped",
            stored.run_id,
            stored.task_id,
            outcome,
            kept,
        )

    def lost(self, run_ids: Sequence[str]) -> None:
        """The fires ``run_ids`` are no longer this process's, its lease renewal found: it
        stalled past their lease, and another runtime recorded them (``interrupted``,
        retried per policy) or took their claims over (a server run it follows). Their
        leases are no longer renewed, and their finishes here write and tell nothing
        (the store refuses them). Their turns are not cancelled: a server run is the
        taker's to follow now, and cancelling it would cut the taker's turn short; a
        turn in this process already has its record and, maybe, its retry, so what it
        does next is the same whether it is cut short now or ends."""
        for run_id in run_ids:
            record = self.in_flight.pop(run_id, None)
            if record is not None and run_id not in self._finishing:
                logger.warning(
                    "run %s of task %s is no longer this runtime's: it could not renew its "
                    "claim in time (stalled?) and another runtime recorded it or took it "
                    "over; its turn goes on here, but only that runtime records it",
                    run_id,
                    record.task_id,
                )

    def settle(self, finished: Finished) -> None:
        """Tell listeners a finished record and what it did to its task."""
        consequence = finished.consequence
        if consequence.retry_at is not None:
            self.on_due(consequence.retry_at)
        if consequence.event is not None:
            self._task_event(finished.record.task_id, consequence.event, consequence.reason)
        self._tell(finished.record)

    async def _finish_batch(self, finishes: Sequence[Finish]) -> list[Finished | None]:
        return await self.store.finish_runs(finishes, now=self.clock.now(), holder=self.holder)

    # -- lifecycle --------------------------------------------------------------------

    async def close(self, drain_timeout_secs: float) -> None:
        """Stop claiming, let running turns finish up to the deadline, then interrupt
        them (each still ends in a recorded outcome)."""
        self.closed = True
        self._poke()
        # Manual runs waiting for a slot take one each, beyond capacity: their turns
        # record that they never began.
        while self._slot_queue:
            _, turn = self._slot_queue.popleft()
            if not turn.done():
                self._busy += 1
                turn.set_result(None)
        # A claim pass in flight ends first, and the fires it claimed are recorded (as
        # not started); so do manual runs' claims. Cut off, a claim would still be
        # written, by a store call the cancellation cannot stop, and its fires stay
        # claimed by no one until their lease runs out; a pass still waiting for an
        # unreachable store is cut off.
        passes_done = asyncio.ensure_future(self._passes_done())
        await asyncio.wait(
            {passes_done, *self._manual_claims},
            timeout=max(drain_timeout_secs, _PASS_GRACE_SECS),
        )
        passes_done.cancel()
        if self._turn_tasks:
            await asyncio.wait(set(self._turn_tasks), timeout=drain_timeout_secs)
        for task in list(self._turn_tasks):
            if task not in self._recording:
                task.cancel()
        if self._turn_tasks:
            await asyncio.wait(set(self._turn_tasks), timeout=_RECORD_GRACE_SECS)
        # Still recording: the store does not answer. Cut off, nothing of this runtime
        # writes after it stopped; those fires stay running until their lease runs out,
        # and a survivor (or the next runtime) records them interrupted.
        for task in list(self._turn_tasks):
            task.cancel()
        if self._turn_tasks:
            await asyncio.wait(set(self._turn_tasks), timeout=1)
        await self._finishes.aclose()

    async def _passes_done(self) -> None:
        async with self._claim_lock:
            pass

    # -- helpers ----------------------------------------------------------------------

    def _lease_from(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.lease_secs)

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[_T]], *, patience: float | None = None
    ) -> _T | None:
        """Run a store call, retrying with jittered backoff while the database is
        unavailable; None (logged) if it still fails after ``patience`` seconds."""
        return await retrying(
            what, call, patience=patience or self.store_retry_secs, said=self._store_failures
        )

    def _tell(self, record: TaskRunRecord) -> None:
        logger.info(
            "task %s run %s (%s, attempt %d): %s",
            record.task_id,
            record.run_id,
            record.scheduled_for.isoformat(),
            record.attempt,
            record.outcome,
        )
        self.on_record(record)

    def _task_event(self, task_id: str, kind: TaskEventKind, reason: str) -> None:
        logger.info("task %s %s: %s", task_id, kind, reason)
        self.on_event(TaskEvent(kind=kind, task_id=task_id, reason=reason, at=self.clock.now()))


@dataclass(slots=True)
class _Gate:
    """What the turn of a fire claimed ahead of its instant awaits once it is built (a
    :data:`~._turns.TurnGate`): the instant, then the bridge's word on whether it may
    still begin. ``begun``: when the instant came (None: not yet)."""

    bridge: TaskExecutorBridge
    task_id: str
    due: datetime
    claimed_at: datetime | None
    begun: datetime | None = None

    async def __call__(self) -> ConversationResponse | None:
        clock = self.bridge.clock
        wait = (self.due - clock.now()).total_seconds()
        if wait > 0:
            await clock.sleep(wait)
        self.begun = clock.now()
        return self.bridge._refusal(self.task_id, self.claimed_at)


async def retrying(
    what: str, call: Callable[[], Awaitable[_T]], *, patience: float, said: Repeats
) -> _T | None:
    """Run ``call``, retrying :class:`StoreUnavailable` with jittered exponential backoff
    for up to ``patience`` seconds; None (logged) if it still fails.

    A failure is logged through ``said`` (kept by the caller across its calls, on its
    clock): the first time, then the same failure once a minute while it lasts, not at
    every backoff step; the first call that works after any is said once too."""
    try:
        found = await call()  # the usual case, without building a retry loop per call
    except StoreUnavailable as exc:
        _say(said, logging.WARNING, f"{exc}, retrying to {what}")
    else:
        if said.forget():
            logger.info("the database answers again (%s)", what)
        return found
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
            stop=stop_after_delay(patience),
            before_sleep=lambda state: _say(
                said,
                logging.WARNING,
                f"{state.outcome.exception() if state.outcome else 'store unavailable'}, "
                f"retrying to {what}",
            ),
        ):
            with attempt:
                found = await call()
                said.forget()
                logger.info("the database answers again (%s)", what)
                return found
    except RetryError as exc:
        _say(said, logging.ERROR, f"gave up to {what}: {exc.last_attempt.exception()}")
    return None


def _say(said: Repeats, level: int, message: str) -> None:
    if said.new(message):
        logger.log(level, "%s", message)


def _unheard(claiming: asyncio.Future[Any]) -> None:
    """Take the outcome of a manual run's claim its caller no longer waits for: a refusal
    (a limit reached, no such task) is nobody's to hear, nor logged as never retrieved."""
    if not claiming.cancelled():
        claiming.exception()


def _no_slot(task_id: str, capacity: int) -> RuntimeError:
    """The refusal of a wait for a run of ``task_id`` that no turn slot can come free
    for: the caller's turn holds one, turns waiting for runs hold the others."""
    if capacity == 1:
        held = "the only turn slot (max_concurrency=1)"
    else:
        held = (
            f"one of the {capacity} turn slots (max_concurrency), the others held by "
            "turns waiting for runs as well"
        )
    return RuntimeError(
        f"this call runs inside a turn of the scheduler (a node or tool of it), which "
        f"holds {held} until it ends: a run of task {task_id!r} waited for here would "
        "never get a slot, and the turn would wait for itself. From inside the turn, start "
        "the run without waiting for it (run_now(task_id, wait=False): it runs once a slot "
        "is free), or raise max_concurrency"
    )


def _made_context(context_of: Callable[[Task], Any], task: Task) -> Any:
    """``context_of(task)``, the user's plain function: whatever it raises, even a
    ``BaseException`` (its own ``CancelledError``, ``SystemExit``), is the fire's error,
    neither a stop of the runtime nor a fire left without an outcome. It gets its own copy
    of the task's payload (the task's only field that can change in place): the store's
    task is shared by the task's later fires, which a change to it would reach.

    Raises:
        TypeError: it returned an awaitable (a coroutine of an async function), which
            the graph would get as its context, never awaited.
    """
    if task.payload is not None:
        task = task.model_copy(update={"payload": copy.deepcopy(task.payload)})
    context = context_of(task)
    if inspect.isawaitable(context):
        if inspect.iscoroutine(context):
            context.close()  # never awaited: no warning of it
        raise TypeError(
            f"the context function returned a coroutine or awaitable "
            f"({type(context).__name__}), not the context: make it a plain function "
            "returning the context"
        )
    return context


def to_finish(
    record: TaskRunRecord, response: ConversationResponse, *, started_at: datetime | None = None
) -> Finish:
    """The outcome recorded for a conversation response to a turn begun at
    ``started_at`` (its text made storable: it comes from the graph, the model or the
    server)."""
    server = None if isinstance(response, Skipped) else response.server_run
    ids: dict[str, Any] = {
        "server_thread_id": server.thread_id if server else None,
        "server_run_id": server.run_id if server else None,
        "started_at": started_at,
    }
    if isinstance(response, Success):
        return Finish(
            record,
            "success",
            summary=storable_text(_cut(response.text, SUMMARY_MAX_CHARS)),
            checkpoint_id=response.checkpoint_id,
            **ids,
        )
    if isinstance(response, Timeout):
        late = f"the turn did not finish within {response.after_secs:g}s"
        if response.cancelled:
            error = f"{late} and was cancelled"
        else:
            error = (
                f"{late}; cancelling its server run got no answer from the server, so it "
                "may still finish there"
            )
        return Finish(record, "timeout", error=error, **ids)
    if isinstance(response, Interrupted):
        reason = response.reason
        if response.final:
            reason += ": stopped by a client of the server, not by the scheduler, so not retried"
        error = _error_text(reason)
        return Finish(record, "interrupted", error=error, retry=not response.final, **ids)
    if isinstance(response, Skipped):
        return Finish(record, "skipped", error=_error_text(response.reason), started_at=started_at)
    message = response.message
    if response.unreachable:
        message += (
            "; an outage of the server, not a failure of the task: this does not count "
            "toward pausing the task"
        )
    error = _error_text(message)
    return Finish(record, "error", error=error, counted=not response.unreachable, **ids)


def _error_text(text: str) -> str:
    """An outcome's error as recorded: cut to :data:`ERROR_MAX_CHARS`, storable."""
    return storable_text(_cut(text, ERROR_MAX_CHARS))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _times(count: int | None) -> str:
    return f"{count} time" if count == 1 else f"{count} times"
