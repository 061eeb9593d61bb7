"""A run record's summary is the turn's own reply, never an earlier turn's on its thread.

The thread's state at a turn's end holds the earlier turns too (a user's, a previous
fire's): a turn that wrote no AI message (it stopped at an ``interrupt()``, its graph
ended without calling the model, or a node caught the model's failure) used to be
summarised by the last reply before it, or by its own prompt.
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.types import interrupt
from pydantic import BaseModel

from langgraph_scheduler import Once, SchedulerRuntime, SchedulerState, trigger_node
from langgraph_scheduler._turns import WAITING_FOR_INPUT, turn_summary
from langgraph_scheduler.middleware import SchedulerMiddleware
from langgraph_scheduler.scripted import ScriptedChatModel, tool_call

from .helpers import FAKE_START


@tool
def ask_user(question: str) -> str:
    """Ask the user a question and wait for the answer."""
    return str(interrupt({"question": question}))


async def _task(rt: SchedulerRuntime, prompt: str, thread: str) -> str:
    task = await rt.create_task(
        name=prompt, schedule=Once(FAKE_START), trigger=prompt, thread_id=thread
    )
    return task.id


async def test_a_turn_that_stops_at_an_interrupt_says_it_waits_not_an_earlier_reply(
    sqlite_url: str, runtime_factory: Any
) -> None:
    model = ScriptedChatModel(
        steps=[
            "Earlier reply to the user.",
            tool_call("ask_user", {"question": "Which one?"}),
            tool_call("ask_user", {"question": "Which one?"}, text="I need to ask you first."),
        ]
    )
    scheduler = SchedulerMiddleware()
    rt = runtime_factory(
        create_agent(model, tools=[ask_user], middleware=[scheduler]), database=sqlite_url
    )
    scheduler.bind(rt)
    config: Any = {"configurable": {"thread_id": "T"}}
    async with rt:
        await rt.ainvoke({"messages": [HumanMessage("hello")]}, config)
        first = await rt.run_now(await _task(rt, "Check the order", "T"))
        state = await rt.graph.aget_state(config)
        # Another thread: one held at an interrupt takes no fire (the question would go).
        second = await rt.run_now(await _task(rt, "Check the order again", "U"))
    # The turn ran and is now held at its interrupt: it said nothing but its question.
    assert state.next == ("tools",) and state.interrupts
    assert state.values["messages"][-1].tool_calls
    assert (first.outcome, first.summary) == ("success", WAITING_FOR_INPUT)
    # What the model wrote before it stopped comes after the note.
    assert second.outcome == "success"
    assert second.summary == f"{WAITING_FOR_INPUT} I need to ask you first."


async def test_a_turn_that_writes_no_ai_message_has_an_empty_summary(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """A hand-built graph whose node catches the model's failure and writes nothing, or
    asks with ``interrupt()`` before calling the model."""
    model = ScriptedChatModel(
        steps=[
            RuntimeError("the provider is down"),
            "Hello, user.",
            "The second fire's reply.",
            RuntimeError("the provider is down again"),
        ]
    )
    holder: list[SchedulerRuntime] = []

    async def answer(state: SchedulerState) -> dict[str, Any]:
        if "confirm" in state["messages"][-1].text:
            interrupt("Shall I go on?")
        try:
            return {"messages": [await model.ainvoke(state["messages"])]}
        except RuntimeError:
            return {}  # tried again at the next fire

    builder = StateGraph(SchedulerState)
    builder.add_node("trigger", lambda s: trigger_node(s, verify=holder[0].verify_task_source))
    builder.add_node("answer", answer)
    builder.add_edge(START, "trigger")
    builder.add_edge("trigger", "answer")
    rt = runtime_factory(builder, database=sqlite_url)
    holder.append(rt)
    async with rt:
        task_id = await _task(rt, "Summarise the news", "Q")
        silent_first = await rt.run_now(task_id)  # the thread holds only its prompt
        await rt.ainvoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "Q"}})
        answered = await rt.run_now(task_id)
        silent_again = await rt.run_now(task_id)
        asking = await rt.run_now(await _task(rt, "Clean up, but confirm first", "Q"))
        state = await rt.graph.aget_state({"configurable": {"thread_id": "Q"}})
    assert [m.text for m in state.values["messages"] if isinstance(m, AIMessage)] == [
        "Hello, user.",
        "The second fire's reply.",
    ]
    assert state.next == ("answer",) and state.interrupts
    records = [silent_first, answered, silent_again, asking]
    assert [(r.outcome, r.summary) for r in records] == [
        ("success", ""),  # not its own prompt
        ("success", "The second fire's reply."),
        ("success", ""),  # not the reply of the fire before
        ("success", WAITING_FOR_INPUT),
    ]


def test_the_summary_of_served_values_starts_after_the_turns_own_trigger() -> None:
    """Served values are message dicts; a server keeps content blocks as they came."""

    def trigger(run_id: str) -> dict[str, Any]:
        source = {"task_id": "t", "run_id": run_id}
        return {"type": "human", "content": "go", "additional_kwargs": {"task_source": source}}

    blocks = [{"type": "text", "text": "Fresh "}, {"type": "text", "text": "news."}]
    earlier = [{"type": "human", "content": "hi"}, {"type": "ai", "content": "Old reply."}]
    answered = {"messages": [*earlier, trigger("r1"), {"type": "ai", "content": blocks}]}
    assert turn_summary(answered, "r1") == "Fresh news."
    silent = {
        "messages": [*earlier, trigger("r1"), trigger("r2"), {"type": "tool", "content": "x"}]
    }
    assert turn_summary(silent, "r2") == ""
    assert turn_summary(silent, "r2", waiting=True) == WAITING_FOR_INPUT
    # A graph that dropped the trigger: its last AI message, the only clue left.
    assert turn_summary({"messages": earlier}, "r3") == "Old reply."
    assert turn_summary(None, "r1") == "" and turn_summary({"count": 1}, "r1") == ""


class Forecast(BaseModel):
    """The structured answer of the agent below."""

    city: str
    outlook: str


async def test_a_structured_response_is_the_summary_of_its_turn(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """``ToolStrategy`` ends a turn with an AI message of tool calls alone, answered by
    the structured response: that answer, not an empty summary."""
    model = ScriptedChatModel(
        steps=[
            tool_call("Forecast", {"city": "Oslo", "outlook": "snow"}),
            tool_call("Forecast", {"city": "Bergen", "outlook": "rain"}),
        ]
    )
    scheduler = SchedulerMiddleware()
    agent = create_agent(model, middleware=[scheduler], response_format=ToolStrategy(Forecast))
    rt = runtime_factory(agent, database=sqlite_url)
    scheduler.bind(rt)
    async with rt:
        first = await rt.run_now(await _task(rt, "Weather in Oslo?", "W"))
        state = await rt.graph.aget_state({"configurable": {"thread_id": "W"}})
        second = await rt.run_now(await _task(rt, "Weather in Bergen?", "W"))
    assert state.values["structured_response"] == Forecast(city="Oslo", outlook="snow")
    assert (first.outcome, first.summary) == (
        "success",
        "Returning structured response: city='Oslo' outlook='snow'",
    )
    # The thread's next turn has its own answer, not the one before.
    assert second.summary == "Returning structured response: city='Bergen' outlook='rain'"


def test_tool_calls_alone_are_summarised_by_their_answers_in_the_turn() -> None:
    """In memory and as a server's dicts: the answers after the last AI message, in
    order; an AI message with text of its own keeps it."""
    source = {"task_id": "t", "run_id": "r1"}
    calls = [{"name": "a", "args": {}, "id": "1"}, {"name": "b", "args": {}, "id": "2"}]
    messages: list[Any] = [
        HumanMessage("go", additional_kwargs={"task_source": source}),
        AIMessage("", tool_calls=calls),
        ToolMessage("first answer", tool_call_id="1"),
        ToolMessage("second answer", tool_call_id="2"),
    ]
    assert turn_summary({"messages": messages}, "r1") == "first answer\nsecond answer"
    served = [m.model_dump() for m in messages]
    assert turn_summary({"messages": served}, "r1") == "first answer\nsecond answer"
    talking = [*messages[:1], AIMessage("Let me look.", tool_calls=calls), *messages[2:]]
    assert turn_summary({"messages": talking}, "r1") == "Let me look."
    # Answers before this turn's trigger are another turn's.
    earlier = [AIMessage("", tool_calls=calls[:1]), messages[2], *messages[:1]]
    assert turn_summary({"messages": earlier}, "r1") == ""
