"""From a fired schedule to a recorded outcome.

APScheduler calls :func:`fire_task` (a module-level function with plain-data arguments,
so jobs never hold graphs, models or bound methods). The bridge loads the task, parses its
trigger, claims the fire ``(task_id, scheduled_for, attempt)`` in the run store, puts a
:class:`~langgraph_scheduler.channel.ConversationRequest` on the bounded queue, awaits the
reply and records it as exactly one :class:`~langgraph_scheduler.models.TaskRunRecord`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from .batching import Batcher
from .channel import (
    ConversationRequest,
    ConversationResponse,
    Error,
    Interrupted,
    Skipped,
    Success,
    TaskSource,
    Timeout,
)
from .errors import InvalidPayload
from .models import RunTrigger, Task, TaskEvent, TaskResult, TaskRunRecord
from .store import Claim, FireClaim, FirePlan, FireRequest, Store, TaskMove

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["TaskExecutorBridge", "fire_task", "isolated_thread_id"]

logger = logging.getLogger("langgraph_scheduler")

SUMMARY_MAX_CHARS = 2_000
"""Longest summary kept in a run record (the full answer stays in the thread)."""

CHANNEL_CLOSED = "runtime is stopping: the conversation channel is closed, the turn was not run"

_T = TypeVar("_T")

_BRIDGES: dict[str, TaskExecutorBridge] = {}
"""Live bridges by key, so a job needs only a string to find its runtime."""


async def fire_task(
    bridge_key: str, task_id: str, scheduled_times: Sequence[datetime] | None = None
) -> None:
    """The APScheduler job function: run the fire(s) of ``task_id`` that are due.

    Args:
        bridge_key: identifies the runtime in this process.
        task_id: the task whose schedule fired.
        scheduled_times: the due times APScheduler computed (oldest first); the
            runtime's executor passes them. Without them the fire is "now".
    """
    bridge = _BRIDGES.get(bridge_key)
    if bridge is None:
        logger.warning("fire of task %s ignored: its runtime %s is gone", task_id, bridge_key)
        return
    await bridge.on_fire(task_id, list(scheduled_times or [_utcnow()]))


# APScheduler checks a job function's signature for every job it adds; a precomputed
# signature spares inspect's slow path (half of add_job's time when 100,000 tasks load).
fire_task.__signature__ = inspect.signature(fire_task)  # type: ignore[attr-defined]


def isolated_thread_id(task_id: str, run_id: str) -> str:
    """The fresh thread an isolated task's run talks in (kept after the run)."""
    return f"task-{task_id}-{run_id}"


