"""Exceptions raised by langgraph-scheduler.

The hierarchy::

    SchedulerError
    ├── InvalidPayload        (ValueError)  a task's ConversationTrigger payload is malformed
    ├── InvalidSchedule       (ValueError)  a cron line, interval, date or timezone is unusable
    ├── InvalidTask           (ValueError)  other bad task arguments (name, thread, limits)
    ├── TaskNotFound          (KeyError)    no task with that id (for this owner)
    ├── QuotaExceeded                       an owner already has the maximum of active tasks
    ├── NotAllowed            (PermissionError) the caller may not do this (e.g. a scheduled turn
    │                                        creating tasks)
    ├── NotRunning            (RuntimeError) the runtime is not started, or is stopping
    └── StoreError            (RuntimeError) the task/run store failed

Tools catch every ``SchedulerError`` and turn it into a message the model can act on;
Python callers catch the class they care about.
"""

from __future__ import annotations

__all__ = [
    "InvalidPayload",
    "InvalidSchedule",
    "InvalidTask",
    "NotAllowed",
    "NotRunning",
    "QuotaExceeded",
    "SchedulerError",
    "StoreError",
    "TaskNotFound",
]


class SchedulerError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidPayload(SchedulerError, ValueError):
    """A task payload is not a valid ``ConversationTrigger``."""


class InvalidSchedule(SchedulerError, ValueError):
    """A schedule (cron line, interval, date, timezone, bounds) cannot be used."""


class InvalidTask(SchedulerError, ValueError):
    """A task argument other than the schedule or payload is invalid."""


class TaskNotFound(SchedulerError, KeyError):
    """No task with this id exists, or it belongs to another owner."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return f"no task with id {self.task_id!r}; list tasks to see the valid ids"


class QuotaExceeded(SchedulerError):
    """The owner already has the maximum number of active tasks."""


class NotAllowed(SchedulerError, PermissionError):
    """The caller is not allowed to perform this operation."""


class NotRunning(SchedulerError, RuntimeError):
    """The runtime is not started, or is shutting down."""


class StoreError(SchedulerError, RuntimeError):
    """The task or run store could not complete an operation."""
