"""A writing tool call that LangGraph runs again after a resume acts once, and answers
the same again.

LangGraph re-runs a whole node when it resumes it after an ``interrupt()``, and a
``ToolNode`` runs every call of a model message in one node: a scheduler call next to
the user's own human-in-the-loop tool runs once before the question and again after the
answer. Real graphs on the scripted model, a real checkpointer, both backends.
"""

from __future__ import annotations

import asyncio
import operator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt
from sqlalchemy import select

from langgraph_scheduler import Cron, SchedulerRuntime
from langgraph_scheduler._service import ToolCall
from langgraph_scheduler.middleware import SchedulerMiddleware
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import CallAnswer, CallAnswered, tool_calls_table
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import APPROVAL_KIND, SchedulerLimits, scheduler_tools

from .test_approvals import calls, new_task, with_ids
from .test_custom_graph import build

START_AT = datetime(2027, 3, 14, 6, 0, tzinfo=timezone.utc)  # 07:00 in Berlin (CET)
QUESTION = "Shall I also book the room?"
KINDS = ["tool_node", "create_agent"]
DAILY = "every day at 10:00"


class Gate(AsyncCallbackHandler):
    """Keeps every answer the scheduler's calls gave, by call id, and lets the user's
    tool ask its question only once the scheduler's call of this run has ended (answered,
    refused, or interrupted for an approval), so each run's order is fixed."""

    def __init__(self, *, reruns: bool = True) -> None:
        self.reruns = reruns
        """False where LangGraph keeps a finished call's answer (``create_agent`` runs each
        call as its own task): the call does not run again, so the user's tool does not
        wait for it after the first run."""
        self.answers: dict[str, list[ToolMessage]] = {}
        self.namespaces: list[dict[str, Any]] = []
        """The metadata of each run of a scheduler call."""
        self.ended = asyncio.Event()
        self._answered = asyncio.Event()

    def next_run(self) -> None:
        self.ended = asyncio.Event()
        if self.answers and not self.reruns:
            self.ended.set()

    async def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, metadata: Any = None, **kwargs: Any
    ) -> None:
        if serialized.get("name") != "confirm":
            self.namespaces.append(dict(metadata or {}))

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        if isinstance(output, ToolMessage) and output.name != "confirm":
            self.answers.setdefault(str(output.tool_call_id), []).append(output)
            self.ended.set()
            self._answered.set()

    async def first_answer(self, call_id: str) -> ToolMessage:
        """The call's first answer, once it has one (a ToolNode's call may still be
        running after another call's interrupt ended the step)."""
        while call_id not in self.answers:
            self._answered.clear()
            await self._answered.wait()
        return self.answers[call_id][0]

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.ended.set()


def confirm_tool(gate: Gate) -> BaseTool:
    """The user's own human-in-the-loop tool."""

    @tool
    async def confirm(question: str) -> str:
        """Ask the user a yes/no question and wait for the answer."""
        await gate.ended.wait()
        return f"The user answered {interrupt(question)!r}."

    return confirm


def message(name: str, args: dict[str, Any]) -> AIMessage:
    """A model message calling a scheduler tool and then the user's tool."""
    return calls((name, args), ("confirm", {"question": QUESTION}))


def make_runtime(
    kind: str,
    runtime_factory: Any,
    database: str,
    gate: Gate,
    step: AIMessage,
    *,
    clock: FakeClock | None = None,
    limits: SchedulerLimits | None = None,
) -> SchedulerRuntime:
    model = ScriptedChatModel(steps=[step, "Done."])
    options: dict[str, Any] = {"database": database, "timezone": "Europe/Berlin"}
    options["clock"] = clock or FakeClock(START_AT)
    if kind == "tool_node":
        holder: list[SchedulerRuntime] = []
        rt: SchedulerRuntime = runtime_factory(
            build(model, holder, limits=limits, own_tools=[confirm_tool(gate)]), **options
        )
        holder.append(rt)
        return rt
    scheduler = SchedulerMiddleware(limits=limits)
    graph = create_agent(model, tools=[confirm_tool(gate)], middleware=[scheduler])
    rt = runtime_factory(graph, **options)
    scheduler.bind(rt)
    return rt


