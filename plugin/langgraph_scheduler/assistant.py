"""A ready assistant graph with the scheduler tools, and an offline model to drive it.

Used by the CLI demo, ``graphs/assistant.py`` (``langgraph dev``), the quickstart notebook
and the README. The graph is a plain ``StateGraph``: a trigger node, a model node that
sees the scheduler section of the system prompt, and a ``ToolNode`` with the eight tools.

Example:
    >>> holder: list[SchedulerRuntime] = []
    >>> builder = build_assistant(lambda: holder[0], model=demo_model())
    >>> async with SchedulerRuntime(builder, database="sqlite:///demo.db") as rt:
    ...     holder.append(rt)
    ...     await rt.ainvoke(
    ...         {"messages": [("user", "Remind me to stretch every 10 minutes")]},
    ...         {"configurable": {"thread_id": "me"}},
    ...     )
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from .errors import SchedulerError
from .nodes import scheduler_system_message, trigger_node
from .runtime import SchedulerRuntime
from .scripted import ScriptedChatModel, tool_call
from .state import SchedulerState
from .tools import SchedulerLimits, scheduler_tools

__all__ = ["build_assistant", "demo_model", "load_chat_model"]

RuntimeRef = SchedulerRuntime | Callable[[], SchedulerRuntime]
"""A runtime, or a function returning it when a tool runs (the runtime takes the graph,
so the graph usually exists first)."""


def build_assistant(
    runtime: RuntimeRef,
    *,
    model: BaseChatModel | None = None,
    limits: SchedulerLimits | None = None,
    system_prompt: str | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """An assistant that can schedule its own future conversations.

    ``START → trigger → agent ⇄ tools``: ``trigger`` marks task-triggered turns, ``agent``
    calls the model with the scheduler section of the system prompt (and a task's
    ``system_addon`` on its own turn), ``tools`` runs the scheduler tools.

    Args:
        runtime: the runtime the tools act on, or a function returning it.
        model: a tool-calling chat model; :func:`demo_model` when None.
        limits: guardrails for the tools (quota, minimum interval, approval).
        system_prompt: your own instructions, placed before the scheduler section.

    Returns:
        The uncompiled builder: pass it to ``SchedulerRuntime`` (which compiles it with its
        checkpointer) or compile it yourself.
    """
    get_runtime = _getter(runtime)
    tools = scheduler_tools(get_runtime, limits=limits)
    bound = (model or demo_model()).bind_tools(tools)

    async def agent(state: SchedulerState, config: RunnableConfig) -> dict[str, Any]:
        runtime = get_runtime()
        system = scheduler_system_message(
            state,
            timezone=runtime.timezone,
            now=runtime.clock.now(),
            base=system_prompt,
            verify=runtime.verify_task_source,
        )
        reply = await bound.ainvoke([system, *state["messages"]], config)
        return {"messages": [reply]}

    def mark_turn(state: SchedulerState) -> dict[str, Any]:
        # Only turns the runtime signed are task-triggered (not a client's task_source).
        return trigger_node(state, verify=get_runtime().verify_task_source)

    builder = StateGraph(SchedulerState)
    builder.add_node("trigger", mark_turn)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "trigger")
    builder.add_edge("trigger", "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder


def load_chat_model(spec: str) -> BaseChatModel:
    """A real chat model from ``provider:model`` (e.g. ``openai:gpt-4.1-mini``).

    Uses ``langchain.chat_models.init_chat_model``; the provider's package and API key
    must be installed and set.

    Raises:
        SchedulerError: langchain or the provider package is missing, or the spec is
            malformed; the message says what to install.
    """
    provider, colon, name = spec.partition(":")
    if not (colon and provider.strip() and name.strip()):
        raise SchedulerError(
            f"model {spec!r} must be written provider:model, e.g. 'openai:gpt-4.1-mini' or "
            "'anthropic:claude-sonnet-4-5'"
        )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise SchedulerError(
            f"a real model ({spec}) needs langchain: "
            'pip install "langgraph-scheduler[agents]" and the provider package, '
            "e.g. pip install langchain-openai"
        ) from None
    try:
        return init_chat_model(spec)
    except ImportError as exc:
        raise SchedulerError(f"cannot load model {spec!r}: {exc}") from None
    except ValueError as exc:
        raise SchedulerError(f"cannot load model {spec!r}: {exc}") from None


def demo_model() -> ScriptedChatModel:
    """An offline stand-in for an LLM that knows just enough to demo the scheduler.

    It understands "remind me to <what> <when>[, N times | once | twice]" (calling
    ``schedule_task``), "list my tasks" (calling ``list_tasks``), answers tool results
    with a short confirmation, and answers a task-triggered turn with the reminder: a
    turn its system prompt says a task started (the graph's verified ``task_source``),
    not any message that carries a ``task_source``.
    """
    return ScriptedChatModel(steps=[_demo_reply], cycle=True)


# -- the scripted assistant -----------------------------------------------------------

_NUMBERS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_REQUEST = re.compile(
    r"remind me to (?P<what>.+?)\s+(?P<when>(?:every|in|at|tomorrow|today|on)\b.*?)"
    r"(?:,?\s*\b(?P<count>once|twice|(?:\d+|one|two|three|four|five)\s+times?))?[.!]?$",
    re.IGNORECASE,
)
"""A request to schedule. A run count is read only where the phrase says one ("3 times",
"twice"): a number alone belongs to the schedule ("at 9", "at 9:00")."""
_HELP = (
    "I'm the scripted demo assistant (no LLM behind me). Try: 'Remind me to stretch every "
    "10 minutes, 3 times' or 'List my tasks'. Set LANGGRAPH_SCHEDULER_MODEL=provider:model "
    "to talk to a real model."
)


def _demo_reply(messages: Sequence[BaseMessage]) -> str | AIMessage:
    last = messages[-1] if messages else None
    if isinstance(last, ToolMessage):
        return _after_tool(last)
    human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    if human is None:
        return _HELP
    source = _task_turn_source(human, messages)
    if source is not None:
        return _reminder(human.text, source, messages)
    text = " ".join(human.text.split())
    match = _REQUEST.search(text)
    if match:
        what = match.group("what").strip()
        args: dict[str, Any] = {
            "name": what[:1].upper() + what[1:60],
            "schedule": match.group("when").strip(),
            "prompt": f"Remind me to {what}.",
        }
        if match.group("count"):
            count = match.group("count").split()[0]
            args["max_runs"] = int(count) if count.isdigit() else _NUMBERS[count.lower()]
        return tool_call("schedule_task", args)
    if re.search(r"\b(list|show)\b.*\btasks?\b", text, re.IGNORECASE):
        return tool_call("list_tasks", {})
    return _HELP


def _task_turn_source(
    human: HumanMessage, messages: Sequence[BaseMessage]
) -> Mapping[str, Any] | None:
    """The ``task_source`` of ``human`` when the graph marked this turn as its task's.

    A model sees no graph state, only what it is sent: the system prompt, built from
    the graph's verified ``task_source``, names the turn's run only on a turn the
    runtime signed. A ``task_source`` a client wrote into its message is not named
    there, and the demo answers it as a user turn, as a real model would.
    """
    source = human.additional_kwargs.get("task_source")
    if not isinstance(source, Mapping):
        return None
    run_id = source.get("run_id")
    system = messages[0] if isinstance(messages[0], SystemMessage) else None
    if system is None or not isinstance(run_id, str) or not run_id or run_id not in system.text:
        return None
    return source


def _after_tool(message: ToolMessage) -> str:
    text = message.text
    if message.status == "error" or text.startswith("Error"):
        return f"That did not work: {text.removeprefix('Error: ')}"
    fields = dict(
        line.split(": ", 1) for line in text.splitlines() if ": " in line and line[0] != " "
    )
    if message.name == "schedule_task" and "schedule" in fields:
        next_runs = fields.get("next runs", "none")
        return (
            f"Done: I scheduled {fields.get('name', 'the task')!r}, {fields['schedule']}. "
            f"Next runs: {next_runs}."
        )
    return text.splitlines()[0] if text else "Done."


def _reminder(prompt: str, source: Mapping[str, Any], messages: Sequence[BaseMessage]) -> str:
    task_id = source.get("task_id")
    count = sum(
        1
        for m in messages
        if isinstance(m, HumanMessage)
        and isinstance(m.additional_kwargs.get("task_source"), Mapping)
        and m.additional_kwargs["task_source"].get("task_id") == task_id
    )
    what = re.sub(r"^remind me to\s+", "", prompt.strip(), flags=re.IGNORECASE).rstrip(".!")
    return f"⏰ Time to {what}! (reminder #{count} from your task {source.get('task_name')!r})"


def _getter(runtime: RuntimeRef) -> Callable[[], SchedulerRuntime]:
    if isinstance(runtime, SchedulerRuntime):
        return lambda: runtime
    return runtime
