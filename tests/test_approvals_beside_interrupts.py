"""An approval asked in the same model message as the application's own ``interrupt()``.

``create_agent`` runs each call as its own LangGraph task: the approval and the user's
question are separate interrupts, each answered by its id. A ``ToolNode`` reached by an
edge runs every call of the message in one task, where LangGraph hands resume values to
the task's interrupts by position: an approval there would shift the user's answers onto
the wrong tool, so the scheduler call is refused instead and asks the model to call it
again alone, also under another messages key, and where the state lacks the message.
Real graphs on the scripted model, a real checkpointer, both backends.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command
from sqlalchemy import func, select

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import approvals_table
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import APPROVAL_KIND, SchedulerLimits, scheduler_tools

from .test_approvals import calls, new_task
from .test_tool_reruns import (
    DAILY,
    QUESTION,
    START_AT,
    Gate,
    config,
    confirm_tool,
    make_runtime,
    plants,
    turn,
)

APPROVAL = SchedulerLimits(require_approval=True)
CHANGES = {
    "schedule_task": new_task("Tea", DAILY),
    "update_task": ("update_task", {"task_id": "plants", "schedule": DAILY}),
}


def mixed(action: str, *, user_first: bool) -> AIMessage:
    """A model message calling ``action`` (which needs an approval) and the user's tool."""
    specs = [CHANGES[action], ("confirm", {"question": QUESTION})]
    return calls(*(reversed(specs) if user_first else specs))


def answers(state: dict[str, Any]) -> dict[str, ToolMessage]:
    return {str(m.name): m for m in state["messages"] if isinstance(m, ToolMessage)}


async def stored_approvals(rt: SchedulerRuntime) -> int:
    query = select(func.count()).select_from(approvals_table)
    count: int = await rt.store.transaction(lambda conn: conn.execute(query).scalar_one())
    return count


async def unchanged(rt: SchedulerRuntime, action: str) -> None:
    """Nothing of the refused or rejected ``action`` was stored."""
    if action == "schedule_task":
        assert await rt.list_tasks() == []
    else:
        task = await rt.get_task("plants")
        assert task.describe_schedule().startswith("at 09:00 every day") and task.version == 0


# -- one task for every call (a ToolNode reached by an edge) ---------------------------


@pytest.mark.parametrize("user_first", [False, True])
@pytest.mark.parametrize("action", sorted(CHANGES))
async def test_an_approval_is_not_asked_in_the_task_of_the_users_own_interrupt(
    database: str, runtime_factory: Any, action: str, user_first: bool
) -> None:
    # The Gate lets the user's tool ask only once the scheduler's call has ended: the
    # approval would take the task's first resume value, the user's question the
    # second, and once approved the call asks no more, so the user's tool would get
    # the approval's answer.
    gate = Gate()
    step = mixed(action, user_first=user_first)
    rt = make_runtime("tool_node", runtime_factory, database, gate, step, limits=APPROVAL)
    async with rt:
        if action == "update_task":
            await plants(rt)
        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        assert [item.value for item in out["__interrupt__"]] == [QUESTION]
        final = await turn(rt, gate, Command(resume="no"))
        assert "__interrupt__" not in final
        got = answers(final)
        assert got["confirm"].content == "The user answered 'no'."
        refusal = str(got[action].content)
        assert got[action].status == "error"
        assert "cannot be asked in the same step as 'confirm'" in refusal
        assert f"call {action} again in a message of its own" in refusal
        await unchanged(rt, action)
        assert await stored_approvals(rt) == 0


# -- a ToolNode keeping its messages under another key ------------------------------------


class _Chat(TypedDict):
    chat: Annotated[list[AnyMessage], add_messages]


