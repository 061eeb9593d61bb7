"""The scheduler tools called the way ToolNode calls them: guardrails, bad input, output."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, TypedDict
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from pydantic import BaseModel
from sqlalchemy import update

from langgraph_scheduler import (
    Cron,
    Interval,
    Once,
    SchedulerRuntime,
    TaskRunRecord,
)
from langgraph_scheduler.errors import InvalidSchedule
from langgraph_scheduler.schedules import ACCEPTED_FORMS
from langgraph_scheduler.store import tasks_table
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import TOOL_NAMES, SchedulerLimits, scheduler_tools

from .helpers import HeldGraph, assert_no_url_secret, secret_url, shown_url, step

ALICE: RunnableConfig = {"configurable": {"thread_id": "alice-chat", "user_id": "alice"}}
BOB: RunnableConfig = {"configurable": {"thread_id": "bob-chat", "user_id": "bob"}}
IN_BERLIN: dict[str, Any] = {"timezone": "Europe/Berlin"}
ISO_WITH_WEEKDAY = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \((Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\)"
)


class Tools:
    """The eight tools of one runtime, called like ToolNode does (a full tool call)."""

    def __init__(self, runtime: SchedulerRuntime, limits: SchedulerLimits | None = None):
        self.by_name: dict[str, BaseTool] = {
            tool.name: tool for tool in scheduler_tools(runtime, limits=limits)
        }

    async def __call__(self, tool: str, config: RunnableConfig, /, **args: Any) -> ToolMessage:
        call = {"name": tool, "args": args, "id": "call-1", "type": "tool_call"}
        message = await self.by_name[tool].ainvoke(call, config=config)
        assert isinstance(message, ToolMessage)
        return message


@pytest.fixture
async def rt(sqlite_url: str, make_graph: Any, runtime_factory: Any) -> AsyncIterator[Any]:
    runtime = runtime_factory(make_graph("On it."), database=sqlite_url, timezone="Europe/Berlin")
    async with runtime:
        yield runtime


@pytest.fixture
async def rt_db(database: str, make_graph: Any, runtime_factory: Any) -> AsyncIterator[Any]:
    """Like ``rt``, on every backend (for what the store's owner queries decide)."""
    runtime = runtime_factory(make_graph("On it."), database=database, timezone="Europe/Berlin")
    async with runtime:
        yield runtime


@pytest.fixture
async def clocked(
    database: str, make_graph: Any, runtime_factory: Any
) -> AsyncIterator[tuple[SchedulerRuntime, FakeClock, Tools]]:
    """A started runtime on every backend, its fake clock (Sunday 2026-12-06, 12:00 in
    Berlin) and its tools."""
    clock = FakeClock(datetime.fromisoformat("2026-12-06T11:00:00+00:00"))
    runtime = runtime_factory(make_graph("On it."), database=database, **IN_BERLIN, clock=clock)
    async with runtime:
        yield runtime, clock, Tools(runtime)


@pytest.fixture
def tools(rt: SchedulerRuntime) -> Tools:
    return Tools(rt)


def task_id_in(message: ToolMessage) -> str:
    match = re.search(r"^id: ([0-9a-f]+)$", message.text, re.MULTILINE)
    assert match, message.text
    return match.group(1)


async def all_tasks(rt: SchedulerRuntime) -> list[Any]:
    return await rt.list_tasks(limit=1000)


def scheduled_turn(
    task_id: str, thread_id: str = "alice-chat", owner: str = "alice"
) -> RunnableConfig:
    """The config the runtime gives a task-triggered turn (its owner as user_id)."""
    return {
        "configurable": {"thread_id": thread_id, "user_id": owner},
        "metadata": {"source": "scheduler", "task_id": task_id, "run_id": "r-1"},
    }


# -- schedule_task: what it stores and what it answers --------------------------------------


async def test_schedule_task_stores_for_the_config_owner_and_shows_next_runs_in_its_zone(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    message = await tools(
        "schedule_task",
        ALICE,
        name="Ticket summary",
        schedule="every weekday at 9:00",
        timezone="America/New_York",
        prompt="Summarise my open tickets.",
        system_addon="Five bullet points at most.",
    )
    assert message.status == "success"
    (task,) = await all_tasks(rt)
    assert task.owner == "alice" and task.thread_id == "alice-chat"
    assert task.schedule == Cron("0 9 * * 1-5", tz="America/New_York")
    assert task.trigger.prompt == "Summarise my open tickets."
    assert task.trigger.system_addon == "Five bullet points at most."
    text = message.text
    assert f"id: {task.id}" in text
    assert "timezone: America/New_York" in text
    assert "schedule: at 09:00 on Monday–Friday (America/New_York)" in text
    assert "state: active" in text and "thread: this conversation" in text
    expected = await rt.next_run_times(task.id, 3)
    assert len(expected) == 3
    shown = re.search(r"^next runs: (.*)$", text, re.MULTILINE)
    assert shown is not None
    assert shown.group(1) == ", ".join(
        f"{t.isoformat()} ({t:%A})"
        for t in (t.astimezone(ZoneInfo("America/New_York")) for t in expected)
    )
    for value in expected:
        local = value.astimezone(ZoneInfo("America/New_York"))
        assert local.hour == 9 and local.weekday() < 5
        assert local.utcoffset() in {ZoneInfo("America/New_York").utcoffset(local)}


async def test_default_timezone_is_the_runtimes_and_is_named(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    message = await tools(
        "schedule_task", ALICE, name="Stretch", schedule="every day at 18:30", prompt="Stretch."
    )
    (task,) = await all_tasks(rt)
    assert task.schedule.tz == "Europe/Berlin"
    assert "timezone: Europe/Berlin" in message.text
    runs = ISO_WITH_WEEKDAY.findall(message.text)
    assert len(runs) == 3
    assert re.search(r"T18:30:00\+0[12]:00 \(\w+day\)", message.text)
    assert "Default timezone: Europe/Berlin" in tools.by_name["schedule_task"].description


async def test_isolated_thread_and_max_runs(rt: SchedulerRuntime, tools: Tools) -> None:
    message = await tools(
        "schedule_task",
        ALICE,
        name="Digest",
        schedule="every 2 hours",
        prompt="Digest the news.",
        thread="isolated",
        max_runs=2,
        timeout_secs=60,
    )
    (task,) = await all_tasks(rt)
    assert task.thread_id is None and task.thread_mode == "isolated"
    assert task.max_runs == 2 and task.trigger.timeout_secs == 60
    assert task.schedule == Interval(seconds=7200, tz="Europe/Berlin", start=task.schedule.start)
    assert "thread: isolated" in message.text
    assert "runs so far: 0 of max 2" in message.text
    assert len(ISO_WITH_WEEKDAY.findall(message.text)) == 2  # capped by max_runs


async def test_one_off_iso_time_without_offset_is_read_in_the_given_zone(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    year = datetime.now().year + 1
    message = await tools(
        "schedule_task",
        ALICE,
        name="Dentist",
        schedule=f"{year}-07-01T09:30",
        timezone="Asia/Tokyo",
        prompt="Remind me of the dentist.",
    )
    (task,) = await all_tasks(rt)
    assert isinstance(task.schedule, Once)
    assert f"next runs: {year}-07-01T09:30:00+09:00 (" in message.text
    assert task.next_run_at == datetime(year, 7, 1, 9, 30, tzinfo=ZoneInfo("Asia/Tokyo"))


async def test_continue_needs_a_thread_in_the_config(rt: SchedulerRuntime, tools: Tools) -> None:
    message = await tools(
        "schedule_task",
        {"configurable": {"user_id": "alice"}},
        name="x",
        schedule="in 1 hour",
        prompt="x",
    )
    assert message.status == "error" and "thread='isolated'" in message.text
    assert await all_tasks(rt) == []


# -- bad input: a tool message, nothing stored ------------------------------------------------

BAD_SCHEDULES = [
    pytest.param({"schedule": "61 * * * *"}, "'61'", id="invalid-cron"),
    pytest.param(
        {"schedule": "every day at 9:00", "timezone": "Mars/Olympus"},
        "unknown timezone 'Mars/Olympus'",
        id="unknown-timezone",
    ),
    pytest.param(
        {"schedule": "every day at 9:00", "timezone": "europe/berlin"},
        "did you mean 'Europe/Berlin'",
        id="misspelt-timezone",
    ),
    pytest.param({"schedule": "2020-01-01T09:00"}, "is in the past", id="past-date"),
    pytest.param({"schedule": "whenever you like"}, ACCEPTED_FORMS, id="unparseable"),
    pytest.param({"prompt": "   "}, "the prompt is empty", id="empty-prompt"),
    pytest.param({"prompt": "x" * 2001}, "2001 characters; the limit is 2000", id="long-prompt"),
    pytest.param({"system_addon": "y" * 2001}, "system_addon is 2001 characters", id="long-addon"),
    pytest.param({"schedule": "every minute"}, "at most every 5 minutes", id="too-frequent"),
    # echoed as given (it was lowercased), with the latest time a schedule takes in its zone
    pytest.param(
        {"schedule": "9999-12-31T23:30:00-05:00"},
        "Error: '9999-12-31T23:30:00-05:00' is too far in the future: the latest time accepted "
        "is 9999-12-31T23:59:59+01:00 (Europe/Berlin)",
        id="past-year-9999",
    ),
    pytest.param(
        {"schedule": "10000-01-01T09:00"},
        "Error: '10000-01-01T09:00' is too far in the future: the latest time accepted "
        "is 9999-12-31T23:59:59+01:00 (Europe/Berlin)",
        id="five-digit-year",
    ),
]


@pytest.mark.parametrize(("override", "expected"), BAD_SCHEDULES)
async def test_bad_schedule_task_input_is_a_message_and_stores_nothing(
    rt: SchedulerRuntime, tools: Tools, override: dict[str, Any], expected: str
) -> None:
    args = {"name": "Plants", "schedule": "every day at 9:00", "prompt": "Water the plants."}
    message = await tools("schedule_task", ALICE, **{**args, **override})
    assert message.status == "error"
    assert message.text.startswith("Error: ")
    assert expected in message.text
    assert await all_tasks(rt) == []


WORDS_AT_FAULT = {
    "in -5 minutes": "'in -5 minutes' is not in the future: give a positive duration",
    "every -5 minutes": "'every -5 minutes' is a negative interval: it must be at least 1 second; "
    "say e.g. 'every 5 minutes'",
    "every \u0665 minutes": "the amount '\u0665' must be written as a plain number in digits "
    "0-9: say e.g. 'every 5 minutes'",
    "every 1e9 days": "the amount '1e9' must be written as a plain number in digits 0-9, with no "
    "exponent: '1000000000'",
    "tomorrow at noon in Mars/Phobos": "'Mars/Phobos' in the schedule looks like a timezone but "
    "is no known IANA zone name: give the zone as the timezone, and the schedule without it "
    "('tomorrow at noon')",
}  # fmt: skip


@pytest.mark.parametrize("schedule", WORDS_AT_FAULT)
async def test_a_refusal_says_what_is_wrong_with_the_words(
    rt: SchedulerRuntime, tools: Tools, schedule: str
) -> None:
    # They were "could not understand the schedule …" and the list of forms.
    args = {"name": "Plants", "schedule": schedule, "timezone": "UTC", "prompt": "Water them."}
    message = await tools("schedule_task", ALICE, **args)
    assert (message.status, message.text) == ("error", f"Error: {WORDS_AT_FAULT[schedule]}")
    assert await all_tasks(rt) == []


_EMPTY_ZONE = (
    "Error: the timezone is empty: leave it out to use the default ({!r}), or use an IANA zone "
    "name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
)


async def test_an_empty_timezone_is_refused_naming_the_zone_used_without_one(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    # It was "unknown timezone ''", as if a name had been misspelt.
    args = {"name": "Plants", "schedule": "daily at 9", "prompt": "Water them."}
    for blank in ("", "  "):
        made = await tools("schedule_task", ALICE, **args, timezone=blank)
        assert (made.status, made.text) == ("error", _EMPTY_ZONE.format("Europe/Berlin"))
    task_id = task_id_in(await tools("schedule_task", ALICE, **args, timezone="Asia/Tokyo"))
    # a change without a zone keeps the task's
    for change in ({"timezone": ""}, {"timezone": "", "schedule": "daily at 10"}):
        moved = await tools("update_task", ALICE, task_id=task_id, **change)
        assert (moved.status, moved.text) == ("error", _EMPTY_ZONE.format("Asia/Tokyo"))
    [task] = await all_tasks(rt)
    assert (task.schedule.expr, task.schedule.tz) == ("0 9 * * *", "Asia/Tokyo")


async def test_a_schedule_over_the_length_limit_is_refused_as_too_long(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    # A model that put the whole request in the schedule was told it was not understood.
    long = "every weekday at 9:00 remind me to " + "water the plants " * 10
    said = (
        "Error: the schedule is 204 characters long; the limit is 200: a schedule is a short "
        "phrase such as 'every weekday at 9:00', or a cron line such as '0 9 * * 1-5'; say only "
        "when it runs"
    )
    args = {"name": "Plants", "schedule": long, "prompt": "Water the plants."}
    made = await tools("schedule_task", ALICE, **args)
    assert (made.status, made.text) == ("error", said)
    task_id = task_id_in(await tools("schedule_task", ALICE, **{**args, "schedule": "daily at 9"}))
    moved = await tools("update_task", ALICE, task_id=task_id, schedule=long)
    assert (moved.status, moved.text) == ("error", said)
    assert [task.schedule.expr for task in await all_tasks(rt)] == ["0 9 * * *"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param({"name": "x", "prompt": "x"}, "schedule: Field required", id="missing"),
        pytest.param(
            {"name": "x", "schedule": "in 1 hour", "prompt": "x", "owner": "bob"},
            "unknown argument 'owner'",
            id="owner-is-not-an-argument",
        ),
        pytest.param(
            {"name": "x", "schedule": "in 1 hour", "prompt": "x", "thread": "other"},
            "thread: Input should be 'continue' or 'isolated'",
            id="bad-literal",
        ),
        pytest.param({"name": "", "schedule": "in 1h", "prompt": "x"}, "name:", id="empty-name"),
    ],
)
async def test_invalid_arguments_are_a_message_and_store_nothing(
    rt: SchedulerRuntime, tools: Tools, args: dict[str, Any], expected: str
) -> None:
    message = await tools("schedule_task", ALICE, **args)
    assert message.status == "error"
    assert "schedule_task was not run, invalid arguments" in message.text
    assert expected in message.text
    assert await all_tasks(rt) == []


@pytest.mark.parametrize(
    "name", [n for n in TOOL_NAMES if n not in {"schedule_task", "list_tasks"}]
)
async def test_unknown_task_id_is_a_message(tools: Tools, name: str) -> None:
    message = await tools(
        name, ALICE, task_id="0123456789abcdef", **({"name": "n"} if name == "update_task" else {})
    )
    assert message.status == "error"
    assert message.text == (
        "Error: no task with id '0123456789abcdef'; list tasks to see the valid ids"
    )
    huge = "x" * 100_000  # not an id: its start is repeated, not the whole
    extra = {"name": "n"} if name == "update_task" else {}
    message = await tools(name, ALICE, task_id=huge, **extra)
    assert message.status == "error"
    assert message.text == (
        f"Error: no task with id {huge[:64]!r}… (100,000 characters); list tasks to see "
        "the valid ids"
    )


@pytest.mark.parametrize(
    "name", [n for n in TOOL_NAMES if n not in {"schedule_task", "list_tasks"}]
)
async def test_a_blank_task_id_is_a_message_naming_the_argument(tools: Tools, name: str) -> None:
    # It answered "no task with id '  '", as if such an id could name a task.
    extra = {"name": "n"} if name == "update_task" else {}
    message = await tools(name, ALICE, task_id="  ", **extra)
    assert message.status == "error"
    assert message.text == (
        "Error: task_id must be a non-blank string, got '  '; list tasks to see the valid ids"
    )


async def test_list_tasks_in_a_blank_thread_lists_as_outside_any_conversation(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    # No task continues a blank thread: the tool lists the owner's tasks as with no thread,
    # and does not pass the blank thread on as a filter (which the runtime refuses).
    await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    blank: RunnableConfig = {"configurable": {"thread_id": "  ", "user_id": "alice"}}
    listing = await tools("list_tasks", blank)
    assert listing.status == "success", listing.text
    assert listing.text.startswith("1 task(s):")


# -- owner scope -------------------------------------------------------------------------------


async def test_an_owner_cannot_see_or_touch_another_owners_task_even_with_its_id(
    rt_db: SchedulerRuntime, runs: Any
) -> None:
    rt, tools = rt_db, Tools(rt_db)
    created = await tools(
        "schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="Water."
    )
    task_id = task_id_in(created)
    before = await rt.get_task(task_id)

    listing = await tools("list_tasks", BOB)
    assert listing.status == "success"
    assert listing.text == "No scheduled tasks in this conversation."
    # Same thread, other user: user_id wins, so the thread is no key to alice's tasks.
    same_thread_bob: RunnableConfig = {
        "configurable": {"thread_id": "alice-chat", "user_id": "bob"}
    }
    for config in (BOB, same_thread_bob):
        for name, extra in [
            ("update_task", {"prompt": "Steal"}),
            ("pause_task", {}),
            ("resume_task", {}),
            ("run_task_now", {}),
            ("task_history", {}),
            ("delete_task", {}),
        ]:
            message = await tools(name, config, task_id=task_id, **extra)
            assert message.status == "error", (name, message.text)
            assert f"no task with id {task_id!r}" in message.text
    assert await rt.get_task(task_id) == before
    assert await rt.history(task_id) == []
    assert runs.records == []
    assert task_id in (await tools("list_tasks", ALICE)).text


async def test_without_user_id_the_thread_is_the_owner(rt: SchedulerRuntime, tools: Tools) -> None:
    in_a: RunnableConfig = {"configurable": {"thread_id": "thread-a"}}
    in_b: RunnableConfig = {"configurable": {"thread_id": "thread-b"}}
    task_id = task_id_in(
        await tools("schedule_task", in_a, name="A", schedule="in 1 hour", prompt="a")
    )
    assert (await rt.get_task(task_id)).owner == "thread-a"
    assert task_id in (await tools("list_tasks", in_a)).text
    assert (await tools("list_tasks", in_b)).text == "No scheduled tasks in this conversation."
    denied = await tools("delete_task", in_b, task_id=task_id)
    assert denied.status == "error"
    assert (await rt.get_task(task_id)).state == "active"


@pytest.mark.parametrize("user_id", ["", "  ", "\t"])
async def test_a_blank_user_id_is_read_as_none(
    rt: SchedulerRuntime, tools: Tools, user_id: str
) -> None:
    # A blank user_id was the owner: stored on each task, so every schedule_task would be
    # refused now that a blank owner is; read as absent, the thread owns the task.
    blank: RunnableConfig = {"configurable": {"thread_id": "thread-a", "user_id": user_id}}
    created = await tools("schedule_task", blank, name="A", schedule="in 1 hour", prompt="a")
    assert created.status == "success", created.text
    task_id = task_id_in(created)
    assert (await rt.get_task(task_id)).owner == "thread-a"
    assert task_id in (await tools("list_tasks", blank)).text
    paused = await tools("pause_task", blank, task_id=task_id)
    assert paused.status == "success", paused.text
    alone: RunnableConfig = {"configurable": {"user_id": user_id}}  # and no thread
    message = await tools("list_tasks", alone)
    assert message.status == "error"
    assert "neither configurable.user_id nor configurable.thread_id" in message.text


async def test_no_owner_in_the_config_is_refused(rt: SchedulerRuntime, tools: Tools) -> None:
    message = await tools("list_tasks", {})
    assert message.status == "error"
    assert "neither configurable.user_id nor configurable.thread_id" in message.text


# -- quota, interval, prompt size ----------------------------------------------------------


async def test_quota_counts_active_tasks_per_owner(rt_db: SchedulerRuntime) -> None:
    rt, tools = rt_db, Tools(rt_db, SchedulerLimits(max_active_tasks_per_owner=2))
    ids = [
        task_id_in(
            await tools("schedule_task", ALICE, name=f"t{i}", schedule="in 1 hour", prompt="p")
        )
        for i in range(2)
    ]
    third = await tools("schedule_task", ALICE, name="t3", schedule="in 1 hour", prompt="p")
    assert third.status == "error"
    assert "quota reached: owner 'alice' already has 2 active tasks" in third.text
    assert len(await all_tasks(rt)) == 2
    # Another owner has their own quota.
    assert (
        await tools("schedule_task", BOB, name="b", schedule="in 1h", prompt="p")
    ).status == "success"
    # A paused task frees a slot, and resuming it over the quota is refused.
    await tools("pause_task", ALICE, task_id=ids[0])
    assert (
        await tools("schedule_task", ALICE, name="t3", schedule="in 1h", prompt="p")
    ).status == "success"
    resumed = await tools("resume_task", ALICE, task_id=ids[0])
    assert resumed.status == "error" and "quota reached" in resumed.text
    assert (await rt.get_task(ids[0])).state == "paused"


async def test_quota_holds_for_concurrent_tool_calls(rt_db: SchedulerRuntime) -> None:
    # Several schedule_task calls of one model message run at once (ToolNode gathers
    # them): the quota check is part of the insert, so they cannot overshoot it together.
    tools = Tools(rt_db, SchedulerLimits(max_active_tasks_per_owner=3))
    answers = await asyncio.gather(
        *(
            tools("schedule_task", ALICE, name=f"t{i}", schedule="in 1 hour", prompt="p")
            for i in range(8)
        )
    )
    assert sorted(a.status for a in answers) == ["error"] * 5 + ["success"] * 3
    assert all("quota reached" in a.text for a in answers if a.status == "error")
    mine = await rt_db.list_tasks(owner="alice", limit=100)
    assert len(mine) == 3 and {t.state for t in mine} == {"active"}


@pytest.mark.parametrize(
    ("schedule", "allowed"),
    [
        ("every 4 minutes", False),
        ("every 5 minutes", True),
        ("*/2 * * * *", False),
        ("*/10 * * * *", True),
        ("0,3 9 * * *", False),  # a cron line is judged by its shortest gap, not its average
        ("0 9,21 * * *", True),
        ("in 10 seconds", True),  # one-off tasks have no minimum
    ],
)
async def test_minimum_interval_applies_to_recurring_schedules(
    rt: SchedulerRuntime, tools: Tools, schedule: str, allowed: bool
) -> None:
    message = await tools("schedule_task", ALICE, name="t", schedule=schedule, prompt="p")
    assert (message.status == "success") is allowed, message.text
    assert len(await all_tasks(rt)) == (1 if allowed else 0)
    if not allowed:
        assert "recurring tasks may run at most every 5 minutes" in message.text


@pytest.mark.parametrize(
    ("schedule", "minimum", "now", "dst_fires"),
    [
        # 01:59 and 02:59 are an hour apart; on 2026-03-29 02:59 is skipped and runs when
        # the clock jumps, 03:00 CEST: a minute after 01:59 CET.
        ("59 1,2 * * *", 300, "2026-03-27T12:00:00+00:00", ["2026-03-29T03:00:00+02:00"]),
        # Every 2 hours; on 2026-10-25 02:00 comes twice, and a wildcard line runs in both.
        ("0 */2 * * *", 7200, "2026-10-24T20:00:00+00:00", ["2026-10-25T02:00:00+01:00"]),
    ],
)
async def test_minimum_interval_is_measured_on_the_clock_not_across_a_dst_change(
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    schedule: str,
    minimum: int,
    now: str,
    dst_fires: list[str],
) -> None:
    """A change that brings two runs together once does not make a line "too frequent":
    the same line is allowed whatever the date it is created on."""
    clock = FakeClock(datetime.fromisoformat(now))
    rt = runtime_factory(make_graph("On it."), database=sqlite_url, **IN_BERLIN, clock=clock)
    async with rt:
        tools = Tools(rt, SchedulerLimits(min_interval_secs=minimum))
        message = await tools("schedule_task", ALICE, name="t", schedule=schedule, prompt="p")
        assert message.status == "success", message.text
        (task,) = await all_tasks(rt)
        runs = [t.isoformat() for t in await rt.next_run_times(task.id, 8)]
        assert set(dst_fires) <= set(runs)  # the change is among its next runs


@pytest.mark.parametrize(
    ("now", "schedule", "note"),
    [
        # the Saturday before Berlin springs forward (2026-03-29 02:00 -> 03:00)
        ("2026-03-28T12:00:00+01:00", "daily at 2:30",
         "the clocks skip 02:30 on Sunday 2026-03-29 in Europe/Berlin: it runs at Sunday "
         "2026-03-29 03:00 CEST, when they jump"),
        # early on the night Berlin falls back (03:00 CEST -> 02:00 CET): a wildcard hour
        ("2026-10-25T01:20:00+02:00", "30 * * * *",
         "02:30 on Sunday 2026-10-25 comes twice in Europe/Berlin as the clocks go back: it "
         "runs in both passes"),
    ],
)  # fmt: skip
async def test_runs_a_clock_change_moves_or_doubles_are_noted_in_the_answers(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, now: str, schedule: str, note: str
) -> None:
    clock = FakeClock(datetime.fromisoformat(now))
    rt = runtime_factory(make_graph("On it."), database=sqlite_url, **IN_BERLIN, clock=clock)
    async with rt:
        tools = Tools(rt)
        made = await tools("schedule_task", ALICE, name="n", schedule=schedule, prompt="p")
        renamed = await tools("update_task", ALICE, task_id=task_id_in(made), name="m")
    for answer in (made, renamed):
        assert answer.status == "success", answer.text
        assert f"\nnote: {note}; tell the user.\n" in answer.text


async def test_limits_are_configurable(rt: SchedulerRuntime) -> None:
    tools = Tools(rt, SchedulerLimits(min_interval_secs=1, max_prompt_chars=10))
    ok = await tools("schedule_task", ALICE, name="fast", schedule="every 2 seconds", prompt="tick")
    assert ok.status == "success"
    long = await tools("schedule_task", ALICE, name="long", schedule="in 1h", prompt="x" * 11)
    assert long.status == "error" and "11 characters; the limit is 10" in long.text
    with pytest.raises(ValueError, match="max_prompt_chars"):
        SchedulerLimits(max_prompt_chars=100_000)


# -- task-triggered turns ------------------------------------------------------------------


async def test_a_scheduled_turn_cannot_manage_tasks_by_default(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    )
    before = await rt.get_task(task_id)
    config = scheduled_turn(task_id)
    for name, args in [
        ("schedule_task", {"name": "more", "schedule": "in 1 hour", "prompt": "again"}),
        ("update_task", {"task_id": task_id, "schedule": "every hour"}),
        ("pause_task", {"task_id": task_id}),
        ("resume_task", {"task_id": task_id}),
        ("delete_task", {"task_id": task_id}),
        ("run_task_now", {"task_id": task_id}),
    ]:
        message = await tools(name, config, **args)
        assert message.status == "error", name
        assert "a task-triggered turn cannot" in message.text
    assert await all_tasks(rt) == [before]
    # Reading is allowed, scoped to the owner of the task that fired (no user_id here).
    listing = await tools("list_tasks", config)
    assert listing.status == "success" and task_id in listing.text
    assert (await tools("task_history", config, task_id=task_id)).status == "success"


async def test_a_scheduled_turn_may_manage_tasks_when_allowed(rt: SchedulerRuntime) -> None:
    tools = Tools(rt, SchedulerLimits(allow_scheduled_turns_to_manage_tasks=True))
    first = task_id_in(
        await tools(
            "schedule_task",
            ALICE,
            name="Plants",
            schedule="in 1 hour",
            prompt="p",
            thread="isolated",
        )
    )
    config = scheduled_turn(first, thread_id=f"task-{first}-r-1")
    message = await tools(
        "schedule_task", config, name="Follow-up", schedule="in 2 hours", prompt="q"
    )
    assert message.status == "success", message.text
    follow_up = await rt.get_task(task_id_in(message))
    assert follow_up.owner == "alice"  # the fired task's owner, not the run's fresh thread
    assert follow_up.thread_id == f"task-{first}-r-1"


async def test_a_scheduled_turn_never_waits_for_an_approval(rt: SchedulerRuntime) -> None:
    limits = SchedulerLimits(allow_scheduled_turns_to_manage_tasks=True, require_approval=True)
    tools = Tools(rt, limits)
    task = await rt.create_task(
        name="Plants", schedule=Cron("0 9 * * *"), trigger="p", thread_id="T", owner="alice"
    )
    message = await tools(
        "schedule_task", scheduled_turn(task.id), name="More", schedule="in 1h", prompt="q"
    )
    assert message.status == "error"
    assert "schedule_task needs a human's approval" in message.text
    assert await all_tasks(rt) == [task]


# -- the other tools do what they say -----------------------------------------------------


async def test_list_tasks_filters_and_pages(rt: SchedulerRuntime, tools: Tools) -> None:
    ids = [
        task_id_in(
            await tools("schedule_task", ALICE, name=f"task {i}", schedule="in 1 hour", prompt="p")
        )
        for i in range(3)
    ]
    await tools("pause_task", ALICE, task_id=ids[1])
    everything = await tools("list_tasks", ALICE)
    assert everything.text.startswith("3 task(s) of this conversation:")
    assert [m for m in re.findall(r"^id: (\w+)$", everything.text, re.MULTILINE)] == ids
    paused = await tools("list_tasks", ALICE, state="paused")
    assert re.findall(r"^id: (\w+)$", paused.text, re.MULTILINE) == [ids[1]]
    assert "state: paused" in paused.text and "next runs: none" in paused.text
    page = await tools("list_tasks", ALICE, limit=2)
    assert page.text.startswith(
        "2 task(s) of this conversation (more: call list_tasks with offset=2):"
    )
    rest = await tools("list_tasks", ALICE, limit=2, offset=2)
    assert re.findall(r"^id: (\w+)$", rest.text, re.MULTILINE) == [ids[2]]
    assert (
        await tools("list_tasks", ALICE, state="completed")
    ).text == "No completed scheduled tasks in this conversation."


async def test_list_tasks_shows_this_conversation_and_the_rest_on_request(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    other_chat: RunnableConfig = {"configurable": {"thread_id": "other", "user_id": "alice"}}
    here = task_id_in(
        await tools("schedule_task", ALICE, name="here", schedule="in 1 hour", prompt="p")
    )
    there = task_id_in(
        await tools("schedule_task", other_chat, name="there", schedule="in 1 hour", prompt="p")
    )
    alone = task_id_in(
        await tools(
            "schedule_task", ALICE, name="alone", schedule="in 1h", prompt="p", thread="isolated"
        )
    )
    mine = await tools("list_tasks", ALICE)
    assert re.findall(r"^id: (\w+)$", mine.text, re.MULTILINE) == [here]
    assert "2 more task(s) of this user post elsewhere" in mine.text
    assert "scope='all'" in mine.text
    everything = await tools("list_tasks", ALICE, scope="all")
    assert re.findall(r"^id: (\w+)$", everything.text, re.MULTILINE) == [here, there, alone]
    assert "elsewhere" not in everything.text


async def test_update_task_changes_only_what_is_given(rt: SchedulerRuntime, tools: Tools) -> None:
    task_id = task_id_in(
        await tools(
            "schedule_task",
            ALICE,
            name="Report",
            schedule="every day at 9:00",
            prompt="Write the report.",
            system_addon="Be brief.",
        )
    )
    renamed = await tools("update_task", ALICE, task_id=task_id, name="Daily report")
    assert renamed.status == "success"
    task = await rt.get_task(task_id)
    assert task.name == "Daily report"
    assert task.schedule == Cron("0 9 * * *", tz="Europe/Berlin")
    assert task.trigger.system_addon == "Be brief."

    moved = await tools(
        "update_task",
        ALICE,
        task_id=task_id,
        schedule="every weekday at 8:30",
        timezone="Asia/Tokyo",
    )
    task = await rt.get_task(task_id)
    assert task.schedule == Cron("30 8 * * 1-5", tz="Asia/Tokyo")
    assert "timezone: Asia/Tokyo" in moved.text and "+09:00 (" in moved.text

    rezoned = await tools("update_task", ALICE, task_id=task_id, timezone="Europe/London")
    assert rezoned.status == "success"
    assert (await rt.get_task(task_id)).schedule == Cron("30 8 * * 1-5", tz="Europe/London")

    await tools(
        "update_task", ALICE, task_id=task_id, prompt="Write the weekly report.", system_addon=""
    )
    trigger = (await rt.get_task(task_id)).trigger
    assert trigger.prompt == "Write the weekly report." and trigger.system_addon is None

    nothing = await tools("update_task", ALICE, task_id=task_id)
    assert nothing.status == "error" and "nothing to change" in nothing.text
    too_fast = await tools("update_task", ALICE, task_id=task_id, schedule="every minute")
    assert too_fast.status == "error"
    assert (await rt.get_task(task_id)).schedule == Cron("30 8 * * 1-5", tz="Europe/London")


async def test_timezone_alone_cannot_move_a_one_off(rt: SchedulerRuntime, tools: Tools) -> None:
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="x", schedule="in 2 hours", prompt="p")
    )
    before = await rt.get_task(task_id)
    message = await tools("update_task", ALICE, task_id=task_id, timezone="Asia/Tokyo")
    assert message.status == "error" and "pass the schedule again" in message.text
    assert await rt.get_task(task_id) == before


@pytest.mark.parametrize(
    ("phrase", "zone", "expected"),
    [
        # A stride's first day stays the first day there (it was skipped: its start was
        # kept as Berlin's 09:00, 13:30 in Kolkata, after Kolkata's 09:00).
        (
            "every 2 days at 9:00",
            "Asia/Kolkata",
            ["2026-12-07T09:00:00+05:30", "2026-12-09T09:00:00+05:30", "2026-12-11T09:00:00+05:30"],
        ),
        (
            "every other week on monday at 9:00",
            "Pacific/Kiritimati",
            ["2026-12-07T09:00:00+14:00", "2026-12-21T09:00:00+14:00", "2027-01-04T09:00:00+14:00"],
        ),
        # "Through Monday" still ends with Monday there (it ran on Tuesday too).
        ("every day at 9:00 until tomorrow", "Pacific/Kiritimati", ["2026-12-07T09:00:00+14:00"]),
        # ... and no earlier (it ended at 14:59 on Monday there).
        (
            "every day at 18:00 until tomorrow",
            "America/Los_Angeles",
            ["2026-12-06T18:00:00-08:00", "2026-12-07T18:00:00-08:00"],
        ),
    ],
)
async def test_timezone_alone_moves_a_cron_with_its_bounds_at_the_same_wall_times(
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    phrase: str,
    zone: str,
    expected: list[str],
) -> None:
    clock = FakeClock(datetime.fromisoformat("2026-12-06T11:00:00+00:00"))
    rt = runtime_factory(make_graph("On it."), database=sqlite_url, **IN_BERLIN, clock=clock)
    async with rt:
        tools = Tools(rt)
        task_id = task_id_in(
            await tools("schedule_task", ALICE, name="x", schedule=phrase, prompt="p")
        )
        moved = await tools("update_task", ALICE, task_id=task_id, timezone=zone)
        assert moved.status == "success", moved.text
        runs = await rt.next_run_times(task_id, 3)
        assert [t.astimezone(ZoneInfo(zone)).isoformat() for t in runs] == expected
        assert "Europe/Berlin" not in moved.text and "13:30" not in moved.text


async def test_pause_resume_delete(rt: SchedulerRuntime, tools: Tools) -> None:
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    )
    paused = await tools("pause_task", ALICE, task_id=task_id)
    assert paused.text.startswith("Paused task 'Plants'")
    assert (await rt.get_task(task_id)).state == "paused"
    again = await tools("pause_task", ALICE, task_id=task_id)
    assert "was not active (paused); nothing changed" in again.text

    resumed = await tools("resume_task", ALICE, task_id=task_id)
    assert resumed.text.startswith("Resumed task 'Plants'")
    task = await rt.get_task(task_id)
    assert task.state == "active" and task.next_run_at is not None
    assert len(ISO_WITH_WEEKDAY.findall(resumed.text)) == 3

    deleted = await tools("delete_task", ALICE, task_id=task_id)
    assert deleted.text.startswith("Deleted task 'Plants'")
    assert await all_tasks(rt) == []


async def test_deleting_a_task_while_its_turn_runs_says_that_turn_finishes(
    database: str, runtime_factory: Any, runs: Any
) -> None:
    # It answered "It will not run again" while the turn under way went on to post its
    # reply (a delete stops no turn, as APScheduler's remove_job stops no running job).
    held = HeldGraph("Watered.")
    clock = FakeClock(datetime.fromisoformat("2026-12-06T11:00:00+00:00"))
    rt = runtime_factory(held.graph, database=database, **IN_BERLIN, clock=clock)
    async with rt:
        tools = Tools(rt)
        task_id = task_id_in(
            await tools(
                "schedule_task", ALICE, name="Plants", schedule="every 5 minutes", prompt="p"
            )
        )
        described = (await rt.get_task(task_id)).describe_schedule()
        await clock.advance(300)
        await rt.run_due()  # (or its timer, woken by the clock, claimed it first)
        await asyncio.wait_for(held.entered.wait(), 10)

        deleted = await tools("delete_task", ALICE, task_id=task_id)
        assert deleted.status == "success", deleted.text
        assert deleted.text == (
            f"Deleted task 'Plants' (id {task_id}, {described}) and its history. A turn "
            "of it is running right now: that turn still finishes and posts its reply (no "
            "record of it is kept), but no later run happens."
        )
        held.release.set()
        await rt.wait_idle()
        state = await rt.graph.aget_state(ALICE)
        assert state.values["messages"][-1].text == "Watered."  # the turn finished
        assert await all_tasks(rt) == []
        await clock.advance(600)
        assert await rt.run_due() == 0
        await rt.wait_idle()
        assert len(held.prompts) == 1  # no later fire ran

        # With no turn under way, the answer stays as it was.
        again = task_id_in(
            await tools("schedule_task", ALICE, name="Tea", schedule="every 5 minutes", prompt="t")
        )
        quiet = await tools("delete_task", ALICE, task_id=again)
        assert quiet.text.endswith("and its history. It will not run again."), quiet.text


async def test_a_finished_one_off_is_told_to_take_a_new_schedule(
    clocked: tuple[SchedulerRuntime, FakeClock, Tools],
) -> None:
    # resume_task and max_runs take no time: the way back is a new schedule, on every path.
    rt, clock, tools = clocked
    done, held = [
        task_id_in(
            await tools("schedule_task", ALICE, name=n, schedule=f"in {m} minutes", prompt="p")
        )
        for n, m in (("x", 20), ("y", 30))
    ]
    await tools("pause_task", ALICE, task_id=held)
    assert await step(rt, clock, 31 * 60) == 1
    assert (await rt.get_task(done)).state == "completed"
    answers = [
        await tools("resume_task", ALICE, task_id=done),
        await tools("update_task", ALICE, task_id=done, max_runs=5),
        await tools("resume_task", ALICE, task_id=held),  # paused past its time
    ]
    for answer in answers:
        assert answer.status == "error", answer.text
        assert (
            "has no fire time after now. To run it again, give it a new schedule with "
            in answer.text
        )
        assert "update_task" in answer.text and "later time" not in answer.text
    with pytest.raises(InvalidSchedule, match="give it a new schedule with update_task"):
        await rt.resume_task(held)
    assert [(await rt.get_task(i)).state for i in (done, held)] == ["completed", "paused"]
    again = await tools("update_task", ALICE, task_id=done, schedule="in 1 hour", max_runs=5)
    assert again.status == "success", again.text
    assert (await rt.get_task(done)).state == "active"


async def test_run_task_now_does_not_wait_and_history_shows_the_run(
    rt: SchedulerRuntime, tools: Tools, runs: Any
) -> None:
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    )
    async with rt.thread_lock("alice-chat"):
        # The caller's own turn holds the thread: the tool must answer without waiting.
        started = await tools("run_task_now", ALICE, task_id=task_id)
        assert started.status == "success"
        assert "runs in this conversation right after your current answer" in started.text
        assert runs.records == []
    run_id = re.search(r"run id ([0-9a-f-]+)", started.text)
    assert run_id is not None
    (record,) = await runs.wait_for(1, task_id=task_id)
    assert isinstance(record, TaskRunRecord)
    assert record.run_id == run_id.group(1) and record.trigger == "manual"
    assert record.outcome == "success"

    history = await tools("task_history", ALICE, task_id=task_id)
    lines = history.text.splitlines()
    assert lines[0] == f"Last 1 run(s) of task 'Plants' (id {task_id}), newest first:"
    assert lines[1].startswith(f"- run {record.run_id}: success, manual, due ")
    assert lines[1].endswith(": On it.")
    assert ISO_WITH_WEEKDAY.search(lines[1])
    listing = await tools("list_tasks", ALICE)
    assert "last outcome: success (" in listing.text


async def test_run_task_now_of_a_task_whose_payload_cannot_be_read_says_so(
    rt: SchedulerRuntime, tools: Tools, runs: Any
) -> None:
    # It said "Started task ... now" for a run recorded error by its claim.
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    )
    corrupt = update(tasks_table).where(tasks_table.c.id == task_id).values(payload=["p"])
    await rt.store.transaction(lambda conn: conn.execute(corrupt))
    said = await tools("run_task_now", ALICE, task_id=task_id)
    assert said.status == "success"
    assert said.text.startswith("Task 'Plants' was not run (run id ")
    assert "payload: task payload must be a JSON object, got a list" in said.text
    assert said.text.endswith("give it a new prompt with update_task, or delete it.")
    assert (await rt.get_task(task_id)).state == "quarantined"
    mended = await tools("update_task", ALICE, task_id=task_id, prompt="water the plants")
    assert mended.status == "success", mended.text
    assert (await rt.get_task(task_id)).state == "active"


async def test_a_change_beside_an_unreadable_prompt_asks_for_the_prompt_too(
    rt_db: SchedulerRuntime,
) -> None:
    # It answered "the prompt is empty" to a call that gave no prompt: the prompt stored
    # cannot be read, and a new one in the same call is what mends the task.
    rt, tools = rt_db, Tools(rt_db)
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="Plants", schedule="every day at 9:00", prompt="p")
    )
    corrupt = update(tasks_table).where(tasks_table.c.id == task_id).values(payload=["p"])
    await rt.store.transaction(lambda conn: conn.execute(corrupt))
    for change in ({"system_addon": "Be brief."}, {"timeout_secs": 60}):
        said = await tools("update_task", ALICE, task_id=task_id, **change)
        assert said.status == "error"
        (field,) = change
        assert said.text == (
            f"Error: task {task_id!r} cannot take a new {field} alone: its stored prompt "
            "cannot be read (payload: task payload must be a JSON object, got a list). Pass "
            "the prompt too (the full message to receive when it fires) in the same "
            "update_task call, or delete the task"
        )
        assert (await rt.get_task(task_id)).payload == ["p"]
    mended = await tools(
        "update_task", ALICE, task_id=task_id, prompt="water the plants", system_addon="Be brief."
    )
    assert mended.status == "success", mended.text
    assert (await rt.get_task(task_id)).trigger.system_addon == "Be brief."


