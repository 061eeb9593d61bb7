"""Graph state for coordinators that take scheduled turns."""

from __future__ import annotations

from langgraph.graph import MessagesState
from typing_extensions import NotRequired

from .models import TaskSource

__all__ = ["SchedulerState"]


class SchedulerState(MessagesState):
    """``MessagesState`` plus the attribution of a task-triggered turn.

    Mix it into your own state (``class MyState(SchedulerState): ...``) so scheduled
    turns can see which task started them. ``task_source`` is None on user turns.
    """

    task_source: NotRequired[TaskSource | None]
