"""Opt-in helpers for hand-built ``StateGraph`` coordinators.

Add :func:`trigger_node` as the first node of a graph whose state mixes in
:class:`~langgraph_scheduler.state.SchedulerState`, bound to the runtime that checks
attributions, and build the model's system message with
:func:`scheduler_system_message` on every model call, bound to it too (a client that
can write the graph's state, as a LangGraph server lets it, passes no trigger node):

Example:
    >>> builder = StateGraph(SchedulerState)
    >>> builder.add_node("trigger", lambda state: trigger_node(state, verify=rt.verify_task_source))
    >>> builder.add_node("agent", call_model)  # scheduler_system_message(state, verify=...)
    >>> builder.add_edge(START, "trigger")
    >>> builder.add_edge("trigger", "agent")
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config

from ._attribution import SOURCE_KEY, SourceCheck, carried_by, check_messages_key, triggers_run
from .models import TaskSource
from .prompts import render_system_prompt, render_task_turn_prompt
from .state import SchedulerState

__all__ = [
    "SourceCheck",
    "scheduler_system_message",
    "scheduler_system_prompt",
    "signed_task_source",
    "task_source_of",
    "trigger_node",
]

# Its own name: it logs inside the graph's run (with that run's context, on a server),
# not in the runtime's background work.
logger = logging.getLogger("langgraph_scheduler.nodes")


def task_source_of(
    messages: Sequence[BaseMessage],
    *,
    verify: SourceCheck | None = None,
    thread_id: str | None = None,
) -> TaskSource | None:
    """The attribution carried by the latest human message, or None for a user turn.

    Args:
        messages: the conversation.
        verify: checks that the runtime made the attribution (``rt.verify_task_source``);
            one it did not make (a client wrote it) is logged and ignored: a user turn,
            as is a copy of one an earlier message of the thread carries, or one on a
            message of another text (a signed source marks the one message the runtime
            sent it with). Without it the
            message is trusted as it is: any client that can send the graph a message
            can then mark its turn as a task's and choose its ``system_addon``.
        thread_id: the turn's thread, for ``verify`` (default: that of the run).
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, HumanMessage):
            source = _trusted(
                message.additional_kwargs.get("task_source"),
                verify,
                thread_id,
                found="the latest human message carries",
                then="(a client wrote it, or a version that did not sign); the turn runs as "
                "a user turn",
            )
            if source is None or verify is None:
                return source
            if not carried_by(source, message.content):
                copied = "a message of another text"
            elif _sent_before(source, messages, index):
                copied = "an earlier message"
            else:
                return source
            logger.warning(
                "thread %s: the latest human message carries a copy of the task_source of "
                "%s (run %s); the turn runs as a user turn",
                thread_id if thread_id is not None else _run_thread_id(),
                copied,
                source.get("run_id"),
            )
            return None
    return None


def _sent_before(source: TaskSource, messages: Sequence[BaseMessage], index: int) -> bool:
    """Whether a human message before ``messages[index]`` carries the run of ``source``."""
    run_id = source.get("run_id")
    return any(
        isinstance(message, HumanMessage) and triggers_run(message.additional_kwargs, run_id)
        for message in messages[:index]
    )


def trigger_node(
    state: SchedulerState | object,
    *,
    verify: SourceCheck | None = None,
    messages_key: str = "messages",
) -> dict[str, Any]:
    """Mark the turn: keep ``task_source`` on a task-triggered turn, clear it otherwise.

    A turn is task-triggered when its latest human message carries
    ``additional_kwargs["task_source"]`` (the runtime puts it there, signed). Clearing it
    on user turns matters: the state keeps the last value, and a user's reply after a
    scheduled turn must not look task-triggered.

    Args:
        state: the graph state: a mapping, or a pydantic model or dataclass (which
            LangGraph passes to nodes as it is); the update returned suits all of them.
        verify: ``rt.verify_task_source``: only attributions the runtime signed count
            (see :func:`task_source_of`). Without it, a client can mark its own message
            as a scheduled turn and put text into the system prompt; bind it
            (``lambda state: trigger_node(state, verify=rt.verify_task_source)``)
            wherever clients other than the runtime send messages.
        messages_key: the state key of the conversation (the runtime's
            ``messages_key``).

    Raises:
        InvalidTask: ``messages_key`` names no key, or ``"task_source"`` (see
            ``SchedulerRuntime(messages_key=...)``).
    """
    check_messages_key(messages_key)
    messages = _state_value(state, messages_key)
    # A channel without a reducer keeps what a client wrote: one message as a dict, a
    # number. Only a list holds a trigger message.
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        messages = []
    source = task_source_of(cast(Sequence[BaseMessage], messages), verify=verify)
    if source is None:
        return {SOURCE_KEY: None}
    kept = _state_value(state, SOURCE_KEY)
    # A verified source is the message's own: a state value sent beside it is not signed.
    if verify is None and isinstance(kept, Mapping) and kept.get("run_id") == source.get("run_id"):
        return {SOURCE_KEY: dict(kept)}
    return {SOURCE_KEY: dict(source)}


