"""From a fired schedule to a recorded outcome.

APScheduler calls :func:`fire_task` (a module-level function with plain-data arguments,
so jobs never hold graphs, models or bound methods). The bridge loads the task, parses its
trigger, claims the fire ``(task_id, scheduled_for, attempt)`` in the run store, puts a
:class:`~langgraph_scheduler.channel.ConversationRequest` on the bounded queue, awaits the
reply and records it as exactly one :class:`~langgraph_scheduler.models.TaskRunRecord`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

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
from .models import RunTrigger, Task, TaskResult, TaskRunRecord
from .store import Store, tasks_table

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["TaskExecutorBridge", "fire_task", "isolated_thread_id"]

logger = logging.getLogger("langgraph_scheduler")

SUMMARY_MAX_CHARS = 2_000
"""Longest summary kept in a run record (the full answer stays in the thread)."""

CHANNEL_CLOSED = "runtime is stopping: the conversation channel is closed, the turn was not run"

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


def isolated_thread_id(task_id: str, run_id: str) -> str:
    """The fresh thread an isolated task's run talks in (kept after the run)."""
    return f"task-{task_id}-{run_id}"


class TaskExecutorBridge:
    """Turns a fired task into a conversation request and its reply into a run record.

    No exception escapes into APScheduler: every failure ends as a recorded outcome or,
    when the store itself fails, a logged error.

    Args:
        store: the task and run store.
        queue: the bounded channel to the workers.
        scheduler: the runtime's scheduler (to read the next fire time and drop ended jobs).
        holder: this process's id, written on claims.
        lease_secs: how long a claim stays valid without renewal.
        default_timeout_secs: turn timeout when the trigger sets none.
        on_record: called with every finished record (events, logging).
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
        on_record: Callable[[TaskRunRecord], Awaitable[None] | None] | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.scheduler = scheduler
        self.holder = holder
        self.lease_secs = lease_secs
        self.default_timeout_secs = default_timeout_secs
        self.on_record = on_record
        self.key = uuid.uuid4().hex
        self.closed = False
        self.in_flight: dict[str, TaskRunRecord] = {}
        _BRIDGES[self.key] = self

    def close(self) -> None:
        """Close the channel: fires from now on are recorded as errors, not run."""
        self.closed = True

    def unregister(self) -> None:
        _BRIDGES.pop(self.key, None)

    # -- scheduled fires --------------------------------------------------------------

    async def on_fire(self, task_id: str, scheduled_times: list[datetime]) -> None:
        """Handle what APScheduler found due for one task."""
        try:
            await self._on_fire(task_id, scheduled_times)
        except Exception:
            logger.exception("fire of task %s at %s failed", task_id, scheduled_times[-1:])

    async def _on_fire(self, task_id: str, scheduled_times: list[datetime]) -> None:
        task = await self.store.get_task(task_id)
        if task is None or task.state != "active":
            self._drop_job(task_id)
            return
        now = _utcnow()
        grace = timedelta(seconds=task.options.misfire_grace_secs)
        due = scheduled_times[-1]
        missed = [t for t in scheduled_times[:-1]]
        if now - due > grace:
            missed.append(due)
            due_run: datetime | None = None
        else:
            due_run = due
        updates = self._advance(task, ran=due_run is not None)
        if missed:
            await self._record_missed(task, missed, now, updates if due_run is None else None)
        if due_run is not None:
            record = await self.claim(task, due_run, trigger="schedule", task_updates=updates)
            if record is not None:
                await self.execute(task, record)

    def _advance(self, task: Task, *, ran: bool) -> dict[str, Any]:
        """Task columns to write with this fire's claim: next run time, count, state."""
        job = self.scheduler.get_job(task.id)
        next_run = job.next_run_time if job is not None else None
        updates: dict[str, Any] = {"next_run_at": next_run}
        if ran:
            updates["run_count"] = tasks_table.c.run_count + 1
            if task.max_runs is not None and task.run_count + 1 >= task.max_runs:
                next_run = None
                updates["next_run_at"] = None
        if next_run is None:
            updates["state"] = "completed"
            self._drop_job(task.id)
        return updates

    async def _record_missed(
        self,
        task: Task,
        times: list[datetime],
        now: datetime,
        task_updates: dict[str, Any] | None,
    ) -> None:
        # One record per batch of occurrences missed together, with the count in its
        # summary: a week of downtime on a per-minute task is one line, not ten thousand.
        first, last = times[0], times[-1]
        summary = (
            f"{len(times)} occurrence(s) missed between {first.isoformat()} and "
            f"{last.isoformat()} (later than the {task.options.misfire_grace_secs:g}s grace)"
        )
        record = TaskRunRecord(
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
        if await self.store.record_run(record, task_updates=task_updates):
            await self._notify(record)

    # -- claim and execute ------------------------------------------------------------

    async def claim(
        self,
        task: Task,
        scheduled_for: datetime,
        *,
        trigger: RunTrigger,
        attempt: int = 1,
        task_updates: dict[str, Any] | None = None,
    ) -> TaskRunRecord | None:
        """Claim one fire; None when another claim of the same fire won."""
        run_id = str(uuid.uuid4())
        now = _utcnow()
        thread_id = task.thread_id or isolated_thread_id(task.id, run_id)
        record = TaskRunRecord(
            run_id=run_id,
            task_id=task.id,
            attempt=attempt,
            trigger=trigger,
            scheduled_for=scheduled_for,
            started_at=now,
            thread_id=thread_id,
        )
        won = await self.store.claim_run(
            record,
            holder=self.holder,
            lease_until=now + timedelta(seconds=self.lease_secs),
            task_updates=task_updates,
        )
        if not won:
            logger.info("fire %s@%s already claimed elsewhere", task.id, scheduled_for)
            return None
        self.in_flight[run_id] = record
        return record

    async def execute(self, task: Task, record: TaskRunRecord) -> TaskRunRecord:
        """Run a claimed fire's turn and record its outcome."""
        try:
            response = await self._converse(task, record)
        except asyncio.CancelledError:
            response = Interrupted("runtime stopped before the turn finished")
            await self._finish(record, to_result(response))
            raise
        return await self._finish(record, to_result(response))

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

    async def _finish(self, record: TaskRunRecord, result: TaskResult) -> TaskRunRecord:
        self.in_flight.pop(record.run_id, None)
        finished = await self.store.finish_run(record.run_id, result, finished_at=_utcnow())
        if finished is None:
            # Already finished elsewhere (lease expired and recorded interrupted, or
            # the task was deleted): the store keeps the first outcome.
            return await self.store.get_run(record.run_id) or record
        await self._notify(finished)
        return finished

    async def _notify(self, record: TaskRunRecord) -> None:
        logger.info(
            "task %s run %s (%s, attempt %d): %s",
            record.task_id,
            record.run_id,
            record.scheduled_for.isoformat(),
            record.attempt,
            record.outcome,
        )
        if self.on_record is None:
            return
        try:
            maybe = self.on_record(record)
            if maybe is not None:
                await maybe
        except Exception:
            logger.exception("run listener failed for run %s", record.run_id)

    def _drop_job(self, task_id: str) -> None:
        if self.scheduler.get_job(task_id) is not None:
            self.scheduler.remove_job(task_id)


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