def config(gate: Gate) -> RunnableConfig:
    return {"configurable": {"thread_id": "T", "user_id": "alice"}, "callbacks": [gate]}


async def turn(rt: SchedulerRuntime, gate: Gate, value: Any) -> dict[str, Any]:
    gate.next_run()
    out: dict[str, Any] = await rt.ainvoke(value, config(gate))
    return out


async def ask_and_answer(
    rt: SchedulerRuntime, gate: Gate, *, meanwhile: Any = None
) -> tuple[ToolMessage, ToolMessage]:
    """Run the turn to the user's question, answer it, and return the scheduler call's
    first answer and the one the conversation kept."""
    out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
    (pending,) = out["__interrupt__"]
    assert pending.value == QUESTION
    if meanwhile is not None:
        await meanwhile()
    final = await turn(rt, gate, Command(resume="yes"))
    assert "__interrupt__" not in final
    return kept_answer(final, gate)


def kept_answer(final: dict[str, Any], gate: Gate) -> tuple[ToolMessage, ToolMessage]:
    (kept,) = [m for m in final["messages"] if isinstance(m, ToolMessage) and m.name != "confirm"]
    assert [m.content for m in final["messages"] if isinstance(m, ToolMessage)][-1] == (
        "The user answered 'yes'."
    )
    first = gate.answers[str(kept.tool_call_id)][0]
    return first, kept