async def test_lowering_max_runs_to_the_runs_made_says_the_task_ended(
    clocked: tuple[SchedulerRuntime, FakeClock, Tools],
) -> None:
    # It answered "Updated task" alone: a model asking for "one more run" with max_runs=1
    # would tell the user the task goes on.
    rt, clock, tools = clocked
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="x", schedule="every 2 hours", prompt="p")
    )
    assert await step(rt, clock, 2 * 3600 + 1) == 1
    ended = await tools("update_task", ALICE, task_id=task_id, max_runs=1)
    assert ended.status == "success", ended.text
    assert (await rt.get_task(task_id)).state == "completed"
    assert ended.text.startswith(
        "Updated task 'x'.\nnote: it has run 1 time(s) already, which max_runs=1 allows "
        "no more: it ends now and will not run again (a higher max_runs lets it run "
        "on); tell the user.\n"
    )
    again = await tools("update_task", ALICE, task_id=task_id, max_runs=1, name="y")
    assert again.status == "success" and "note:" not in again.text, again.text
    more = await tools("update_task", ALICE, task_id=task_id, max_runs=3)
    assert more.status == "success" and "note:" not in more.text, more.text
    assert (await rt.get_task(task_id)).state == "active"


async def test_history_of_a_task_that_never_ran(tools: Tools) -> None:
    task_id = task_id_in(
        await tools("schedule_task", ALICE, name="x", schedule="in 1h", prompt="p")
    )
    message = await tools("task_history", ALICE, task_id=task_id)
    assert message.text == f"Task 'x' (id {task_id}) has not run yet."


