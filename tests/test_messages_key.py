"""A graph that keeps its conversation under another key than ``messages``.

The runtime's ``messages_key`` names that key: scheduled turns send their message there,
run records and transcripts read it from there, and a graph whose input lacks it is
refused at start instead of having every scheduled prompt silently dropped.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.graph import START, StateGraph, add_messages
from typing_extensions import NotRequired, TypedDict

from langgraph_scheduler import (
    Cron,
    InvalidGraph,
    InvalidTask,
    SchedulerRuntime,
    SyncSchedulerRuntime,
    TaskRunRecord,
    TaskSource,
    load_transcript,
    trigger_node,
)
from langgraph_scheduler.cli import main
from langgraph_scheduler.scripted import ScriptedChatModel


class ChatState(TypedDict):
    chat: Annotated[list[AnyMessage], add_messages]
    task_source: NotRequired[TaskSource | None]


def chat_graph(runtime: list[SchedulerRuntime]) -> StateGraph[Any, Any, Any, Any]:
    """A coordinator whose conversation lives under ``chat``: its trigger node checks
    the runtime's signature there, and the model echoes the last message."""
    model = ScriptedChatModel(steps=[lambda messages: f"echo: {messages[-1].text}"], cycle=True)

    def mark(state: Any) -> dict[str, Any]:
        return trigger_node(state, verify=runtime[0].verify_task_source, messages_key="chat")

    async def reply(state: ChatState) -> dict[str, Any]:
        return {"chat": [await model.ainvoke(state["chat"])]}

    builder = StateGraph(ChatState)
    builder.add_node("trigger", mark)
    builder.add_node("reply", reply)
    builder.add_edge(START, "trigger")
    builder.add_edge("trigger", "reply")
    return builder


async def run_once(rt: SchedulerRuntime, prompt: str, thread_id: str) -> TaskRunRecord:
    task = await rt.create_task(
        name="Plants", schedule=Cron("0 9 * * *"), trigger=prompt, thread_id=thread_id
    )
    return await rt.run_now(task.id)


