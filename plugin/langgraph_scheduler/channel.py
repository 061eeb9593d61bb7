"""Messages between the scheduler side and the conversation runtime.

The bridge puts a :class:`ConversationRequest` on a bounded ``asyncio.Queue``; a worker
runs the turn and answers on the request's future with a :class:`ConversationResponse`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

# typing_extensions' TypedDict: pydantic needs it on Python < 3.12 to build the JSON
# schema of graph states holding a TaskSource (langgraph dev, assistant schemas).
from typing_extensions import NotRequired, TypedDict

__all__ = [
    "ConversationRequest",
    "ConversationResponse",
    "Error",
    "Interrupted",
    "Skipped",
    "Success",
    "TaskSource",
    "Timeout",
]


class TaskSource(TypedDict):
    """Attribution of a task-triggered turn.

    Kept as plain JSON in graph state (``task_source``), in the trigger message's
    ``additional_kwargs["task_source"]`` and, key by key, in the run's config metadata.
    """

    task_id: str
    """Id of the task that fired."""
    task_name: str
    """The task's name at the time it fired."""
    run_id: str
    """Id of the run record of this fire."""
    scheduled_for: str
    """ISO-8601 time the fire was due (UTC)."""
    attempt: int
    """1 for the first attempt of a fire, 2+ for retries."""
    trigger: str
    """``schedule`` for a scheduled fire, ``manual`` for run-now."""
    system_addon: NotRequired[str | None]
    """Extra system instruction for this turn only (applied by the trigger node)."""


@dataclass(frozen=True)
class Success:
    """The turn finished; ``text`` is the final AI message."""

    text: str
    checkpoint_id: str | None = None

    def __repr__(self) -> str:
        return f"Success({_short(self.text)!r})"


@dataclass(frozen=True)
class Error:
    """The turn failed; ``message`` says why."""

    message: str

    def __repr__(self) -> str:
        return f"Error({_short(self.message)!r})"


@dataclass(frozen=True)
class Timeout:
    """The turn did not finish within ``after_secs`` and was cancelled."""

    after_secs: float

    def __repr__(self) -> str:
        return f"Timeout(after_secs={self.after_secs:g})"


@dataclass(frozen=True)
class Interrupted:
    """The turn was cancelled because the runtime stopped before it finished."""

    reason: str

    def __repr__(self) -> str:
        return f"Interrupted({self.reason!r})"


@dataclass(frozen=True)
class Skipped:
    """The turn was not run, e.g. its thread stayed busy past the task's wait limit."""

    reason: str

    def __repr__(self) -> str:
        return f"Skipped({self.reason!r})"


ConversationResponse = Success | Error | Timeout | Interrupted | Skipped
"""What a worker answers: ``Success | Error | Timeout | Interrupted | Skipped``."""


@dataclass(eq=False)
class ConversationRequest:
    """One scheduled turn to run, with the future its answer goes to."""

    task_id: str
    run_id: str
    thread_id: str
    prompt: str
    source: TaskSource
    owner: str = "default"
    system_addon: str | None = None
    timeout_secs: float | None = None
    on_busy: Literal["wait", "skip"] = "wait"
    max_wait_secs: float = 300.0
    reply: asyncio.Future[ConversationResponse] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False
    )

    def __repr__(self) -> str:
        return (
            f"ConversationRequest(task_id={self.task_id!r}, run_id={self.run_id!r}, "
            f"thread_id={self.thread_id!r}, prompt={_short(self.prompt)!r}, "
            f"timeout_secs={self.timeout_secs})"
        )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