async def plants(rt: SchedulerRuntime, **kwargs: Any) -> None:
    await rt.create_task(
        name="Plants",
        schedule=Cron("0 9 * * *"),
        trigger="Water the plants.",
        owner="alice",
        task_id="plants",
        **kwargs,
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_is_scheduled_once_and_answered_as_first(
    database: str, runtime_factory: Any, kind: str
) -> None:
    gate = Gate(reruns=kind == "tool_node")
    step = message("schedule_task", {"name": "Tea", "schedule": "in 2 hours", "prompt": "Tea."})
    clock = FakeClock(START_AT)
    rt = make_runtime(kind, runtime_factory, database, gate, step, clock=clock)
    async with rt:

        async def later() -> None:
            await clock.advance(1800)  # "in 2 hours" read again would be another time

        first, kept = await ask_and_answer(rt, gate, meanwhile=later)
        (task,) = await rt.list_tasks()
        assert task.next_run_at == START_AT + timedelta(hours=2)
        assert kept.status == "success" and kept.content == first.content
        assert f"id: {task.id}" in str(kept.content)


async def test_a_call_with_an_empty_id_in_a_graph_acts_once(
    database: str, runtime_factory: Any
) -> None:
    # A provider may send an empty id: inside a LangGraph step it is an id like any
    # other, and the call re-run after the resume finds its answer.
    gate = Gate()
    args = {"name": "Tea", "schedule": "in 2 hours", "prompt": "Tea."}
    step = with_ids(message("schedule_task", args), "", "confirm-1")
    rt = make_runtime("tool_node", runtime_factory, database, gate, step)
    async with rt:
        first, kept = await ask_and_answer(rt, gate)
        (task,) = await rt.list_tasks()
        assert kept.status == "success" and kept.content == first.content
        assert f"id: {task.id}" in str(kept.content)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_is_run_now_once(database: str, runtime_factory: Any, kind: str) -> None:
    gate = Gate(reruns=kind == "tool_node")
    step = message("run_task_now", {"task_id": "plants"})
    rt = make_runtime(kind, runtime_factory, database, gate, step)
    async with rt:
        await plants(rt)  # isolated: its runs do not wait for this conversation
        first, kept = await ask_and_answer(rt, gate)
        await rt.wait_idle()
        runs = await rt.history("plants")
        assert [r.trigger for r in runs] == ["manual"]
        assert kept.content == first.content
        assert f"run id {runs[0].run_id}" in str(kept.content)


async def test_a_deleted_task_is_answered_deleted(database: str, runtime_factory: Any) -> None:
    gate = Gate()
    step = message("delete_task", {"task_id": "plants"})
    rt = make_runtime("tool_node", runtime_factory, database, gate, step)
    async with rt:
        await plants(rt)
        first, kept = await ask_and_answer(rt, gate)
        assert await rt.list_tasks() == []
        assert kept.status == "success" and kept.content == first.content
        assert str(kept.content).startswith("Deleted task 'Plants'")


async def test_a_relative_update_moves_the_task_once(database: str, runtime_factory: Any) -> None:
    gate = Gate()
    step = message("update_task", {"task_id": "plants", "schedule": "in 2 hours"})
    clock = FakeClock(START_AT)
    rt = make_runtime("tool_node", runtime_factory, database, gate, step, clock=clock)
    async with rt:
        await plants(rt)

        async def later() -> None:
            await clock.advance(1800)

        first, kept = await ask_and_answer(rt, gate, meanwhile=later)
        task = await rt.get_task("plants")
        assert (task.next_run_at, task.version) == (START_AT + timedelta(hours=2), 1)
        assert kept.content == first.content


@pytest.mark.parametrize("tool_name", ["pause_task", "resume_task"])
async def test_pause_and_resume_answer_as_first(
    database: str, runtime_factory: Any, tool_name: str
) -> None:
    gate = Gate()
    step = message(tool_name, {"task_id": "plants"})
    rt = make_runtime("tool_node", runtime_factory, database, gate, step)
    async with rt:
        await plants(rt, paused=tool_name == "resume_task")

        async def undo() -> None:  # the user undoes it elsewhere before answering
            if tool_name == "pause_task":
                await rt.resume_task("plants")
            else:
                await rt.pause_task("plants")

        first, kept = await ask_and_answer(rt, gate, meanwhile=undo)
        assert kept.content == first.content
        assert (await rt.get_task("plants")).state == (
            "active" if tool_name == "pause_task" else "paused"
        )


async def test_a_refusal_is_answered_as_first(database: str, runtime_factory: Any) -> None:
    gate = Gate()
    step = message("delete_task", {"task_id": "plants"})
    rt = make_runtime("tool_node", runtime_factory, database, gate, step)
    async with rt:

        async def made() -> None:  # the task exists by the time the user answers
            await plants(rt)

        first, kept = await ask_and_answer(rt, gate, meanwhile=made)
        assert kept.status == "error" and kept.content == first.content
        assert "no task with id 'plants'" in str(kept.content)
        assert [t.id for t in await rt.list_tasks()] == ["plants"]


# -- with approvals ---------------------------------------------------------------------
# An approval's interrupt() ends the step like the user's tool does: the other calls of
# its message run again when the human answers.


async def answer_approvals(
    rt: SchedulerRuntime, gate: Gate, out: dict[str, Any], *, meanwhile: Any = None
) -> dict[str, Any]:
    """Approve each call as it asks, naming it, until the turn ends."""
    for _ in range(8):
        pending = out.get("__interrupt__")
        if not pending:
            return out
        (request,) = [item.value for item in pending]
        assert request["type"] == APPROVAL_KIND
        if meanwhile is not None:
            await meanwhile()
        answer = {"tool_call_id": request["tool_call_id"], "approved": True}
        out = await turn(rt, gate, Command(resume=answer))
    raise AssertionError("still asking after 8 answers")


def scheduler_answers(final: dict[str, Any], gate: Gate) -> list[tuple[ToolMessage, ToolMessage]]:
    """Each call's first answer and the one the conversation kept."""
    kept = [m for m in final["messages"] if isinstance(m, ToolMessage)]
    return [(gate.answers[str(m.tool_call_id)][0], m) for m in kept]


async def test_approved_tasks_are_answered_as_first_while_others_wait(
    database: str, runtime_factory: Any
) -> None:
    gate = Gate()
    step = calls(new_task("Tea", DAILY), new_task("Cake", DAILY))
    limits = SchedulerLimits(require_approval=True)
    rt = make_runtime("tool_node", runtime_factory, database, gate, step, limits=limits)
    async with rt:

        async def pause_stored() -> None:  # changed before the next answer re-runs it
            for task in await rt.list_tasks(state="active"):
                await rt.pause_task(task.id)

        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        final = await answer_approvals(rt, gate, out, meanwhile=pause_stored)
        assert sorted(t.name for t in await rt.list_tasks()) == ["Cake", "Tea"]
        for first, kept in scheduler_answers(final, gate):
            assert kept.content == first.content and "state: active" in str(kept.content)


@pytest.mark.parametrize("tool_name", ["run_task_now", "delete_task", "pause_task"])
async def test_calls_beside_an_approval_act_once(
    database: str, runtime_factory: Any, tool_name: str
) -> None:
    gate = Gate()
    step = calls((tool_name, {"task_id": "plants"}), new_task("Tea", DAILY))
    limits = SchedulerLimits(require_approval=True)
    rt = make_runtime("tool_node", runtime_factory, database, gate, step, limits=limits)
    async with rt:
        await plants(rt)

        async def undo() -> None:
            await gate.first_answer(str(step.tool_calls[0]["id"]))
            if tool_name == "pause_task":
                await rt.resume_task("plants")

        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        final = await answer_approvals(rt, gate, out, meanwhile=undo)
        await rt.wait_idle()
        for first, kept in scheduler_answers(final, gate):
            assert kept.status == "success" and kept.content == first.content
        if tool_name == "run_task_now":
            assert len(await rt.history("plants")) == 1
        if tool_name == "delete_task":
            assert [t.name for t in await rt.list_tasks()] == ["Tea"]
        if tool_name == "pause_task":  # resumed meanwhile, and not paused again
            assert (await rt.get_task("plants")).state == "active"


# -- what is kept -------------------------------------------------------------------------


async def test_calls_outside_a_graph_keep_no_answer(sqlite_url: str, runtime_factory: Any) -> None:
    gate = Gate()
    rt = make_runtime("tool_node", runtime_factory, sqlite_url, gate, message("list_tasks", {}))
    async with rt:
        await plants(rt)
        (pause,) = [t for t in scheduler_tools(rt) if t.name == "pause_task"]
        call = {"name": "pause_task", "args": {"task_id": "plants"}, "type": "tool_call"}
        cfg = config(gate)
        first = await pause.ainvoke({**call, "id": "c1"}, config=cfg)
        await rt.resume_task("plants")
        again = await pause.ainvoke({**call, "id": "c1"}, config=cfg)
        assert first.content == again.content  # both paused it: nothing to re-run here
        assert (await rt.get_task("plants")).state == "paused"
        query = select(tool_calls_table.c.id)
        assert await rt.store.transaction(lambda conn: conn.execute(query).all()) == []


async def test_a_write_carrying_an_answered_call_is_undone(
    database: str, runtime_factory: Any
) -> None:
    """The answer and the change are one transaction: a change whose call was answered
    already (by another run of it) is not kept."""
    gate = Gate()
    rt = make_runtime("tool_node", runtime_factory, database, gate, message("list_tasks", {}))
    async with rt:
        await plants(rt)
        service = rt.tasks
        call = ToolCall("alice", "T|tools:1", "c")
        kept = service.answer(call, tool="t", text="Done.", error=False)
        assert await service.keep_answer(kept) == kept

        def again(_: Any) -> CallAnswer:
            return replace(kept, text="Done again.")

        with pytest.raises(CallAnswered):
            await service.create(
                name="Tea", schedule=Cron("0 10 * * *"), trigger="Tea.", owner="alice", answer=again
            )
        with pytest.raises(CallAnswered):
            await service.update("plants", owner="alice", name="Garden", answer=again)
        with pytest.raises(CallAnswered):
            await service.pause("plants", owner="alice", answer=again)
        with pytest.raises(CallAnswered):
            await service.delete("plants", owner="alice", answer=again)
        with pytest.raises(CallAnswered):
            await rt.run_now("plants", owner="alice", wait=False, answer=again)
        task = await rt.get_task("plants")
        assert (task.name, task.state, task.version) == ("Plants", "active", 0)
        assert [t.id for t in await rt.list_tasks()] == ["plants"]
        assert await rt.history("plants") == []
        assert await service.find_answer(call) == kept


async def test_two_runs_of_a_call_at_once_store_one_task(
    database: str, runtime_factory: Any
) -> None:
    """A ToolNode's call may still be running when the step is resumed and run again."""
    gate = Gate()
    rt = make_runtime("tool_node", runtime_factory, database, gate, message("list_tasks", {}))
    async with rt:
        (schedule,) = [t for t in scheduler_tools(rt) if t.name == "schedule_task"]
        call = {
            "name": "schedule_task",
            "args": {"name": "Tea", "schedule": "in 2 hours", "prompt": "Tea."},
            "id": "call_tea",
            "type": "tool_call",
        }
        step: RunnableConfig = {
            "configurable": {"thread_id": "T", "user_id": "alice", "checkpoint_ns": "tools:1"}
        }
        answers = await asyncio.gather(*(schedule.ainvoke(call, config=step) for _ in range(4)))
        assert len(await rt.list_tasks()) == 1
        assert len({a.content for a in answers}) == 1
        assert str(answers[0].content).startswith("Scheduled task 'Tea'")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_run_again_from_a_lost_checkpoint_acts_once(
    sqlite_url: str, runtime_factory: Any, kind: str
) -> None:
    """A process that dies after a scheduler call answered, before LangGraph wrote the
    step's checkpoint (``durability="async"``, its default), runs the call again from a
    new checkpoint, under another namespace: it still acts once, and answers as first.

    The crash is made by deleting the checkpoints written after the model's message
    (which stays, as that checkpoint's pending write) from the real SQLite checkpointer."""
    step = calls(("schedule_task", {"name": "Tea", "schedule": "in 2 hours", "prompt": "Tea."}))
    gate = Gate(reruns=False)
    rt = make_runtime(kind, runtime_factory, sqlite_url, gate, step)
    async with rt:
        cfg = config(gate)
        await rt.ainvoke({"messages": [HumanMessage("Tea in two hours, please.")]}, cfg)
        (task,) = await rt.list_tasks()
        history = [s async for s in rt.graph.aget_state_history(cfg)]
        # The snapshot before the first one that runs the tools (history is newest
        # first): the model asked for the call from it, and its write is kept there.
        oldest = history[::-1]
        tools = next(i for i, s in enumerate(oldest) if any("tool" in n for n in s.next))
        asked = oldest[tools - 1]
        lost = asked.config["configurable"]["checkpoint_id"]
        saver = rt.graph.checkpointer
        assert isinstance(saver, AsyncSqliteSaver)
        for table in ("checkpoints", "writes"):
            await saver.conn.execute(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id > ?", ("T", lost)
            )
        await saver.conn.commit()
        namespaces = {m.get("langgraph_checkpoint_ns") for m in gate.namespaces}
        gate.next_run()
        final = await rt.ainvoke(None, cfg)
        assert len({m.get("langgraph_checkpoint_ns") for m in gate.namespaces}) == 2
        assert namespaces < {m.get("langgraph_checkpoint_ns") for m in gate.namespaces}
        assert [t.id for t in await rt.list_tasks()] == [task.id]
        (kept,) = [m for m in final["messages"] if isinstance(m, ToolMessage)]
        first, again = gate.answers[str(kept.tool_call_id)]
        assert first.content == again.content == kept.content
        assert f"id: {task.id}" in str(kept.content)


class _Appending(TypedDict):
    messages: Annotated[list[AnyMessage], operator.add]


async def test_a_model_message_id_repeated_in_an_appending_channel_keys_no_call(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # A graph whose messages channel appends (not add_messages) keeps both model
    # messages of two turns that repeat an id, with the same call id and arguments: the
    # second is a request of its own, and acts anew.
    holder: list[SchedulerRuntime] = []
    args = {"name": "Tea", "schedule": "in 2 hours", "prompt": "Tea."}

    def agent(state: _Appending) -> dict[str, Any]:
        if isinstance(state["messages"][-1], ToolMessage):
            return {"messages": [AIMessage("Done.", id=f"done-{len(state['messages'])}")]}
        call = {"name": "schedule_task", "args": args, "id": "call_0", "type": "tool_call"}
        return {"messages": [AIMessage("", tool_calls=[call], id="same")]}

    builder = StateGraph(_Appending)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(scheduler_tools(lambda: holder[0])))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    rt = runtime_factory(builder, database=sqlite_url, clock=FakeClock(START_AT))
    holder.append(rt)
    async with rt:
        cfg: RunnableConfig = {"configurable": {"thread_id": "T", "user_id": "alice"}}
        for turn_ in (1, 2):
            await rt.ainvoke({"messages": [HumanMessage(f"Tea, {turn_}.", id=f"h{turn_}")]}, cfg)
        assert [t.name for t in await rt.list_tasks()] == ["Tea", "Tea"]
