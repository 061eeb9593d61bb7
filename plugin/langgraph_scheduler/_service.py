"""The task service: the only writer of tasks, and the one place their rules live.

Validation, owner scope, the atomic per-owner quota (on create, resume and updates that
make a task active again), ``max_runs`` completion and the update merge are written here
once; the runtime's methods, the tools and the CLI all come through it. Every write is
conditional on the version it read, so a concurrent claim or change is never overwritten:
the service reads again and re-applies the change instead.

Changes that need a human's approval are proposed first (:meth:`TaskService.propose_create`,
:meth:`TaskService.propose_update`): their values are fixed and stored then, under an id
derived from the tool call, and :meth:`TaskService.apply` writes exactly those values, at
most once, after the approval. An approved change the database failed to store is not
asked for again: a new call proposing exactly it, shown alike, soon after, gets that
approval back (:data:`APPROVAL_REUSE_WINDOW`).

A tool call's answer is kept under the same key (:class:`~.store.CallAnswer`): the writes
take it as ``answer`` and keep it in the transaction of the change, so a call LangGraph
runs again after a resume finds it and acts no more (see :meth:`TaskService.find_answer`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal, NamedTuple, TypeVar, get_args

from pydantic import ValidationError

from ._clock import Clock
from ._fire import next_after
from ._validated import is_whole, kind_of
from .errors import (
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    NotAllowed,
    QuotaExceeded,
    SchedulerError,
    StoreError,
    TaskConflict,
    TaskNotFound,
)
from .models import MAX_RUNS, Task, TaskOptions, TaskRunRecord, TaskState
from .schedules import (
    Cron,
    Interval,
    Once,
    Schedule,
    check_timezone,
    schedule_from_dict,
    schedule_to_dict,
    zone_name,
)
from .store import (
    COUNTER_MOST,
    Approval,
    ApprovalStatus,
    CallAnswer,
    SaveResult,
    Store,
    payload_unreadable,
)
from .trigger import ConversationTrigger

__all__ = [
    "BIDI_CONTROLS",
    "Deletion",
    "TaskService",
    "ToolCall",
    "check_id",
    "draft_task",
    "name_from_prompt",
    "task_key",
]

TriggerInput = ConversationTrigger | Mapping[str, Any] | str

_V = TypeVar("_V")

logger = logging.getLogger("langgraph_scheduler")

Answering = Callable[[_V], CallAnswer]
"""A tool call's answer for what a write made (the task as written, a run record), kept
in the write's transaction (see :class:`~.store.CallAnswer`)."""

_CONFLICT_TRIES = 8
"""How often a write is re-applied on a fresh read before giving up."""

_MAX_NAME_CHARS = 200

_MAX_TASK_ID_CHARS = 64

CALL_RETENTION = timedelta(days=30)
"""How long an answered approval, and a tool call's answer, are kept: while they are, a
re-run of the call (a step LangGraph runs again when a human answers an interrupt, maybe
days later) finds them and does not act again. Unanswered approvals stay until answered."""

_PURGE_EVERY = timedelta(hours=1)

APPROVAL_REUSE_WINDOW = timedelta(hours=1)
"""How long after a human approved a change that was not stored (the database failed or
held the task's row when it was applied) a new tool call asking for exactly it is carried
out under that approval instead of asking again. The model's retry is a new call (a new
approval id), and asking a human twice for what they just approved is the failure this
avoids; a retry much later is asked again: the human may no longer expect the change."""


@dataclass(frozen=True)
class ToolCall:
    """A tool call's identity: the key of its approval and of its answer.

    The same call run again (a resume, or a re-run from a new checkpoint after a crash, a
    replay or a fork) has the same key, so it finds what its first run stored; a
    provider reusing call ids in a later turn does not, nor does another call of the
    step that carries the same id but asks for something else.
    """

    owner: str
    step: str
    """The LangGraph step the call runs in (its thread and checkpoint namespace): calls
    of one step share its resume values (an approval's siblings)."""
    call_id: str
    """The model's id for the call."""
    request: str = ""
    """The digest of its tool and arguments (:func:`request_key`)."""
    site: str | None = None
    """Where the call was asked for, the same on every run of it (its thread and model
    message): the key is made from it instead of ``step``, which changes when a step is
    run again from a new checkpoint."""

    @property
    def key(self) -> str:
        """The call's key. (Digested under "approval": the key approvals were first
        stored under.)"""
        where = self.site or self.step
        if not self.request:
            return _digest("approval", self.owner, where, self.call_id)
        return _digest("approval", self.owner, where, self.call_id, self.request)


class Deletion(NamedTuple):
    """A task as it was deleted, and how many of its runs were in flight then: they
    finish (their turns post their replies), unrecorded, and no later fire runs."""

    task: Task
    running: int