def chat_runtime(
    runtime_factory: Any, database: str, gate: Gate, step: AIMessage
) -> SchedulerRuntime:
    """A hand-built graph whose conversation is ``chat``: ``ToolNode(messages_key="chat")``
    runs the scheduler's calls and the user's ``confirm`` in one task."""
    holder: list[SchedulerRuntime] = []
    tools = [*scheduler_tools(lambda: holder[0], limits=APPROVAL), confirm_tool(gate)]
    model = ScriptedChatModel(steps=[step, "Done."]).bind_tools(tools)

    async def agent(state: _Chat) -> dict[str, Any]:
        return {"chat": [await model.ainvoke(state["chat"])]}

    builder = StateGraph(_Chat)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools, messages_key="chat"))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", lambda s: tools_condition(s, messages_key="chat"))
    builder.add_edge("tools", "agent")
    rt: SchedulerRuntime = runtime_factory(
        builder,
        database=database,
        timezone="Europe/Berlin",
        clock=FakeClock(START_AT),
        messages_key="chat",
    )
    holder.append(rt)
    return rt


def chat_answers(state: dict[str, Any]) -> dict[str, ToolMessage]:
    return {str(m.name): m for m in state["chat"] if isinstance(m, ToolMessage)}


@pytest.mark.parametrize("user_first", [False, True])
async def test_an_approval_beside_the_users_tool_is_refused_under_another_messages_key(
    database: str, runtime_factory: Any, user_first: bool
) -> None:
    # The tools find the model message in "chat": an approval there would take the
    # user's answers by position, as under "messages".
    gate = Gate()
    step = mixed("schedule_task", user_first=user_first)
    rt = chat_runtime(runtime_factory, database, gate, step)
    async with rt:
        out = await turn(rt, gate, {"chat": [HumanMessage("Please.")]})
        assert [item.value for item in out["__interrupt__"]] == [QUESTION]
        final = await turn(rt, gate, Command(resume="no"))
        assert "__interrupt__" not in final
        got = chat_answers(final)
        assert got["confirm"].content == "The user answered 'no'."
        assert got["schedule_task"].status == "error"
        assert "cannot be asked in the same step as 'confirm'" in str(got["schedule_task"].content)
        assert await rt.list_tasks() == [] and await stored_approvals(rt) == 0


@pytest.mark.parametrize("user_first", [False, True])
async def test_an_approval_is_refused_where_the_state_lacks_the_model_message(
    sqlite_url: str, runtime_factory: Any, user_first: bool
) -> None:
    # The application's node runs the message's calls itself, through a ToolNode given
    # the bare calls, before the message is in the state: the tools cannot see which
    # calls share the step, so they do not ask blind.
    holder: list[SchedulerRuntime] = []
    gate = Gate()
    tool_node = ToolNode([*scheduler_tools(lambda: holder[0], limits=APPROVAL), confirm_tool(gate)])
    step = mixed("schedule_task", user_first=user_first)

    async def agent(state: _Chat, config: RunnableConfig) -> dict[str, Any]:
        bare = [{**c, "type": "tool_call"} for c in step.tool_calls]
        answered = await tool_node.ainvoke(bare, config)
        return {"chat": [step, *answered["messages"]]}

    builder = StateGraph(_Chat)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    rt = runtime_factory(
        builder, database=sqlite_url, clock=FakeClock(START_AT), messages_key="chat"
    )
    holder.append(rt)
    async with rt:
        out = await turn(rt, gate, {"chat": [HumanMessage("Please.")]})
        assert [item.value for item in out["__interrupt__"]] == [QUESTION]
        final = await turn(rt, gate, Command(resume="no"))
        got = chat_answers(final)
        assert got["confirm"].content == "The user answered 'no'."
        assert got["schedule_task"].status == "error"
        refusal = str(got["schedule_task"].content)
        assert "the graph state holds no model message with this call" in refusal
        assert await rt.list_tasks() == [] and await stored_approvals(rt) == 0


# -- a task per call (create_agent) ------------------------------------------------------


def pending_ids(out: dict[str, Any]) -> tuple[str, str]:
    """The ids of the approval's interrupt and of the user's question."""
    by_kind = {
        "approval" if isinstance(i.value, dict) and i.value["type"] == APPROVAL_KIND else "user": i
        for i in out["__interrupt__"]
    }
    assert sorted(by_kind) == ["approval", "user"]
    return by_kind["approval"].id, by_kind["user"].id


