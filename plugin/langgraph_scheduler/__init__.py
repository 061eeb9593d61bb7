"""langgraph-scheduler: let a LangGraph agent schedule its own future conversations.

``ConversationRequest``, ``ConversationResponse`` and ``TaskExecutorBridge`` keep the
names of the original plan for its readers; they are internals of the engine.
"""

from typing import TYPE_CHECKING, Any

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
from .models import Task, TaskEvent, TaskOptions, TaskRunRecord, TaskSource
from .nodes import scheduler_system_message, trigger_node
from .runtime import SchedulerRuntime
from .schedules import Cron, Interval, Once, Schedule, parse_schedule
from .state import SchedulerState
from .sync import SyncSchedulerRuntime
from .tools import SchedulerLimits, scheduler_tools
from .trigger import ConversationTrigger
from .views import RunHistory, TaskList, Transcript, load_transcript

if TYPE_CHECKING:
    from .middleware import SchedulerMiddleware

__version__ = "0.2.0.dev0"


def __getattr__(name: str) -> Any:
    # The middleware needs the optional "agents" extra (langchain): import it on demand.
    if name == "SchedulerMiddleware":
        from .middleware import SchedulerMiddleware

        return SchedulerMiddleware
    raise AttributeError(f"module 'langgraph_scheduler' has no attribute {name!r}")


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