# -- wrong mode --------------------------------------------------------------------------


async def test_sync_invocation_on_the_runtimes_loop_names_the_fix(tools: Tools) -> None:
    # Blocking the thread that runs the runtime's loop would wait for good (tests/test_sync.py
    # runs sync tools from other threads).
    with pytest.raises(RuntimeError, match=r"ainvoke.*SyncSchedulerRuntime"):
        tools.by_name["list_tasks"].invoke({}, config=ALICE)


async def test_tools_fail_softly_when_the_runtime_is_not_started(
    make_graph: Any, sqlite_url: str
) -> None:
    tools = Tools(SchedulerRuntime(make_graph(), database=sqlite_url))
    message = await tools("list_tasks", ALICE)
    assert message.status == "error" and "the runtime is not started" in message.text


@pytest.mark.parametrize(
    ("zone", "suggestion"),
    [("EST", "America/New_York"), ("PST", "America/Los_Angeles"), ("+05:30", "Asia/Kolkata")],
)
async def test_a_zone_without_daylight_saving_is_refused_with_a_suggestion(
    rt: SchedulerRuntime, tools: Tools, zone: str, suggestion: str
) -> None:
    answer = await tools(
        "schedule_task", ALICE, name="n", schedule="every day at 9:00", prompt="p", timezone=zone
    )
    assert answer.status == "error" and suggestion in answer.text
    assert await all_tasks(rt) == []


