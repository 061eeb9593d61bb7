"""Opt-in helpers for hand-built ``StateGraph`` coordinators.

Add :func:`trigger_node` as the first node of a graph whose state mixes in
:class:`~langgraph_scheduler.state.SchedulerState`, and build the model's system message
with :func:`scheduler_system_message` on every model call:

Example:
    >>> builder = StateGraph(SchedulerState)
    >>> builder.add_node("trigger", trigger_node)
    >>> builder.add_node("agent", call_model)  # uses scheduler_system_message(state, ...)
    >>> builder.add_edge(START, "trigger")
    >>> builder.add_edge("trigger", "agent")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from .models import TaskSource
from .prompts import render_system_prompt, render_task_turn_prompt
from .state import SchedulerState

__all__ = [
    "scheduler_system_message",
    "scheduler_system_prompt",
    "task_source_of",
    "trigger_node",
]


def task_source_of(messages: Sequence[BaseMessage]) -> TaskSource | None:
    """The attribution carried by the latest human message, or None for a user turn."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            source = message.additional_kwargs.get("task_source")
            return cast(TaskSource, source) if isinstance(source, Mapping) else None
    return None


def trigger_node(state: SchedulerState) -> dict[str, Any]:
    """Mark the turn: keep ``task_source`` on a task-triggered turn, clear it otherwise.

    A turn is task-triggered when its latest human message carries
    ``additional_kwargs["task_source"]`` (the runtime puts it there). Clearing it on user
    turns matters: the state keeps the last value, and a user's reply after a scheduled
    turn must not look task-triggered.
    """
    source = task_source_of(state.get("messages") or [])
    if source is None:
        return {"task_source": None}
    kept = state.get("task_source")
    if isinstance(kept, Mapping) and kept.get("run_id") == source.get("run_id"):
        return {"task_source": dict(kept)}
    return {"task_source": dict(source)}


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
    state: Mapping[str, Any],
    *,
    timezone: str = "UTC",
    now: datetime | None = None,
    base: str | None = None,
    section: str | None = None,
) -> SystemMessage:
    """The system message to put before ``state["messages"]`` for this model call.

    Build it on every call and never add it to the state: a task's ``system_addon``
    then applies to its own turn only.

    Example:
        >>> async def call_model(state: SchedulerState) -> dict[str, Any]:
        ...     system = scheduler_system_message(state, timezone=runtime.timezone)
        ...     return {"messages": [await model.ainvoke([system, *state["messages"]])]}
    """
    source = state.get("task_source")
    return SystemMessage(
        content=scheduler_system_prompt(
            cast(TaskSource, source) if isinstance(source, Mapping) else None,
            timezone=timezone,
            now=now,
            base=base,
            section=section,
        )
    )