class TaskService:
    """Creates, changes and reads tasks in a store.

    Args:
        store: where tasks live.
        clock: the source of "now".
        timezone: the zone of schedules that name none.
        on_change: told of every task this service wrote (or deleted: state None), so the
            runtime in this process can set its timer without waiting for the change feed.
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        timezone: str = "UTC",
        on_change: Callable[[str, Task | None], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self._on_change = on_change
        self._purged_at: datetime | None = None

    # -- writes ---------------------------------------------------------------------

    async def create(
        self,
        *,
        name: str,
        schedule: Schedule,
        trigger: TriggerInput,
        thread_id: str | None = None,
        owner: str = "default",
        max_runs: int | None = None,
        options: TaskOptions | Mapping[str, Any] | None = None,
        paused: bool = False,
        max_active: int | None = None,
        task_id: str | None = None,
        approval_id: str | None = None,
        answer: Answering[Task] | None = None,
    ) -> Task:
        """Validate and store a new task.

        Args:
            task_id: the new task's id (default: a random one). A task already stored
                under this id for this owner is returned as it is when its definition
                (name, schedule, trigger, thread, options, max_runs) is the one given, so
                a create repeated with the same id stores one task; its state, counts and
                next fire are not part of the definition (a paused task stays paused).
                One stored with another definition, also after an ``update``, is
                refused (``TaskConflict``): nothing would tell which one the caller means.
            approval_id: store the task only while this approval is ``approved``; it is
                marked ``applied`` in the same transaction (see :meth:`apply`).
            answer: a tool call's answer for the task, kept with it in one transaction.

        Raises:
            QuotaExceeded: the owner already has ``max_active`` active tasks.
            TaskConflict: ``task_id`` is stored for this owner with another definition.
            InvalidSchedule, InvalidPayload, InvalidTask: an argument is unusable.
            CallAnswered: ``answer``'s call was answered already; nothing was stored.
        """
        now = self.clock.now()
        _check_max_active(max_active)
        if not isinstance(paused, bool):
            raise InvalidTask(f"paused must be True or False, got {paused!r}")

        def build(checked: bool = True) -> Task:
            return draft_task(
                name=name,
                schedule=schedule,
                trigger=trigger,
                thread_id=thread_id,
                owner=owner,
                max_runs=max_runs,
                options=options,
                paused=paused,
                task_id=task_id,
                now=now,
                timezone=self.timezone,
                checked=checked,
            )

        if task_id is not None and approval_id is None:
            # A stored task is compared before the checks that depend on now: a one-off
            # whose time has passed, created again as it was, is that task, not an error.
            found = await self.store.get_task(_check_task_id(task_id))
            if found is not None:
                self._check_same(found, build(checked=False), schedule)
                self._changed(found.id, found)
                return found
        task = build()
        fixed_id = task_id is not None or approval_id is not None
        stored = await self.store.insert_task(
            task,
            max_active=max_active,
            if_absent=fixed_id,
            approval_id=approval_id,
            answer=answer(task) if answer is not None else None,
        )
        if not stored:
            raise _quota(task.owner, max_active)
        if fixed_id:
            found = await self.store.get_task(task.id)
            if found is None:
                raise TaskNotFound(task.id)  # made once on this approval, deleted since
            if approval_id is None:  # another create won the insert: the same check
                self._check_same(found, task, schedule)
            elif found.owner != task.owner:
                raise _taken(task.id)
            task = found
        self._changed(task.id, task)
        return task

    @staticmethod
    def _check_same(found: Task, task: Task, schedule: Schedule) -> None:
        """Refuse ``task``, made from a create's arguments (``schedule`` as given), unless
        ``found``, stored under its id, has its owner and definition.

        An interval given without ``start`` matches the phase pinned by the first create;
        a cron line, one written otherwise that fires alike (``Schedule.same_as``).

        Raises:
            InvalidTask: ``found`` belongs to another owner.
            TaskConflict: the fields that differ.
        """
        if found.owner != task.owner:
            raise _taken(task.id)
        mine = task.schedule
        if isinstance(schedule, Interval) and schedule.start is None:
            if isinstance(found.schedule, Interval) and isinstance(mine, Interval):
                mine = mine.model_copy(update={"start": found.schedule.start})
        same = {
            "name": found.name == task.name,
            # A cron line matching the same times is the same schedule however it is
            # written (a migration re-run with "0 9 * * MON" for "0 9 * * 1").
            "schedule": found.schedule is not None
            and mine is not None
            and found.schedule.same_as(mine),
            "trigger": found.payload == task.payload,
            "thread_id": found.thread_id == task.thread_id,
            "options": found.options == task.options,
            "max_runs": found.max_runs == task.max_runs,
        }
        differ = [field for field, equal in same.items() if not equal]
        if differ:
            raise TaskConflict(task.id, differ)

    def as_stored(
        self, schedule: Schedule, *, now: datetime | None = None, zone: str | None = None
    ) -> Schedule:
        """``schedule`` as a create (or an update of a task in ``zone``) at ``now`` stores
        it: the default zone filled in, an interval's first fire pinned to ``now``.

        Raises:
            InvalidSchedule: ``schedule`` is no schedule (text, a dict, None).
        """
        return _as_stored(schedule, zone=zone or self.timezone, now=now or self.clock.now())

    async def update(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        name: str | None = None,
        schedule: Schedule | None = None,
        trigger: TriggerInput | None = None,
        timeout_secs: int | None = None,
        trigger_changes: Mapping[str, Any] | None = None,
        max_runs: int | None = None,
        options: TaskOptions | Mapping[str, Any] | None = None,
        max_active: int | None = None,
        approval_id: str | None = None,
        answer: Answering[Task] | None = None,
    ) -> Task:
        """Change a task. A new schedule takes effect from now; retries waiting for their
        backoff are dropped; lowering ``max_runs`` to the runs already done completes the
        task at once; raising it (or a new schedule) makes a completed task active again,
        within ``max_active``. While a task's stored payload cannot be read, only an
        update that gives it a new trigger (or prompt) makes it active again (a
        quarantined one, that is); its fields given alone make that trigger.
        ``timeout_secs`` and ``trigger_changes`` (fields of the trigger's payload) change
        those fields of the trigger as stored when the change is written, so a change
        made meanwhile to its other fields is kept.

        With ``approval_id``, the change is written only while that approval is
        ``approved`` (and marks it ``applied``); once applied, the task is returned as it
        is (see :meth:`apply`). ``answer``: a tool call's answer for the task as changed,
        kept with the change in one transaction.

        Raises:
            TaskNotFound, QuotaExceeded, InvalidSchedule, InvalidPayload, InvalidTask.
            CallAnswered: ``answer``'s call was answered already; nothing was changed.
        """
        if name is not None:
            name = _check_name(name)
        if max_runs is not None:
            _check_max_runs(max_runs)
        if schedule is not None:
            _check_schedule(schedule)
        if options is not None:
            options = _check_options(options)
        new_trigger = as_trigger(trigger) if trigger is not None else None

        def change(task: Task, now: datetime) -> dict[str, Any]:
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            payload_trigger = new_trigger
            broken = payload_unreadable(task)
            patch = dict(trigger_changes or {})
            if timeout_secs is not None:
                patch["timeout_secs"] = timeout_secs
            if patch and broken and new_trigger is None:  # nothing to patch: the fields
                payload_trigger = _mending_trigger(task, patch)  # given are the trigger
            elif patch:
                base = payload_trigger or task.trigger
                payload_trigger = as_trigger(base.to_payload() | patch)
            mended = broken and payload_trigger is not None
            unreadable = broken and payload_trigger is None
            if payload_trigger is not None:
                values["payload"] = payload_trigger.to_payload()
            if options is not None:
                values["options"] = options
            current = task.schedule
            if schedule is not None:
                zone = current.tz if current is not None and current.tz else None
                current = self.as_stored(schedule, now=now, zone=zone)
                current.check(now)
                values["schedule"] = current
            limit = task.max_runs if max_runs is None else max_runs
            values["max_runs"] = limit
            if current is None:
                return values  # an unreadable schedule stays where it is until replaced
            spent = limit is not None and task.run_count >= limit
            if spent:
                if task.state in ("active", "completed"):
                    values |= {"state": "completed", "next_run_at": None}
            elif task.state == "active" and schedule is not None:
                values["next_run_at"] = _first_fire(current, now)
            elif unreadable:
                pass  # a payload that cannot be read stays where it is until replaced
            elif task.state in ("completed", "quarantined") and schedule is not None:
                values |= {"state": "active", "next_run_at": _first_fire(current, now)}
            elif task.state in ("completed", "quarantined") and max_runs is not None:
                values |= {"state": "active", "next_run_at": _kept_fire(task, current, now)}
            elif task.state == "quarantined" and mended:
                values |= {"state": "active", "next_run_at": _kept_fire(task, current, now)}
            return values

        return await self._modify(
            task_id, owner, change, max_active=max_active, approval_id=approval_id, answer=answer
        )

    async def pause(
        self, task_id: str, *, owner: str | None = None, answer: Answering[Task] | None = None
    ) -> Task:
        """Stop firing until resumed; retries waiting for their backoff are dropped (a run
        in flight finishes). ``answer`` is kept with the change (see :meth:`update`)."""

        def change(task: Task, now: datetime) -> dict[str, Any]:
            if task.state != "active":
                return {}
            return {"state": "paused", "next_run_at": None}

        return await self._modify(task_id, owner, change, answer=answer)

    async def resume(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        max_active: int | None = None,
        answer: Answering[Task] | None = None,
    ) -> Task:
        """Fire again from the next occurrence after now (missed ones are not replayed).
        ``answer`` is kept with the change (see :meth:`update`).

        Raises:
            QuotaExceeded: the owner already has ``max_active`` active tasks.
            InvalidTask: the task already ran its ``max_runs``, or its stored schedule or
                payload cannot be read (the message says what to give it).
            InvalidSchedule: the schedule has no occurrence left.
        """

        def change(task: Task, now: datetime) -> dict[str, Any]:
            if task.state == "active":
                return {}
            if task.schedule is None:
                raise InvalidTask(
                    f"task {task.id!r} cannot resume: {task.problem}; give it a new schedule "
                    "with update_task, or delete it"
                )
            if payload_unreadable(task):
                raise InvalidTask(
                    f"task {task.id!r} cannot resume: its stored payload cannot be read "
                    f"({task.problem}); give it a new prompt with update_task, or delete it"
                )
            if task.max_runs is not None and task.run_count >= task.max_runs:
                raise InvalidTask(
                    f"task {task.id!r} already ran its max_runs={task.max_runs}; raise "
                    "max_runs to resume it"
                )
            return {"state": "active", "next_run_at": _kept_fire(task, task.schedule, now)}

        return await self._modify(task_id, owner, change, max_active=max_active, answer=answer)

    async def delete(
        self, task_id: str, *, owner: str | None = None, answer: Answering[Deletion] | None = None
    ) -> Deletion:
        """Delete a task, its history and its waiting retries; returns what was deleted,
        and how many of its turns were under way (they finish: a delete stops no turn).
        ``answer``: a tool call's answer for the deletion, kept with the delete."""
        task = await self.get(task_id, owner=owner)
        deleted: list[Deletion] = []

        def kept(running: int) -> CallAnswer | None:
            deleted.append(Deletion(task, running))
            return answer(deleted[-1]) if answer is not None else None

        if not await self.store.delete_task(task.id, answer=kept):
            raise TaskNotFound(task_id)
        self._changed(task.id, None)
        return deleted[-1]

    async def _modify(
        self,
        task_id: str,
        owner: str | None,
        change: Callable[[Task, datetime], dict[str, Any]],
        *,
        max_active: int | None = None,
        approval_id: str | None = None,
        answer: Answering[Task] | None = None,
    ) -> Task:
        """Read, apply ``change`` and write conditionally on the version read; on a
        conflict read again and re-apply. Any write drops waiting retries, and keeps
        ``answer`` for the task as written (nothing written: nothing kept).

        Raises:
            InvalidTask: the stored version is at its most (written by hand, see
                :data:`~.store.COUNTER_MOST`): the write could not bump it.
        """
        _check_max_active(max_active)
        for _ in range(_CONFLICT_TRIES):
            task = await self.get(task_id, owner=owner)
            now = self.clock.now()
            values = change(task, now)
            if not values:
                return task
            if task.version >= COUNTER_MOST:  # written by hand: the write would overflow it
                raise InvalidTask(
                    f"task {task.id!r} cannot be changed: {task.problem}; {task.problem_advice()}"
                )
            updated = task.model_copy(update=values | {"updated_at": now})
            saved = updated.model_copy(update={"version": task.version + 1})
            activates = updated.state == "active" and task.state != "active"
            # A row read with a problem: what the write mended (or not) is known only
            # from the row as it is then, read in the write's transaction; the answer
            # and what this returns are made from that row.
            as_written: list[Task] = []
            kept: CallAnswer | Callable[[Task], CallAnswer | None] | None
            if task.problem is not None:
                kept = _answer_from_row(answer, into=as_written)
            else:
                kept = answer(saved) if answer is not None else None
            result: SaveResult = await self.store.save_task(
                updated,
                expected_version=task.version,
                columns=values,
                max_active=max_active if activates else None,
                cancel_retries=True,
                approval_id=approval_id,
                answer=kept,
            )
            if result == "done":
                # Applied already (maybe by a call racing this one, since the read): the
                # task as it is now, that write included.
                return await self.get(task_id, owner=owner)
            if result == "saved":
                saved = as_written[-1] if as_written else saved
                self._changed(saved.id, saved)
                return saved
            if result == "missing":
                raise TaskNotFound(task_id)
            if result == "quota":
                raise _quota(task.owner, max_active)
        raise StoreError(f"task {task_id!r} kept changing while it was being updated; try again")

    def _changed(self, task_id: str, task: Task | None) -> None:
        if self._on_change is not None:
            self._on_change(task_id, task)

    # -- approvals ------------------------------------------------------------------

    async def propose_create(
        self,
        call: ToolCall,
        *,
        preview: Mapping[str, Any],
        name: str,
        schedule: Schedule,
        trigger: TriggerInput,
        thread_id: str | None = None,
        max_runs: int | None = None,
    ) -> Approval:
        """Hold a new task until a human answers.

        The task is checked and its values fixed now (an interval's first fire too), so
        :meth:`apply` stores what ``preview`` showed. A tool call proposes once: a re-run
        of ``call`` (see :class:`ToolCall`) gets the first proposal back. Another call
        of the owner proposing the same values and preview as one approved but not stored
        yet (the database failed) gets that approval, already approved (see
        :data:`APPROVAL_REUSE_WINDOW`).

        Args:
            call: the tool call proposing; its owner's task it will be.
            preview: what the human is shown, stored with the proposal.

        Raises:
            InvalidSchedule, InvalidPayload, InvalidTask: an argument is unusable.
        """
        now = self.clock.now()
        fixed = self.as_stored(schedule, now=now)
        task = draft_task(
            name=name,
            schedule=fixed,
            trigger=trigger,
            thread_id=thread_id,
            owner=call.owner,
            max_runs=max_runs,
            options=None,
            paused=False,
            task_id=_digest("task", call.key)[:16],
            now=now,
            timezone=self.timezone,
        )
        change = {
            "name": task.name,
            "schedule": schedule_to_dict(fixed),
            "payload": task.payload,
            "thread_id": task.thread_id,
            "max_runs": task.max_runs,
        }
        return await self._propose("create", call, task.id, change, preview, now)

    async def propose_update(
        self,
        task_id: str,
        call: ToolCall,
        *,
        preview: Mapping[str, Any],
        name: str | None = None,
        schedule: Schedule | None = None,
        trigger: TriggerInput | None = None,
        trigger_changes: Mapping[str, Any] | None = None,
        max_runs: int | None = None,
    ) -> Approval:
        """Hold a change of a task until a human answers; like :meth:`propose_create`,
        the values are fixed now (a new schedule in the task's zone, an interval's first
        fire pinned) and a re-run of the tool call gets the first proposal back; a new
        call asking for a change of this task that was approved but not stored yet (the
        same values, shown alike) gets that approval.
        ``trigger_changes`` are written as :meth:`update` writes them once approved: to
        the trigger as it is then, keeping what changed meanwhile in its other fields.

        Raises:
            TaskNotFound, InvalidSchedule, InvalidPayload, InvalidTask.
        """
        now = self.clock.now()
        task = await self.get(task_id, owner=call.owner)
        change: dict[str, Any] = {}
        if name is not None:
            change["name"] = _check_name(name)
        if schedule is not None:
            zone = task.schedule.tz if task.schedule is not None else None
            fixed = self.as_stored(schedule, now=now, zone=zone)
            fixed.check(now)
            change["schedule"] = schedule_to_dict(fixed)
        if trigger is not None:
            change["payload"] = as_trigger(trigger).to_payload()
        if trigger_changes:
            base = as_trigger(change["payload"]) if trigger is not None else task.trigger
            as_trigger(base.to_payload() | dict(trigger_changes))  # refused now, not later
            change["payload_changes"] = dict(trigger_changes)
        if max_runs is not None:
            change["max_runs"] = _check_max_runs(max_runs)
        return await self._propose("update", call, task.id, change, preview, now)

    async def _propose(
        self,
        action: Literal["create", "update"],
        call: ToolCall,
        task_id: str,
        change: dict[str, Any],
        preview: Mapping[str, Any],
        now: datetime,
    ) -> Approval:
        _check_text("tool call id", call.call_id)
        await self._purge(now)
        proposal = Approval(
            id=call.key,
            owner=call.owner,
            step=_digest("step", call.step),
            tool_call_id=call.call_id,
            action=action,
            task_id=task_id,
            change=change,
            preview=dict(preview),
            status="pending",
            created_at=now,
        )
        approved = await self._approved_alike(proposal)
        return approved or await self.store.add_approval(proposal)

    async def _approved_alike(self, proposal: Approval) -> Approval | None:
        """An approval of ``proposal``'s owner, given within
        :data:`APPROVAL_REUSE_WINDOW` and not carried out yet, for exactly its change
        shown exactly as its preview (of the same task, for an update): a new call asking
        for it again (the model retrying after the database failed to store it) is
        carried out under it, at most once like any (see :meth:`apply`). A preview is
        made from the task as it is when asked: changed meanwhile, it differs, and the
        human is asked again. Never one of the proposal's own step: a call beside it in
        its model message (a ``ToolNode`` runs them in one step) is another change,
        asked for on its own, not a retry (a retry comes in a later model message)."""
        found = await self.store.approved_approvals(
            proposal.owner,
            action=proposal.action,
            # A create's task id is made from its call's key: another call, another id.
            task_id=proposal.task_id if proposal.action == "update" else None,
            decided_since=proposal.created_at - APPROVAL_REUSE_WINDOW,
        )
        wanted = _as_json(proposal.change), _as_json(proposal.preview)
        approved = next(
            (a for a in found if (a.change, a.preview) == wanted and a.step != proposal.step),
            None,
        )
        if approved is not None:
            logger.info(
                "tool call %r asks for the change approved for tool call %r (approval %s, "
                "not stored yet): carried out under that approval, not asked again",
                proposal.tool_call_id,
                approved.tool_call_id,
                approved.id,
            )
        return approved

    async def find_approval(self, call: ToolCall) -> Approval | None:
        """The proposal ``call`` made on an earlier run of it, if any."""
        _check_text("owner", call.owner)
        approval = await self.store.get_approval(call.key)
        here = _digest("step", call.step)
        if approval is not None and approval.step != here:
            # Found at its site from another step: the call runs again from a new
            # checkpoint (after a crash, or a replay). Its siblings propose in this step
            # now, and an answer is told apart only among the approvals of one step.
            approval = await self.store.move_approval(approval.id, step=here) or approval
        return approval

    async def asked_of_another(self, call: ToolCall) -> bool:
        """Whether ``call``'s approval was asked for in its step as another owner's: the
        call runs again (a resume) as a user other than the one it was shown to."""
        return await self.store.asked_of_others(
            call.owner, _digest("step", call.step), call.call_id
        )

    async def step_approvals(self, approval: Approval) -> list[Approval]:
        """Every proposal of ``approval``'s owner made in its LangGraph step (itself
        included), oldest first."""
        return await self.store.step_approvals(approval.owner, approval.step)

    async def decide(self, approval: Approval, *, approved: bool, reason: str | None) -> Approval:
        """Record a human's answer; the first answer stands. Returns the approval as stored."""
        status: ApprovalStatus = "approved" if approved else "rejected"
        await self.store.decide_approval(
            approval.id, status=status, reason=reason, now=self.clock.now()
        )
        return await self.reread(approval)

    async def apply(
        self,
        approval: Approval,
        *,
        max_active: int | None = None,
        answer: Answering[Task] | None = None,
    ) -> Task:
        """Store what an approved proposal holds, exactly and at most once.

        Another call with the same approval (a re-run of its tool call) returns the task
        as stored; a refusal (quota, a time that has passed) is recorded, so a re-run
        answers with the same error. ``answer`` is kept with the write (see
        :meth:`create`).

        Raises:
            NotAllowed: the approval is still pending, or was rejected.
            QuotaExceeded, InvalidSchedule, InvalidTask, TaskNotFound: the change cannot
                be stored.
        """
        approval = await self.reread(approval)
        if approval.status == "failed":
            raise InvalidTask(approval.reason or "this approved change could not be stored")
        if approval.status in ("pending", "rejected"):
            raise NotAllowed(f"approval {approval.id!r} is {approval.status}, not approved")
        change = approval.change
        try:
            if approval.action == "create":
                return await self.create(
                    name=change["name"],
                    schedule=schedule_from_dict(change["schedule"]),
                    trigger=change["payload"],
                    thread_id=change["thread_id"],
                    owner=approval.owner,
                    max_runs=change["max_runs"],
                    max_active=max_active,
                    task_id=approval.task_id,
                    approval_id=approval.id,
                    answer=answer,
                )
            schedule = change.get("schedule")
            return await self.update(
                approval.task_id,
                owner=approval.owner,
                name=change.get("name"),
                schedule=schedule_from_dict(schedule) if schedule is not None else None,
                trigger=change.get("payload"),
                trigger_changes=change.get("payload_changes"),
                max_runs=change.get("max_runs"),
                max_active=max_active,
                approval_id=approval.id,
                answer=answer,
            )
        except StoreError:
            raise  # the database, not the change: a re-run may try again
        except SchedulerError as exc:
            await self.store.decide_approval(
                approval.id,
                status="failed",
                reason=str(exc),
                now=self.clock.now(),
                expected="approved",
            )
            raise

    async def reread(self, approval: Approval) -> Approval:
        """``approval`` as stored now."""
        stored = await self.store.get_approval(approval.id)
        if stored is None:
            raise NotAllowed(
                f"approval {approval.id!r} no longer exists (answered ones are kept "
                f"{CALL_RETENTION.days} days); ask for the change again"
            )
        return stored

    # -- tool call answers -----------------------------------------------------------

    def answer(self, call: ToolCall, *, tool: str, text: str, error: bool) -> CallAnswer:
        """A tool call's answer, to keep with the change it made (or alone, when it made
        none): under the key of the call's approval, so both are found again together."""
        return CallAnswer(
            id=call.key,
            owner=call.owner,
            tool=tool,
            status="error" if error else "success",
            text=text,
            created_at=self.clock.now(),
        )

    async def find_answer(self, call: ToolCall) -> CallAnswer | None:
        """The answer ``call`` gave, if it ran before (a re-run after a resume, or after a
        crash); kept :data:`CALL_RETENTION`."""
        _check_text("owner", call.owner)
        _check_text("tool call id", call.call_id)
        return await self.store.get_call_answer(call.key)

    async def keep_answer(self, answer: CallAnswer) -> CallAnswer:
        """Keep ``answer`` unless its call has one (a change keeps its answer with it; this
        keeps those of refusals and no-ops); returns the answer kept, the first."""
        await self._purge(answer.created_at)
        return await self.store.add_call_answer(answer)

    async def _purge(self, now: datetime) -> None:
        """Trim decided approvals and tool call answers older than :data:`CALL_RETENTION`,
        at most once an hour."""
        if self._purged_at is not None and now - self._purged_at < _PURGE_EVERY:
            return
        self._purged_at = now
        await self.store.purge_approvals(decided_before=now - CALL_RETENTION)
        await self.store.purge_call_answers(before=now - CALL_RETENTION)

    # -- reads ----------------------------------------------------------------------

    async def get(self, task_id: str, *, owner: str | None = None) -> Task:
        """The task with this id (of this owner, when given).

        Raises:
            TaskNotFound: no such task, or it belongs to another owner.
        """
        task = await self.store.get_task(task_key(task_id, owner), owner=owner)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def find(
        self,
        *,
        owner: str | None = None,
        state: TaskState | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks, oldest first; filter by owner, state and the conversation thread they
        continue, page with limit/offset."""
        if owner is not None:
            _check_text("owner", owner)
        if thread_id is not None:
            _check_text("thread_id", check_id("thread_id", thread_id))
        if state is not None and state not in _STATES:
            raise InvalidTask(f"state must be one of {', '.join(_STATES)} (or None), got {state!r}")
        _check_page(limit, offset)
        page = await self.store.list_tasks(
            owner=owner,
            states=[state] if state else None,
            thread_id=thread_id,
            limit=limit,
            offset=offset,
        )
        return page.tasks

    async def history(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        limit: int = 20,
        before: datetime | None = None,
    ) -> tuple[Task, list[TaskRunRecord]]:
        """A task and its run records, newest first (``before``: finished before that
        aware time)."""
        _check_page(limit, 0)
        if before is not None and (not isinstance(before, datetime) or before.utcoffset() is None):
            raise InvalidTask(f"before must be an aware datetime (or None), got {before!r}")
        task = await self.get(task_id, owner=owner)
        return task, await self.store.history(task.id, limit=limit, before=before)


def draft_task(
    *,
    name: str,
    schedule: Schedule,
    trigger: TriggerInput,
    thread_id: str | None,
    owner: str,
    max_runs: int | None,
    options: TaskOptions | Mapping[str, Any] | None,
    paused: bool,
    task_id: str | None,
    now: datetime,
    timezone: str,
    checked: bool = True,
) -> Task:
    """The task a create at ``now`` would store, every argument checked, without a
    database: so a command can refuse its arguments before it opens (or creates) one.
    ``timezone`` is the zone of a schedule that names none; with ``checked`` False,
    without the checks against ``now`` (that the schedule still fires), and so without
    its next fire.

    Raises:
        InvalidSchedule, InvalidPayload, InvalidTask: an argument is unusable.
    """
    parsed = as_trigger(trigger)
    schedule = _as_stored(schedule, zone=timezone, now=now)
    first = None
    if checked:
        first = next_after(schedule, now)
        if first is None:
            schedule.check(now)  # says why it never fires
    if max_runs is not None:
        _check_max_runs(max_runs)
    if thread_id is not None:
        _check_thread_id(thread_id)
    state: TaskState = "paused" if paused else "active"
    return Task(
        id=uuid.uuid4().hex[:16] if task_id is None else _check_task_id(task_id),
        name=_check_name(name),
        owner=_check_owner(owner),
        schedule=schedule,
        payload=parsed.to_payload(),
        thread_mode="continue" if thread_id else "isolated",
        thread_id=thread_id,
        state=state,
        options=TaskOptions() if options is None else _check_options(options),
        max_runs=max_runs,
        next_run_at=None if paused or not checked else _refused_if_none(schedule, first),
        created_at=now,
        updated_at=now,
    )


def _as_stored(schedule: Schedule, *, zone: str, now: datetime) -> Schedule:
    """See :meth:`TaskService.as_stored`."""
    return _pin_start(_check_schedule(schedule).with_default_tz(zone), now)


def as_trigger(trigger: TriggerInput) -> ConversationTrigger:
    """A ``ConversationTrigger`` from itself, its dict, or a prompt string.

    Raises:
        InvalidPayload: it is not a valid trigger.
    """
    if isinstance(trigger, str):
        trigger = {"prompt": trigger}
    checked = ConversationTrigger.from_task_payload(
        dict(trigger) if isinstance(trigger, Mapping) else trigger
    )
    for field, value in (("prompt", checked.prompt), ("system_addon", checked.system_addon)):
        if value is not None and not _is_text(value):
            raise InvalidPayload(
                f"the {field} holds text no database can store (a NUL character or a lone "
                "surrogate): remove it"
            )
    return checked


def check_zone(tz: str | tzinfo) -> str:
    """The IANA name of ``tz``: a zone name, or a named ``ZoneInfo`` (see ``zone_name``).

    Raises:
        InvalidSchedule: it names no zone (the message suggests the closest names).
    """
    name = zone_name(tz)
    check_timezone(name)
    return name


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _as_json(value: dict[str, Any]) -> Any:
    """``value`` as a JSON column gives it back (tuples as lists), to compare with one."""
    return json.loads(json.dumps(value))


def request_key(tool: str, arguments: Mapping[str, Any]) -> str:
    """The digest of what a tool call asks for (its tool and the arguments the model
    gave): the ``request`` part of the call's key."""
    return _digest("request", tool, json.dumps(arguments, sort_keys=True))


def _check_task_id(task_id: str) -> str:
    check_id("task_id", task_id)
    _check_text("task_id", task_id)
    if task_id != task_id.strip() or len(task_id) > _MAX_TASK_ID_CHARS:
        raise InvalidTask(
            f"task_id must be at most {_MAX_TASK_ID_CHARS} characters without surrounding "
            f"spaces, got {task_id!r}"
        )
    return task_id


BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Unicode's directional embeddings, overrides and isolates (not the marks LRM/RLM): a
name is refused them, and a terminal is shown them escaped (``views.terminal_text``)."""


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidTask(f"task name must be a string, got {kind_of(name)}")
    name = name.strip()
    if not name:
        raise InvalidTask("task name must not be empty")
    _check_text("task name", name)
    # A name is shown on one line of every list: one with nothing visible lists as a
    # blank, and a direction override makes the rest of its line read backwards.
    if _nothing_visible(name):
        raise InvalidTask(
            "task name has no visible character (only spaces or invisible format "
            "characters): give it a short label the user can read"
        )
    # A line break adds lines to the name's block in a list (an "id:" line of its own),
    # and a control character (an escape sequence) drives the terminal showing it.
    breaking = next((ch for ch in name if _breaks_line(ch)), None)
    if breaking is not None:
        raise InvalidTask(
            f"task name must be one line of text without control characters, found "
            f"U+{ord(breaking):04X}: give it a short label on one line"
        )
    control = next((ch for ch in name if ch in BIDI_CONTROLS), None)
    if control is not None:
        raise InvalidTask(
            f"task name must not contain the text-direction control U+{ord(control):04X}: "
            "it reorders how the rest of the line reads wherever the name is shown; "
            "remove it (text in any script is fine as it is)"
        )
    if len(name) > _MAX_NAME_CHARS:
        raise InvalidTask(f"task name is {len(name)} characters; the limit is {_MAX_NAME_CHARS}")
    return name


def name_from_prompt(prompt: str) -> str:
    """A task name made from its prompt (for a task added without one, as the CLI's
    ``tasks add`` does): the prompt's first six words, as :func:`_check_name` takes a name
    (any prompt makes one): on one line (a control character, line break or
    text-direction control read as a space) and cut with "…" to the limit of a name;
    ``untitled task`` when no visible character is left."""
    line = "".join(" " if _breaks_line(ch) or ch in BIDI_CONTROLS else ch for ch in prompt)
    words = line.split()
    name = " ".join(words[:6])
    if _nothing_visible(name):
        return "untitled task"
    if len(words) > 6:
        name += "…"
    if len(name) > _MAX_NAME_CHARS:
        name = name[: _MAX_NAME_CHARS - 1].rstrip() + "…"
    return name


def _breaks_line(ch: str) -> bool:
    """A control character (an escape sequence drives a terminal) or a line or paragraph
    separator: none stays on a name's one line."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _nothing_visible(text: str) -> bool:
    """Only spaces, controls or invisible format characters (a name that lists as a blank)."""
    return all(unicodedata.category(ch)[0] in "CZ" for ch in text)


def _check_owner(owner: str) -> str:
    """The owner a task is stored under, refused unless a string with more than spaces:
    a blank one (an unset variable) would file the task under no one. Filters by owner
    take any string, so tasks stored with a blank owner before stay readable."""
    if not isinstance(owner, str) or not owner.strip():
        got = repr(owner) if isinstance(owner, str) else kind_of(owner)
        raise InvalidTask(f"owner must be a non-blank string (whose task it is), got {got}")
    _check_text("owner", owner)
    if len(owner) > 256:
        raise InvalidTask(f"owner is {len(owner)} characters; the limit is 256")
    return owner


def _check_thread_id(thread_id: str) -> None:
    """Refuse a thread a task cannot continue: blank, longer than its column (256), or
    text no database can store."""
    if not isinstance(thread_id, str):
        raise InvalidTask(
            f"thread_id must be a string (or None for isolated runs), got {kind_of(thread_id)}"
        )
    if not thread_id.strip():
        raise InvalidTask("thread_id must not be blank; pass None for isolated runs")
    _check_text("thread_id", thread_id)
    if len(thread_id) > 256:
        raise InvalidTask(f"thread_id is {len(thread_id)} characters; the limit is 256")


_LIST_IDS = "; list tasks to see the valid ids"


def task_key(task_id: str, owner: str | None = None) -> str:
    """The task id to look up (stripped), refused if it cannot name a task.

    Raises:
        InvalidTask: ``task_id`` is no string, or a blank one (see :func:`check_id`);
            ``owner`` is no string, or text no database can store.
        TaskNotFound: ``task_id`` is text no database can store (no task has that id).
    """
    check_id("task_id", task_id, hint=_LIST_IDS)
    if not _is_text(task_id):
        raise TaskNotFound(task_id)
    if owner is not None:
        _check_text("owner", owner)
    return task_id.strip()


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def _check_schedule(schedule: object) -> Schedule:
    """``schedule`` if it is a ``Cron``, ``Interval`` or ``Once``, else InvalidSchedule
    saying what it got (text is read by :func:`~.phrases.parse_schedule`)."""
    if isinstance(schedule, (Cron, Interval, Once)):
        return schedule
    hint = ""
    if isinstance(schedule, str):
        hint = "; for text such as 'every day at 9:00' use parse_schedule(text, tz=..., now=...)"
    elif isinstance(schedule, Mapping):
        hint = "; build one from its fields, e.g. Interval(seconds=3600)"
    raise InvalidSchedule(
        f"schedule must be a Cron, Interval or Once, got {kind_of(schedule)}{hint}"
    )


def _check_options(options: TaskOptions | Mapping[str, Any]) -> TaskOptions:
    """``options`` as ``TaskOptions`` (given as one or as its dict), else InvalidTask
    saying which field is wrong."""
    if isinstance(options, TaskOptions):
        return options
    if not isinstance(options, Mapping):
        raise InvalidTask(f"options must be a TaskOptions (or its dict), got {kind_of(options)}")
    try:
        return TaskOptions.model_validate(dict(options))
    except ValidationError as exc:
        raise InvalidTask(TaskOptions.problem(exc)) from None


def _check_max_active(max_active: int | None) -> None:
    if max_active is not None and (not is_whole(max_active) or max_active < 0):
        raise InvalidTask(
            "max_active must be a whole number of active tasks, 0 or more (None: no "
            f"quota), got {max_active!r}"
        )


_STATES: tuple[TaskState, ...] = get_args(TaskState)


def _check_page(limit: int, offset: int) -> None:
    if not (is_whole(limit) and is_whole(offset)) or limit < 1 or offset < 0:
        raise InvalidTask(
            "a page needs a whole limit, 1 or more, and a whole offset, 0 or more, got "
            f"limit={limit!r}, offset={offset!r}"
        )


def _check_max_runs(max_runs: int) -> int:
    if not is_whole(max_runs) or not 1 <= max_runs <= MAX_RUNS:
        raise InvalidTask(
            f"max_runs must be a whole number from 1 to {MAX_RUNS:,}, got {max_runs!r} (leave "
            "it out to repeat until the task is deleted)"
        )
    return max_runs


def check_id(what: str, value: object, *, blank: bool = False, hint: str = "") -> str:
    """``value``, an id (``what``: ``task_id``, ``run_id``, ``thread_id``) a caller gave to
    look something up by, refused unless it is a string with more than spaces: no task,
    run or scheduled thread has another kind of id, and answering "not found" (or nothing)
    would hide the caller's mistake. ``blank``: take a blank one too, where it may name
    something (a LangGraph thread may have any name). ``hint`` ends the message.

    Raises:
        InvalidTask: naming ``what`` and what it got.
    """
    wanted = "a string" if blank else "a non-blank string"
    if not isinstance(value, str):
        raise InvalidTask(f"{what} must be {wanted}, got {kind_of(value)}{hint}")
    if not blank and not value.strip():
        raise InvalidTask(f"{what} must be a non-blank string, got {value!r}{hint}")
    return value


def _check_text(what: str, value: str) -> None:
    """Refuse what is no string, and text no database can store (a lone surrogate, a NUL
    character)."""
    if not isinstance(value, str):
        raise InvalidTask(f"{what} must be a string, got {kind_of(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTask(f"{what} is not valid text (it holds a lone surrogate)") from None
    if "\x00" in value:
        raise InvalidTask(f"{what} must not contain NUL characters")


def _taken(task_id: str) -> InvalidTask:
    return InvalidTask(f"task id {task_id!r} is taken; choose another id")


def _answer_from_row(
    answer: Answering[Task] | None, *, into: list[Task]
) -> Callable[[Task], CallAnswer | None]:
    """What :meth:`~.store.Store.save_task` calls with the task as its write left the
    row: kept in ``into`` (the task an update returns), and ``answer`` made from it."""

    def from_row(row: Task) -> CallAnswer | None:
        into.append(row)
        return answer(row) if answer is not None else None

    return from_row


def _quota(owner: str, max_active: int | None) -> QuotaExceeded:
    return QuotaExceeded(
        f"quota reached: owner {owner!r} already has {max_active} active tasks; delete "
        "or pause a task that is no longer needed, then try again"
    )


def _pin_start(schedule: Schedule, now: datetime) -> Schedule:
    """Give an Interval without start its first fire time, so restarts keep its phase.

    Raises:
        InvalidSchedule: the first fire time is past the end of the calendar (year 9999)
            (see :meth:`Interval.first_fire_from`).
    """
    if isinstance(schedule, Interval) and schedule.start is None:
        return schedule.model_copy(update={"start": schedule.first_fire_from(now)})
    return schedule


def _first_fire(schedule: Schedule, now: datetime) -> datetime:
    return _refused_if_none(schedule, next_after(schedule, now))


def _refused_if_none(schedule: Schedule, first: datetime | None) -> datetime:
    """``first``, the schedule's first fire time after now, refused when it has none."""
    if first is None:
        raise InvalidSchedule(
            f"schedule {schedule.describe()} has no fire time after now; give a later one"
        )
    return first


def _mending_trigger(task: Task, fields: Mapping[str, Any]) -> ConversationTrigger:
    """The trigger made of the ``fields`` an update changes, for a task whose stored
    payload cannot be read (there is nothing to change them on).

    Raises:
        InvalidPayload: they make no trigger (no prompt, say); says to give a new one.
    """
    try:
        return as_trigger(dict(fields))
    except InvalidPayload as exc:
        raise InvalidPayload(
            f"task {task.id!r}'s stored payload cannot be read ({task.problem}), so the "
            f"fields given make its trigger, and they make none ({exc}); give it a new "
            "prompt with update_task"
        ) from None


def _kept_fire(task: Task, schedule: Schedule, now: datetime) -> datetime:
    """The first fire after ``now`` of the schedule a task keeps when it becomes active
    again (resumed, or its max_runs raised).

    Raises:
        InvalidSchedule: none is left (a one-off whose time has passed, a cron past its
            end); the message says to give the task a new schedule, since resuming or
            raising max_runs takes no time.
    """
    try:
        schedule.check(now)
        first = next_after(schedule, now)
    except InvalidSchedule:
        first = None
    if first is None:
        raise InvalidSchedule(
            f"task {task.id!r} has no run left: its schedule, {schedule.describe()}, has no "
            "fire time after now. To run it again, give it a new schedule with update_task "
            "(max_runs may go in the same call), or delete it"
        )
    return first
