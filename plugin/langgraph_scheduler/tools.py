"""LLM tools that let an agent manage its own scheduled conversations.

:func:`scheduler_tools` builds eight LangChain tools bound to a
:class:`~langgraph_scheduler.runtime.SchedulerRuntime`. The owner of every task is taken
from the run config (``configurable.user_id``, else ``configurable.thread_id``), never
from tool arguments, and every problem the model can fix comes back as a short tool
message (the ``ToolMessage`` has ``status="error"``); nothing is stored in that case.

With ``SchedulerLimits(require_approval=True)``, ``schedule_task`` and ``update_task`` fix
the values to store, keep them under the tool call's id and ask a human through
``interrupt()``; LangGraph re-runs the tool on every resume, and each re-run finds the same
values and the answer already given, so a call is stored at most once, only after its own
approval (see :func:`scheduler_tools`); a new call retrying a change approved but not
stored (the database failed) is stored under that approval, not asked again. A call that
changes tasks is refused when another call of its model message carries the same id, with
or without approvals; one needing an approval is refused when a call of another tool
shares its LangGraph task (whose own ``interrupt()`` would take the approval's answers by
position).

LangGraph runs a whole node again when it resumes it after an ``interrupt()``, and a
``ToolNode`` runs every call of a model message in one node, so a call that changes tasks
runs again whenever another call of its message (an approval, the application's own
human-in-the-loop tool) asked a human. Each such call acts at most once per owner,
model message and tool call id: its answer is kept with its change, in one transaction,
and every re-run gives that answer back unchanged (see :func:`scheduler_tools`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt import InjectedState
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._loops import call_blocking, call_on_loop, running_loop_of
from ._service import Answering, Deletion, TaskService, ToolCall, request_key
from ._validated import Validated
from .errors import (
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    NotAllowed,
    SchedulerError,
    StoreError,
    StoreUnavailable,
    TaskBusy,
)
from .models import MAX_RUNS, Task, TaskRunRecord, TaskState, storable_text
from .phrases import dst_note, read_schedule
from .runtime import SchedulerRuntime
from .schedules import Cron, Interval, Once, Schedule, zone_notice
from .store import Approval, CallAnswer, CallAnswered, payload_unreadable
from .trigger import MAX_PROMPT_CHARS, MAX_TIMEOUT_SECS, ConversationTrigger
from .views import TaskList

__all__ = [
    "APPROVAL_KIND",
    "TOOL_NAMES",
    "SchedulerLimits",
    "is_scheduled_turn",
    "scheduler_tools",
]

TOOL_NAMES = (
    "schedule_task",
    "list_tasks",
    "update_task",
    "pause_task",
    "resume_task",
    "delete_task",
    "run_task_now",
    "task_history",
)
"""The tools :func:`scheduler_tools` builds, in order."""

APPROVAL_KIND = "langgraph_scheduler.approval"
"""``type`` of the ``interrupt()`` payload asking a human to approve a task."""

_HOW_TO_ANSWER = (
    "resume with True or {'approved': True} to approve; False or {'approved': False, "
    "'reason': '...'} to reject (an answer cannot change the task: reject it with a reason "
    "saying what to change; any text other than 'yes', 'approve' or 'no' rejects with that "
    "text as the reason). While other approvals of the same step wait (listed in "
    "'waiting'), name the call: {'tool_call_id': '<id>', 'approved': True}, or answer several "
    "at once with {'<id>': True, '<other id>': {'approved': False, 'reason': '...'}}"
)

logger = logging.getLogger("langgraph_scheduler")

_NEXT_RUNS = 3
_GAP_SAMPLES = 24
_SUMMARY_CHARS = 200


class SchedulerLimits(Validated):
    """Guardrails for tasks created and changed by a model (a bad field raises
    ``InvalidTask``).

    Example:
        >>> tools = scheduler_tools(runtime, limits=SchedulerLimits(require_approval=True))
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    called = "scheduler limits"

    max_active_tasks_per_owner: int = Field(
        default=20, ge=1, description="Active tasks one owner may have at once."
    )
    min_interval_secs: float = Field(
        default=300,
        ge=0,
        description="Shortest gap allowed between two runs of a recurring task (one-off "
        "tasks are exempt). Cron lines are measured on their next fire times, on their "
        "own clock: a daylight-saving change that brings two runs together once does not "
        "count.",
    )
    max_prompt_chars: int = Field(
        default=2_000,
        ge=1,
        le=MAX_PROMPT_CHARS,
        description="Longest task prompt (and extra instruction) a model may store.",
    )
    allow_scheduled_turns_to_manage_tasks: bool = Field(
        default=False,
        description="Let a task-triggered turn create, change, run or delete tasks. Off by "
        "default so a task cannot keep scheduling more work by itself.",
    )
    require_approval: bool = Field(
        default=False,
        description="Ask a human, through LangGraph interrupt(), before a new task is "
        "stored or a task's schedule, timezone, prompt or system addon is changed.",
    )
    max_manual_runs_per_task: int = Field(
        default=5,
        ge=0,
        description="run_task_now calls one task may take within manual_run_window_secs.",
    )
    max_manual_runs_per_owner: int = Field(
        default=20,
        ge=0,
        description="run_task_now calls one owner may take within manual_run_window_secs, "
        "over all their tasks.",
    )
    manual_run_window_secs: float = Field(
        default=3600, gt=0, description="The window the manual-run limits count over."
    )


# -- argument schemas (what the model sees) --------------------------------------------

_TASK_ID = Field(
    description="The task's id exactly as shown by list_tasks or schedule_task, "
    "e.g. '3f2a9c1d0e4b5a6c'. Never guess an id: call list_tasks first."
)
_SCHEDULE_HELP = (
    "Pass the user's own words; do not compute dates. Accepted: 'in 20 minutes', 'in 2h', "
    "'in 3 months', 'tomorrow at 9:00', 'every 2 hours', 'every day at 18:30', "
    "'every weekday at 9:00', 'every monday at 8am', a 5-field cron line like '0 9 * * 1-5', "
    "or an ISO-8601 date-time like '2026-12-01T09:00' (without an offset it is read in the "
    "timezone)."
)
_TIMEZONE_HELP = (
    "IANA timezone name such as 'Europe/Berlin' or 'America/New_York'. Only when the user "
    "names a place or zone; omit it to use the default timezone."
)


class _Args(BaseModel):
    # Strict: a model's ``true`` for a number, or ``"5"`` for a count, is a mistake to
    # report, not a value to coerce (``timeout_secs: true`` would be a 1-second timeout).
    model_config = ConfigDict(extra="forbid", strict=True)


class ScheduleTaskArgs(_Args):
    """Arguments of ``schedule_task``."""

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Short label for the task, e.g. 'Water the plants' or 'Weekly report'.",
    )
    schedule: str = Field(min_length=1, description=f"When the task runs. {_SCHEDULE_HELP}")
    prompt: str = Field(
        min_length=1,
        description="The message you will receive when the task fires, written as the "
        "user's request and self-contained (you will not remember today's conversation), "
        "e.g. 'Remind me to call the dentist about Friday's appointment.'",
    )
    timezone: str | None = Field(default=None, description=_TIMEZONE_HELP)
    thread: Literal["continue", "isolated"] = Field(
        default="continue",
        description="'continue' (default): each run adds a turn to this conversation, where "
        "the user will see it. 'isolated': each run starts a fresh, empty conversation (for "
        "background jobs that should not clutter this chat).",
    )
    system_addon: str | None = Field(
        default=None,
        description="Optional instruction for how to answer when the task fires (tone, "
        "length, format), applied to that scheduled turn only, e.g. 'Answer in one sentence.'",
    )
    timeout_secs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECS,
        description="Optional limit in seconds for each scheduled turn; omit for the default.",
    )
    max_runs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RUNS,
        description="Optional: stop a recurring task after this many runs, e.g. 5 for "
        "'the next five mornings'. Omit to repeat until deleted.",
    )