async def test_a_chat_keyed_graph_gets_its_scheduled_prompt_under_chat(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # The prompt used to go under "messages", which LangGraph drops for a graph without
    # that key: the model saw an empty conversation and the summary was empty.
    holder: list[SchedulerRuntime] = []
    rt = runtime_factory(chat_graph(holder), database=sqlite_url, messages_key="chat")
    holder.append(rt)
    async with rt:
        record = await run_once(rt, "Water the plants", "garden")
        state = (await rt.graph.aget_state({"configurable": {"thread_id": "garden"}})).values
        transcript = await rt.transcript("garden")
        saver = rt.graph.checkpointer
        assert saver is not None and not isinstance(saver, bool)
        from_saver = await load_transcript(saver, "garden", store=rt.store, messages_key="chat")
    assert (record.outcome, record.summary) == ("success", "echo: Water the plants")
    trigger, answer = state["chat"]
    assert isinstance(trigger, HumanMessage) and trigger.text == "Water the plants"
    assert trigger.additional_kwargs["task_source"]["run_id"] == record.run_id
    assert isinstance(answer, AIMessage)
    # The trigger node found the signed attribution under "chat".
    assert state["task_source"]["run_id"] == record.run_id
    for shown in (transcript, from_saver):
        (turn,) = shown.scheduled_turns
        assert turn.run == record
        assert [m.text for m in turn.messages] == ["Water the plants", "echo: Water the plants"]


def chat_only() -> StateGraph[Any, Any, Any, Any]:
    """A graph with no ``messages`` (nor ``task_source``) in its state."""

    class Chat(TypedDict):
        chat: Annotated[list[AnyMessage], add_messages]

    builder = StateGraph(Chat)
    builder.add_node("reply", lambda state: {"chat": [AIMessage("hi")]})
    builder.add_edge(START, "reply")
    return builder


@pytest.mark.parametrize("messages_key", ["messages", "talk"])
async def test_a_graph_without_the_key_is_refused_at_start(
    sqlite_url: str, runtime_factory: Any, messages_key: str
) -> None:
    rt = runtime_factory(chat_only(), database=sqlite_url, messages_key=messages_key)
    with pytest.raises(InvalidGraph) as raised:
        await rt.start()
    assert str(raised.value) == (
        f"the graph has no {messages_key!r} key in its input (its keys: 'chat'), so every "
        "scheduled turn's message would be dropped: pass SchedulerRuntime(..., "
        "messages_key=...) naming the key the graph keeps its conversation under, or add "
        f"{messages_key!r} to its state"
    )
    assert not rt.running


async def test_a_compiled_graph_is_checked_and_one_whose_input_is_whole_is_not(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # A functional-API entrypoint takes any input whole: nothing tells what it reads, so
    # it is never refused, and gets the turn under the key named.
    seen: list[Any] = []

    @entrypoint(checkpointer=InMemorySaver())
    def agent(inputs: dict[str, Any]) -> str:
        seen.append(inputs)
        (message,) = inputs["chat"]
        return f"echo: {message.text}"

    rt = runtime_factory(agent, database=sqlite_url, messages_key="chat")
    async with rt:
        record = await run_once(rt, "Hello", "fn")
        # Its state is what it returned, no conversation: an empty transcript (it raised).
        transcript = await rt.transcript("fn")
    assert (record.outcome, record.summary) == ("success", "echo: Hello")
    assert transcript.turns == []
    assert isinstance(seen[0]["chat"][0], BaseMessage)
    assert seen[0]["task_source"]["run_id"] == record.run_id

    compiled = chat_only().compile(checkpointer=InMemorySaver())
    with pytest.raises(InvalidGraph, match="its keys: 'chat'"):
        await runtime_factory(compiled, database=sqlite_url).start()


@pytest.mark.parametrize("messages_key", ["", None, 3])
def test_messages_key_must_name_a_key(messages_key: Any) -> None:
    with pytest.raises(InvalidTask, match="messages_key must name the state key"):
        SchedulerRuntime(None, database="sqlite://", messages_key=messages_key)


async def test_messages_key_is_never_the_key_a_turn_writes_its_attribution_under(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each turn's input writes ``task_source`` itself: under that key the trigger message
    # was overwritten by the attribution, and the conversation read from it.
    told = "messages_key cannot be 'task_source': each scheduled turn writes its attribution"
    with pytest.raises(InvalidTask, match=told):
        SchedulerRuntime(None, database="sqlite://", messages_key="task_source")
    with pytest.raises(InvalidTask, match=told):
        SyncSchedulerRuntime(None, database="sqlite://", messages_key="task_source")
    with pytest.raises(InvalidTask, match=told):
        trigger_node({"task_source": None}, messages_key="task_source")
    with pytest.raises(InvalidTask, match=told):
        await load_transcript(InMemorySaver(), "home", messages_key="task_source")
    database = f"sqlite:///{tmp_path / 'chat.db'}"
    async with SchedulerRuntime(None, database=database):
        pass
    transcript = ["transcript", "home", "--database", database, "--messages-key", "task_source"]
    assert await asyncio.to_thread(main, transcript) == 1
    assert f"error: --{told.replace('_', '-', 1)}" in capsys.readouterr().err  # as typed


async def test_the_cli_reads_a_transcript_under_the_key_it_is_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI's transcript read `messages` only: a thread kept under `chat` read as no
    # thread at all.
    database = f"sqlite:///{tmp_path / 'chat.db'}"
    holder: list[SchedulerRuntime] = []
    async with SchedulerRuntime(chat_graph(holder), database=database, messages_key="chat") as rt:
        holder.append(rt)
        record = await run_once(rt, "Water the plants", "home")
    assert record.outcome == "success"
    transcript = ["transcript", "home", "--database", database]
    assert await asyncio.to_thread(main, transcript) == 1
    err = capsys.readouterr().err
    assert "thread 'home' has no messages under 'messages' (its state keys: 'chat'" in err
    assert await asyncio.to_thread(main, [*transcript, "--messages-key", "chat", "--json"]) == 0
    turns = json.loads(capsys.readouterr().out)["turns"]
    assert [(t["outcome"], t["messages"][-1]["text"]) for t in turns] == [
        ("success", "echo: Water the plants")
    ]
