"""``SchedulerMiddleware``: scheduled conversations for ``langchain.agents.create_agent``.

Needs the ``agents`` extra: ``pip install "langgraph-scheduler[agents]"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ModelRequest,
        ModelResponse,
    )
except ImportError as exc:  # langchain is the optional "agents" extra
    raise ImportError(
        "SchedulerMiddleware needs langchain's agents (langchain>=1.0): "
        'pip install "langgraph-scheduler[agents]"'
    ) from exc

from langchain_core.messages import SystemMessage
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime
from typing_extensions import NotRequired

from .errors import InvalidGraph, NotRunning
from .nodes import scheduler_system_prompt, signed_task_source, trigger_node
from .runtime import SchedulerRuntime
from .state import TaskSourceValue
from .tools import SchedulerLimits, scheduler_tools

__all__ = ["SchedulerAgentState", "SchedulerMiddleware"]


class SchedulerAgentState(AgentState[Any]):
    """``create_agent`` state plus the attribution of a task-triggered turn."""

    task_source: NotRequired[TaskSourceValue]
    """Set on task-triggered turns, None on user turns."""


class SchedulerMiddleware(AgentMiddleware[SchedulerAgentState, Any]):
    """Lets a ``create_agent`` agent schedule its own future conversations.

    Adds the scheduler tools, the ``task_source`` state key, the scheduler section of the
    system prompt (with the current date-time and the runtime's default timezone; after
    the agent's own system prompt, kept as it is, content blocks included) and a
    ``before_agent`` hook that marks each turn: ``task_source`` is kept on task-triggered
    turns and cleared on user turns. Only the runtime marks a turn: a ``task_source`` it
    did not sign (a client wrote it into a message, or into the state) is ignored. On a
    task-triggered turn the task's ``system_addon`` is added to the system prompt of that
    turn's model calls only; it is never written into the conversation history.

    Args:
        runtime: the runtime that stores and runs the tasks. It usually runs this very
            agent, so it cannot exist yet: leave it out and call :meth:`bind` once the
            runtime is made, or pass a function returning it when a tool runs (on a
            LangGraph server: ``langgraph_scheduler.served.served_runtime``).
        limits: guardrails for the tools (quota, minimum interval, approval, ...).
        system_prompt: replaces the shipped scheduler section (used as given).
        now: clock for the prompt's current time (default: the runtime's clock).

    Example:
        >>> scheduler = SchedulerMiddleware(limits=SchedulerLimits(require_approval=True))
        >>> agent = create_agent(model, middleware=[scheduler])
        >>> async with SchedulerRuntime(agent, database="sqlite:///tasks.db") as runtime:
        ...     scheduler.bind(runtime)
        ...     await runtime.ainvoke(
        ...         {"messages": [HumanMessage("Remind me to stretch in 20 minutes")]},
        ...         {"configurable": {"thread_id": "t1", "user_id": "alice"}},
        ...     )

    Note:
        Send user turns through ``runtime.ainvoke`` (or hold ``runtime.thread_lock``), so
        they never overlap a scheduled turn. The tools run on the runtime's event loop:
        a sync ``invoke`` works from any other thread (as with
        :class:`~langgraph_scheduler.sync.SyncSchedulerRuntime`), and raises, naming the
        async call, on the thread that runs that loop. The middleware adds the tools:
        give ``create_agent`` no other tool under one of their names (its model calls
        raise ``InvalidGraph`` naming them).
    """

    state_schema = SchedulerAgentState

    def __init__(
        self,
        runtime: SchedulerRuntime | Callable[[], SchedulerRuntime] | None = None,
        *,
        limits: SchedulerLimits | None = None,
        system_prompt: str | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self._runtime = runtime
        self.limits = limits or SchedulerLimits()
        self.tools = scheduler_tools(self._require_runtime, limits=self.limits)
        self._section = system_prompt
        self._now = now

    @property
    def runtime(self) -> SchedulerRuntime:
        """The bound runtime.

        Raises:
            NotRunning: no runtime was given or bound yet.
        """
        return self._require_runtime()

    def bind(
        self, runtime: SchedulerRuntime | Callable[[], SchedulerRuntime]
    ) -> SchedulerMiddleware:
        """Use ``runtime`` for the tools and the prompt's default timezone; returns self."""
        self._runtime = runtime
        return self

    def _require_runtime(self) -> SchedulerRuntime:
        if self._runtime is None:
            raise NotRunning(
                "SchedulerMiddleware has no runtime: call scheduler.bind(runtime) after "
                "creating SchedulerRuntime(agent, ...), before the agent runs"
            )
        if isinstance(self._runtime, SchedulerRuntime):
            return self._runtime
        return self._runtime()

    # -- turn marking ------------------------------------------------------------------

    def before_agent(
        self, state: SchedulerAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Keep ``task_source`` on a task-triggered turn, clear it on a user turn.

        Only an attribution the runtime signed counts: a ``task_source`` a client put in
        its message is logged and ignored (the turn is a user turn)."""
        return trigger_node(state, verify=self.runtime.verify_task_source)

    async def abefore_agent(
        self, state: SchedulerAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`before_agent`."""
        return trigger_node(state, verify=self.runtime.verify_task_source)

    # -- per-call system prompt ----------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Add the scheduler section (and a task's ``system_addon``) to this call only."""
        return handler(self._with_system_prompt(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async twin of :meth:`wrap_model_call`."""
        return await handler(self._with_system_prompt(request))

    def _with_system_prompt(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        self._check_tools(request.tools)
        runtime = self.runtime
        own = request.system_message
        text = scheduler_system_prompt(
            # Checked again here: a client may write the state past before_agent.
            signed_task_source(request.state, verify=runtime.verify_task_source),
            timezone=runtime.timezone,
            now=self._now() if self._now is not None else runtime.clock.now(),
            base=own.content if own is not None and isinstance(own.content, str) else None,
            section=self._section,
        )
        if own is None:
            return request.override(system_message=SystemMessage(content=text))
        # The agent's own system message is kept as it is: its fields, and its content
        # blocks (one may be marked for prompt caching), the section in a block after them.
        content: str | list[str | dict[str, Any]] = text
        if not isinstance(own.content, str):
            content = [*own.content, {"type": "text", "text": f"\n\n{text}"}]
        return request.override(system_message=own.model_copy(update={"content": content}))

    def _check_tools(self, tools: Sequence[BaseTool | dict[str, Any]]) -> None:
        """Refuse a model call whose tools hold another tool under one of ours' names.

        ``create_agent`` keeps one tool per name, the agent's own over a middleware's, so
        the middleware's tool (and its guardrails: approval, quota) would be dropped
        without a word.

        Raises:
            InvalidGraph: naming the tools and the fix.
        """
        ours = {tool.name: tool for tool in self.tools}
        clashes = sorted(
            tool.name
            for tool in tools
            if isinstance(tool, BaseTool) and ours.get(tool.name, tool) is not tool
        )
        if clashes:
            raise InvalidGraph(
                f"the agent was given tools named {', '.join(map(repr, clashes))} besides "
                "SchedulerMiddleware's: SchedulerMiddleware adds the scheduler tools itself "
                "(with its limits), and create_agent keeps one tool a name, so the agent "
                "would call the other one; leave scheduler_tools(...) out of "
                "create_agent(tools=...), or rename your own tool"
            )
