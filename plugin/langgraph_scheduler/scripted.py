"""A deterministic chat model for demos and tests: no provider, real tool calls.

It implements ``bind_tools`` so agents built with ``create_agent`` or ``ToolNode`` run
offline. Each call takes the next scripted step; a step is a reply, a function of the
conversation, an exception to raise, or :data:`HANG` to never answer (for timeouts).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from ._validated import kind_of

__all__ = ["HANG", "ScriptedChatModel", "Step", "tool_call"]

HANG = "__hang__"
"""A step that never answers (the model call hangs until cancelled)."""

Step = Any
"""A reply (``str`` or ``AIMessage``), an exception to raise, ``HANG``, or a callable of the
message list returning one of these."""


def tool_call(name: str, args: dict[str, Any], *, text: str = "") -> AIMessage:
    """An AI message calling one tool, with a fresh call id."""
    return AIMessage(
        content=text,
        tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:12]}"}],
    )


def _a_step(step: object) -> bool:
    """Whether ``step`` is a reply or an exception (a function's result must be one)."""
    return isinstance(step, str | AIMessage | BaseException)


def _no_step(step: object) -> str:
    """Why ``step`` is no step, for the error."""
    given = "None" if step is None else f"{kind_of(step)} {step!r}"
    return (
        f"{given}, not a step: give a reply (a str or an AIMessage), an "
        "exception to raise, HANG, or a function of the messages returning one of these"
    )


def _calls_tools(step: Step) -> bool:
    return isinstance(step, AIMessage) and bool(step.tool_calls)


class ScriptedChatModel(BaseChatModel):
    """Answers from a script instead of a provider.

    Args:
        steps: the replies, in order (a list, even of one). With ``cycle=True`` the
            script repeats, otherwise the last step is reused once the script runs out;
            a last step that calls tools is not (an agent would answer it and call
            again for good): the call after it raises ``RuntimeError`` saying so.
        delay_secs: pretend latency per call (async calls only sleep, never block).

    Example:
        >>> model = ScriptedChatModel(steps=[tool_call("list_tasks", {}), "You have no tasks."])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    steps: Sequence[Step] = Field(default_factory=lambda: ["ok"])
    cycle: bool = False
    delay_secs: float = 0.0
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _in_flight: int = PrivateAttr(default=0)
    _bound_tools: list[str] = PrivateAttr(default_factory=list)

    @field_validator("steps", mode="before")
    @classmethod
    def _a_list(cls, steps: object) -> object:
        # A string is a sequence too: the model would answer one character per call.
        if isinstance(steps, str | bytes):
            raise ValueError(
                f"steps is a list of steps, got {kind_of(steps)} {steps!r}: write steps=[{steps!r}]"
            )
        if isinstance(steps, Sequence):
            for index, step in enumerate(steps):
                if not _a_step(step) and not callable(step):
                    raise ValueError(f"steps[{index}] is {_no_step(step)}")
        return steps

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> int:
        """How many times the model was called."""
        return self._calls

    @property
    def in_flight(self) -> int:
        """How many async calls are answering right now."""
        return self._in_flight

    @property
    def bound_tools(self) -> list[str]:
        """Names of the tools last bound with ``bind_tools``."""
        return list(self._bound_tools)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        self._bound_tools = [getattr(t, "name", None) or str(t) for t in tools]
        return self

    def _next_step(self, messages: list[BaseMessage]) -> Step:
        steps = list(self.steps)
        if not steps:
            raise ValueError("ScriptedChatModel has no steps")
        with self._lock:  # sync ``batch`` calls it from several threads at once
            index = self._calls
            self._calls += 1
        step = steps[index % len(steps)] if self.cycle else steps[min(index, len(steps) - 1)]
        if index >= len(steps) and not self.cycle and _calls_tools(step):
            raise RuntimeError(
                f"ScriptedChatModel ran out of steps: call {index + 1} of a script of "
                f"{len(steps)} would repeat its last step, a call to "
                f"{', '.join(repr(c['name']) for c in step.tool_calls)}, which an agent "
                "answers and calls again for good. End the script with a reply "
                "(steps=[..., 'Done.']), or pass cycle=True to repeat it."
            )
        while callable(step) and not isinstance(step, BaseException):
            step = step(messages)
        return step

    @staticmethod
    def _to_result(step: Step) -> ChatResult:
        if isinstance(step, BaseException):
            raise step
        if not _a_step(step):  # what a step function returned
            raise TypeError(f"a step function of ScriptedChatModel returned {_no_step(step)}")
        message = step if isinstance(step, AIMessage) else AIMessage(content=step)
        if message.id is None:
            message = message.model_copy(update={"id": f"scripted-{uuid.uuid4().hex[:12]}"})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._next_step(messages)
        if step == HANG:
            raise RuntimeError("a HANG step needs the async API (ainvoke) to be cancellable")
        return self._to_result(step)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        step = self._next_step(messages)
        self._in_flight += 1
        try:
            if self.delay_secs:
                await asyncio.sleep(self.delay_secs)
            if isinstance(step, str) and step == HANG:
                await asyncio.Event().wait()
        finally:
            self._in_flight -= 1
        return self._to_result(step)
