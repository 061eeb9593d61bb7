"""langgraph-scheduler: let a LangGraph agent schedule its own future conversations."""

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
from .models import RunOutcome, Task, TaskOptions, TaskResult, TaskRunRecord
from .runtime import SchedulerRuntime
from .schedules import Cron, Interval, Once, Schedule, parse_schedule
from .trigger import ConversationTrigger, conversation_trigger_schema

__all__ = [
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
    "RunOutcome",
    "Schedule",
    "SchedulerError",
    "SchedulerRuntime",
    "Skipped",
    "StoreError",
    "Success",
    "Task",
    "TaskExecutorBridge",
    "TaskNotFound",
    "TaskOptions",
    "TaskResult",
    "TaskRunRecord",
    "TaskSource",
    "Timeout",
    "conversation_trigger_schema",
    "fire_task",
    "parse_schedule",
]