async def test_a_schedule_said_as_a_question_is_read(rt: SchedulerRuntime, tools: Tools) -> None:
    answer = await tools("schedule_task", ALICE, name="n", schedule="every day at 9?", prompt="p")
    assert answer.status == "success", answer.text
    (task,) = await all_tasks(rt)
    assert task.schedule == Cron("0 9 * * *", tz="Europe/Berlin")
    changed = await tools("update_task", ALICE, task_id=task.id, schedule="every day at 10?")
    assert changed.status == "success", changed.text
    assert (await rt.get_task(task.id)).schedule == Cron("0 10 * * *", tz="Europe/Berlin")


@pytest.mark.parametrize("zone", ["right/Europe/Paris", "posix/Europe/Paris"])
async def test_a_variant_of_a_zone_is_refused_naming_the_zone(
    rt: SchedulerRuntime, tools: Tools, zone: str
) -> None:
    answer = await tools(
        "schedule_task", ALICE, name="n", schedule="every day at 9:00", prompt="p", timezone=zone
    )
    assert answer.status == "error" and "use 'Europe/Paris'" in answer.text
    assert await all_tasks(rt) == []


async def test_an_update_mending_a_stored_row_answers_the_task_as_mended(
    rt: SchedulerRuntime,
) -> None:
    # The row was written by a version that accepted the tz database's right/ variants:
    # read with a problem, which a new zone mends. The answer the call keeps (what the
    # model is told, and any re-run of the call) used to be made from the row as read,
    # telling the model to delete the task it had just mended.
    task = await rt.create_task(
        name="standup", schedule=Cron("0 9 * * *"), trigger="p", owner="alice"
    )
    variant = {"kind": "cron", "expr": "0 9 * * *", "tz": "right/Europe/Paris"}
    change = update(tasks_table).where(tasks_table.c.id == task.id).values(schedule=variant)
    await rt.store.transaction(lambda conn: conn.execute(change))
    assert (await rt.get_task(task.id)).problem is not None
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(scheduler_tools(rt)))
    builder.add_edge(START, "tools")
    call = {"task_id": task.id, "schedule": "every day at 9", "timezone": "Europe/Paris"}
    message = AIMessage("", tool_calls=[{"name": "update_task", "args": call, "id": "c-1"}])

    out = await builder.compile().ainvoke({"messages": [message]}, config=ALICE)

    answer = out["messages"][-1]
    assert answer.status == "success" and "timezone: Europe/Paris" in answer.text
    assert "problem" not in answer.text, answer.text
    assert (await rt.get_task(task.id)).problem is None


