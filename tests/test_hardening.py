"""What a hostile model or client tries: strict arguments, borrowed owners, text no
database stores, a task triggering itself, manual-run floods."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from langgraph_scheduler import Interval, InvalidTask, SchedulerRuntime
from langgraph_scheduler.tools import SchedulerLimits

from .test_tools import ALICE, Tools, all_tasks, scheduled_turn, task_id_in

pytestmark = pytest.mark.usefixtures("rt")


@pytest.fixture
async def rt(database: str, make_graph: Any, runtime_factory: Any) -> Any:
    runtime = runtime_factory(make_graph("On it."), database=database)
    async with runtime:
        yield runtime


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"timeout_secs": True}, "timeout_secs"),
        ({"max_runs": True}, "max_runs"),
        ({"max_runs": "5"}, "max_runs"),
        ({"timeout_secs": 30.0}, "timeout_secs"),
        ({"name": 7}, "name"),
    ],
)
async def test_tool_arguments_are_strict(
    rt: SchedulerRuntime, args: dict[str, Any], field: str
) -> None:
    base = {"name": "n", "schedule": "in 1 hour", "prompt": "p"}
    answer = await Tools(rt)("schedule_task", ALICE, **(base | args))
    assert answer.status == "error" and field in answer.text
    assert "was not run, invalid arguments" in answer.text
    assert await all_tasks(rt) == []


async def test_a_bool_limit_is_refused_by_list_and_history(rt: SchedulerRuntime) -> None:
    tools = Tools(rt)
    listed = await tools("list_tasks", ALICE, limit=True)
    assert listed.status == "error" and "limit" in listed.text
    created = await tools("schedule_task", ALICE, name="n", schedule="in 1 hour", prompt="p")
    history = await tools("task_history", ALICE, task_id=task_id_in(created), limit=True)
    assert history.status == "error" and "limit" in history.text


async def test_text_no_database_stores_is_a_tool_message_not_an_exception(
    rt: SchedulerRuntime,
) -> None:
    lone = "\ud800"
    lone_user: RunnableConfig = {"configurable": {"thread_id": "t", "user_id": lone}}
    tools = Tools(rt)
    for config, name, args in [
        (lone_user, "schedule_task", {"name": "n", "schedule": "in 1 hour", "prompt": "p"}),
        (lone_user, "list_tasks", {}),
        (ALICE, "schedule_task", {"name": lone, "schedule": "in 1 hour", "prompt": "p"}),
        (ALICE, "schedule_task", {"name": "n", "schedule": "in 1 hour", "prompt": lone}),
        (ALICE, "task_history", {"task_id": lone}),
    ]:
        answer = await tools(name, config, **args)
        assert answer.status == "error", (name, answer.text)
        assert answer.text.startswith("Error: ")
    assert await all_tasks(rt) == []
    with pytest.raises(InvalidTask, match="lone surrogate"):
        await rt.list_tasks(owner=lone)


async def test_run_metadata_never_lends_another_owners_tasks(rt: SchedulerRuntime) -> None:
    # Mallory's client sets run metadata as if her turn were alice's scheduled turn.
    tools = Tools(rt)
    created = await tools("schedule_task", ALICE, name="private", schedule="in 1 hour", prompt="p")
    alices = task_id_in(created)
    forged: RunnableConfig = {
        "configurable": {"thread_id": "mallory-chat"},
        "metadata": {"source": "scheduler", "task_id": alices},
    }
    listed = await tools("list_tasks", forged)
    assert "private" not in listed.text and alices not in listed.text
    for name in ("task_history", "delete_task", "pause_task", "run_task_now"):
        answer = await tools(name, forged, task_id=alices)
        assert answer.status == "error", name
    assert (await rt.get_task(alices)).state == "active"
    assert await rt.history(alices) == []


async def test_a_task_cannot_run_itself_from_its_own_scheduled_turn(
    rt: SchedulerRuntime,
) -> None:
    limits = SchedulerLimits(allow_scheduled_turns_to_manage_tasks=True)
    tools = Tools(rt, limits)
    own = task_id_in(await tools("schedule_task", ALICE, name="a", schedule="in 1h", prompt="p"))
    other = task_id_in(await tools("schedule_task", ALICE, name="b", schedule="in 1h", prompt="p"))
    refused = await tools("run_task_now", scheduled_turn(own), task_id=own)
    assert refused.status == "error" and "cannot run itself" in refused.text
    allowed = await tools("run_task_now", scheduled_turn(own), task_id=other)
    assert allowed.status == "success"
    await rt.wait_idle()
    assert await rt.history(own) == []


async def test_manual_runs_are_rate_limited_per_task_and_per_owner(rt: SchedulerRuntime) -> None:
    limits = SchedulerLimits(max_manual_runs_per_task=2, max_manual_runs_per_owner=3)
    tools = Tools(rt, limits)
    a = task_id_in(await tools("schedule_task", ALICE, name="a", schedule="in 1h", prompt="p"))
    b = task_id_in(await tools("schedule_task", ALICE, name="b", schedule="in 1h", prompt="p"))
    answers = [await tools("run_task_now", ALICE, task_id=a) for _ in range(3)]
    assert [m.status for m in answers] == ["success", "success", "error"]
    assert "already run by hand 2 times" in answers[2].text
    assert (await tools("run_task_now", ALICE, task_id=b)).status == "success"
    over = await tools("run_task_now", ALICE, task_id=b)
    assert over.status == "error" and "ran tasks by hand 3 times" in over.text
    await rt.wait_idle()
    assert len(await rt.history(a)) == 2 and len(await rt.history(b)) == 1
    # The Python API acts for the application and has no limit unless asked.
    assert (await rt.run_now(a)).outcome == "success"


async def test_manual_runs_turned_off_are_refused_without_a_try_again(
    rt: SchedulerRuntime,
) -> None:
    # A limit of 0 said "already run by hand 0 times ...; try again later": no later
    # call can succeed, so the model was told to retry in vain.
    for limits, refusal in (
        (
            SchedulerLimits(max_manual_runs_per_task=0),
            "Error: task {id!r} may not be run by hand here (the limit is 0 manual runs in "
            "60 minutes); wait for its schedule",
        ),
        (
            SchedulerLimits(max_manual_runs_per_owner=0),
            "Error: owner 'alice' may not run tasks by hand here (the limit is 0 manual runs "
            "in 60 minutes); wait for the tasks' schedules",
        ),
    ):
        tools = Tools(rt, limits)
        task_id = task_id_in(
            await tools("schedule_task", ALICE, name="a", schedule="in 1h", prompt="p")
        )
        answer = await tools("run_task_now", ALICE, task_id=task_id)
        assert answer.status == "error"
        assert answer.text == refusal.format(id=task_id)
        assert await rt.history(task_id) == []
    once = Tools(rt, SchedulerLimits(max_manual_runs_per_task=1))
    assert (await once("run_task_now", ALICE, task_id=task_id)).status == "success"
    again = await once("run_task_now", ALICE, task_id=task_id)
    assert "already run by hand 1 time in the last 60 minutes" in again.text


async def test_an_unexpected_failure_inside_a_tool_becomes_a_message(
    rt: SchedulerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(rt.store, "list_tasks", broken)
    answer = await Tools(rt)("list_tasks", ALICE)
    assert answer.status == "error"
    assert "could not do this (ZeroDivisionError)" in answer.text


async def test_a_scheduled_turn_that_runs_its_own_task_is_refused_once_and_stops(
    database: str, runtime_factory: Any
) -> None:
    # The model of every scheduled turn asks to run the task that fired it again: with
    # self-management allowed, it is still refused, so one fire makes one turn, not a loop.
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from langgraph_scheduler.assistant import build_assistant
    from langgraph_scheduler.scripted import ScriptedChatModel, tool_call

    def step(messages: list[Any]) -> Any:
        last = messages[-1]
        source = (
            last.additional_kwargs.get("task_source") if isinstance(last, HumanMessage) else None
        )
        if source:
            return tool_call("run_task_now", {"task_id": source["task_id"]})
        return AIMessage(content=f"done: {last.text[:40]}")

    holder: list[SchedulerRuntime] = []
    limits = SchedulerLimits(allow_scheduled_turns_to_manage_tasks=True)
    builder = build_assistant(
        lambda: holder[0], model=ScriptedChatModel(steps=[step], cycle=True), limits=limits
    )
    rt = runtime_factory(builder, database=database)
    holder.append(rt)
    async with rt:
        task = await rt.create_task(
            name="loop", schedule=Interval(hours=1), trigger="go", thread_id="t", owner="alice"
        )
        first = await rt.run_now(task.id)
        assert first.outcome == "success"
        await rt.wait_idle()
        history = await rt.history(task.id)
        assert [r.trigger for r in history] == ["manual"]  # no run started by itself
        state = await rt.graph.aget_state({"configurable": {"thread_id": "t"}})
        refusals = [
            m
            for m in state.values["messages"]
            if isinstance(m, ToolMessage) and "cannot run itself" in m.text
        ]
        assert len(refusals) == 1


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("\u200b", "no visible character"),
        ("\u2060\ufeff \u200d", "no visible character"),
        ("\u202egnp.exe", "U+202E"),
        ("Rent \u2066due\u2069", "U+2066"),
        ("Plants\nid: 0123456789abcdef", "U+000A"),
        ("Plants\r\nstate: paused", "U+000D"),
        ("Plants\u2028next runs: none", "U+2028"),
        ("\x1b[2JPlants", "U+001B"),
    ],
)
async def test_a_task_name_shown_as_nothing_or_reordered_is_refused(
    rt: SchedulerRuntime, name: str, problem: str
) -> None:
    # An invisible name lists as a blank line; a bidi override makes the rest of the
    # line read backwards in every list, CLI table and transcript that shows it; a line
    # break adds lines of its own to the task's block (a forged "id:" line), a control
    # character drives the terminal that shows it.
    tools = Tools(rt)
    answer = await tools("schedule_task", ALICE, name=name, schedule="in 1 hour", prompt="p")
    assert answer.status == "error" and problem in answer.text, answer.text
    assert await all_tasks(rt) == []
    made = await tools("schedule_task", ALICE, name="Plants", schedule="in 1 hour", prompt="p")
    (task,) = await all_tasks(rt)
    renamed = await tools("update_task", ALICE, task_id=task.id, name=name)
    assert renamed.status == "error" and problem in renamed.text, renamed.text
    assert await all_tasks(rt) == [task] and made.status == "success"


async def test_names_in_any_script_and_emoji_sequences_are_kept(rt: SchedulerRuntime) -> None:
    tools = Tools(rt)
    names = ["تذكير الدواء", "תזכורת", "👩\u200d💻 stand-up", "می\u200cخواهم"]
    for name in names:
        answer = await tools("schedule_task", ALICE, name=name, schedule="in 1 hour", prompt="p")
        assert answer.status == "success", answer.text
    assert sorted(t.name for t in await all_tasks(rt)) == sorted(names)
