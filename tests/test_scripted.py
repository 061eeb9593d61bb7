"""The scripted model as a user's own tests drive it: a script that runs out, or is
written carelessly, says so instead of looping or answering nonsense. Real graphs, a
real runtime on SQLite."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.assistant import build_assistant
from langgraph_scheduler.scripted import ScriptedChatModel, tool_call
from langgraph_scheduler.testing import FakeClock

START_AT = datetime(2027, 3, 1, 8, 0, tzinfo=timezone.utc)
TEA = {"name": "Tea", "schedule": "every day at 9", "prompt": "Remind me to make tea."}


async def test_a_script_that_ends_in_a_tool_call_stops_the_turn_when_it_runs_out() -> None:
    # The last step was reused: the agent called the tool again on every pass of its
    # loop, up to LangGraph's recursion limit of 10,007 steps (minutes of CPU).
    holder: list[SchedulerRuntime] = []
    model = ScriptedChatModel(steps=[tool_call("schedule_task", TEA)])
    builder = build_assistant(lambda: holder[0], model=model)
    async with SchedulerRuntime(builder, database="sqlite://", clock=FakeClock(START_AT)) as rt:
        holder.append(rt)
        config: RunnableConfig = {
            "configurable": {"thread_id": "t", "user_id": "alice"},
            "recursion_limit": 50,  # without the refusal: GraphRecursionError, not a hang
        }
        with pytest.raises(RuntimeError) as ran_out:
            await rt.ainvoke({"messages": [("user", "Tea daily at 9")]}, config)
        assert str(ran_out.value) == (
            "ScriptedChatModel ran out of steps: call 2 of a script of 1 would repeat its "
            "last step, a call to 'schedule_task', which an agent answers and calls again "
            "for good. End the script with a reply (steps=[..., 'Done.']), or pass "
            "cycle=True to repeat it."
        )
        assert model.calls == 2
        assert len(await rt.list_tasks(owner="alice")) == 1  # the one scripted call


async def test_a_script_that_ends_in_a_reply_keeps_answering_it() -> None:
    # What the README's examples rely on: one reply for every fire of a task.
    model = ScriptedChatModel(steps=[tool_call("list_tasks", {}), "Yesterday: 3 notes."])
    replies = [await model.ainvoke("hi") for _ in range(4)]
    assert replies[0].tool_calls[0]["name"] == "list_tasks"
    assert [r.text for r in replies[1:]] == ["Yesterday: 3 notes."] * 3


def test_a_script_of_tool_calls_cycles_when_asked_to() -> None:
    model = ScriptedChatModel(steps=[tool_call("list_tasks", {}), "ok"], cycle=True)
    replies = [model.invoke("hi") for _ in range(3)]
    names = [m.tool_calls[0]["name"] if m.tool_calls else m.text for m in replies]
    assert names == ["list_tasks", "ok", "list_tasks"]


@pytest.mark.parametrize("steps", ["Yesterday: 3 notes.", b"ok"])
def test_a_script_given_as_one_string_is_refused(steps: object) -> None:
    # A string is a sequence: the model answered "Y", "e", "s", ... one per call.
    with pytest.raises(ValueError, match=r"steps is a list of steps, got a (str|bytes) ") as bad:
        ScriptedChatModel(steps=steps)  # type: ignore[arg-type]
    assert f"steps=[{steps!r}]" in str(bad.value)


@pytest.mark.parametrize("step", [None, 5, {"content": "hi"}, ["hi"]])
def test_a_step_that_is_no_reply_is_refused_not_answered_as_its_repr(step: object) -> None:
    # ``steps=[None]`` answered "None", a dict its repr: a script's slip read as a reply.
    with pytest.raises(ValueError, match=r"steps\[1\] is .*, not a step: give a reply"):
        ScriptedChatModel(steps=["fine", step])
    # A step function's result is held to the same.
    model = ScriptedChatModel(steps=[lambda messages: step])
    with pytest.raises(TypeError, match="a step function of ScriptedChatModel returned"):
        model.invoke("hi")
    # What a step may be still works: a reply, an AIMessage, an exception, a function.
    fine = ScriptedChatModel(
        steps=["a", AIMessage("b"), lambda messages: "c", ValueError("d")], cycle=True
    )
    assert [fine.invoke("hi").text for _ in range(3)] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="d"):
        fine.invoke("hi")


def test_each_call_from_many_threads_takes_its_own_step() -> None:
    # Sync ``batch`` calls the model from a thread pool: two calls took one step, and the
    # counter lost calls. A tiny switch interval makes the threads interleave often.
    calls, threads = 1000, 8
    model = ScriptedChatModel(steps=[str(i) for i in range(calls * threads)])
    replies: list[str] = []

    def call() -> None:
        for _ in range(calls):
            replies.append(model.invoke("hi").text)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers = [threading.Thread(target=call) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(replies, key=int) == [str(i) for i in range(calls * threads)]
    assert model.calls == calls * threads