def _state_value(state: object, key: str) -> Any:
    """The graph state's ``key`` (None when it has none): an item of a mapping state, an
    attribute of a pydantic model or dataclass state, which LangGraph passes to nodes as
    it is (a ``.get`` on it raised AttributeError)."""
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def signed_task_source(state: object, *, verify: SourceCheck | None = None) -> TaskSource | None:
    """The state's ``task_source`` for this model call: None on a user turn, and, with
    ``verify``, unless the runtime signed it for the run's thread.

    The trigger node checks the message a turn starts with, but a client can also write
    the state itself (``update_state``, or ``Command(update=...)`` on a resume, both open
    to clients of a LangGraph server) and skip that node; so the value is checked again
    where it is used. A forged one is logged (without its text) and ignored. ``state`` is
    a mapping, or a pydantic model or dataclass.
    """
    return _trusted(
        _state_value(state, SOURCE_KEY),
        verify,
        None,
        found="the graph state holds",
        then="(a client wrote it into the state); this model call gets no task note and no "
        "system_addon",
    )


def _trusted(
    source: Any, verify: SourceCheck | None, thread_id: str | None, *, found: str, then: str
) -> TaskSource | None:
    """``source`` as an attribution: None if it is none, or if ``verify`` says no runtime
    made it for ``thread_id`` (default: the run's thread), which is logged as "thread …:
    ``found`` a task_source that no runtime on this store signed ``then``", without the
    forged text (it is the client's, not ours to log)."""
    if not isinstance(source, Mapping):
        return None
    if verify is not None:
        thread = thread_id if thread_id is not None else _run_thread_id()
        if not verify(source, thread):
            logger.warning(
                "thread %s: %s a task_source that no runtime on this store signed %s",
                thread,
                found,
                then,
            )
            return None
    return cast(TaskSource, source)


def _run_thread_id() -> str | None:
    """The thread of the run this is called in (None outside a run, or without one)."""
    try:
        thread = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # called outside a graph run
        return None
    return None if thread is None else str(thread)


def scheduler_system_prompt(
    task_source: TaskSource | None,
    *,
    timezone: str = "UTC",
    now: datetime | None = None,
    base: str | None = None,
    section: str | None = None,
) -> str:
    """The system prompt text for one model call.

    Args:
        task_source: the turn's attribution (``state.get("task_source")``); adds the
            "this turn was started by your task" note and the task's ``system_addon``.
        timezone: the runtime's default zone (``runtime.timezone``).
        now: the current time (default: the clock).
        base: your own system prompt, placed first.
        section: replaces the shipped scheduler section (used as given).
    """
    parts = [base] if base else []
    parts.append(
        section if section is not None else render_system_prompt(timezone=timezone, now=now)
    )
    if task_source:
        parts.append(render_task_turn_prompt(task_source, timezone=timezone))
        addon = task_source.get("system_addon")
        if addon:
            parts.append(f"Instruction for this scheduled turn only:\n{addon}")
    return "\n\n".join(part.strip() for part in parts)


def scheduler_system_message(
    state: object,
    *,
    timezone: str = "UTC",
    now: datetime | None = None,
    base: str | None = None,
    section: str | None = None,
    verify: SourceCheck | None = None,
) -> SystemMessage:
    """The system message to put before ``state["messages"]`` for this model call.

    Build it on every call and never add it to the state: a task's ``system_addon``
    then applies to its own turn only.

    Args:
        state: the graph state (a mapping, or a pydantic model or dataclass).
        timezone: the runtime's default zone (``runtime.timezone``).
        now: the current time (default: the clock).
        base: your own system prompt, placed first.
        section: replaces the shipped scheduler section (used as given).
        verify: ``rt.verify_task_source``: the state's ``task_source`` counts only when
            the runtime signed it (see :func:`signed_task_source`). Without it, a client
            that can write the graph's state chooses the turn's ``system_addon``.

    Example:
        >>> async def call_model(state: SchedulerState) -> dict[str, Any]:
        ...     system = scheduler_system_message(
        ...         state, timezone=runtime.timezone, verify=runtime.verify_task_source
        ...     )
        ...     return {"messages": [await model.ainvoke([system, *state["messages"]])]}
    """
    return SystemMessage(
        content=scheduler_system_prompt(
            signed_task_source(state, verify=verify),
            timezone=timezone,
            now=now,
            base=base,
            section=section,
        )
    )