class ListTasksArgs(_Args):
    """Arguments of ``list_tasks``."""

    state: Literal["active", "paused", "completed", "quarantined"] | None = Field(
        default=None,
        description="Only tasks in this state: 'active' (will fire), 'paused', "
        "'completed' (one-off tasks that ran, or tasks that reached max_runs), or "
        "'quarantined' (stopped: their stored data cannot be read; delete them). Omit for all.",
    )
    scope: Literal["this_conversation", "all"] = Field(
        default="this_conversation",
        description="'this_conversation' (default): the tasks that post into this "
        "conversation. 'all': every task of this user, in any conversation or isolated.",
    )
    limit: int = Field(default=20, ge=1, le=50, description="How many tasks to show (1-50).")
    offset: int = Field(
        default=0, ge=0, le=MAX_RUNS, description="Skip this many tasks (for paging)."
    )


class UpdateTaskArgs(_Args):
    """Arguments of ``update_task``: the id plus only the fields to change."""

    task_id: str = _TASK_ID
    name: str | None = Field(default=None, max_length=200, description="New label.")
    schedule: str | None = Field(
        default=None, description=f"New schedule, from now on. {_SCHEDULE_HELP}"
    )
    timezone: str | None = Field(
        default=None,
        description="New IANA timezone, e.g. 'Europe/Berlin'. With schedule it is the zone "
        "of the new schedule; alone it moves a cron schedule to this zone at the same "
        "wall-clock times.",
    )
    prompt: str | None = Field(default=None, description="New message to receive when it fires.")
    system_addon: str | None = Field(
        default=None,
        description="New instruction for the scheduled turns; an empty string removes it.",
    )
    timeout_secs: int | None = Field(
        default=None, ge=1, le=MAX_TIMEOUT_SECS, description="New turn time limit in seconds."
    )
    max_runs: int | None = Field(
        default=None, ge=1, le=MAX_RUNS, description="New maximum number of runs."
    )


class _Call(_Args):
    """What the tools that change tasks get from the tool call, hidden from the model.

    ``tool_call_id`` is the key that makes an approval's re-runs find the same values and
    answer; ``graph_state`` (when a ``ToolNode`` or ``create_agent`` runs the tool) holds
    the call's model message, which shows the other calls beside it.
    """

    tool_call_id: Annotated[str | None, InjectedToolCallId] = None
    graph_state: Annotated[Any, InjectedState()] = None

    @functools.cached_property
    def conversation(self) -> tuple[Sequence[Any], AIMessage] | None:
        """The state's list holding the call's model message, and that message (found
        once per call): under ``messages``, or any other key a
        ``ToolNode(messages_key=...)`` keeps the conversation under (a tool is not told
        that key, so every list of the state is looked at, ``messages`` first)."""
        state = self.graph_state
        if isinstance(state, Mapping):
            values = [state.get("messages"), *state.values()]
        else:  # a dataclass or pydantic state
            values = [getattr(state, "messages", None), *getattr(state, "__dict__", {}).values()]
        for value in values:
            message = _message_of(self.tool_call_id, value)
            if message is not None:
                return value, message
        return None

    @property
    def message(self) -> AIMessage | None:
        """The call's model message (see :attr:`conversation`)."""
        found = self.conversation
        return found[1] if found is not None else None


class _ScheduleTaskCall(ScheduleTaskArgs, _Call):
    pass


class _UpdateTaskCall(UpdateTaskArgs, _Call):
    pass


_INJECTED = frozenset(_Call.model_fields)


class TaskIdArgs(_Args):
    """Arguments of the tools that act on one task."""

    task_id: str = _TASK_ID


class _TaskIdCall(TaskIdArgs, _Call):
    pass


class TaskHistoryArgs(_Args):
    """Arguments of ``task_history``."""

    task_id: str = _TASK_ID
    limit: int = Field(default=5, ge=1, le=20, description="How many recent runs (1-20).")


# -- the tools -------------------------------------------------------------------------

_ArgsT = TypeVar("_ArgsT", bound=_Args)


def scheduler_tools(
    runtime: SchedulerRuntime | Callable[[], SchedulerRuntime],
    *,
    limits: SchedulerLimits | None = None,
) -> list[BaseTool]:
    """The eight scheduler tools, bound to a runtime.

    ``schedule_task``, ``list_tasks``, ``update_task``, ``pause_task``, ``resume_task``,
    ``delete_task``, ``run_task_now`` and ``task_history``. Each runs on the runtime's
    event loop: awaited there, or handed to it from another loop or thread, so a sync
    ``tool.invoke`` or ``graph.invoke`` works too, from any thread but the one running
    that loop (where it raises and names the async call). With no event loop of your own,
    run the runtime as :class:`~langgraph_scheduler.sync.SyncSchedulerRuntime`.

    Args:
        runtime: the runtime the tasks live in, or a function returning it at call time.
            The runtime takes the graph that holds these tools, so the tools usually
            exist first: pass ``lambda: runtime_holder[0]``-style lookups, or use
            :class:`~langgraph_scheduler.middleware.SchedulerMiddleware` and its ``bind``.
            Building the tools never needs the runtime started.
        limits: guardrails; the defaults of :class:`SchedulerLimits` when None.

    Returns:
        LangChain tools for any agent (``create_agent``, ``ToolNode``, ``bind_tools``).

    Example:
        >>> tools = scheduler_tools(runtime, limits=SchedulerLimits(min_interval_secs=600))

    Note:
        The owner of a task is ``configurable.user_id`` of the run config, else its
        ``configurable.thread_id``. Pass a ``user_id`` when one user talks in several
        threads, so all their tasks are theirs in every thread.

    Note:
        With ``limits.require_approval``, ``schedule_task`` (and ``update_task`` changing a
        schedule, timezone, prompt or system addon) pauses the graph with ``interrupt()``.
        The payload's ``tool_call_id`` names the call and ``task`` holds exactly what will
        be stored (times are computed once, when asked). Resume with
        ``Command(resume=True)`` (or ``"yes"``); ``False`` (or ``"no"``) rejects, and other
        text rejects with that text as the reason the model is told; when several calls of
        one step ask (a ``ToolNode`` runs a message's calls in one task), name the call:
        ``Command(resume={"tool_call_id": ..., "approved": True})``; several requests shown
        at once (``create_agent``) take LangGraph's
        ``Command(resume={interrupt.id: answer, ...})``. Approvals are kept
        under the tool call id, so a resumed call is stored at most once, only after its own
        approval. When the database fails to store an approved change, the model is told
        to try again; its retry (a new call) asking for exactly that change, shown
        alike, within an hour is stored under the approval without asking again. In a
        ``ToolNode`` that runs every call of a message in one task (one reached by an
        edge, not by ``Send``), a call needing an approval next to a call of another tool
        is refused (asking the model to make it alone): that tool may
        ``interrupt()`` too, and LangGraph matches a task's answers to its interrupts by
        position only, so its answers would reach the approval and the approval's reach it.

    Note:
        A call that changes tasks (``schedule_task``, ``update_task``, ``pause_task``,
        ``resume_task``, ``delete_task``, ``run_task_now``) acts at most once per owner,
        model message (the LangGraph step where the state does not hold it) and tool
        call id, with or without approvals. LangGraph runs a
        ``ToolNode``'s calls again when it resumes the node after an ``interrupt()`` (an
        approval, or your own human-in-the-loop tool in the same model message): the
        call's answer is kept with its change in one transaction (refusals too), and a
        re-run answers it again unchanged instead of acting. Answers are kept 30 days
        (as answered approvals are). A tool invoked outside a LangGraph step (plain
        arguments, or a tool call passed to ``tool.ainvoke``) is not re-run by LangGraph
        and keeps no answer.

    Note:
        A call that changes tasks runs only under an id of its own: when several calls of
        one model message carry the same id (some providers repeat ids), none of those
        that change tasks is run, with or without approvals, and each is answered with a
        message asking for the calls again, one per message. The tools see the message
        in the graph state (``ToolNode``, also with another ``messages_key``, and
        ``create_agent``); a tool invoked outside such a graph cannot tell. A call needing
        an approval that a ``ToolNode`` runs without its message in the state is refused
        (nothing would tell whether another tool's interrupt shares its step).
    """
    if isinstance(runtime, SchedulerRuntime):
        bound = runtime
        get_runtime: Callable[[], SchedulerRuntime] = lambda: bound  # noqa: E731
        default_tz: str | None = runtime.timezone
    else:
        get_runtime, default_tz = runtime, None
    service = _ToolService(get_runtime, limits or SchedulerLimits())
    tz_note = f" Default timezone: {default_tz}." if default_tz else ""
    minimum = service.limits.min_interval_secs
    interval_note = (
        f" Recurring tasks may run at most every {_duration(minimum)}." if minimum > 0 else ""
    )
    specs: list[tuple[str, str, type[_Args], Callable[..., Awaitable[str]]]] = [
        (
            "schedule_task",
            "Schedule a future conversation turn for yourself: when it is due you receive "
            "`prompt` as a message and act on it (reminders, recurring reports, follow-ups). "
            "Pass the user's time words as `schedule`; the answer gives the next run times "
            "and timezone, which you must confirm to the user." + interval_note + tz_note,
            _ScheduleTaskCall,
            service.schedule_task,
        ),
        (
            "list_tasks",
            "List the user's scheduled tasks with id, name, schedule in words, timezone, "
            "next run times, state and last outcome. Use it to find a task's id.",
            ListTasksArgs,
            service.list_tasks,
        ),
        (
            "update_task",
            "Change a scheduled task: pass its id and only the fields to change. A new "
            "schedule applies from now; the answer gives the next run times and timezone.",
            _UpdateTaskCall,
            service.update_task,
        ),
        (
            "pause_task",
            "Pause a task: it stops firing until resume_task (a run in progress finishes).",
            _TaskIdCall,
            service.pause_task,
        ),
        (
            "resume_task",
            "Resume a paused task from its next occurrence after now (missed occurrences "
            "are not replayed). The answer gives the next run times.",
            _TaskIdCall,
            service.resume_task,
        ),
        (
            "delete_task",
            "Delete a task and its run history for good. Prefer pause_task when the user "
            "may want it back.",
            _TaskIdCall,
            service.delete_task,
        ),
        (
            "run_task_now",
            "Start a task's conversation turn now, outside its schedule (paused tasks too). "
            "Does not wait for it: answers with the run id; a task on this conversation "
            "runs right after your current answer. Check the outcome with task_history.",
            _TaskIdCall,
            service.run_task_now,
        ),
        (
            "task_history",
            "Show a task's recent runs, newest first: when each was due, manual or "
            "scheduled, outcome (success, error, timeout, skipped, missed, interrupted) and "
            "a short summary or error.",
            TaskHistoryArgs,
            service.task_history,
        ),
    ]
    return [
        _SchedulerTool.from_function(
            coroutine=_on_runtime_loop(get_runtime, _coroutine(service, name, schema, method)),
            func=_blocking(name, get_runtime, _coroutine(service, name, schema, method)),
            name=name,
            description=description,
            args_schema=schema,
            infer_schema=False,
            handle_tool_error=True,
            handle_validation_error=_validation_message(name, schema),
        )
        for name, description, schema, method in specs
    ]


