"""Scheduled turns run with a ``context``, for graphs made with a ``context_schema``.

A graph whose nodes, tools or middleware read ``runtime.context`` (LangGraph's run-scoped
context: ``create_agent(context_schema=...)``) failed on every fire: the runtime ran
its turns without one. ``SchedulerRuntime(context=...)`` gives each turn its context, a
value or one made from the fire's task.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime

from langgraph_scheduler import (
    Interval,
    InvalidTask,
    Once,
    SchedulerRuntime,
    SchedulerState,
    Task,
    trigger_node,
)
from langgraph_scheduler.middleware import SchedulerMiddleware
from langgraph_scheduler.scripted import ScriptedChatModel, tool_call
from langgraph_scheduler.served import LangGraphServer

from .helpers import RunWaiter


@dataclass
class Account:
    """The context of the graphs below."""

    user: str
    plan: str


def _runtime(
    runtime_factory: Any, database: str, context: Any
) -> tuple[SchedulerRuntime, list[Any]]:
    """A runtime of a graph answering from ``runtime.context``, and the contexts its
    turns saw."""
    holder: list[SchedulerRuntime] = []
    seen: list[Any] = []
    rt = runtime_factory(_graph(holder, seen), database=database, context=context)
    holder.append(rt)
    return rt, seen


def _graph(holder: list[SchedulerRuntime], seen: list[Any]) -> StateGraph[Any, Any, Any, Any]:
    """Trigger node → a node answering from ``runtime.context`` (which it records)."""

    async def answer(state: SchedulerState, runtime: Runtime[Account]) -> dict[str, Any]:
        seen.append(runtime.context)
        account = runtime.context
        return {"messages": [AIMessage(f"For {account.user} on the {account.plan} plan.")]}

    builder = StateGraph(SchedulerState, context_schema=Account)
    builder.add_node("trigger", lambda s: trigger_node(s, verify=holder[0].verify_task_source))
    builder.add_node("answer", answer)
    builder.add_edge(START, "trigger")
    builder.add_edge("trigger", "answer")
    return builder


def _soon(seconds: float = 0.3) -> Once:
    return Once(at=datetime.now(timezone.utc) + timedelta(seconds=seconds))


async def test_each_fire_runs_with_the_context_made_from_its_task(
    database: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    tasks: list[Task] = []

    def context(task: Task) -> Account:
        tasks.append(task)
        return Account(user=task.owner, plan="pro")

    rt, seen = _runtime(runtime_factory, database, context)
    async with rt:
        alice = await rt.create_task(
            name="digest", schedule=_soon(), trigger="Send my digest", owner="alice"
        )
        (fired,) = await runs.wait_for(1, task_id=alice.id)
        bob = await rt.create_task(
            name="later", schedule=_soon(3600), trigger="Check in", owner="bob"
        )
        manual = await rt.run_now(bob.id)
    assert (fired.outcome, fired.summary) == ("success", "For alice on the pro plan.")
    assert (manual.outcome, manual.summary) == ("success", "For bob on the pro plan.")
    assert seen == [Account("alice", "pro"), Account("bob", "pro")]
    assert [t.id for t in tasks] == [alice.id, bob.id]


async def test_a_context_value_is_given_to_every_turn(
    sqlite_url: str, runtime_factory: Any
) -> None:
    shared = Account(user="ops", plan="team")
    rt, seen = _runtime(runtime_factory, sqlite_url, shared)
    async with rt:
        first = await rt.create_task(name="a", schedule=_soon(3600), trigger="One")
        second = await rt.create_task(name="b", schedule=_soon(3600), trigger="Two")
        records = [await rt.run_now(first.id), await rt.run_now(second.id)]
    assert [r.summary for r in records] == ["For ops on the team plan."] * 2
    assert seen == [shared, shared]


async def test_a_context_function_that_raises_records_the_fire_an_error_and_runs_nothing(
    database: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    def context(task: Task) -> Account:
        raise LookupError(f"no account for {task.owner}")

    rt, seen = _runtime(runtime_factory, database, context)
    async with rt:
        task = await rt.create_task(
            name="digest", schedule=_soon(), trigger="Send my digest", owner="carol"
        )
        (record,) = await runs.wait_for(1, task_id=task.id)
        state = await rt.graph.aget_state({"configurable": {"thread_id": record.thread_id}})
        later = await rt.get_task(task.id)
    assert record.outcome == "error"
    assert record.error == "the turn's context could not be made: LookupError: no account for carol"
    assert seen == [] and not state.values  # the graph never ran
    assert later.last_outcome == "error"


def test_a_coroutine_function_is_refused_as_a_context() -> None:
    async def context(task: Task) -> Account:
        return Account(user=task.owner, plan="pro")

    with pytest.raises(InvalidTask, match="not a coroutine function"):
        SchedulerRuntime(None, database="sqlite://", context=context)


def test_a_context_is_refused_for_turns_on_a_server() -> None:
    """A LangGraph server takes no ``configurable`` beside a run's context, and the
    scheduler's tools read the task's owner there: refused when made, not at each fire
    (the server answers such a run 400)."""
    server = LangGraphServer(url="http://127.0.0.1:2024", assistant_id="agent")
    with pytest.raises(InvalidTask, match="context is not sent to a LangGraph server"):
        SchedulerRuntime(None, server=server, context={"user": "erin"})
    assert SchedulerRuntime(None, server=server).context is None


@tool
def whoami(runtime: ToolRuntime[Account]) -> str:
    """Say which account the conversation is for."""
    return f"{runtime.context.user} ({runtime.context.plan})"


async def test_an_agents_tools_read_the_context_of_a_scheduled_turn(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """``create_agent(context_schema=...)``: a tool reading ``runtime.context`` failed
    in every scheduled turn."""

    def reply(messages: list[BaseMessage]) -> str:
        return f"You are {messages[-1].text}."

    scheduler = SchedulerMiddleware()
    agent = create_agent(
        ScriptedChatModel(steps=[tool_call("whoami", {}), reply]),
        tools=[whoami],
        middleware=[scheduler],
        context_schema=Account,
    )
    rt = runtime_factory(
        agent, database=sqlite_url, context=lambda task: Account(user=task.owner, plan="pro")
    )
    scheduler.bind(rt)
    async with rt:
        task = await rt.create_task(
            name="who", schedule=_soon(3600), trigger="Who am I?", owner="dana"
        )
        record = await rt.run_now(task.id)
    assert (record.outcome, record.summary) == ("success", "You are dana (pro).")


class _Halt(BaseException):
    """A BaseException of the user's own, beside Exception."""