class TaskExecutorBridge:
    """Turns a fired task into a conversation request and its reply into a run record.

    No exception escapes into APScheduler: every failure ends as a recorded outcome or,
    when the store itself stays unreachable, a logged error (the claim's lease then runs
    out and the fire is recorded ``interrupted`` once the store is back).

    Args:
        store: the task and run store.
        queue: the bounded channel to the workers.
        scheduler: the runtime's scheduler (to read the next fire time and drop ended jobs).
        holder: this process's id, written on claims.
        lease_secs: how long a claim stays valid without renewal.
        default_timeout_secs: turn timeout when the trigger sets none.
        started_at: when the runtime started (fires due before it were due while down).
        on_record: called with every finished record.
        on_event: called with task events (auto-pause, completion).
        store_retry_secs: how long to keep retrying a failing store call.
        spawn: starts a background coroutine the runtime tracks (retries).
        resync: rebuilds this process's job from the stored task when they disagree.
        claim_batch: most scheduled fires claimed in one transaction.
    """

    def __init__(
        self,
        *,
        store: Store,
        queue: asyncio.Queue[ConversationRequest],
        scheduler: AsyncIOScheduler,
        holder: str,
        lease_secs: float,
        default_timeout_secs: float,
        started_at: datetime | None = None,
        on_record: Callable[[TaskRunRecord], Awaitable[None]] | None = None,
        on_event: Callable[[TaskEvent], Awaitable[None]] | None = None,
        store_retry_secs: float = 60.0,
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]] = asyncio.ensure_future,
        resync: Callable[[Task], None] | None = None,
        claim_batch: int = 64,
    ) -> None:
        self.store = store
        self.queue = queue
        self.scheduler = scheduler
        self.holder = holder
        self.lease_secs = lease_secs
        self.default_timeout_secs = default_timeout_secs
        self.started_at = started_at or _utcnow()
        self.on_record = on_record
        self.on_event = on_event
        self.store_retry_secs = store_retry_secs
        self.key = uuid.uuid4().hex
        self.closed = False
        self.in_flight: dict[str, TaskRunRecord] = {}
        self.finished_tasks: set[str] = set()
        """Tasks with runs finished since the runtime last trimmed their history."""
        self.spawn = spawn
        self.resync = resync
        self.waiting_retries: set[asyncio.Task[Any]] = set()
        # Fires due together share their store transactions (group commit).
        # A transaction claims at most ``claim_batch`` fires, so replicas sharing a burst
        # split it instead of the first one claiming all of it.
        self._fires: Batcher[FireRequest, FireClaim] = Batcher(
            store.claim_fires, max_batch=claim_batch
        )
        self._claims: Batcher[Claim, bool] = Batcher(store.claim_runs)
        self._finishes: Batcher[tuple[TaskRunRecord, TaskResult, datetime], TaskRunRecord | None]
        self._finishes = Batcher(store.finish_runs)
        _BRIDGES[self.key] = self

    def close(self) -> None:
        """Close the channel: fires from now on are recorded as errors, not run."""
        self.closed = True
        for pending in self.waiting_retries:
            pending.cancel()

    def unregister(self) -> None:
        _BRIDGES.pop(self.key, None)

    async def drain(self) -> None:
        """Wait for the store writes in flight (before the store closes)."""
        for batcher in (self._fires, self._claims, self._finishes):
            await batcher.aclose()

    # -- scheduled fires --------------------------------------------------------------

    async def on_fire(self, task_id: str, scheduled_times: list[datetime]) -> None:
        """Handle what APScheduler found due for one task."""
        try:
            await self._on_fire(task_id, scheduled_times)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("fire of task %s at %s failed", task_id, scheduled_times[-1:])

    async def _on_fire(self, task_id: str, scheduled_times: list[datetime]) -> None:
        # APScheduler has already moved the job to its next fire time: that is the time
        # the task moves to with this fire.
        job = self.scheduler.get_job(task_id)
        job_next = job.next_run_time if job is not None else None
        now = _utcnow()

        def plan(task: Task) -> FirePlan | None:
            if task.state != "active" or task.next_run_at not in scheduled_times:
                return None
            return self._plan(task, scheduled_times, job_next, now)

        # Loading the task and claiming its fire share one transaction (and a burst of
        # fires shares it too): the store runs ``plan`` on the task it just read.
        request = FireRequest(task_id, plan, self.holder, self._lease_from(now))
        fire = await self._retrying("claim fire", lambda: self._fires.submit(request))
        if fire is None:
            return  # the store stayed unreachable: logged; nothing was claimed
        task = fire.task
        if task is None or task.state != "active":
            self._drop_job(task_id)
            return
        if fire.plan is None:
            # The stored task moved on without this job: another process claimed these
            # fires, or changed the task. The store decides; follow it.
            if self.resync is not None:
                self.resync(task)
            return
        run, missed, move = fire.plan.run, fire.plan.missed, fire.plan.move
        if move.completes:
            self._drop_job(task.id)
        if missed is not None and fire.missed_recorded:
            await self._notify(missed)
        if run is not None:
            if fire.run_claimed:
                self.in_flight[run.run_id] = run
                await self.execute(task, run)
            else:
                logger.info("fire %s@%s already claimed elsewhere", task.id, run.scheduled_for)
        if move.completes:
            await self._event(task.id, "completed", "the schedule has no further fire time")

    def _plan(
        self, task: Task, times: list[datetime], job_next: datetime | None, now: datetime
    ) -> FirePlan:
        """What to write for a fire of ``task`` (pure: the store calls it in its
        transaction): the run to claim, the missed occurrences, how the task moves on."""
        to_run, missed = self._split_due(task, times, now)
        next_run = job_next
        if to_run is not None and task.max_runs is not None:
            if task.run_count + 1 >= task.max_runs:
                next_run = None
        move = TaskMove(next_run_at=next_run, counts=to_run is not None, completes=next_run is None)
        run = None
        if to_run is not None:
            run = self._running_record(task, to_run, trigger="schedule", attempt=1, now=now)
        return FirePlan(run=run, missed=self._missed_record(task, missed, now), move=move)

    def _split_due(
        self, task: Task, times: list[datetime], now: datetime
    ) -> tuple[datetime | None, list[datetime]]:
        """Which due time runs (at most one: the latest) and which are recorded missed."""
        latest = times[-1]
        grace = task.options.grace_for(task.schedule.kind == "once")
        too_late = grace is not None and (now - latest).total_seconds() > grace
        while_down = latest < self.started_at
        if too_late or (task.options.misfire == "skip" and while_down):
            return None, times
        return latest, times[:-1]

    def _missed_record(
        self, task: Task, times: list[datetime], now: datetime
    ) -> TaskRunRecord | None:
        # One record per batch of occurrences missed together, with the count in its
        # summary: a week of downtime on a per-minute task is one line, not ten thousand.
        if not times:
            return None
        first, last = times[0], times[-1]
        summary = (
            f"{len(times)} occurrence(s) missed between {first.isoformat()} and "
            f"{last.isoformat()} (misfire policy {task.options.misfire!r})"
        )
        return TaskRunRecord(
            run_id=str(uuid.uuid4()),
            task_id=task.id,
            attempt=1,
            trigger="schedule",
            scheduled_for=first,
            started_at=now,
            finished_at=now,
            outcome="missed",
            summary=summary,
            thread_id=task.thread_id,
        )

    # -- claim and execute ------------------------------------------------------------

    async def claim(
        self,
        task: Task,
        scheduled_for: datetime,
        *,
        trigger: RunTrigger,
        attempt: int = 1,
    ) -> TaskRunRecord | None:
        """Claim one fire attempt; None when another claim of the same one won."""
        now = _utcnow()
        record = self._running_record(
            task, scheduled_for, trigger=trigger, attempt=attempt, now=now
        )
        won = await self._claims.submit(Claim(record, self.holder, self._lease_from(now)))
        if not won:
            logger.info("fire %s@%s already claimed elsewhere", task.id, scheduled_for)
            return None
        self.in_flight[record.run_id] = record
        return record

    def _lease_from(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_secs)

    @staticmethod
    def _running_record(
        task: Task, scheduled_for: datetime, *, trigger: RunTrigger, attempt: int, now: datetime
    ) -> TaskRunRecord:
        run_id = str(uuid.uuid4())
        return TaskRunRecord(
            run_id=run_id,
            task_id=task.id,
            attempt=attempt,
            trigger=trigger,
            scheduled_for=scheduled_for,
            started_at=now,
            thread_id=task.thread_id or isolated_thread_id(task.id, run_id),
        )

    async def execute(self, task: Task, record: TaskRunRecord) -> TaskRunRecord:
        """Run a claimed fire's turn, record its outcome, and plan a retry if it failed."""
        try:
            response = await self._converse(task, record)
        except asyncio.CancelledError:
            stopped, fresh = await self._finish(record, to_result(Interrupted(STOPPED)))
            if fresh:
                await self._notify(stopped)
            raise
        finished, fresh = await self._finish(record, to_result(response))
        if fresh:
            # Settle retries and the failure streak before telling listeners, so what
            # they read of the task is already up to date.
            if finished.trigger == "schedule" and finished.outcome in _COUNTED:
                await self._after_scheduled(task, finished)
            await self._notify(finished)
        return finished

    async def _after_scheduled(self, task: Task, record: TaskRunRecord) -> None:
        """Retry a failed attempt, or count the failed fire once its attempts are spent."""
        if record.outcome not in ("error", "timeout"):
            return  # finish_runs reset the failure streak in the record's transaction
        if record.attempt <= task.options.retries and not self.closed:
            delay = task.options.retry_delay(record.attempt + 1)
            self.spawn(self._retry_later(task.id, record, delay))
            return
        streak = await self._retrying(
            "update failure streak",
            lambda: self.store.count_failed_fire(task.id),
        )
        limit = task.options.pause_after_failures
        if limit is not None and streak is not None and streak >= limit:
            paused = await self._retrying(
                "pause failing task",
                lambda: self.store.update_task(
                    task.id, state="paused", next_run_at=None, updated_at=_utcnow()
                ),
            )
            if paused is not None:
                self._drop_job(task.id)
                await self._event(
                    task.id,
                    "auto_paused",
                    f"paused after {streak} consecutive failed fires; last error: {record.error}",
                )

    async def recover(self, record: TaskRunRecord) -> None:
        """Apply the retry policy to a fire found ``interrupted`` (its process died)."""
        if record.trigger != "schedule" or self.closed:
            return
        task = await self._retrying("load task", lambda: self.store.get_task(record.task_id))
        if task is not None and record.attempt <= task.options.retries:
            delay = task.options.retry_delay(record.attempt + 1)
            self.spawn(self._retry_later(task.id, record, delay))

    async def _retry_later(self, task_id: str, failed: TaskRunRecord, delay: float) -> None:
        # A retry still waiting when the runtime stops is dropped (the failed attempt's
        # record stays); one already running is drained like any turn.
        me = asyncio.current_task()
        assert me is not None
        self.waiting_retries.add(me)
        try:
            await asyncio.sleep(delay)
        finally:
            self.waiting_retries.discard(me)
        task = await self._retrying("load task", lambda: self.store.get_task(task_id))
        if task is None or self.closed:
            return
        record = await self._retrying(
            "claim retry",
            lambda: self.claim(
                task, failed.scheduled_for, trigger="schedule", attempt=failed.attempt + 1
            ),
        )
        if record is not None:
            await self.execute(task, record)

    async def _converse(self, task: Task, record: TaskRunRecord) -> ConversationResponse:
        try:
            trigger = task.trigger
        except InvalidPayload as exc:
            return Error(str(exc))
        if self.closed:
            return Error(CHANNEL_CLOSED)
        source = TaskSource(
            task_id=task.id,
            task_name=task.name,
            run_id=record.run_id,
            scheduled_for=record.scheduled_for.isoformat(),
            attempt=record.attempt,
            trigger=record.trigger,
            system_addon=trigger.system_addon,
        )
        request = ConversationRequest(
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
        )
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            return Skipped(f"overloaded: the request queue is full ({self.queue.maxsize})")
        return await request.reply

    async def _finish(
        self, record: TaskRunRecord, result: TaskResult
    ) -> tuple[TaskRunRecord, bool]:
        """Record the outcome; True with it if this call recorded it (not someone before)."""
        finished = await self._retrying(
            "record outcome",
            lambda: self._finishes.submit((record, result, _utcnow())),
            patience=max(self.store_retry_secs, 600.0),
        )
        self.in_flight.pop(record.run_id, None)
        self.finished_tasks.add(record.task_id)
        if finished is None:
            # Already finished elsewhere (lease expired and recorded interrupted, or the
            # task was deleted), or the store stayed down: the store keeps what it has.
            stored = await self._retrying("read run", lambda: self.store.get_run(record.run_id))
            return stored or record.model_copy(update=result.model_dump()), False
        return finished, True

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[_T]], *, patience: float | None = None
    ) -> _T | None:
        """Run a store call, retrying with backoff while the database is unavailable.

        Returns None (after logging) if it still fails after ``patience`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + (patience or self.store_retry_secs)
        delay = 0.2
        while True:
            try:
                return await call()
            except (OperationalError, InterfaceError, OSError) as exc:
                now = asyncio.get_running_loop().time()
                if now >= deadline:
                    logger.error("store unavailable, gave up to %s: %s", what, exc)
                    return None
                logger.warning("store unavailable (%s), retrying to %s", exc, what)
                await asyncio.sleep(min(delay, max(deadline - now, 0.0)))
                delay = min(delay * 2, 5.0)

    async def _notify(self, record: TaskRunRecord) -> None:
        logger.info(
            "task %s run %s (%s, attempt %d): %s",
            record.task_id,
            record.run_id,
            record.scheduled_for.isoformat(),
            record.attempt,
            record.outcome,
        )
        if self.on_record is not None:
            await self.on_record(record)

    async def _event(self, task_id: str, kind: Any, reason: str) -> None:
        logger.info("task %s %s: %s", task_id, kind, reason)
        if self.on_event is not None:
            await self.on_event(TaskEvent(kind=kind, task_id=task_id, reason=reason, at=_utcnow()))

    def _drop_job(self, task_id: str) -> None:
        if self.scheduler.get_job(task_id) is not None:
            self.scheduler.remove_job(task_id)


_COUNTED = ("success", "error", "timeout")
"""Outcomes that count for retries and the failure streak (not skips or interruptions)."""

STOPPED = "runtime stopped before the turn finished"


def to_result(response: ConversationResponse) -> TaskResult:
    """Map a conversation response to the outcome recorded for the fire."""
    if isinstance(response, Success):
        return TaskResult(
            outcome="success",
            summary=_truncate(response.text),
            checkpoint_id=response.checkpoint_id,
        )
    if isinstance(response, Timeout):
        return TaskResult(
            outcome="timeout",
            error=f"the turn did not finish within {response.after_secs:g}s and was cancelled",
        )
    if isinstance(response, Interrupted):
        return TaskResult(outcome="interrupted", error=response.reason)
    if isinstance(response, Skipped):
        return TaskResult(outcome="skipped", error=response.reason)
    return TaskResult(outcome="error", error=response.message)


def _truncate(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1] + "…"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