@pytest.mark.parametrize("form", ["both", "approval_then_user", "user_then_approval"])
@pytest.mark.parametrize("user_first", [False, True])
@pytest.mark.parametrize("action", sorted(CHANGES))
async def test_each_answer_reaches_its_own_interrupt_in_tasks_of_their_own(
    database: str, runtime_factory: Any, action: str, user_first: bool, form: str
) -> None:
    gate = Gate(reruns=False)
    step = mixed(action, user_first=user_first)
    (call_id,) = [str(c["id"]) for c in step.tool_calls if c["name"] == action]
    rt = make_runtime("create_agent", runtime_factory, database, gate, step, limits=APPROVAL)
    async with rt:
        if action == "update_task":
            await plants(rt)
        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        approval, question = pending_ids(out)
        yes = {"tool_call_id": call_id, "approved": True}
        if form == "both":
            final = await turn(rt, gate, Command(resume={approval: yes, question: "no"}))
        elif form == "approval_then_user":
            out = await turn(rt, gate, Command(resume={approval: True}))
            assert [i.id for i in out["__interrupt__"]] == [question]
            assert await stored_approvals(rt) == 1
            final = await turn(rt, gate, Command(resume="no"))  # the one left: plain
        else:
            out = await turn(rt, gate, Command(resume={question: "no"}))
            assert [i.id for i in out["__interrupt__"]] == [approval]
            await unchanged(rt, action)  # the user's answer approved nothing
            final = await turn(rt, gate, Command(resume=yes))
        assert "__interrupt__" not in final
        got = answers(final)
        assert got["confirm"].content == "The user answered 'no'."
        assert got[action].status == "success"
        if action == "schedule_task":
            assert [t.name for t in await rt.list_tasks()] == ["Tea"]
        else:
            task = await rt.get_task("plants")
            assert task.describe_schedule().startswith("at 10:00 every day") and task.version == 1
        assert len(gate.answers[call_id]) == 1  # stored and answered once


async def test_a_plain_resume_of_both_interrupts_is_refused_before_anything_runs(
    database: str, runtime_factory: Any
) -> None:
    gate = Gate(reruns=False)
    step = mixed("schedule_task", user_first=False)
    rt = make_runtime("create_agent", runtime_factory, database, gate, step, limits=APPROVAL)
    async with rt:
        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        approval, question = pending_ids(out)
        with pytest.raises(RuntimeError, match="multiple pending interrupts"):
            await rt.ainvoke(Command(resume=True), config(gate))
        assert await rt.list_tasks() == []
        final = await turn(rt, gate, Command(resume={approval: False, question: "no"}))
        assert "__interrupt__" not in final
        assert str(answers(final)["schedule_task"].content).startswith("The task was not")
        assert await rt.list_tasks() == []


async def test_answers_swapped_by_a_client_stay_with_the_interrupt_they_were_sent_to(
    database: str, runtime_factory: Any
) -> None:
    # A hostile client sends the approval's own payload to the user's interrupt and the
    # user's words to the approval: the id decides, not what an answer names.
    gate = Gate(reruns=False)
    step = mixed("schedule_task", user_first=False)
    (call_id,) = [str(c["id"]) for c in step.tool_calls if c["name"] == "schedule_task"]
    rt = make_runtime("create_agent", runtime_factory, database, gate, step, limits=APPROVAL)
    async with rt:
        out = await turn(rt, gate, {"messages": [HumanMessage("Please.")]})
        approval, question = pending_ids(out)
        swapped = {approval: "no", question: {"tool_call_id": call_id, "approved": True}}
        final = await turn(rt, gate, Command(resume=swapped))
        assert "__interrupt__" not in final
        got = answers(final)
        assert str(got["schedule_task"].content).startswith("The task was not scheduled")
        assert call_id in str(got["confirm"].content)
        assert await rt.list_tasks() == []