class _SchedulerTool(StructuredTool):
    """A structured tool that also runs from plain arguments (no tool call id then)."""

    def _parse_input(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> str | dict[str, Any]:
        # LangChain refuses to run a tool with an injected call id from a plain dict;
        # ours only need the id to ask for an approval, and say so then.
        return super()._parse_input(tool_input, "" if tool_call_id is None else tool_call_id)


def is_scheduled_turn(config: RunnableConfig | None) -> bool:
    """True when ``config`` is that of a task-triggered turn (metadata ``source="scheduler"``)."""
    metadata = (config or {}).get("metadata") or {}
    return metadata.get("source") == "scheduler"


def _coroutine(
    service: _ToolService, name: str, schema: type[_ArgsT], method: Callable[..., Awaitable[str]]
) -> Callable[..., Awaitable[str]]:
    """The tool's coroutine: ``method(args, config)``, or for a call that changes tasks
    ``method(args, config, answering)`` run at most once (:meth:`_ToolService.once`)."""

    async def run(config: RunnableConfig, **kwargs: Any) -> str:
        # The tool passes only the arguments the model gave; validate again for defaults.
        args = schema.model_validate(kwargs)
        try:
            if isinstance(args, _Call):
                _check_own_id(args)
                return await service.once(name, args, config, method)
            return await method(args, config)
        except TaskBusy as exc:  # the database is fine: that task is held for now
            logger.warning("scheduler tool: %s", exc)
            raise ToolException(_refusal(exc)) from None
        except StoreError as exc:
            # The database's name and its driver's words are for the logs, not the model.
            logger.warning("scheduler tool: %s", exc)
            busy = isinstance(exc, StoreUnavailable)
            raise ToolException(
                "Error: the scheduler's database "
                + ("cannot be reached right now" if busy else "failed")
                + "; this may not have been done. In a minute, check with list_tasks before "
                "trying again, and tell the user if it keeps failing."
            ) from None
        except SchedulerError as exc:
            raise ToolException(_refusal(exc)) from None
        except ToolException:
            raise  # a refusal kept from an earlier run of the call
        except GraphBubbleUp:
            raise  # interrupt() for an approval: LangGraph's control flow, not a failure
        except Exception as exc:
            # Nothing raised inside a tool may end the turn: log it whole, tell the model
            # briefly, and store nothing more.
            logger.exception("scheduler tool failed unexpectedly")
            raise ToolException(
                f"Error: the scheduler could not do this ({type(exc).__name__}); nothing "
                "was changed. Tell the user it failed; do not retry the same call."
            ) from None

    return run


def _on_runtime_loop(
    get_runtime: Callable[[], SchedulerRuntime], run: Callable[..., Awaitable[str]]
) -> Callable[..., Awaitable[str]]:
    """The tool's coroutine, run on the runtime's event loop even when awaited on another
    (an agent on a web app's loop, the runtime on :class:`SyncSchedulerRuntime`'s)."""

    async def on_loop(config: RunnableConfig, **kwargs: Any) -> str:
        return await call_on_loop(_loop_of(get_runtime), lambda: run(config, **kwargs))

    return on_loop


def _blocking(
    name: str, get_runtime: Callable[[], SchedulerRuntime], run: Callable[..., Awaitable[str]]
) -> Callable[..., str]:
    """The tool's sync form (``tool.invoke``, a sync ``graph.invoke``): the coroutine,
    handed to the runtime's loop and waited for. It works from any thread but the one
    running that loop, where it raises and names the async form instead."""

    def blocking(config: RunnableConfig, **kwargs: Any) -> str:
        return call_blocking(
            _loop_of(get_runtime), lambda: run(config, **kwargs), what=f"the {name} tool"
        )

    return blocking


def _loop_of(get_runtime: Callable[[], SchedulerRuntime]) -> asyncio.AbstractEventLoop | None:
    try:
        return running_loop_of(get_runtime())
    except Exception:  # no runtime yet: the tool itself answers with the reason
        return None


def _validation_message(name: str, schema: type[_Args]) -> Callable[[Any], str]:
    def handle(exc: Any) -> str:
        problems = []
        if isinstance(exc, ValidationError):
            for err in exc.errors(include_url=False):
                field = ".".join(str(p) for p in err["loc"]) or "arguments"
                if err["type"] == "extra_forbidden":
                    allowed = ", ".join(f for f in schema.model_fields if f not in _INJECTED)
                    problems.append(f"unknown argument {field!r} (allowed: {allowed})")
                else:
                    problems.append(f"{field}: {err['msg']}")
        else:
            problems.append(str(exc))
        return f"Error: {name} was not run, invalid arguments: {'; '.join(problems)}."

    return handle


class _ToolService:
    """The tools' logic: guardrails, owner scope, approval and text rendering."""

    def __init__(
        self, get_runtime: Callable[[], SchedulerRuntime], limits: SchedulerLimits
    ) -> None:
        self._get_runtime = get_runtime
        self.limits = limits
        # Dropped once no call of the step holds or waits for it.
        self._step_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @property
    def runtime(self) -> SchedulerRuntime:
        return self._get_runtime()

    async def once(
        self, tool: str, call: _Call, config: RunnableConfig, act: Callable[..., Awaitable[str]]
    ) -> str:
        """Run ``act(call, config, answering)``, a call that changes tasks, at most once per
        owner, model message and tool call id, and give every run the first one's answer.

        ``act`` hands ``answering`` to the write it makes, which keeps the answer in its
        own transaction: a run that comes second (a re-run after a resume, or the first
        run still going on) finds the answer, or has its write undone by it. A refusal,
        or an answer that changed nothing, is kept after the fact (nothing to undo). A
        database failure keeps nothing: a re-run may try again. Outside a LangGraph step
        (plain arguments, or a tool call passed to the tool: nothing re-runs the call
        there, and nothing tells one step from another), ``act`` runs with ``answering``
        None, as a plain call. Inside one, an empty tool call id is an id like any other.

        Raises:
            ToolException: the call was refused (now, or on its first run).
        """
        owner = await self._owner(config)
        if call.tool_call_id is None or _namespace(config) is None:
            return await act(call, config, None)
        ticket = _ticket_of(owner, config, call, call.tool_call_id, _request_of(tool, call))
        service = self.runtime.tasks
        kept = await service.find_answer(ticket)
        if kept is None:
            answering = _Answering(service, ticket, tool)
            try:
                kept = await service.keep_answer(answering.of(await act(call, config, answering)))
            except CallAnswered:
                kept = await service.find_answer(ticket)
                if kept is None:
                    gone = f"the answer of tool call {call.tool_call_id!r} was trimmed"
                    raise StoreError(gone) from None
            except StoreError:
                raise
            except SchedulerError as exc:
                kept = await service.keep_answer(answering.of(_refusal(exc), error=True))
        if kept.status == "error":
            raise ToolException(kept.text)
        return kept.text

    # -- tools ---------------------------------------------------------------------

    async def schedule_task(
        self, args: _ScheduleTaskCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "create tasks")
        owner = await self._owner(config)
        if self.limits.require_approval:
            ticket = self._ticket(config, args, "schedule_task", owner)

            async def propose() -> Approval:
                plan = self._plan_new(args, config, owner)
                return await self.runtime.tasks.propose_create(
                    ticket,
                    preview=plan.preview,
                    name=args.name,
                    schedule=plan.schedule,
                    trigger=plan.trigger,
                    thread_id=plan.thread_id,
                    max_runs=args.max_runs,
                )

            approval = await self._approval(ticket, propose)
            if approval.status == "rejected":
                return _rejected("The task was not scheduled", approval.reason)
            answer = self._scheduled(config, approval.preview.get("note"))
            task = await self.runtime.tasks.apply(
                approval,
                max_active=self.limits.max_active_tasks_per_owner,
                answer=_keeping(answering, answer),
            )
        else:
            plan = self._plan_new(args, config, owner)
            answer = self._scheduled(config, plan.note)
            task = await self.runtime.tasks.create(
                name=args.name,
                schedule=plan.schedule,
                trigger=plan.trigger,
                thread_id=plan.thread_id,
                owner=owner,
                max_runs=args.max_runs,
                max_active=self.limits.max_active_tasks_per_owner,
                answer=_keeping(answering, answer),
            )
        return answer(task)

    def _scheduled(self, config: RunnableConfig, note: str | None) -> Callable[[Task], str]:
        """The answer of ``schedule_task`` for the task stored."""

        def answer(task: Task) -> str:
            read = _note_line(note, task)
            return (
                f"Scheduled task {task.name!r}. Confirm the next run and timezone to the "
                f"user.{read}\n{self._render(task, config)}"
            )

        return answer

    def _plan_new(self, args: ScheduleTaskArgs, config: RunnableConfig, owner: str) -> _Plan:
        """Check a new task's arguments and fix its values (and what a human is shown)."""
        thread_id = _thread_of(config) if args.thread == "continue" else None
        if args.thread == "continue" and thread_id is None:
            raise InvalidTask(
                "this run has no configurable.thread_id to continue; use thread='isolated'"
            )
        default = self.runtime.timezone
        tz = _person_zone(args.timezone, default) or default
        now = self.runtime.clock.now()
        reading = read_schedule(args.schedule, tz=tz, now=now)
        schedule = reading.schedule
        self._check_interval(schedule, now)
        trigger = self._trigger(
            {
                "prompt": args.prompt,
                "system_addon": args.system_addon,
                "timeout_secs": args.timeout_secs,
            }
        )
        if not self.limits.require_approval:
            return _Plan(schedule, trigger, thread_id, {}, reading.note)
        # Fixed now: an interval's first fire is pinned, so approving later stores the
        # times the human saw.
        schedule = self.runtime.tasks.as_stored(schedule, now=now)
        preview = schedule.next_fire_times(_NEXT_RUNS, after=now)
        if args.max_runs is not None:
            preview = preview[: args.max_runs]
        shown = {
            "name": args.name.strip(),
            "schedule": schedule.describe(),
            "timezone": schedule.tz,
            "next_runs": [_iso(t) for t in preview],
            "prompt": trigger.prompt,
            "system_addon": trigger.system_addon,
            "timeout_secs": trigger.timeout_secs,
            "thread": "isolated" if thread_id is None else thread_id,
            "max_runs": args.max_runs,
            "owner": owner,
        }
        shown_note = _joined(reading.note, dst_note(schedule, preview))
        if shown_note:
            shown["note"] = shown_note
        return _Plan(schedule, trigger, thread_id, shown, reading.note)

    async def list_tasks(self, args: ListTasksArgs, config: RunnableConfig) -> str:
        owner = await self._owner(config)
        state: TaskState | None = args.state
        here = _thread_of(config) if args.scope == "this_conversation" else None
        tasks = await self.runtime.list_tasks(
            owner=owner, state=state, thread_id=here, limit=args.limit + 1, offset=args.offset
        )
        more = len(tasks) > args.limit
        tasks = TaskList(tasks[: args.limit])
        elsewhere = ""
        if here is not None:
            others = await self.runtime.store.count_tasks(
                owner=owner, states=[state] if state else _ALL_STATES, outside_thread=here
            )
            if others:
                elsewhere = (
                    f" {others} more task(s) of this user post elsewhere (other "
                    "conversations or isolated): call list_tasks with scope='all' to see them."
                )
        if not tasks:
            which = f" {args.state}" if args.state else ""
            where = " in this conversation" if here is not None else ""
            return (
                f"No{which} scheduled tasks{where}"
                + (" at this offset." if args.offset else ".")
                + elsewhere
            )
        blocks = [self._render(task, config) for task in tasks]
        header = (
            f"{len(tasks)} task(s)"
            + (" of this conversation" if here else "")
            + (f" (more: call list_tasks with offset={args.offset + args.limit})" if more else "")
        )
        return header + ":" + elsewhere + "\n\n" + "\n\n".join(blocks)

    async def update_task(
        self, args: _UpdateTaskCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "change tasks")
        owner = await self._owner(config)
        guarded = ("schedule", "timezone", "prompt", "system_addon")
        if self.limits.require_approval and any(getattr(args, f) is not None for f in guarded):
            ticket = self._ticket(config, args, "update_task", owner)

            async def propose() -> Approval:
                task = await self.runtime.get_task(args.task_id, owner=owner)
                plan = self._plan_change(args, task, approval=True)
                return await self.runtime.tasks.propose_update(
                    task.id,
                    ticket,
                    preview=plan.preview,
                    name=args.name,
                    schedule=plan.schedule,
                    trigger_changes=plan.trigger_changes,
                    max_runs=args.max_runs,
                )

            approval = await self._approval(ticket, propose)
            if approval.status == "rejected":
                return _rejected(f"Task {approval.task_id} was not changed", approval.reason)
            answer = self._updated(config, approval.preview.get("note"))
            updated = await self.runtime.tasks.apply(
                approval,
                max_active=self.limits.max_active_tasks_per_owner,
                answer=_keeping(answering, answer),
            )
        else:
            task = await self.runtime.get_task(args.task_id, owner=owner)
            plan = self._plan_change(args, task, approval=False)
            answer = self._updated(config, plan.note)
            updated = await self.runtime.tasks.update(
                task.id,
                owner=owner,
                name=args.name,
                schedule=plan.schedule,
                trigger_changes=plan.trigger_changes,
                max_runs=args.max_runs,
                max_active=self.limits.max_active_tasks_per_owner,
                answer=_keeping(answering, answer),
            )
        return answer(updated)

    def _updated(self, config: RunnableConfig, note: str | None) -> Callable[[Task], str]:
        """The answer of ``update_task`` for the task as changed."""

        def answer(task: Task) -> str:
            read = _note_line(note, task)
            return f"Updated task {task.name!r}.{read}\n{self._render(task, config)}"

        return answer

    def _plan_change(self, args: UpdateTaskArgs, task: Task, *, approval: bool) -> _Change:
        """Check a change's arguments against ``task`` and fix its values."""
        changes = args.model_dump(exclude_unset=True, exclude={"task_id", *_INJECTED})
        changes = {key: value for key, value in changes.items() if value is not None}
        if not changes:
            raise InvalidTask(
                "nothing to change: pass at least one of name, schedule, timezone, prompt, "
                "system_addon, timeout_secs, max_runs"
            )
        now = self.runtime.clock.now()
        schedule: Schedule | None = None
        kept = (task.schedule and task.schedule.tz) or self.runtime.timezone
        zone = _person_zone(args.timezone, kept)
        note = None
        if args.schedule is not None:
            tz = zone or kept
            reading = read_schedule(args.schedule, tz=tz, now=now)
            schedule, note = reading.schedule, reading.note
        elif zone is not None:
            schedule = _move_to_zone(task, zone)
        if schedule is not None:
            self._check_interval(schedule, now)
        spent = task.max_runs is not None and task.run_count >= task.max_runs
        if args.max_runs is not None and task.run_count >= args.max_runs and not spent:
            # Ends the task (a model asking for "one more run" may mean max_runs=1).
            note = _joined(
                note,
                f"it has run {task.run_count} time(s) already, which max_runs={args.max_runs} "
                "allows no more: it ends now and will not run again (a higher max_runs lets "
                "it run on)",
            )
        # Only the fields changed are written, onto the trigger as it is then: a change
        # made meanwhile to its other fields (while an approval waits) is kept.
        trigger_changes: dict[str, Any] = {}
        patched = [key for key in ("prompt", "system_addon", "timeout_secs") if key in changes]
        if patched:
            # A stored payload that cannot be read leaves nothing to change: the fields
            # given are the trigger (a prompt among them), which brings the task back.
            unreadable = payload_unreadable(task)
            if unreadable and "prompt" not in patched:
                raise InvalidPayload(
                    f"task {task.id!r} cannot take a new {' and '.join(patched)} alone: its "
                    f"stored prompt cannot be read ({task.problem}). Pass the prompt too (the "
                    "full message to receive when it fires) in the same update_task call, or "
                    "delete the task"
                )
            stored = {} if unreadable else task.trigger.to_payload()
            payload = stored | {key: changes[key] for key in patched}
            checked = self._trigger(payload, changed=changes.keys()).to_payload()
            trigger_changes = {key: checked.get(key) for key in patched}
        if not approval:
            return _Change(schedule, trigger_changes, {}, note)
        shown: dict[str, Any] = {
            "task_id": task.id,
            "name": args.name or task.name,
            "owner": task.owner,
        }
        if schedule is not None:
            zone = task.schedule.tz if task.schedule is not None else None
            schedule = self.runtime.tasks.as_stored(schedule, now=now, zone=zone)
            shown["schedule"] = schedule.describe()
            shown["timezone"] = schedule.tz
            preview = schedule.next_fire_times(_NEXT_RUNS, after=now)
            shown["next_runs"] = [_iso(t) for t in preview]
            shown_note = _joined(note, dst_note(schedule, preview))
        else:
            shown_note = note
        shown |= trigger_changes
        if args.max_runs is not None:
            shown["max_runs"] = args.max_runs
        if shown_note:
            shown["note"] = shown_note
        return _Change(schedule, trigger_changes, shown, note)

    async def pause_task(
        self, args: _TaskIdCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "pause tasks")
        owner = await self._owner(config)
        before = await self.runtime.get_task(args.task_id, owner=owner)
        if before.state != "active":
            lead = f"Task {before.name!r} was not active ({before.state}); nothing changed."
            return f"{lead}\n{self._render(before, config)}"

        def answer(task: Task) -> str:
            lead = f"Paused task {task.name!r}; it will not run until resumed."
            return f"{lead}\n{self._render(task, config)}"

        task = await self.runtime.tasks.pause(
            args.task_id, owner=owner, answer=_keeping(answering, answer)
        )
        return answer(task)

    async def resume_task(
        self, args: _TaskIdCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "resume tasks")
        owner = await self._owner(config)
        before = await self.runtime.get_task(args.task_id, owner=owner)
        if before.state == "active":
            lead = f"Task {before.name!r} is already active; nothing changed."
            return f"{lead}\n{self._render(before, config)}"

        def answer(task: Task) -> str:
            lead = f"Resumed task {task.name!r}. Confirm the next run and timezone to the user."
            return f"{lead}\n{self._render(task, config)}"

        task = await self.runtime.tasks.resume(
            args.task_id,
            owner=owner,
            max_active=self.limits.max_active_tasks_per_owner,
            answer=_keeping(answering, answer),
        )
        return answer(task)

    async def delete_task(
        self, args: _TaskIdCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "delete tasks")
        owner = await self._owner(config)

        def answer(deleted: Deletion) -> str:
            task = deleted.task
            lead = (
                f"Deleted task {task.name!r} (id {task.id}, {task.describe_schedule()}) and "
                "its history."
            )
            if not deleted.running:
                return f"{lead} It will not run again."
            # A delete stops no turn under way: say so, or the reply it posts would
            # contradict this answer.
            return (
                f"{lead} A turn of it is running right now: that turn still finishes and "
                "posts its reply (no record of it is kept), but no later run happens."
            )

        deleted = await self.runtime.tasks.delete(
            args.task_id, owner=owner, answer=_keeping(answering, answer)
        )
        return answer(deleted)

    async def run_task_now(
        self, args: _TaskIdCall, config: RunnableConfig, answering: _Answering | None
    ) -> str:
        self._check_may_manage(config, "run tasks")
        owner = await self._owner(config)
        # Never wait: the task may continue this very thread, whose lock our turn holds.
        task = await self.runtime.get_task(args.task_id, owner=owner)
        if is_scheduled_turn(config) and _firing_task(config) == task.id:
            raise NotAllowed(
                "a task cannot run itself from its own scheduled turn (that would repeat "
                "without end); answer its prompt instead"
            )

        def answer(record: TaskRunRecord) -> str:
            if record.outcome is not None:  # its claim found the payload unreadable
                return (
                    f"Task {task.name!r} was not run (run id {record.run_id}): "
                    f"{record.error}. It is quarantined now: give it a new prompt with "
                    "update_task, or delete it."
                )
            where = (
                "it runs in this conversation right after your current answer"
                if record.thread_id is not None and record.thread_id == _thread_of(config)
                else f"it runs in thread {record.thread_id}"
            )
            return (
                f"Started task {task.name!r} now (run id {record.run_id}); {where}. "
                "Use task_history to see its outcome."
            )

        limits = self.limits
        record = await self.runtime.run_now(
            task.id,
            owner=owner,
            wait=False,
            max_per_task=limits.max_manual_runs_per_task,
            max_per_owner=limits.max_manual_runs_per_owner,
            per_secs=limits.manual_run_window_secs,
            answer=_keeping(answering, answer),
        )
        return answer(record)

    async def task_history(self, args: TaskHistoryArgs, config: RunnableConfig) -> str:
        owner = await self._owner(config)
        task = await self.runtime.get_task(args.task_id, owner=owner)
        records = await self.runtime.history(task.id, owner=owner, limit=args.limit)
        if not records:
            return f"Task {task.name!r} (id {task.id}) has not run yet."
        zone = task.zone
        lines = [f"Last {len(records)} run(s) of task {task.name!r} (id {task.id}), newest first:"]
        lines.extend(_render_run(record, zone) for record in records)
        return "\n".join(lines)

    # -- guardrails ------------------------------------------------------------------

    def _check_may_manage(self, config: RunnableConfig, action: str) -> None:
        if is_scheduled_turn(config) and not self.limits.allow_scheduled_turns_to_manage_tasks:
            raise NotAllowed(
                f"a task-triggered turn cannot {action} (this stops tasks from scheduling "
                "more work by themselves); answer the task's prompt instead, and tell the "
                "user what they could ask you to change"
            )

    async def _owner(self, config: RunnableConfig) -> str:
        """The owner of the tasks this call may see: ``configurable.user_id`` (which the
        runtime sets to the task's owner on scheduled turns), else the thread id. Never
        tool arguments or run metadata, which a client can set."""
        configurable = config.get("configurable") or {}
        user = configurable.get("user_id")
        if user is not None and str(user).strip():  # a blank one names no user: as none
            return str(user)
        thread = _thread_of(config)
        if thread is None:
            raise NotAllowed(
                "cannot tell whose tasks these are: the run config has neither "
                "configurable.user_id nor configurable.thread_id"
            )
        return thread

    def _check_interval(self, schedule: Cron | Interval | Once, now: datetime) -> None:
        minimum = self.limits.min_interval_secs
        gap = _shortest_gap(schedule, now)
        if gap is not None and gap < minimum:
            raise InvalidSchedule(
                f"{schedule.describe()} runs every {_duration(gap)} at its most frequent; "
                f"recurring tasks may run at most every {_duration(minimum)}: choose a "
                "longer interval"
            )

    def _trigger(
        self, payload: Mapping[str, Any], *, changed: Collection[str] = ("prompt", "system_addon")
    ) -> ConversationTrigger:
        """The trigger to store; the size limit applies to the ``changed`` fields only."""
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidPayload(
                "the prompt is empty: write the message you want to receive when the task "
                "fires, e.g. 'Remind me to water the plants.'"
            )
        limit = self.limits.max_prompt_chars
        for field in ("prompt", "system_addon"):
            value = payload.get(field) if field in changed else None
            if isinstance(value, str) and len(value.strip()) > limit:
                raise InvalidPayload(
                    f"the {field} is {len(value.strip())} characters; the limit is {limit}: "
                    "shorten it"
                )
        clean = {key: value for key, value in payload.items() if value is not None}
        return ConversationTrigger.from_task_payload(clean)

    # -- approval ----------------------------------------------------------------------

    def _ticket(self, config: RunnableConfig, call: _Call, action: str, owner: str) -> ToolCall:
        """Where an approval is kept: the owner, the LangGraph step and the tool call."""
        if is_scheduled_turn(config):
            # Nobody is there to answer: an interrupt would hang the scheduled turn.
            raise NotAllowed(
                f"{action} needs a human's approval, which a task-triggered turn cannot ask "
                "for; tell the user what you would change so they can ask for it"
            )
        if call.tool_call_id is None or (not call.tool_call_id and _namespace(config) is None):
            raise NotAllowed(
                f"{action} needs a human's approval, which is kept under the tool call's id: "
                "run this tool from a graph (ToolNode, create_agent) or invoke it with a "
                "full tool call {'name', 'args', 'id', 'type': 'tool_call'}"
            )
        beside = _beside_in_task(call, config)
        if beside is None:
            # Asking blind could put the approval beside another tool's interrupt (below).
            raise NotAllowed(
                f"{action} needs a human's approval, which cannot be asked here: the graph "
                "state holds no model message with this call (a ToolNode ran it before its "
                "message was stored), so the tools cannot tell which calls share its step. "
                "Nothing was changed: tell the user this change needs an approval that this "
                "graph cannot ask for"
            )
        if beside:
            # LangGraph hands a task's resume values to its interrupts by position, and
            # this call stops asking once decided, so the other tool's later answers
            # would shift onto it (and ours onto that tool): ask only where no other
            # tool's interrupt can share the task.
            raise NotAllowed(
                f"{action} needs a human's approval, which cannot be asked in the same step "
                f"as {', '.join(repr(name) for name in beside)}: this graph runs all the "
                "calls of a message in one LangGraph task, where answers reach the questions "
                f"by position. Nothing was changed: call {action} again in a message of its "
                "own, without other tools"
            )
        return _ticket_of(owner, config, call, call.tool_call_id, _request_of(action, call))

    async def _approval(
        self, ticket: ToolCall, propose: Callable[[], Awaitable[Approval]]
    ) -> Approval:
        """The call's stored proposal (made by ``propose`` on its first run), decided."""
        service = self.runtime.tasks
        approval = await service.find_approval(ticket)
        if approval is None:
            if await service.asked_of_another(ticket):
                # The answer waiting in this resume was given to that other user's
                # question: taken here, it would approve a proposal nobody was shown.
                raise NotAllowed(
                    "this call's approval was asked of another user, and this turn runs "
                    f"as {ticket.owner!r}: nothing was changed. Only the user it was "
                    "shown to can answer it; ask again to propose it as this user"
                )
            approval = await propose()
        return await self._decision(approval)

    async def _decision(self, approval: Approval) -> Approval:
        """Wait for a human's answer to ``approval`` (through ``interrupt()``) and return
        it decided.

        LangGraph hands resume values to a task's ``interrupt()`` calls by position, and
        tool calls of one model message that share a task (``ToolNode``) reach theirs in
        no fixed order. So an answer counts for this call only when it names it
        (``tool_call_id``) or when no other approval of the step could be meant; answers
        are recorded under the calls they name, where every re-run finds them.
        """
        service = self.runtime.tasks
        # One call of a step at a time reads the answers and records them, so no call
        # asks again for an answer a sibling has just recorded.
        async with self._step_lock(approval.step):
            approval = await service.reread(approval)
            problem: str | None = None
            while approval.status == "pending":
                step = await service.step_approvals(approval)
                others = [a for a in step if a.id != approval.id]
                waiting = [a for a in others if a.status == "pending"]
                answer = _Answer.of(interrupt(_approval_request(approval, waiting, problem)))
                if answer.unreadable is not None:
                    problem = f"the last answer was not used: {answer.unreadable}"
                    continue
                verdicts = dict(answer.addressed)
                if answer.bare is not None:
                    if others:
                        problem = (
                            f"an answer without a tool_call_id cannot tell the {len(step)} "
                            "approvals of this step apart, so it was not used: answer "
                            f"{{'tool_call_id': {approval.tool_call_id!r}, 'approved': True}} "
                            "(or False)"
                        )
                        continue
                    verdicts[approval.tool_call_id] = answer.bare
                for target in step:
                    verdict = verdicts.get(target.tool_call_id)
                    if verdict is not None:
                        await service.decide(target, approved=verdict[0], reason=verdict[1])
                if approval.tool_call_id not in verdicts:
                    problem = (
                        f"the last answer named {sorted(verdicts) or 'no tool call'}, not "
                        f"{approval.tool_call_id!r}"
                    )
                approval = await service.reread(approval)
        return approval

    def _step_lock(self, step: str) -> asyncio.Lock:
        lock = self._step_locks.get(step)
        if lock is None:
            lock = self._step_locks[step] = asyncio.Lock()
        return lock

    # -- rendering -------------------------------------------------------------------

    def _render(self, task: Task, config: RunnableConfig) -> str:
        zone = task.zone
        times = task.upcoming_runs(_NEXT_RUNS)
        next_runs = ", ".join(_with_weekday(t.astimezone(zone)) for t in times)
        if task.thread_id is None:
            thread = "isolated (each run in a fresh conversation)"
        elif task.thread_id == _thread_of(config):
            thread = "this conversation"
        else:
            thread = f"conversation {task.thread_id}"
        try:
            prompt = _short(task.trigger.prompt)
        except InvalidPayload:
            prompt = "(unreadable payload)"
        runs = f"{task.run_count}" + (f" of max {task.max_runs}" if task.max_runs else "")
        last: str = task.last_outcome or "not run yet"
        if task.last_run_at is not None and task.last_outcome is not None:
            last += f" ({_with_weekday(task.last_run_at.astimezone(zone))})"
        lines = [
            f"id: {task.id}",
            f"name: {task.name}",
            f"schedule: {task.describe_schedule()}",
            f"timezone: {task.schedule.tz if task.schedule else 'unknown'}",
            f"next runs: {next_runs or 'none'}",
            f"state: {task.state}",
            f"thread: {thread}",
            f"prompt: {prompt}",
            f"runs so far: {runs}",
            f"last outcome: {last}",
        ]
        if task.problem is not None:
            lines.append(
                f"problem: its stored row cannot be read ({task.problem}); {task.problem_advice()}"
            )
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------


def _check_own_id(call: _Call) -> None:
    """Refuse a call that changes tasks when another call of its model message carries
    the same id (some providers repeat ids).

    Everything a change leaves is keyed by its call's id: its approval (which a re-run
    after a resume must find again), the human's answer naming it, the tool message
    answering it. Calls sharing an id cannot be told apart there (LangGraph hands a tool
    the id, never the call's place in the message), so none of them is run, on every
    run alike: nothing of them is proposed, stored or confirmed.

    Raises:
        NotAllowed: the id is shared; the message names the calls and the fix.
    """
    names = _sharing(call.tool_call_id, call.message)
    if len(names) > 1:
        raise NotAllowed(
            f"{len(names)} calls of this message share the tool call id "
            f"{call.tool_call_id!r} ({', '.join(names)}), and a change is made only for a "
            "call whose id is its own, so none of these changes was made. Make them again, "
            "one tool call per message."
        )


def _sharing(call_id: str | None, message: AIMessage | None) -> list[str]:
    """The names of the calls carrying ``call_id`` in its model ``message``."""
    if message is None:
        return []
    return [c["name"] for c in message.tool_calls if c.get("id") == call_id]


_SEND_TRIGGER = "__pregel_push"
"""LangGraph's trigger of a task started by ``Send``, which runs the one tool call sent
(``create_agent`` sends each call of a message as a task of its own)."""


def _beside_in_task(call: _Call, config: RunnableConfig) -> list[str] | None:
    """The names of the calls of ``call``'s model message to tools not of the scheduler
    that run in its LangGraph task (a ``ToolNode`` reached by an edge runs every call of
    the message in one task; one reached by ``Send`` runs the call sent).

    None when a ``ToolNode`` ran the call but no list of its state holds the message (it
    was handed bare tool calls): the calls beside it cannot be known. A tool invoked by
    the application's own code, not by a ``ToolNode``, runs what that code runs: [].
    """
    triggers = (config.get("metadata") or {}).get("langgraph_triggers") or ()
    if _SEND_TRIGGER in triggers:
        return []
    message = call.message
    if message is None:
        return None if call.graph_state is not None else []
    return sorted({c["name"] for c in message.tool_calls if c["name"] not in TOOL_NAMES})


def _message_of(call_id: str | None, messages: Any) -> AIMessage | None:
    """The model message of the call ``call_id``: the newest one carrying that id (an id
    may come back in later messages: only its own message counts)."""
    if call_id is None or not isinstance(messages, Sequence) or isinstance(messages, str):
        return None
    for message in reversed(messages):
        if isinstance(message, AIMessage) and any(
            c.get("id") == call_id for c in message.tool_calls
        ):
            return message
    return None


@dataclass(frozen=True)
class _Plan:
    """A new task's checked values, and what a human approving it is shown."""

    schedule: Schedule
    trigger: ConversationTrigger
    thread_id: str | None
    preview: dict[str, Any]
    note: str | None = None
    """How vague words were read ("tomorrow morning" is 09:00), for the answer."""


@dataclass(frozen=True)
class _Change:
    """A change's checked values, and what a human approving it is shown."""

    schedule: Schedule | None
    trigger_changes: dict[str, Any]
    """The trigger's fields changed, as they are to be stored."""
    preview: dict[str, Any]
    note: str | None = None


def _ticket_of(
    owner: str, config: RunnableConfig, call: _Call, call_id: str, request: str
) -> ToolCall:
    """The identity of ``call`` in its step (:func:`_step_of`), asked for at its site
    (:func:`_site_of`), for the digest ``request`` of its tool and arguments
    (:func:`_request_of`)."""
    step = _step_of(config)
    return ToolCall(owner, step, call_id, request, _site_of(call, step, config))


@dataclass(frozen=True)
class _Answering:
    """Makes the answers a call that changes tasks keeps (see :meth:`_ToolService.once`)."""

    service: TaskService
    ticket: ToolCall
    tool: str

    def of(self, text: str, *, error: bool = False) -> CallAnswer:
        return self.service.answer(self.ticket, tool=self.tool, text=text, error=error)


_V = TypeVar("_V")


def _keeping(answering: _Answering | None, answer: Callable[[_V], str]) -> Answering[_V] | None:
    """The answer a write keeps in its transaction: ``answer`` of what it wrote (None
    when the call keeps no answer)."""
    if answering is None:
        return None
    return lambda value: answering.of(answer(value))


def _request_of(tool: str, call: _Call) -> str:
    """The digest of what a call asks for: its tool and the arguments the model gave (the
    same on every re-run of the call)."""
    return request_key(tool, call.model_dump(mode="json", exclude=set(_INJECTED)))


def _step_of(config: RunnableConfig) -> str:
    """The LangGraph step a tool runs in: its thread and checkpoint namespace (which names
    the node's task)."""
    return f"{_thread_of(config) or ''}|{_namespace(config) or ''}"


def _site_of(call: _Call, step: str, config: RunnableConfig) -> str:
    """Where a call was asked for, the same on every run of it: its thread and the id of
    its model message, else (a state that does not hold the message) its step.

    Not the step alone: a namespace names the node's task through the checkpoint it ran
    from, and a process that dies before LangGraph wrote the step's checkpoint
    (``durability="async"``, its default) runs the call again from a new checkpoint,
    under another namespace; the model message is kept as a pending write, with its id
    (a chat model sets one; ``add_messages`` gives one to a message without)."""
    found = call.conversation
    if found is not None and found[1].id and _only_one(found[1].id, found[0]):
        return f"{_thread_of(config) or ''}|message:{found[1].id}"
    return step


def _only_one(message_id: str, messages: Sequence[Any]) -> bool:
    """Whether one message alone carries ``message_id`` (a graph whose messages channel
    appends, instead of ``add_messages``, may hold several under one id)."""
    return sum(1 for m in messages if getattr(m, "id", None) == message_id) == 1


def _namespace(config: RunnableConfig) -> str | None:
    """The checkpoint namespace of the LangGraph task running the tool (None outside a
    LangGraph step, where nothing re-runs a call)."""
    configurable = config.get("configurable") or {}
    metadata = config.get("metadata") or {}
    namespace = configurable.get("checkpoint_ns") or metadata.get("langgraph_checkpoint_ns")
    return str(namespace) if namespace else None


def _refusal(exc: SchedulerError) -> str:
    """The tool message of a refused call."""
    return f"Error: {exc}"


_Verdict = tuple[bool, str | None]


@dataclass(frozen=True)
class _Answer:
    """A resume value: a bare answer for whichever call receives it, and answers naming
    their tool calls."""

    bare: _Verdict | None
    addressed: dict[str, _Verdict]
    unreadable: str | None = None
    """Why the answer is not used (it would edit the task, or says neither yes nor no)."""

    @classmethod
    def of(cls, value: Any) -> _Answer:
        try:
            if isinstance(value, Mapping):
                if "tool_call_id" in value:
                    return cls(None, {str(value["tool_call_id"]): _verdict(value)})
                if not (_VERDICT_KEYS & value.keys()) and value:
                    return cls(
                        None, {str(key): _addressed(key, item) for key, item in value.items()}
                    )
            return cls(_verdict(value), {})
        except _Unreadable as exc:
            return cls(None, {}, str(exc))


_VERDICT_KEYS = frozenset({"approved", "reason", "message"})


def _addressed(key: Any, item: Any) -> _Verdict:
    """The verdict the several-calls form gives the call ``key``.

    Raises:
        _Unreadable: the verdict names another call in its own ``tool_call_id`` (which
            of the two the human meant cannot be told, so neither is decided).
    """
    if (
        isinstance(item, Mapping)
        and "tool_call_id" in item
        and str(item["tool_call_id"]) != str(key)
    ):
        raise _Unreadable(
            f"the answer for {_short(repr(str(key)))} names tool call "
            f"{_short(repr(str(item['tool_call_id'])))} inside it, so which call it decides "
            "cannot be told: key each verdict by its own call's id"
        )
    return _verdict(item)


class _Unreadable(ValueError):
    """An answer that is neither a yes nor a no to the request as shown."""


def _verdict(value: Any) -> _Verdict:
    """Approved or not, and the reason given: only an explicit yes approves.

    Text other than a yes or a no word ("make it 10am instead") rejects, with the text
    as the human's reason, so the model learns what to change.

    Raises:
        _Unreadable: a mapping with keys an answer does not take (changed fields: an
            approval stores what was shown or nothing, so an edit would be dropped
            unseen), or whose ``approved`` is not a boolean.
    """
    if value is True:
        return True, None
    if isinstance(value, str):
        word = value.strip().lower().rstrip(".!").rstrip()  # "Yes." is a yes
        if word in _YES_WORDS:
            return True, None
        if not word or word in _NO_WORDS:
            return False, None
        return False, _reason_of(value.strip())
    if isinstance(value, Mapping):
        extra = sorted(str(key) for key in value.keys() - _VERDICT_KEYS - {"tool_call_id"})
        if extra:
            raise _Unreadable(
                f"the answer has {_short(', '.join(map(repr, extra)))}, which an approval "
                "does not take: it approves or rejects the task exactly as shown and cannot "
                "change it; to change it, reject with a reason saying what to change"
            )
        approved = value.get("approved", False)
        if not isinstance(approved, bool):
            raise _Unreadable(f"'approved' must be true or false, got {_short(repr(approved))}")
        reason = value.get("reason") or value.get("message")
        return approved, _reason_of(reason) if reason else None
    return False, None


_YES_WORDS = frozenset({"approve", "approved", "yes"})
_NO_WORDS = frozenset({"no", "reject", "rejected", "deny", "denied", "decline", "declined"})

_MAX_REASON_CHARS = 1_000


def _reason_of(reason: Any) -> str:
    """A human's reason as it is stored and shown to the model: text every database
    stores (:func:`~.models.storable_text`), cut to ``_MAX_REASON_CHARS``."""
    text = storable_text(str(reason))
    if len(text) > _MAX_REASON_CHARS:
        return text[: _MAX_REASON_CHARS - 1] + "…"
    return text


def _approval_request(
    approval: Approval, waiting: list[Approval], problem: str | None
) -> dict[str, Any]:
    """The ``interrupt()`` payload: what this call will store, and who else waits."""
    action = "schedule_task" if approval.action == "create" else "update_task"
    request: dict[str, Any] = {
        "type": APPROVAL_KIND,
        "action": action,
        "tool_call_id": approval.tool_call_id,
        "task": approval.preview,
        "question": "Approve this scheduled task?"
        if approval.action == "create"
        else f"Approve this change of task {approval.task_id}?",
        "how_to_answer": _HOW_TO_ANSWER,
    }
    if waiting:
        request["waiting"] = [
            {
                "tool_call_id": other.tool_call_id,
                "action": "schedule_task" if other.action == "create" else "update_task",
                "task": other.preview,
            }
            for other in waiting
        ]
    if problem:
        request["problem"] = problem
    return request


_ALL_STATES = ("active", "paused", "completed", "quarantined")


def _person_zone(tz: str | None, default: str) -> str | None:
    """The zone a model named for a person's schedule, refused when it would mislead
    (a fixed offset such as ``EST`` has no daylight saving time; ``PST`` is no zone).
    ``default`` is the zone used without one, named if the model gave an empty one."""
    if tz is None:
        return None
    notice = zone_notice(tz, default=default)
    if notice is not None:
        raise InvalidSchedule(notice)
    return tz


def _joined(note: str | None, more: str | None) -> str | None:
    """Two notes as one (``more`` once: an approval's note may hold it already)."""
    if not more or (note and more in note):
        return note
    return f"{note}; {more}" if note else more


def _note_line(note: str | None, task: Task) -> str:
    """The answer's note line: how the words were read, and how a daylight-saving change
    moves or doubles one of the runs shown (:func:`~.phrases.dst_note`), if any."""
    if task.schedule is not None:
        note = _joined(note, dst_note(task.schedule, task.upcoming_runs(_NEXT_RUNS)))
    return f"\nnote: {note}; tell the user." if note else ""


def _firing_task(config: RunnableConfig) -> str | None:
    """The task whose scheduled turn this is (None on user turns)."""
    task_id = ((config or {}).get("metadata") or {}).get("task_id")
    return str(task_id) if task_id else None


def _rejected(lead: str, reason: str | None) -> str:
    why = f" Reason: {reason}" if reason else ""
    return (
        f"{lead}: a human rejected it, nothing was stored.{why} Tell the user, and ask "
        "what to change if it is unclear."
    )


def _move_to_zone(task: Task, tz: str) -> Cron | Interval | Once:
    schedule = task.schedule
    if isinstance(schedule, Cron):
        # The same wall-clock times there, bounds too: they are stored as instants, and
        # kept as such a stride's first day could fall before its start there (and be
        # skipped), and "through Monday" could end on Tuesday, or Monday afternoon.
        moved = schedule.with_tz(tz)  # keeps its day or week stride
        old, new = schedule.zone, moved.zone
        bounds = {
            key: value.astimezone(old).replace(tzinfo=new)
            for key, value in (("start", schedule.start), ("end", schedule.end))
            if value is not None and value.tzinfo is not None
        }
        return Cron(**{**moved.model_dump(), **bounds}) if bounds else moved
    raise InvalidSchedule(
        f"task {task.id!r} runs {task.describe_schedule()}; to move it to {tz}, pass the "
        "schedule again together with the timezone"
    )


def _shortest_gap(schedule: Cron | Interval | Once, now: datetime) -> float | None:
    """Shortest time between consecutive runs (None for a one-off).

    A cron line is measured on its own clock, as if in UTC: a daylight-saving change brings
    two of its runs together once (a fixed time in the gap runs when the clock jumps, a
    wildcard line runs in both passes of a repeated hour), which is not how often it runs,
    and would make the answer depend on whether a change is among the samples.
    """
    if isinstance(schedule, Interval):
        return float(schedule.seconds)
    if isinstance(schedule, Cron):
        steady = Cron(**{**schedule.model_dump(), "tz": "UTC", "end": None})
        times = [
            t.astimezone(timezone.utc) for t in steady.next_fire_times(_GAP_SAMPLES, after=now)
        ]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        return min(gaps) if gaps else None
    return None


def _render_run(record: TaskRunRecord, zone: Any) -> str:
    outcome = record.outcome or "running"
    due = _with_weekday(record.scheduled_for.astimezone(zone))
    line = f"- run {record.run_id}: {outcome}, {record.trigger}, due {due}"
    if record.attempt > 1:
        line += f", attempt {record.attempt}"
    detail = record.error if record.outcome not in (None, "success") else record.summary
    if detail:
        line += f": {_short(detail)}"
    return line


def _thread_of(config: RunnableConfig) -> str | None:
    thread = (config.get("configurable") or {}).get("thread_id")
    # A blank one names no thread a task can continue (see _check_thread_id).
    return str(thread) if thread is not None and str(thread).strip() else None


def _with_weekday(value: datetime) -> str:
    return f"{_iso(value)} ({value:%A})"


def _iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


def _duration(secs: float) -> str:
    secs = int(secs)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size and secs % size == 0:
            count = secs // size
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return f"{secs} second" + ("s" if secs != 1 else "")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"
