"""Exceptions raised by langgraph-scheduler.

The hierarchy::

    SchedulerError
    ├── InvalidPayload        (ValueError)  a task's ConversationTrigger payload is malformed
    ├── InvalidSchedule       (ValueError)  a cron line, interval, date or timezone is unusable
    ├── InvalidTask           (ValueError)  other bad task arguments (name, thread, limits)
    │   ├── TaskConflict                     a create names a stored task's id with another
    │   │                                    definition
    │   └── InvalidGraph                     the runtime's graph cannot take scheduled turns
    ├── TaskNotFound          (KeyError)    no task with that id (for this owner)
    ├── QuotaExceeded                       an owner already has the maximum of active tasks
    ├── NotAllowed            (PermissionError) the caller may not do this (e.g. a scheduled turn
    │                                        creating tasks)
    ├── NotRunning            (RuntimeError) the runtime is not started, or is stopping
    ├── ThreadBusy            (TimeoutError) a conversation thread stayed busy past the wait
    └── StoreError            (RuntimeError) the task/run store failed (names the database)
        └── StoreUnavailable                 unreachable or refused for now; retried
            └── TaskBusy                     a task's row stayed locked by another session

Tools catch every ``SchedulerError`` and turn it into a message the model can act on;
Python callers catch the class they care about.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "InvalidGraph",
    "InvalidPayload",
    "InvalidSchedule",
    "InvalidTask",
    "NotAllowed",
    "NotRunning",
    "QuotaExceeded",
    "SchedulerError",
    "StoreError",
    "StoreUnavailable",
    "TaskBusy",
    "TaskConflict",
    "TaskNotFound",
    "ThreadBusy",
]


class SchedulerError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidPayload(SchedulerError, ValueError):
    """A task payload is not a valid ``ConversationTrigger``."""


class InvalidSchedule(SchedulerError, ValueError):
    """A schedule (cron line, interval, date, timezone, bounds) cannot be used."""


class InvalidTask(SchedulerError, ValueError):
    """A task argument other than the schedule or payload is invalid."""


class TaskConflict(InvalidTask):
    """A create gave the id of a task already stored (for this owner) with another
    definition: its ``fields`` differ from the stored task's.

    A create repeated with the same id and the same definition returns the stored task;
    one that differs is refused rather than silently keeping the old values (a migration
    re-run after its cron line was edited). Catch it to apply the new values with
    ``update_task``.
    """

    def __init__(self, task_id: str, fields: Sequence[str]) -> None:
        super().__init__(task_id, tuple(fields))
        self.task_id = task_id
        self.fields = tuple(fields)
        """The differing fields, named as ``create_task``'s arguments."""

    def __str__(self) -> str:
        return (
            f"task {self.task_id!r} is already stored with another {', '.join(self.fields)}: "
            "creating again with a stored task's id returns it only when its name, schedule "
            "(a cron line by the times it fires), trigger, thread_id, options and max_runs are "
            "the same; change the task with update_task, or create it under another id"
        )


class InvalidGraph(InvalidTask):
    """The runtime's graph cannot take scheduled turns: it is no LangGraph graph, or its
    input has no channel under the runtime's ``messages_key`` (the trigger message
    would be dropped), or an agent with ``SchedulerMiddleware`` holds another tool under
    a scheduler tool's name (it would replace the middleware's)."""


_MAX_SHOWN_ID = 64
"""The longest task id a message repeats whole (ids are at most 64 characters)."""


class TaskNotFound(SchedulerError, KeyError):
    """No task with this id exists, or it belongs to another owner."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        task_id = self.task_id
        if isinstance(task_id, str) and len(task_id) > _MAX_SHOWN_ID:  # not an id: not whole
            shown = f"{task_id[:_MAX_SHOWN_ID]!r}… ({len(task_id):,} characters)"
        else:
            shown = repr(task_id)
        return f"no task with id {shown}; list tasks to see the valid ids"


class QuotaExceeded(SchedulerError):
    """The owner already has the maximum number of active tasks."""


class NotAllowed(SchedulerError, PermissionError):
    """The caller is not allowed to perform this operation."""


class NotRunning(SchedulerError, RuntimeError):
    """The runtime is not started, or is shutting down."""


class StoreError(SchedulerError, RuntimeError):
    """The task or run store could not complete an operation."""


class StoreUnavailable(StoreError):
    """The database could not be reached, or refused for now (connection refused or
    lost, a locked file, a deadlock, a lock or statement timeout).

    The runtime retries these with backoff; a Python caller may retry too.
    """


class TaskBusy(StoreUnavailable):
    """A write of a task gave up: another database session kept the task's row locked
    for longer than the write waits (PostgreSQL: a DBA's open transaction, a migration,
    a stuck client). Nothing was written; the same call may pass once the row is free.
    """

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id

    def __str__(self) -> str:
        return (
            f"task {self.task_id!r} is being changed elsewhere (another database session "
            "holds it); nothing was changed: try again shortly"
        )


class ThreadBusy(SchedulerError, TimeoutError):
    """A conversation thread stayed busy longer than the caller was willing to wait."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(thread_id)
        self.thread_id = thread_id

    def __str__(self) -> str:
        return f"thread {self.thread_id!r} is busy with another turn"