async def test_a_refused_stored_webhook_url_reaches_the_model_without_its_tokens(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    # The tools never show a webhook URL, but a stored one the library now refuses (an
    # earlier version's, a row written by hand) is the problem named to the model.
    made = await tools("schedule_task", ALICE, name="n", schedule="every day at 9", prompt="p")
    url = secret_url("https://hooks.slack.com")
    refused = {"webhook_url": url.replace("https:", "ftp:")}
    change = update(tasks_table).where(tasks_table.c.id == task_id_in(made)).values(options=refused)
    await rt.store.transaction(lambda conn: conn.execute(change))

    listing = await tools("list_tasks", ALICE)

    assert listing.status == "success" and "read (options: " in listing.text, listing.text
    assert shown_url(url).replace("https:", "ftp:") in listing.text
    assert_no_url_secret(listing.text)
    # What can mend it: not update_task, which never sets options.
    assert "); delete it; update_task cannot mend its options" in listing.text
    assert "whoever runs the scheduler can mend the stored row" in listing.text
    assert "give it a new" not in listing.text


async def test_vague_words_are_read_aloud_in_the_answer(rt: SchedulerRuntime, tools: Tools) -> None:
    # (not "tomorrow morning": said before 04:00 on the real clock, that is a question)
    answer = await tools(
        "schedule_task", ALICE, name="n", schedule="next monday morning", prompt="p"
    )
    assert answer.status == "success"
    assert "note: 'next monday morning' is read as 09:00" in answer.text
    question = await tools("schedule_task", ALICE, name="n", schedule="every monday", prompt="p")
    assert question.status == "error" and "At what time on Mondays?" in question.text


async def test_in_months_is_stored_at_the_month_end_with_the_note(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    """Said on January 31, "in 1 month" is stored for February's last day at the same time
    of day, and the answer says why it is the 28th."""
    clock = FakeClock(datetime.fromisoformat("2027-01-31T09:00:00+00:00"))  # 10:00 in Berlin
    rt = runtime_factory(make_graph("On it."), database=sqlite_url, **IN_BERLIN, clock=clock)
    async with rt:
        answer = await Tools(rt)(
            "schedule_task", ALICE, name="n", schedule="in 1 month", prompt="p"
        )
        assert answer.status == "success", answer.text
        assert "February 2027, which has no day 31" in answer.text
        [task] = await all_tasks(rt)
        due = datetime.fromisoformat("2027-02-28T10:00:00+01:00")
        assert task.schedule == Once(due, tz="Europe/Berlin")
        assert task.next_run_at == due


async def test_an_end_said_in_words_is_stored_and_its_last_run_named(
    rt: SchedulerRuntime, tools: Tools
) -> None:
    answer = await tools(
        "schedule_task",
        ALICE,
        name="n",
        schedule="every weekday at 9 until the end of 2099",
        prompt="p",
        timezone="Europe/Berlin",
    )
    assert answer.status == "success", answer.text
    assert (
        "'until the end of 2099' runs up to and including the end of Thursday 2099-12-31: the "
        "last run is Thursday 2099-12-31 09:00 CET"
    ) in answer.text
    [task] = await all_tasks(rt)
    assert task.schedule.same_as(
        Cron("0 9 * * 1-5", tz="Europe/Berlin", end=datetime(2099, 12, 31, 23, 59, 59, 999999))
    )


# -- the database failing -------------------------------------------------------------------


async def test_an_unreachable_database_is_named_to_the_logs_not_the_model(
    postgres_url: str, make_graph: Any, runtime_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import psycopg

    base, _, name = postgres_url.rpartition("/")
    rt = runtime_factory(make_graph("On it."), database=postgres_url)
    async with rt:
        tools = Tools(rt)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                message = await tools(
                    "schedule_task", ALICE, name="Plants", schedule="daily at 9", prompt="Water."
                )
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert message.status == "error"
        assert message.text.startswith(
            "Error: the scheduler's database cannot be reached right now; this may not have "
            "been done. In a minute, check with list_tasks"
        )
        assert name not in message.text and "127.0.0.1" not in message.text
        assert any(name in record.getMessage() for record in caplog.records)
        # Reachable again: the same call works.
        retried = await tools(
            "schedule_task", ALICE, name="Plants", schedule="daily at 9", prompt="Water."
        )
        assert retried.status == "success", retried.text


class _Chat(TypedDict):
    chat: Annotated[list[AnyMessage], add_messages]


class _ChatModel(BaseModel):
    chat: Annotated[list[AnyMessage], add_messages]


async def _on_chat_key(
    rt: SchedulerRuntime, calls: list[tuple[str, str]], schema: type[Any] = _Chat
) -> list[ToolMessage]:
    """``schedule_task`` called once per (name, call id) in one model message, by a
    ToolNode whose state (``schema``) keeps its conversation under ``chat``: the answers."""
    builder = StateGraph(schema)
    builder.add_node("tools", ToolNode(scheduler_tools(rt), messages_key="chat"))
    builder.add_edge(START, "tools")
    message = AIMessage(
        "",
        tool_calls=[
            {
                "name": "schedule_task",
                "args": {"name": name, "schedule": "in 2 hours", "prompt": f"{name}."},
                "id": call_id,
                "type": "tool_call",
            }
            for name, call_id in calls
        ],
    )
    out = await builder.compile().ainvoke({"chat": [message]}, config=ALICE)
    answers: list[ToolMessage] = out["chat"][1:]
    return answers


async def test_a_tool_node_keeping_messages_under_another_key_still_runs_the_tools(
    rt: SchedulerRuntime,
) -> None:
    # The writing tools find the model message under the ToolNode's own messages key.
    answers = await _on_chat_key(rt, [("A", "c-1"), ("B", "c-2")])
    assert [m.status for m in answers] == ["success", "success"], [m.text for m in answers]
    assert sorted(t.name for t in await all_tasks(rt)) == ["A", "B"]


@pytest.mark.parametrize("schema", [_Chat, _ChatModel])
async def test_calls_sharing_an_id_under_another_messages_key_are_refused(
    rt: SchedulerRuntime, schema: type[Any]
) -> None:
    # The tools find the model message under "chat" as under "messages", in a dict or a
    # pydantic state: calls sharing an id cannot be told apart, so none of them is run.
    calls = [("Tea", "dup"), ("Gym", "dup")]
    answers = [m.text for m in await _on_chat_key(rt, calls, schema)]
    assert len(answers) == 2
    assert all("2 calls of this message share the tool call id 'dup'" in a for a in answers)
    assert await all_tasks(rt) == []
