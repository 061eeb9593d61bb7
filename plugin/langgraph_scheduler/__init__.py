"""langgraph-scheduler: let a LangGraph agent schedule its own future conversations."""

from typing import TYPE_CHECKING, Any

from .bridge import TaskExecutorBridge, fire_task
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
from .errors import (
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    NotAllowed,
    NotRunning,
    QuotaExceeded,
    SchedulerError,
    StoreError,
    TaskNotFound,
)
from .locks import ThreadBusy
from .models import RunOutcome, Task, TaskEvent, TaskOptions, TaskResult, TaskRunRecord
from .nodes import scheduler_system_message, trigger_node
from .prompts import render_system_prompt
from .runtime import SchedulerRuntime
from .schedules import ACCEPTED_FORMS, Cron, Interval, Once, Schedule, parse_schedule
from .state import SchedulerState
from .tools import SchedulerLimits, scheduler_tools
from .trigger import ConversationTrigger, conversation_trigger_schema
from .views import RunHistory, TaskList, Transcript, load_transcript

if TYPE_CHECKING:
    from .middleware import SchedulerMiddleware


def __getattr__(name: str) -> Any:
    # The middleware needs the optional "agents" extra (langchain): import it on demand.
    if name == "SchedulerMiddleware":
        from .middleware import SchedulerMiddleware

        return SchedulerMiddleware
    raise AttributeError(f"module 'langgraph_scheduler' has no attribute {name!r}")


__all__ = [
    "ACCEPTED_FORMS",
    "ConversationRequest",
    "ConversationResponse",
    "ConversationTrigger",
    "Cron",
    "Error",
    "Interrupted",
    "Interval",
    "InvalidPayload",
    "InvalidSchedule",
    "InvalidTask",
    "NotAllowed",
    "NotRunning",
    "Once",
    "QuotaExceeded",
    "RunHistory",
    "RunOutcome",
    "Schedule",
    "SchedulerError",
    "SchedulerLimits",
    "SchedulerMiddleware",
    "SchedulerRuntime",
    "SchedulerState",
    "Skipped",
    "StoreError",
    "Success",
    "Task",
    "TaskEvent",
    "TaskExecutorBridge",
    "TaskList",
    "TaskNotFound",
    "TaskOptions",
    "TaskResult",
    "TaskRunRecord",
    "TaskSource",
    "ThreadBusy",
    "Timeout",
    "Transcript",
    "conversation_trigger_schema",
    "fire_task",
    "load_transcript",
    "parse_schedule",
    "render_system_prompt",
    "scheduler_system_message",
    "scheduler_tools",
    "trigger_node",
]
