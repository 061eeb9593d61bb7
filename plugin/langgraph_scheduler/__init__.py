"""langgraph-scheduler: let a LangGraph agent schedule its own future conversations.

``ConversationRequest``, ``ConversationResponse`` and ``TaskExecutorBridge`` keep the
names of the original plan for its readers; they are internals of the engine.

Each name is imported on first use: LangChain, LangSmith and LangGraph take a second or
more to load, which ``import langgraph_scheduler`` need not wait for, nor the
``langgraph-scheduler`` command before its Ctrl-C handling is in place.
``SchedulerMiddleware`` needs the optional ``agents`` extra (langchain).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._bridge import TaskExecutorBridge
    from ._turns import ConversationRequest, ConversationResponse
    from .errors import (
        InvalidGraph,
        InvalidPayload,
        InvalidSchedule,
        InvalidTask,
        NotAllowed,
        NotRunning,
        QuotaExceeded,
        SchedulerError,
        StoreError,
        StoreUnavailable,
        TaskBusy,
        TaskConflict,
        TaskNotFound,
        ThreadBusy,
    )
    from .middleware import SchedulerMiddleware
    from .models import Task, TaskEvent, TaskOptions, TaskRunRecord, TaskSource
    from .nodes import scheduler_system_message, trigger_node
    from .runtime import SchedulerRuntime
    from .schedules import Cron, Interval, Once, Schedule, parse_schedule
    from .state import SchedulerState
    from .sync import SyncSchedulerRuntime
    from .tools import SchedulerLimits, scheduler_tools
    from .trigger import ConversationTrigger
    from .views import RunHistory, TaskList, Transcript, load_transcript

__version__ = "0.2.0.dev0"

_HOME = {
    "ConversationRequest": "._turns",
    "ConversationResponse": "._turns",
    "ConversationTrigger": ".trigger",
    "Cron": ".schedules",
    "Interval": ".schedules",
    "InvalidGraph": ".errors",
    "InvalidPayload": ".errors",
    "InvalidSchedule": ".errors",
    "InvalidTask": ".errors",
    "NotAllowed": ".errors",
    "NotRunning": ".errors",
    "Once": ".schedules",
    "QuotaExceeded": ".errors",
    "RunHistory": ".views",
    "Schedule": ".schedules",
    "SchedulerError": ".errors",
    "SchedulerLimits": ".tools",
    "SchedulerMiddleware": ".middleware",
    "SchedulerRuntime": ".runtime",
    "SchedulerState": ".state",
    "StoreError": ".errors",
    "StoreUnavailable": ".errors",
    "SyncSchedulerRuntime": ".sync",
    "Task": ".models",
    "TaskBusy": ".errors",
    "TaskConflict": ".errors",
    "TaskEvent": ".models",
    "TaskExecutorBridge": "._bridge",
    "TaskList": ".views",
    "TaskNotFound": ".errors",
    "TaskOptions": ".models",
    "TaskRunRecord": ".models",
    "TaskSource": ".models",
    "ThreadBusy": ".errors",
    "Transcript": ".views",
    "load_transcript": ".views",
    "parse_schedule": ".schedules",
    "scheduler_system_message": ".nodes",
    "scheduler_tools": ".tools",
    "trigger_node": ".nodes",
}
"""The module each public name is imported from, on first use (as above, for type
checkers)."""


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        # A public module not imported yet (``langgraph_scheduler.webhooks``), as it was
        # found when the package imported its names eagerly.
        if name.isidentifier() and not name.startswith("_"):
            try:
                return importlib.import_module(f".{name}", __name__)
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise  # the module exists, and an import inside it failed
        raise AttributeError(f"module 'langgraph_scheduler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups find it without this call
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ConversationRequest",
    "ConversationResponse",
    "ConversationTrigger",
    "Cron",
    "Interval",
    "InvalidGraph",
    "InvalidPayload",
    "InvalidSchedule",
    "InvalidTask",
    "NotAllowed",
    "NotRunning",
    "Once",
    "QuotaExceeded",
    "RunHistory",
    "Schedule",
    "SchedulerError",
    "SchedulerLimits",
    "SchedulerMiddleware",
    "SchedulerRuntime",
    "SchedulerState",
    "StoreError",
    "StoreUnavailable",
    "SyncSchedulerRuntime",
    "Task",
    "TaskBusy",
    "TaskConflict",
    "TaskEvent",
    "TaskExecutorBridge",
    "TaskList",
    "TaskNotFound",
    "TaskOptions",
    "TaskRunRecord",
    "TaskSource",
    "ThreadBusy",
    "Transcript",
    "load_transcript",
    "parse_schedule",
    "scheduler_system_message",
    "scheduler_tools",
    "trigger_node",
]