@pytest.mark.parametrize(
    "raised",
    [_Halt("no account"), asyncio.CancelledError(), SystemExit(3), KeyboardInterrupt()],
    ids=["base-exception", "cancelled", "system-exit", "keyboard-interrupt"],
)
async def test_a_context_function_raising_a_base_exception_records_the_fire_an_error(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter, raised: BaseException
) -> None:
    """The function is plain code the fire calls: what it raises is the fire's error, not
    a stop of the runtime (a CancelledError was recorded ``interrupted`` and ``run_now``
    said the runtime stopped) nor a fire left without an outcome (the others escaped)."""

    def context(task: Task) -> Account:
        raise raised

    rt, seen = _runtime(runtime_factory, sqlite_url, context)
    async with rt:
        task = await rt.create_task(
            name="digest", schedule=_soon(), trigger="Send my digest", owner="carol"
        )
        (fired,) = await asyncio.wait_for(runs.wait_for(1, task_id=task.id), 30)
        manual = await asyncio.wait_for(rt.run_now(task.id), 30)
    name = type(raised).__name__
    for record in (fired, manual):
        assert record.outcome == "error"
        assert record.error is not None
        assert record.error.startswith(f"the turn's context could not be made: {name}")
    assert seen == []


class _AsyncContext:
    """A callable object whose ``__call__`` is a coroutine function."""

    async def __call__(self, task: Task) -> Account:
        return Account(user=task.owner, plan="pro")


def test_an_object_with_an_async_call_is_refused_as_a_context() -> None:
    with pytest.raises(InvalidTask, match="not a coroutine function"):
        SchedulerRuntime(None, database="sqlite://", context=_AsyncContext())


async def test_a_context_function_returning_an_awaitable_records_the_fire_an_error(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """A function that returns a coroutine (a lambda calling an async one) gave the
    graph the coroutine as its context, never awaited."""
    rt, seen = _runtime(runtime_factory, sqlite_url, lambda task: _AsyncContext()(task))
    async with rt:
        task = await rt.create_task(name="d", schedule=_soon(3600), trigger="Hi", owner="al")
        record = await rt.run_now(task.id)
    assert record.outcome == "error"
    assert record.error is not None and "returned a coroutine" in record.error
    assert seen == []


async def test_a_context_function_changing_its_tasks_payload_leaves_the_later_fires_alone(
    database: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """The fire path shares the store's task between fires: a function writing into its
    payload (a dict) changed what every later fire of the task was handed."""
    payloads: list[Any] = []

    def context(task: Task) -> Account:
        payloads.append(dict(task.payload))
        task.payload["prompt"] = "Changed by the context function"
        return Account(user=task.owner, plan="pro")

    rt, seen = _runtime(runtime_factory, database, context)
    async with rt:
        task = await rt.create_task(
            name="tick", schedule=Interval(seconds=1), trigger="Tick", owner="erin"
        )
        fired = await asyncio.wait_for(runs.wait_for(2, task_id=task.id), 30)
        await rt.pause_task(task.id)
        kept = await rt.get_task(task.id)
    assert [r.outcome for r in fired] == ["success", "success"]
    assert payloads[:2] == [{"prompt": "Tick"}, {"prompt": "Tick"}]
    assert kept.payload == {"prompt": "Tick"}
