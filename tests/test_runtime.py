"""SchedulerRuntime end to end: real APScheduler, real graphs and checkpointers, real databases."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import math
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from sqlalchemy import create_engine, select, update

from langgraph_scheduler import (
    ConversationTrigger,
    Cron,
    Interval,
    InvalidGraph,
    InvalidPayload,
    InvalidSchedule,
    InvalidTask,
    NotAllowed,
    NotRunning,
    Once,
    SchedulerRuntime,
    Task,
    TaskEvent,
    TaskNotFound,
    TaskOptions,
    TaskRunRecord,
    _bridge,
    store_sqlite,
)
from langgraph_scheduler._turns import _KNOWN_LATEST, _answering_known_reads, _KnownLatest
from langgraph_scheduler._upkeep import dead_holders, process_host
from langgraph_scheduler.errors import ThreadBusy
from langgraph_scheduler.scripted import HANG, ScriptedChatModel
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import open_store, runs_table, tasks_table
from langgraph_scheduler.testing import FakeClock

from .helpers import (
    FAKE_START,
    HeldGraph,
    RunWaiter,
    build_graph,
    nesting_graph,
    record_count,
    respelled_url,
    step,
    until,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(FAKE_START)


def _soon(seconds: float = 0.3) -> Once:
    return Once(at=datetime.now(timezone.utc) + timedelta(seconds=seconds))


async def test_full_cycle_create_fire_turn_record(
    database: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    rt = runtime_factory(make_graph("Here is your summary."), database=database)
    async with rt:
        task = await rt.create_task(
            name="standup",
            schedule=_soon(),
            trigger=ConversationTrigger(prompt="Summarise yesterday's notes"),
            thread_id="alice-main",
        )
        assert task.state == "active" and task.next_run_at is not None
        (record,) = await runs.wait_for(1, task_id=task.id)
        assert record.outcome == "success"
        assert record.trigger == "schedule"
        assert record.summary == "Here is your summary."
        assert record.thread_id == "alice-main"
        assert record.scheduled_for == task.next_run_at
        assert record.finished_at is not None and record.finished_at >= record.started_at
        assert record.checkpoint_id
        state = await rt.graph.aget_state({"configurable": {"thread_id": "alice-main"}})
        assert state.config["configurable"]["checkpoint_id"] == record.checkpoint_id
        assert [m.text for m in state.values["messages"]] == [
            "Summarise yesterday's notes",
            "Here is your summary.",
        ]
        # A one-shot task is completed once it has fired, and the history keeps the run.
        done = await rt.get_task(task.id)
        assert done.state == "completed" and done.next_run_at is None
        assert done.run_count == 1 and done.last_outcome == "success"
        assert await rt.history(task.id) == [record]


async def test_attribution_in_state_message_and_checkpoint_metadata(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph("noted"), database=database)
    async with rt:
        task = await rt.create_task(
            name="water plants",
            schedule=Cron("0 9 * * *", tz="Europe/Berlin"),
            trigger={"prompt": "Remind me to water the plants", "system_addon": "Be cheerful"},
            thread_id="t-attr",
        )
        record = await rt.run_now(task.id)
        assert record.outcome == "success" and record.trigger == "manual"
        config = {"configurable": {"thread_id": "t-attr"}}
        state = await rt.graph.aget_state(config)
        source = state.values["task_source"]
        assert source["task_id"] == task.id
        assert source["task_name"] == "water plants"
        assert source["run_id"] == record.run_id
        assert source["system_addon"] == "Be cheerful"
        trigger_message = state.values["messages"][0]
        assert isinstance(trigger_message, HumanMessage)
        assert trigger_message.additional_kwargs["task_source"] == source
        checkpointer = rt.checkpointer
        assert checkpointer is not None
        found = [c async for c in checkpointer.alist(config, filter={"task_id": task.id})]
        assert found, "checkpoint metadata must carry task_id"
        assert {c.metadata["run_id"] for c in found} == {record.run_id}
        assert {c.metadata["task_name"] for c in found} == {"water plants"}
        assert [c async for c in checkpointer.alist(config, filter={"task_id": "other"})] == []


async def test_hung_model_is_recorded_timeout_near_the_deadline(
    sqlite_url: str, runtime_factory: Any
) -> None:
    model = ScriptedChatModel(steps=[HANG, "recovered"])
    rt = runtime_factory(build_graph(model), database=sqlite_url, max_concurrency=1)
    async with rt:
        task = await rt.create_task(
            name="slow",
            schedule=Interval(hours=1),
            trigger=ConversationTrigger(prompt="think hard", timeout_secs=1),
            thread_id="slow",
        )
        record = await rt.run_now(task.id)
        assert record.outcome == "timeout"
        assert "within 1s" in (record.error or "")
        assert record.finished_at is not None
        elapsed = (record.finished_at - record.started_at).total_seconds()
        assert 1.0 <= elapsed < 10.0
        # The worker is free again: the next turn on the same thread succeeds.
        again = await rt.run_now(task.id)
        assert again.outcome == "success" and again.summary == "recovered"


async def test_a_timeout_raised_inside_the_turn_is_an_error_not_our_deadline(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # A provider's own timeout (TimeoutError from the model call) is the turn failing,
    # long before the task's deadline: recorded error with its message, not timeout.
    model = ScriptedChatModel(steps=[TimeoutError("provider took too long")])
    async with runtime_factory(build_graph(model), database=sqlite_url) as rt:
        task = await rt.create_task(
            name="flaky provider",
            schedule=Interval(hours=1),
            trigger=ConversationTrigger(prompt="hi", timeout_secs=60),
        )
        record = await rt.run_now(task.id)
        assert record.outcome == "error"
        assert "TimeoutError: provider took too long" in (record.error or "")


async def test_node_that_raises_is_recorded_error_with_its_message(
    database: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(RuntimeError("model provider exploded")), database=database)
    async with rt:
        task = await rt.create_task(
            name="boom", schedule=Interval(hours=1), trigger="hello", thread_id="boom"
        )
        record = await rt.run_now(task.id)
        assert record.outcome == "error"
        assert record.error == "RuntimeError: model provider exploded"
        assert (await rt.get_task(task.id)).last_outcome == "error"


class _Unprintable(Exception):
    """An exception whose message cannot be made (a library's broken ``__str__``)."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ failed")


async def test_an_exception_whose_message_cannot_be_read_is_recorded_by_its_type(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # It was recorded "the turn could not start: RuntimeError: __str__ failed": the turn
    # had run, and the type of what it raised was lost.
    rt = runtime_factory(make_graph(_Unprintable()), database=sqlite_url)
    async with rt:
        task = await rt.create_task(name="boom", schedule=Interval(hours=1), trigger="hello")
        record = await rt.run_now(task.id)
    assert record.outcome == "error"
    assert record.error == "_Unprintable (its message could not be read)"


async def test_a_huge_error_message_is_recorded_cut_like_a_summary(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # An exception's message comes from outside (a provider's body, a tool's output):
    # megabytes of it were stored whole in every record, and sent with every webhook.
    rt = runtime_factory(make_graph(RuntimeError("x" * 1_000_000)), database=sqlite_url)
    async with rt:
        task = await rt.create_task(name="boom", schedule=Interval(hours=1), trigger="hello")
        record = await rt.run_now(task.id)
        (stored,) = await rt.history(task.id)
    assert record.outcome == "error" and stored == record
    error = record.error or ""
    assert len(error) == _bridge.ERROR_MAX_CHARS
    assert error.startswith("RuntimeError: xxx") and error.endswith("…")


async def test_invalid_stored_payload_is_recorded_as_error_and_runtime_goes_on(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # The run is recorded error once and the task quarantined (it used to stay active,
    # to fail, and be retried, at each fire).
    events: list[TaskEvent] = []
    rt = runtime_factory(make_graph("fine"), database=sqlite_url, on_event=events.append)
    async with rt:
        bad = await rt.create_task(
            name="bad", schedule=Interval(hours=1), trigger="hi", thread_id="t"
        )
        good = await rt.create_task(
            name="good", schedule=Interval(hours=1), trigger="hi", thread_id="t"
        )
        corrupt = (
            update(tasks_table)
            .where(tasks_table.c.id == bad.id)
            .values(payload={"prompt": "", "colour": "red"})
        )
        await rt.store.transaction(lambda conn: conn.execute(corrupt))
        stored = await rt.get_task(bad.id)
        with pytest.raises(InvalidPayload):
            stored.trigger  # noqa: B018
        assert "payload: field 'prompt'" in (stored.problem or "")
        record = await rt.run_now(bad.id)
        assert record.outcome == "error"
        assert "the stored task cannot be read: payload:" in (record.error or "")
        assert "unknown field 'colour'" in (record.error or "")
        assert [(e.kind, e.task_id) for e in events] == [("quarantined", bad.id)]
        assert (await rt.run_now(good.id)).outcome == "success"
        listed = await rt.list_tasks()
        assert [(t.id, t.state) for t in listed] == [(bad.id, "quarantined"), (good.id, "active")]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        # Each used to be accepted, then fail every claim pass (a fraction of a slot is
        # no LIMIT; an endless lease or window is no date) or purge every record.
        ("max_concurrency", 2.5, "max_concurrency must be a whole number, got 2.5"),
        ("max_concurrency", "4", "max_concurrency must be a whole number, got '4'"),
        ("lease_secs", float("inf"), "lease_secs must be a positive, finite number"),
        ("window_secs", float("inf"), "window_secs must be a positive, finite number"),
        # Finite, but past the calendar's end once added to now: every claim pass failed
        # (OverflowError, logged and tried again for ever), or the start raised it.
        ("lease_secs", 1e12, "lease_secs must be a positive, finite number of seconds, up to 100"),
        ("window_secs", 1e12, "window_secs must be a positive, finite number of seconds, up to"),
        ("sync_interval_secs", float("nan"), "sync_interval_secs must be a positive"),
        ("drain_timeout_secs", -5, "drain_timeout_secs must be 0 or more seconds, got -5"),
        ("store_retry_secs", float("nan"), "store_retry_secs must be 0 or more seconds"),
        ("history_limit", -1, "history_limit must be a whole number of run records"),
        ("history_max_age_days", -1, "history_max_age_days must be a positive number"),
    ],
)
def test_options_a_runtime_cannot_run_with_are_refused_when_made(
    option: str, value: Any, said: str
) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(InvalidTask, match=re.escape(said)):
        SchedulerRuntime(None, database="sqlite://", **options)


def test_edge_options_a_runtime_runs_with_are_accepted() -> None:
    rt = SchedulerRuntime(
        None,
        database="sqlite://",
        default_timeout_secs=float("inf"),
        drain_timeout_secs=0,
        store_retry_secs=0,
        history_limit=0,
        history_max_age_days=None,
    )
    assert (rt.default_timeout_secs, rt.drain_timeout_secs, rt.store_retry_secs) == (
        float("inf"),
        0,
        0,
    )
    assert (rt.history_limit, rt.history_max_age_days) == (0, None)


BAD_DRAINS: list[Any] = [float("nan"), -1, "5"]


@pytest.mark.parametrize("drain", BAD_DRAINS)
async def test_a_stop_refuses_a_drain_timeout_it_cannot_wait_and_keeps_running(
    sqlite_url: str, runtime_factory: Any, drain: Any
) -> None:
    """``stop(drain_timeout_secs=nan)`` drained for 0 s; a bad value is refused as the
    constructor refuses it, and the runtime runs on."""
    rt = runtime_factory(None, database=sqlite_url)
    async with rt:
        with pytest.raises(
            InvalidTask, match=re.escape(f"must be 0 or more seconds, got {drain!r}")
        ):
            await rt.stop(drain_timeout_secs=drain)
        assert rt.running
        await rt.stop(drain_timeout_secs=float("inf"))  # waits for ever: nothing runs here
        assert not rt.running


async def test_invalid_input_raises_typed_errors_and_stores_nothing(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url)
    async with rt:
        past = Once(at=datetime.now(timezone.utc) - timedelta(minutes=5))
        with pytest.raises(InvalidSchedule, match="past"):
            await rt.create_task(name="late", schedule=past, trigger="hi")
        with pytest.raises(InvalidPayload, match="prompt"):
            await rt.create_task(name="empty", schedule=Interval(hours=1), trigger="")
        with pytest.raises(InvalidSchedule, match="Mars/Olympus"):
            await rt.create_task(
                name="tz", schedule=Cron("0 9 * * *", tz="Mars/Olympus"), trigger="hi"
            )
        with pytest.raises(TaskNotFound, match="no task with id 'nope'"):
            await rt.run_now("nope")
        assert await rt.list_tasks() == []


async def test_calls_before_start_name_the_fix(make_graph: Any, sqlite_url: str) -> None:
    rt = SchedulerRuntime(make_graph(), database=sqlite_url)
    with pytest.raises(NotRunning, match="async with SchedulerRuntime"):
        await rt.create_task(name="x", schedule=Interval(hours=1), trigger="hi")


async def test_owner_scope_hides_other_owners_tasks(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url)
    async with rt:
        alice = await rt.create_task(
            name="a", schedule=Interval(hours=1), trigger="hi", owner="alice"
        )
        await rt.create_task(name="b", schedule=Interval(hours=1), trigger="hi", owner="bob")
        assert [t.name for t in await rt.list_tasks(owner="alice")] == ["a"]
        for call in (rt.get_task, rt.run_now, rt.pause_task, rt.delete_task, rt.history):
            with pytest.raises(TaskNotFound):
                await call(alice.id, owner="bob")
        assert (await rt.get_task(alice.id)).state == "active"
        assert list(await rt.history(alice.id)) == []  # bob's run_now claimed nothing
        for bad in ("a\x00b", "\ud800"):
            with pytest.raises(TaskNotFound) as refused:
                await rt.run_now(bad)
            assert str(refused.value).startswith(f"no task with id {bad!r};")  # quoted once
        assert (await rt.run_now(f" {alice.id} ", owner="alice")).outcome == "success"


async def test_an_unknown_task_id_is_reported_as_given_by_every_method(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # run_now(" nope ") said "no task with id 'nope'", the id it looked up, while the
    # other methods quoted the id as given.
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        await rt.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
        calls: list[Callable[[str], Awaitable[Any]]] = [
            rt.get_task,
            lambda v: rt.update_task(v, name="x"),
            rt.pause_task,
            rt.resume_task,
            rt.delete_task,
            rt.run_now,
            rt.history,
        ]
        for call in calls:
            with pytest.raises(TaskNotFound) as refused:
                await call(" nope ")
            assert str(refused.value).startswith("no task with id ' nope ';")
            assert refused.value.task_id == " nope "


async def test_methods_taking_an_id_refuse_one_of_another_kind_or_a_blank_one(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # get_run(5) and transcript(5) answered None and an empty transcript, deliveries(None)
    # every delivery, thread_lock([...]) a TypeError, get_task(5) "no task with id '5'".
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
        record = await rt.run_now(task.id)

        async def hold(thread_id: Any) -> None:
            async with rt.thread_lock(thread_id, timeout=1):
                pass

        by_id: list[tuple[str, Callable[[Any], Awaitable[Any]]]] = [
            ("task_id", rt.get_task),
            ("task_id", lambda v: rt.update_task(v, name="x")),
            ("task_id", rt.pause_task),
            ("task_id", rt.resume_task),
            ("task_id", rt.delete_task),
            ("task_id", rt.run_now),
            ("task_id", rt.history),
            ("task_id", rt.next_run_times),
            ("run_id", rt.get_run),
            ("run_id", rt.deliveries),
            ("thread_id", hold),
            ("thread_id", lambda v: rt.list_tasks(thread_id=v)),
        ]
        said = {int: "an int", type(None): "None", bytes: "a bytes", list: "a list"}
        for name, call in by_id:
            for bad in (5, None, b"id", ["x"], "", "  "):
                if bad is None and call is by_id[-1][1]:
                    continue  # list_tasks(thread_id=None) lists every thread
                got = repr(bad) if isinstance(bad, str) else said[type(bad)]
                with pytest.raises(InvalidTask) as refused:
                    await call(bad)
                hint = "; list tasks to see the valid ids" if name == "task_id" else ""
                assert str(refused.value) == f"{name} must be a non-blank string, got {got}{hint}"
        for bad, got in ((5, "an int"), (None, "None")):
            with pytest.raises(InvalidTask, match=f"^thread_id must be a string, got {got}$"):
                await rt.transcript(bad)
        assert (await rt.transcript("")).turns == []  # a LangGraph thread may have any name
        with pytest.raises(InvalidTask, match="^owner must be a string, got an int$"):
            await rt.get_task(task.id, owner=5)
        with pytest.raises(InvalidTask, match="^owner must be a string, got a float$"):
            await rt.list_tasks(owner=1.5)
        assert (await rt.get_task(task.id)).id == task.id  # nothing changed
        assert await rt.get_run(record.run_id) == record


async def test_arguments_of_the_wrong_type_are_named_with_their_article(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    # They read "got int", "got str" and "got NoneType".
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
        given: dict[str, Any] = {"name": "t", "schedule": Interval(hours=1), "trigger": "hi"}
        refused: list[tuple[dict[str, Any], str]] = [
            ({"name": 5}, "task name must be a string, got an int"),
            ({"name": None}, "task name must be a string, got None"),
            (
                {"thread_id": 5},
                "thread_id must be a string (or None for isolated runs), got an int",
            ),
            (
                {"schedule": "every day at 9:00"},
                "schedule must be a Cron, Interval or Once, got a str; for text such as "
                "'every day at 9:00' use parse_schedule(text, tz=..., now=...)",
            ),
            (
                {"schedule": {"seconds": 60}},
                "schedule must be a Cron, Interval or Once, got a dict; build one from its "
                "fields, e.g. Interval(seconds=3600)",
            ),
            ({"schedule": None}, "schedule must be a Cron, Interval or Once, got None"),
            ({"options": 5}, "options must be a TaskOptions (or its dict), got an int"),
            ({"trigger": ["hi"]}, "task payload must be a JSON object, got a list"),
        ]
        for changes, message in refused:
            with pytest.raises((InvalidTask, InvalidSchedule, InvalidPayload)) as raised:
                await rt.create_task(**(given | changes))
            assert str(raised.value) == message
        with pytest.raises(InvalidTask) as raised:
            await rt.update_task(task.id, name=["t"])
        assert str(raised.value) == "task name must be a string, got a list"
        with pytest.raises(InvalidSchedule) as schedule_refused:
            await rt.update_task(task.id, schedule="hourly")
        assert str(schedule_refused.value).startswith(
            "schedule must be a Cron, Interval or Once, got a str; "
        )
        assert [t.id for t in await rt.list_tasks()] == [task.id]
        assert await rt.get_task(task.id) == task


async def test_a_server_webhook_or_graph_of_the_wrong_type_is_named_with_its_article(
    sqlite_url: str, make_graph: Any
) -> None:
    # They read "got str" and "got NoneType".
    with pytest.raises(InvalidTask) as refused:
        SchedulerRuntime(None, server="http://localhost:2024", database=sqlite_url)  # type: ignore[arg-type]
    assert str(refused.value) == (
        "server must be a LangGraphServer(url=..., assistant_id=...), got a str"
    )
    with pytest.raises(InvalidTask) as refused:
        SchedulerRuntime(make_graph(), webhook="https://hooks.example", database=sqlite_url)  # type: ignore[arg-type]
    assert str(refused.value) == (
        "webhook must be a Webhook, e.g. webhook=Webhook(url='https://…', secret=...) from "
        "langgraph_scheduler.webhooks; got a str"
    )
    for graph, got in ((5, "an int"), (lambda rt: None, "None")):
        rt = SchedulerRuntime(graph, database=sqlite_url)  # type: ignore[arg-type]
        with pytest.raises(InvalidGraph) as unbound:
            await rt.start()
        assert str(unbound.value) == (
            f"graph must be a compiled LangGraph graph or a StateGraph, got {got}"
        )
        assert not rt.running


async def test_task_api_pause_resume_update_delete(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url, timezone="Europe/Berlin")
    async with rt:
        task = await rt.create_task(
            name="report", schedule=Cron("0 9 * * 1-5"), trigger="Weekly report", thread_id="t"
        )
        assert task.schedule.tz == "Europe/Berlin"  # the runtime default, shown back
        paused = await rt.pause_task(task.id)
        assert paused.state == "paused" and paused.next_run_at is None
        assert await rt.next_run_times(task.id) == []
        resumed = await rt.resume_task(task.id)
        assert resumed.state == "active" and resumed.next_run_at is not None
        times = await rt.next_run_times(task.id, 3)
        assert len(times) == 3 and all(t.weekday() < 5 and t.hour == 9 for t in times)
        assert str(times[0].tzinfo) == "Europe/Berlin"
        updated = await rt.update_task(
            task.id, name="daily report", schedule=Cron("30 18 * * *"), timeout_secs=30
        )
        assert updated.name == "daily report"
        assert updated.trigger.timeout_secs == 30 and updated.trigger.prompt == "Weekly report"
        next_local = updated.next_run_at.astimezone(updated.schedule.zone)
        assert (next_local.hour, next_local.minute) == (18, 30)
        deleted = await rt.delete_task(task.id)
        assert deleted.id == task.id
        with pytest.raises(TaskNotFound):
            await rt.get_task(task.id)


async def test_manual_limits_and_previews_refuse_what_counts_nothing(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        task = await rt.create_task(name="t", schedule=Interval(seconds=3600), trigger="hi")
        for limits, message in (
            ({"max_per_task": -1}, "max_per_task must be a whole number of manual runs, 0 or"),
            ({"max_per_task": "2"}, "max_per_task must be a whole number of manual runs"),
            ({"max_per_owner": 1.5}, "max_per_owner must be a whole number of manual runs"),
            ({"max_per_task": 1, "per_secs": -5}, "per_secs must be a positive, finite number"),
            ({"max_per_task": 1, "per_secs": math.nan}, "per_secs must be a positive, finite"),
            ({"max_per_task": 1, "per_secs": "60"}, "per_secs must be a positive, finite"),
        ):
            with pytest.raises(InvalidTask, match=message):
                await rt.run_now(task.id, **limits)
        assert await rt.history(task.id) == []  # nothing ran for a refused call
        with pytest.raises(NotAllowed):  # 0: no manual run allowed, as the tools' limits say
            await rt.run_now(task.id, max_per_task=0)
        assert await rt.next_run_times(task.id, 0) == []
        for n in (-1, 1001, 10**9, "3"):
            with pytest.raises(InvalidTask, match="a whole number from 0 to 1,000"):
                await rt.next_run_times(task.id, n)
        assert len(await rt.next_run_times(task.id, 1000)) == 1000


async def test_filters_quotas_and_waits_refuse_values_of_the_wrong_kind(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    async with runtime_factory(make_graph(), database=sqlite_url) as rt:
        task = await rt.create_task(name="t", schedule=Interval(seconds=3600), trigger="hi")
        refused: list[tuple[Any, str]] = [
            (lambda: rt.list_tasks(state="done"), "state must be one of active, paused, comp"),
            (lambda: rt.history(task.id, before=datetime(2030, 1, 1)), "before must be an aware"),
            (lambda: rt.history(task.id, before="2030-01-01"), "before must be an aware"),
            (lambda: rt.resume_task(task.id, max_active="1"), "max_active must be a whole"),
            (lambda: rt.update_task(task.id, name="u", max_active=-1), "max_active must be"),
            (
                lambda: rt.create_task(
                    name="u", schedule=Interval(seconds=60), trigger="hi", max_active=-1
                ),
                "max_active must be a whole number of active tasks, 0 or more",
            ),
            (
                lambda: rt.create_task(
                    name="u", schedule=Interval(seconds=60), trigger="hi", paused="no"
                ),
                "paused must be True or False, got 'no'",
            ),
        ]
        for call, message in refused:
            with pytest.raises(InvalidTask, match=message):
                await call()
        with pytest.raises(InvalidTask, match="timeout must be 0 or more seconds, got -1"):
            async with rt.thread_lock("t", timeout=-1):
                pass
        assert [t.id for t in await rt.list_tasks()] == [task.id]  # nothing was created
        assert (await rt.get_task(task.id)).name == "t"
        assert await rt.history(task.id, before=datetime(2030, 1, 1, tzinfo=timezone.utc)) == []


async def test_monday_cron_is_scheduled_on_a_monday(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url)
    async with rt:
        task = await rt.create_task(
            name="monday", schedule=Cron("0 8 * * 1", tz="America/New_York"), trigger="hi"
        )
        local = [t for t in await rt.next_run_times(task.id, 4)]
        assert [t.strftime("%A %H:%M") for t in local] == ["Monday 08:00"] * 4
        sunday = await rt.create_task(
            name="sunday", schedule=Cron("0 8 * * 0", tz="America/New_York"), trigger="hi"
        )
        seven = await rt.create_task(
            name="seven", schedule=Cron("0 8 * * 7", tz="America/New_York"), trigger="hi"
        )
        assert sunday.next_run_at == seven.next_run_at
        assert sunday.next_run_at.astimezone(sunday.schedule.zone).strftime("%A") == "Sunday"


async def test_restart_keeps_tasks_next_run_and_history(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    graph = make_graph("first life")
    async with runtime_factory(graph, database=sqlite_url) as rt:
        task = await rt.create_task(
            name="daily", schedule=Cron("15 7 * * *", tz="Asia/Tokyo"), trigger="hi", thread_id="t"
        )
        first = await rt.run_now(task.id)
        before = await rt.get_task(task.id)
    async with runtime_factory(make_graph("second life"), database=sqlite_url) as rt2:
        after = await rt2.get_task(task.id)
        assert after == before
        assert await rt2.history(task.id) == [first]
        second = await rt2.run_now(task.id)
        assert second.outcome == "success" and second.summary == "second life"
        messages = (await rt2.graph.aget_state({"configurable": {"thread_id": "t"}})).values[
            "messages"
        ]
        assert [m.text for m in messages] == ["hi", "first life", "hi", "second life"]


async def test_tasks_due_while_down_fire_at_start_and_move_on_from_their_own_fire(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    async with runtime_factory(None, database=sqlite_url) as rt:
        a, b, c = [
            await rt.create_task(
                name=name, schedule=Cron("0 9 * * *", tz="Europe/Berlin"), trigger="hi"
            )
            for name in "abc"
        ]
    # While no runtime is up, a and c fall due; b is moved to a time of its own.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    due = {a.id: now - timedelta(seconds=2), c.id: now - timedelta(seconds=1)}
    own = now + timedelta(days=2, minutes=7)
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        for task_id, at in [*due.items(), (b.id, own)]:
            conn.execute(
                update(tasks_table).where(tasks_table.c.id == task_id).values(next_run_at=at)
            )
    engine.dispose()
    async with runtime_factory(make_graph(), database=sqlite_url) as rt2:
        for task_id, at in due.items():
            (record,) = await runs.wait_for(1, task_id=task_id)
            assert record.outcome == "success" and record.scheduled_for == at
            assert record.lateness >= timedelta(0)
            expected = a.schedule.next_fire_times(1, after=at)[0]
            assert (await rt2.get_task(task_id)).next_run_at == expected
        assert await rt2.history(b.id) == []
        assert (await rt2.get_task(b.id)).next_run_at == own


async def test_fires_on_one_thread_never_overlap_but_other_threads_do(
    sqlite_url: str, runtime_factory: Any
) -> None:
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    peak_total = [0]
    # The first turn on each thread waits (up to 30 s, then fails) for one on the other:
    # they meet however slow the machine, unless the other's turn cannot begin beside it.
    entered = {"shared": asyncio.Event(), "other": asyncio.Event()}

    async def slow_node(state: Any, config: RunnableConfig) -> dict[str, Any]:
        thread = config["configurable"]["thread_id"]
        active[thread] = active.get(thread, 0) + 1
        peak[thread] = max(peak.get(thread, 0), active[thread])
        peak_total[0] = max(peak_total[0], sum(active.values()))
        entered[thread].set()
        await asyncio.wait_for(entered["other" if thread == "shared" else "shared"].wait(), 30)
        await asyncio.sleep(0.2)
        active[thread] -= 1
        return {"messages": [AIMessage("done")]}

    from langgraph_scheduler.state import SchedulerState

    builder = StateGraph(SchedulerState)
    builder.add_node("slow", slow_node)
    builder.add_edge(START, "slow")
    rt = runtime_factory(builder, database=sqlite_url, max_concurrency=4)
    async with rt:
        tasks = [
            await rt.create_task(
                name=f"t{i}", schedule=Interval(hours=1), trigger="go", thread_id=thread
            )
            for i, thread in enumerate(["shared", "shared", "shared", "other"])
        ]
        records = await asyncio.gather(*(rt.run_now(t.id) for t in tasks))
        assert [r.outcome for r in records] == ["success"] * 4
        assert peak["shared"] == 1
        assert peak_total[0] >= 2  # 'other' ran beside 'shared'


async def test_isolated_tasks_run_each_fire_in_a_fresh_kept_thread(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    rt = runtime_factory(make_graph("fresh"), database=sqlite_url)
    async with rt:
        task = await rt.create_task(name="iso", schedule=Interval(hours=1), trigger="hello")
        assert task.thread_mode == "isolated" and task.thread_id is None
        one = await rt.run_now(task.id)
        two = await rt.run_now(task.id)
        assert one.thread_id != two.thread_id
        assert task.id in (one.thread_id or "") and one.run_id in (one.thread_id or "")
        for record in (one, two):
            state = await rt.graph.aget_state({"configurable": {"thread_id": record.thread_id}})
            assert [m.text for m in state.values["messages"]] == ["hello", "fresh"]


async def test_interval_fires_repeatedly_until_max_runs(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter, clock: FakeClock
) -> None:
    rt = runtime_factory(make_graph("tick"), database=sqlite_url, clock=clock)
    async with rt:
        task = await rt.create_task(
            name="tick", schedule=Interval(seconds=1), trigger="tick?", thread_id="tick", max_runs=2
        )
        assert await step(rt, clock, 1) == 1
        assert await step(rt, clock, 1) == 1
        records = runs.records
        assert [r.task_id for r in records] == [task.id] * 2
        assert [r.outcome for r in records] == ["success", "success"]
        assert records[1].scheduled_for - records[0].scheduled_for == timedelta(seconds=1)
        final = await rt.get_task(task.id)
        assert final.state == "completed" and final.run_count == 2
        assert await step(rt, clock, 60) == 0
        assert len(await rt.history(task.id)) == 2


async def test_stop_drains_then_records_interrupted(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    model = ScriptedChatModel(steps=[HANG])
    rt = runtime_factory(build_graph(model), database=sqlite_url)
    await rt.start()
    task = await rt.create_task(
        name="hang", schedule=Interval(hours=1), trigger="hi", thread_id="h"
    )
    running = await rt.run_now(task.id, wait=False)
    assert running.running
    await until(lambda: model.in_flight, "the turn under way")
    await rt.stop(drain_timeout_secs=0.2)
    (record,) = await runs.wait_for(1)
    assert record.run_id == running.run_id and record.outcome == "interrupted"
    async with runtime_factory(build_graph(model), database=sqlite_url) as rt2:
        assert (await rt2.get_run(running.run_id)).outcome == "interrupted"


async def test_a_cancelled_stop_cuts_its_drain_short_and_still_closes_the_store(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """Cancelling the task that owns ``async with`` while its stop drains (Ctrl-C in
    ``asyncio.run``, a cancelled notebook cell) records the turn interrupted and closes
    the store. Before, the runtime stayed "stopping" for good: its loops ran on, its store
    stayed open, and every later stop returned at once without closing anything."""
    model = ScriptedChatModel(steps=[HANG])
    rt = runtime_factory(build_graph(model), database=sqlite_url)
    draining = asyncio.Event()

    async def owner() -> None:
        async with rt:
            task = await rt.create_task(name="hang", schedule=Interval(hours=1), trigger="hi")
            await rt.run_now(task.id, wait=False)
            await until(lambda: model.in_flight, "the turn under way")
            draining.set()
        # leaving the block: the stop drains the hung turn (drain_timeout_secs=5)

    owning = asyncio.ensure_future(owner())
    await draining.wait()
    await until(lambda: rt._state == "stopping", "the stop draining")
    owning.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owning
    assert not rt.running and rt._state == "stopped"
    assert all(loop.done() for loop in rt._loops)
    with pytest.raises(NotRunning, match="stopped"):
        _ = rt.store
    (record,) = runs.records
    assert record.outcome == "interrupted"


async def test_a_second_stop_waits_for_the_first_to_close_the_store(
    sqlite_url: str, runtime_factory: Any
) -> None:
    model = ScriptedChatModel(steps=[HANG])
    rt = runtime_factory(build_graph(model), database=sqlite_url)
    await rt.start()
    task = await rt.create_task(name="hang", schedule=Interval(hours=1), trigger="hi")
    await rt.run_now(task.id, wait=False)
    await until(lambda: model.in_flight, "the turn under way")
    first = asyncio.ensure_future(rt.stop(drain_timeout_secs=0.3))
    await asyncio.sleep(0)
    await rt.stop()
    assert rt._state == "stopped"  # was "stopping": the second stop returned at once
    await first


async def test_a_stop_called_while_the_runtime_starts_stops_it_once_started(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """Before, a stop racing the start returned at once, doing nothing: the runtime then
    started and ran on, its store open, though its stop had returned."""
    rt = runtime_factory(build_graph(ScriptedChatModel(steps=[])), database=sqlite_url)
    starting = asyncio.ensure_future(rt.start())
    await asyncio.sleep(0)  # the start has begun opening the store
    await rt.stop()
    await starting
    assert rt._state == "stopped" and all(loop.done() for loop in rt._loops)
    with pytest.raises(NotRunning, match="stopped"):
        _ = rt.store


async def test_methods_awaited_on_another_event_loop_run_on_the_runtimes_own(
    database: str, runtime_factory: Any
) -> None:
    """Another thread's ``asyncio.run(rt.create_task(...))`` is handed to the runtime's
    loop. Before, it ran on the caller's loop and failed on the runtime's queues and
    locks ("bound to a different event loop"; on PostgreSQL already at create_task), and
    a user turn (``ainvoke``) left the checkpointer's lock bound to the wrong loop."""
    model = ScriptedChatModel(steps=["done"], cycle=True)
    rt = runtime_factory(build_graph(model), database=database)
    await rt.start()

    def elsewhere() -> tuple[Any, ...]:
        async def calls() -> tuple[Any, ...]:
            task = await rt.create_task(
                name="t", schedule=Interval(hours=1), trigger="hi", thread_id="th"
            )
            record = await rt.run_now(task.id)
            state = await rt.ainvoke(
                {"messages": [HumanMessage("hello")]}, {"configurable": {"thread_id": "th"}}
            )
            listed = await rt.list_tasks()
            return task, record, state, listed

        return asyncio.run(calls())

    task, record, state, listed = await asyncio.to_thread(elsewhere)
    assert record.outcome == "success"
    assert state["messages"][-1].content == "done"
    assert [t.id for t in listed] == [task.id]
    assert (await rt.run_now(task.id)).outcome == "success"  # its own loop still works


async def test_a_stop_awaited_on_another_event_loop_stops_the_runtime_on_its_own(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """A stop awaited on another loop (another thread's ``asyncio.run``) is handed to the
    runtime's loop, as the tools' calls are. Before, it ran its drain there and failed
    with "attached to a different loop", leaving the runtime marked stopped with its
    turn unrecorded and its store open, which no later stop closed."""
    rt = runtime_factory(build_graph(ScriptedChatModel(steps=[HANG])), database=sqlite_url)
    await rt.start()
    task = await rt.create_task(name="hang", schedule=Interval(hours=1), trigger="hi")
    running = await rt.run_now(task.id, wait=False)
    await asyncio.to_thread(asyncio.run, rt.stop(drain_timeout_secs=0.2))
    assert rt._state == "stopped" and all(loop.done() for loop in rt._loops)
    (record,) = await runs.wait_for(1)
    assert record.run_id == running.run_id and record.outcome == "interrupted"
    with pytest.raises(NotRunning, match="stopped"):
        _ = rt.store


async def test_stop_from_the_runtimes_own_turn_raises_instead_of_waiting_for_itself(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """A node (or tool, or listener) of the runtime's turn calling ``stop`` would wait
    for its own turn: it raises, and the turn records why. Before, it waited out the
    drain timeout, was cancelled with its turn, and left the runtime "stopping"."""
    holder: list[SchedulerRuntime] = []

    async def stopper(state: SchedulerState) -> dict[str, Any]:
        await holder[0].stop()
        return {"messages": [AIMessage("stopped")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("stopper", stopper)
    builder.add_edge(START, "stopper")
    rt = runtime_factory(builder, database=sqlite_url, drain_timeout_secs=0.5)
    holder.append(rt)
    async with rt:
        task = await rt.create_task(name="stop", schedule=Interval(hours=1), trigger="hi")
        record = await rt.run_now(task.id)
        assert record.outcome == "error"
        assert "stop() was called from the runtime's own turn" in (record.error or "")
        assert rt.running


async def test_a_stop_inside_the_runtimes_own_thread_hold_does_not_wait_for_it(
    sqlite_url: str, runtime_factory: Any
) -> None:
    """The task inside ``thread_lock`` stopping the runtime: its hold ends only after the
    stop, so the stop does not wait for it (it waited out the whole drain timeout for
    it); the hold outlives the stop, as any hold past the drain does. Another task's
    hold is still waited for."""
    rt = runtime_factory(None, database=sqlite_url, drain_timeout_secs=600)
    await rt.start()
    other_held, other_free = asyncio.Event(), asyncio.Event()

    async def other() -> None:
        async with rt.thread_lock("theirs"):
            other_held.set()
            await other_free.wait()

    theirs = asyncio.ensure_future(other())
    await other_held.wait()
    async with rt.thread_lock("mine"):
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, other_free.set)  # the other hold ends meanwhile
        me = asyncio.current_task()
        assert me is not None
        hang = loop.call_later(60, me.cancel)  # not the 600 s drain: only the other hold
        try:
            await rt.stop()  # from this task: a task of its own would not be inside the hold
        finally:
            hang.cancel()
        assert not rt.running and theirs.done()


async def test_a_hold_outliving_the_stop_lets_the_blocks_own_error_through(
    database: str, runtime_factory: Any
) -> None:
    """A ``thread_lock`` block still running when the stop's drain ends raises its own
    error, never one of the stop in its place; one that ends without one ends as usual
    (its thread stays taken until its lease runs out, see the stop)."""
    rt = runtime_factory(None, database=database)
    await rt.start()
    holding: list[str] = []
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(thread_id: str, error: Exception | None) -> str:
        async with rt.thread_lock(thread_id):
            holding.append(thread_id)
            if len(holding) == 2:
                held.set()
            await release.wait()
            if error is not None:
                raise error
        return "ended"

    failing = asyncio.ensure_future(hold("alice", ValueError("the block's own")))
    quiet = asyncio.ensure_future(hold("bob", None))
    await held.wait()
    await rt.stop(drain_timeout_secs=0)
    release.set()
    with pytest.raises(ValueError, match="^the block's own$"):
        await failing
    assert await quiet == "ended"


async def test_run_now_waiting_when_the_runtime_stops_raises_not_running(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """Before, the waiting caller got a bare CancelledError, as if it had been cancelled.
    The stop comes once the turn is under way (a fixed wait could stop it before)."""
    held = HeldGraph()
    rt = runtime_factory(held.graph, database=sqlite_url)
    await rt.start()
    task = await rt.create_task(name="hang", schedule=Interval(hours=1), trigger="hi")
    waiting = asyncio.ensure_future(rt.run_now(task.id))
    await asyncio.wait_for(held.entered.wait(), 30)
    await rt.stop(drain_timeout_secs=0.1)
    with pytest.raises(NotRunning, match="recorded interrupted"):
        await waiting
    (record,) = runs.records
    assert record.outcome == "interrupted"


async def test_run_now_waiting_for_a_slot_when_the_runtime_stops_returns_it_not_started(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    """A waited run the stop kept from starting (every turn slot taken) is not cut
    short: its caller gets its finished record, interrupted, saying it never began."""
    held = HeldGraph()
    rt = runtime_factory(held.graph, database=sqlite_url, max_concurrency=1)
    await rt.start()
    first = await rt.create_task(name="first", schedule=Interval(hours=1), trigger="a")
    second = await rt.create_task(name="second", schedule=Interval(hours=1), trigger="b")
    busy = asyncio.ensure_future(rt.run_now(first.id))
    await asyncio.wait_for(held.entered.wait(), 30)
    waiting = asyncio.ensure_future(rt.run_now(second.id))
    while not list(await rt.history(second.id)):
        await asyncio.sleep(0.01)
    await rt.stop(drain_timeout_secs=0.1)
    record = await waiting
    assert (record.task_id, record.outcome) == (second.id, "interrupted")
    assert record.error == "runtime is stopping: the turn was not started"
    with pytest.raises(NotRunning, match="recorded interrupted"):
        await busy
    assert held.prompts == ["a"]


def test_asyncio_run_returning_without_stop_stops_the_runtime_and_exits(
    tmp_path: Any,
) -> None:
    """``asyncio.run`` ending (or interrupted) before ``stop()``: its teardown cancels the
    runtime's tasks, and the runtime stops then, recording its turn interrupted. Before,
    its store's threads were never closed, and the interpreter hung at exit for good."""
    database = f"sqlite:///{tmp_path / 'x.db'}"
    script = textwrap.dedent(
        f"""
        import asyncio
        from langgraph.graph import START, StateGraph
        from langgraph_scheduler import Interval, SchedulerRuntime, SchedulerState

        async def hang(state):
            await asyncio.Event().wait()

        builder = StateGraph(SchedulerState)
        builder.add_node("hang", hang)
        builder.add_edge(START, "hang")

        async def main():
            rt = SchedulerRuntime(builder, database={database!r})
            await rt.start()
            task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="hi")
            await rt.run_now(task.id, wait=False)
            await asyncio.sleep(0.2)
            return task.id

        task_id = asyncio.run(main())
        print("main returned without stop()", flush=True)

        async def read():
            async with SchedulerRuntime(None, database={database!r}) as rt:
                print([r.outcome for r in await rt.history(task_id)], flush=True)

        asyncio.run(read())
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main returned without stop()", "['interrupted']"]


async def test_missed_fire_after_downtime_is_recorded(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, clock: FakeClock
) -> None:
    async with runtime_factory(make_graph(), database=sqlite_url, clock=clock) as rt:
        task = await rt.create_task(
            name="missed",
            schedule=Once(at=clock.now() + timedelta(seconds=30)),
            trigger="hi",
            options=TaskOptions(misfire_grace_secs=5),
        )
    await clock.advance(60)  # the runtime is down when the fire is due, and past its grace
    async with runtime_factory(make_graph(), database=sqlite_url, clock=clock) as rt2:
        await rt2.run_due()  # the start looks for what fell due while down; this waits for it
        await rt2.wait_idle()
        (record,) = await rt2.history(task.id)
        assert await record_count(rt2) == 1
        assert record.outcome == "missed" and "1 occurrence(s) missed" in (record.summary or "")
        assert record.scheduled_for == task.next_run_at
        assert (await rt2.get_task(task.id)).state == "completed"
        assert await step(rt2, clock, 3600) == 0


async def test_stale_claim_from_a_dead_process_is_recorded_interrupted(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    async with runtime_factory(make_graph(), database=sqlite_url, lease_secs=0.2) as rt:
        task = await rt.create_task(name="x", schedule=Interval(hours=1), trigger="hi")
        # A claim whose holder never renews it, as if its process died.
        now = datetime.now(timezone.utc)
        claimed = await rt.store.claim_manual(
            task.id, at=now, holder="elsewhere:1:dead", lease_until=now + timedelta(seconds=0.2)
        )
        assert isinstance(claimed, tuple)

        async def recorded() -> Any:
            record = await rt.get_run(claimed[1].run_id)
            return record if record and record.outcome else None

        record = await until(recorded, "the lapsed claim recorded")
        assert record.outcome == "interrupted"
        assert "stopped renewing" in (record.error or "")


def test_a_holder_is_judged_dead_only_where_its_pid_means_its_process() -> None:
    # A process of this host and PID namespace that is gone is dead; one named by the
    # host name alone (a container sharing the host's name and network, in a PID
    # namespace of its own), or by another host, is left to its lease.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    here = f"{process_host()}:{gone}:deadbeef"
    elsewhere = [f"{socket.gethostname()}:{gone}:deadbeef", f"other-host:{gone}:deadbeef"]
    alive = f"{process_host()}:{os.getpid()}:cafe"
    assert process_host() != socket.gethostname()  # Linux: its PID namespace is named
    assert dead_holders([here, *elsewhere, alive], mine="me") == [here]


async def test_a_slow_listener_never_holds_up_the_renewal_of_leases(sqlite_url: str) -> None:
    # Recording a lapsed claim awaits the on_run listeners; one that takes its time must
    # not stop this runtime renewing the lease of its own turn meanwhile (another replica
    # would take that turn's fire for lapsed and run it again).
    release, heard = asyncio.Event(), asyncio.Event()

    async def slow(record: Any) -> None:
        if record.outcome == "interrupted":
            heard.set()
            await release.wait()

    # Leases of 1.5 s, renewed every 0.5 s: renewed again and again while the listener is
    # held (however late a loaded machine makes each renewal), not held up by it.
    held = HeldGraph()
    rt = SchedulerRuntime(held.graph, database=sqlite_url, lease_secs=1.5, on_run=slow)
    async with rt:
        lapsed = await rt.create_task(name="lapsed", schedule=Interval(hours=1), trigger="hi")
        now = datetime.now(timezone.utc)
        ghost = await rt.store.claim_manual(
            lapsed.id, at=now, holder="elsewhere:1:dead", lease_until=now + timedelta(seconds=0.1)
        )
        assert isinstance(ghost, tuple)
        mine = await rt.create_task(name="mine", schedule=Interval(hours=1), trigger="hi")
        running = asyncio.ensure_future(rt.run_now(mine.id))
        await asyncio.wait_for(held.entered.wait(), 30)  # its turn is under way
        await asyncio.wait_for(heard.wait(), 30)  # the listener is held by the lapsed record
        record = await rt.get_run(ghost[1].run_id)
        assert record is not None and record.outcome == "interrupted"
        leases: set[datetime] = set()
        query = select(runs_table.c.lease_expires_at).where(runs_table.c.task_id == mine.id)

        async def renewed_twice() -> bool:
            (lease,) = await rt.store.transaction(lambda conn: conn.scalars(query).all())
            assert lease is not None
            leases.add(lease)
            return len(leases) >= 3

        await until(renewed_twice, "the turn's lease renewed twice while the listener waits")
        assert not release.is_set() and not running.done()
        release.set()
        held.release.set()
        assert (await running).outcome == "success"


async def test_concurrency_stays_within_the_limit(sqlite_url: str, runtime_factory: Any) -> None:
    model = ScriptedChatModel(steps=["ok"], delay_secs=0.2)
    rt = runtime_factory(build_graph(model), database=sqlite_url, max_concurrency=2)
    async with rt:
        tasks = [
            await rt.create_task(
                name=f"c{i}", schedule=Interval(hours=1), trigger="go", thread_id=f"c{i}"
            )
            for i in range(5)
        ]
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.append(model.in_flight)
                await asyncio.sleep(0.02)

        watcher = asyncio.create_task(watch())
        records = await asyncio.gather(*(rt.run_now(t.id) for t in tasks))
        watcher.cancel()
        assert [r.outcome for r in records] == ["success"] * 5
        assert max(seen) == 2


@pytest.mark.slow
async def test_a_burst_beyond_capacity_waits_in_the_table_and_every_fire_runs(
    make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    # 1,000 reminders due at the same instant, default settings (4 turns at a time):
    # the fires without a free slot wait in the task table, none is dropped or skipped.
    # The clock stands still while they are created (however long that takes), then
    # reaches their instant once; the turns free their slots on their own.
    clock = FakeClock(FAKE_START)
    rt = runtime_factory(make_graph("ok"), database="sqlite://", clock=clock)
    async with rt:
        at = FAKE_START + timedelta(seconds=1)
        for i in range(1000):
            await rt.create_task(name=f"r{i}", schedule=Once(at), trigger="go", owner=f"u{i}")
        await clock.set(at)
        await rt.run_due()
        records = await runs.wait_for(1000, timeout=90)
        assert len(records) == 1000
        assert {r.outcome for r in records} == {"success"}
        assert len({r.task_id for r in records}) == 1000
        assert all(r.scheduled_for == at and r.lateness >= timedelta(0) for r in records)
        assert await rt.store.count_tasks(states=["completed"]) == 1000


async def test_a_fire_in_flight_keeps_its_request_not_its_task(
    runtime_factory: Any, runs: RunWaiter
) -> None:
    # A long turn keeps alive all it holds, and the collector's full passes go over it
    # again and again: a burst of one-shot fires in flight holds none of their tasks.
    release = asyncio.Event()
    started: list[str] = []

    async def wait(state: SchedulerState) -> dict[str, Any]:
        source = state.get("task_source")
        started.append(source["task_id"] if source else "")
        await release.wait()
        return {"messages": [AIMessage(content="ok")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("wait", wait)
    builder.add_edge(START, "wait")
    clock = FakeClock(FAKE_START)
    rt = runtime_factory(builder, database="sqlite://", clock=clock)
    async with rt:
        at = FAKE_START + timedelta(seconds=1)
        ids = {
            (await rt.create_task(name=f"r{i}", schedule=Once(at), trigger="go")).id
            for i in range(4)
        }
        await clock.set(at)
        await rt.run_due()
        await until(lambda: len(started) == 4, "the 4 turns under way")
        assert set(started) == ids
        gc.collect()
        kept = [o for o in gc.get_objects() if isinstance(o, Task) and o.id in ids]
        release.set()
        records = await runs.wait_for(4, timeout=10)
    assert kept == []
    assert [r.outcome for r in records] == ["success"] * 4


async def test_finished_fires_leave_nothing_behind_that_grows_with_their_number(
    make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    # Whatever the runtime keeps once a fire is over (its record, its turn's lock, its
    # context, the feed's changes) would pile up, and the collector's full passes walk
    # every object alive: after twice as many fires, no more objects than after half.
    # (The checkpointer keeps each thread's checkpoints: the test deletes the threads.)
    clock = FakeClock(FAKE_START)
    rt = runtime_factory(make_graph("ok"), database="sqlite://", clock=clock)

    async def fires(n: int, at: datetime) -> int:
        for i in range(n):
            await rt.create_task(name=f"r{at:%H%M%S}-{i}", schedule=Once(at), trigger="go")
        await clock.set(at)
        await rt.run_due()
        records = await runs.wait_for(n, timeout=30)
        await rt.wait_idle()
        assert [r.outcome for r in records] == ["success"] * n
        for record in records:
            assert record.thread_id is not None
            await rt.checkpointer.adelete_thread(record.thread_id)
        runs.records.clear()
        del records
        gc.collect()
        # Not counted: dead weak references, which sqlite3 keeps of a connection's
        # cursors and prunes every 200 cursors.
        return sum(1 for o in gc.get_objects() if not (type(o) is weakref.ref and o() is None))

    async with rt:
        # First the imports, caches and statements of fires and of the loops that run
        # every few seconds (the change feed, the upkeep, the window's reload).
        for secs in (1, 12, 23):
            await fires(20, FAKE_START + timedelta(seconds=secs))
        after_20 = await fires(20, FAKE_START + timedelta(seconds=34))
        after_60 = await fires(40, FAKE_START + timedelta(seconds=45))
    assert after_60 - after_20 < 20, f"{after_60 - after_20} more objects after 40 more fires"


def _counting_graph() -> StateGraph[Any, Any, Any, Any]:
    """A graph whose model answers how many messages it was given ("seen N")."""

    def reply(messages: list[BaseMessage]) -> str:
        return f"seen {len(messages)}"

    return build_graph(ScriptedChatModel(steps=[reply], cycle=True))


async def test_user_turns_and_scheduled_turns_share_the_thread_lock(
    sqlite_url: str, runtime_factory: Any
) -> None:
    rt = runtime_factory(_counting_graph(), database=sqlite_url)
    async with rt:
        task = await rt.create_task(
            name="n",
            schedule=Interval(hours=1),
            trigger="scheduled",
            thread_id="shared",
            options=TaskOptions(on_busy="skip"),
        )
        async with rt.thread_lock("shared"):
            busy = await rt.run_now(task.id)
        assert busy.outcome == "skipped" and "busy" in (busy.error or "")
        result = await rt.ainvoke(
            {"messages": [HumanMessage("mine")]}, {"configurable": {"thread_id": "shared"}}
        )
        assert result["task_source"] is None
        assert result["messages"][-1].text == "seen 1"


async def test_a_turn_inside_its_own_callers_hold_is_refused_not_waited_for(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # ainvoke inside the caller's own thread_lock of that thread waited for itself for
    # good. It is refused at once, naming the fix; a task started inside the hold still
    # waits for it as any other caller does, and a hold with a timeout says busy.
    rt = runtime_factory(_counting_graph(), database=sqlite_url)
    turn = {"messages": [HumanMessage("mine")]}
    shared: RunnableConfig = {"configurable": {"thread_id": "shared"}}
    async with rt:
        task = await rt.create_task(
            name="n",
            schedule=Interval(hours=1),
            trigger="hi",
            thread_id="shared",
            options=TaskOptions(max_wait_secs=30),  # how long its run waited (a bound)
        )
        async with rt.thread_lock("shared"):
            with pytest.raises(RuntimeError, match="rt.graph.ainvoke"):
                await rt.ainvoke(turn, shared)
            with pytest.raises(RuntimeError, match=r"call run_now\(task_id, wait=False\)"):
                await rt.run_now(task.id)  # its run would wait for this hold
            with pytest.raises(RuntimeError, match="holds thread 'shared' already"):
                async with rt.thread_lock("shared"):
                    pass
            with pytest.raises(ThreadBusy):
                async with rt.thread_lock("shared", timeout=0.01):
                    pass
            inside = await rt.graph.ainvoke({**turn, "task_source": None}, shared)
            again = {"messages": [HumanMessage("again")]}
            later = asyncio.ensure_future(rt.ainvoke(again, shared))  # waits for the hold
            await asyncio.sleep(0.05)
            assert not later.done()
        assert inside["messages"][-1].text == "seen 1"
        assert len((await later)["messages"]) == len(inside["messages"]) + 2  # after it
        async with rt.thread_lock("shared", timeout=0):  # nothing left held
            pass
        assert len(await rt.history(task.id)) == 0  # the refused run was not claimed


_PROBE_SECS = 60.0
"""The bound on a probe of a wait from inside a turn: one that waits for good fails the
test after it, rather than hanging it (no time the test expects)."""


async def _probed(calls: dict[str, Awaitable[Any]]) -> dict[str, Any]:
    """Each probe's result, or what it raised, each bounded by ``_PROBE_SECS``."""
    bounded = [asyncio.wait_for(call, _PROBE_SECS) for call in calls.values()]
    results = await asyncio.gather(*bounded, return_exceptions=True)
    return dict(zip(calls, results, strict=True))


def _outcome(result: Any) -> str:
    """A probe's outcome: what it raised, or "ok"."""
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    return "ok"


@pytest.mark.parametrize("turn", ["scheduled", "ainvoke"])
async def test_a_node_waiting_for_its_own_thread_is_refused_not_left_waiting(
    database: str, runtime_factory: Any, turn: str
) -> None:
    # A node of a turn on thread "alice" (a scheduled one, or ainvoke's) awaiting a turn
    # on "alice", a run of a task talking there, or a hold of it, waited for its own turn
    # for good: the node runs in a child task, so the runtime's check of the task inside
    # its own hold missed it. It is refused at once, naming the fix; a turn on another
    # thread, a run not waited for, and a hold with a timeout work as before.
    seen: dict[str, str] = {}
    alice: RunnableConfig = {"configurable": {"thread_id": "alice"}}

    def probes() -> dict[str, Awaitable[Any]]:
        hi = {"messages": [HumanMessage("hi")]}
        return {
            "own turn": rt.ainvoke(hi, alice),
            "own run": rt.run_now(follow.id),
            "own hold": _held(rt.thread_lock("alice")),
            "hold with a timeout": _held(rt.thread_lock("alice", timeout=0.05)),
            "other turn": rt.ainvoke(hi, {"configurable": {"thread_id": "bob"}}),
            "run not waited for": rt.run_now(follow.id, wait=False),
        }

    async def nest() -> None:
        calls = probes()
        seen.update((call, _outcome(r)) for call, r in (await _probed(calls)).items())

    rt = runtime_factory(nesting_graph(nest), database=database)
    async with rt:
        follow = await rt.create_task(
            name="follow", schedule=Interval(hours=1), trigger="follow", thread_id="alice"
        )
        if turn == "scheduled":
            nester = await rt.create_task(
                name="nest", schedule=Interval(hours=1), trigger="nest", thread_id="alice"
            )
            assert (await rt.run_now(nester.id)).outcome == "success"
        else:
            result = await rt.ainvoke({"messages": [HumanMessage("nest")]}, alice)
            assert result["messages"][-1].text == "nested"
        await rt.wait_idle()
        followed = await rt.history(follow.id)  # the run not waited for, after the turn
    inside = "RuntimeError: this call runs inside a turn on thread 'alice'"
    assert len(seen) == 6 and seen["own turn"].startswith(inside), seen
    assert seen["own run"].startswith(inside) and "task " + repr(follow.id) in seen["own run"]
    assert (
        seen["own hold"].startswith(inside) and "run_now(task_id, wait=False)" in seen["own hold"]
    )
    assert seen["hold with a timeout"].startswith("ThreadBusy")
    assert seen["other turn"] == "ok" and seen["run not waited for"] == "ok"
    assert [(r.outcome, r.summary) for r in followed] == [("success", "re: follow")]


async def test_a_follow_up_turn_a_node_starts_in_a_fresh_context_runs_after_its_turn(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # A task a node starts and does not await inherits its turn's mark, so its
    # ``ainvoke`` on the turn's thread is refused like the node's own; started in a fresh
    # context (the README's way), it waits for the turn and runs after it.
    alice: RunnableConfig = {"configurable": {"thread_id": "alice"}}
    started: list[asyncio.Task[Any]] = []

    async def nest() -> None:
        inherited = asyncio.ensure_future(rt.ainvoke({"messages": [HumanMessage("a")]}, alice))
        fresh = contextvars.Context().run(
            asyncio.create_task, rt.ainvoke({"messages": [HumanMessage("b")]}, alice)
        )
        started.extend([inherited, fresh])

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url)
    async with rt:
        await rt.ainvoke({"messages": [HumanMessage("nest")]}, alice)
        inherited, fresh = await asyncio.wait_for(
            asyncio.gather(*started, return_exceptions=True), _PROBE_SECS
        )
        state = await rt.graph.aget_state(alice)
    assert isinstance(inherited, RuntimeError) and "inside a turn" in str(inherited)
    assert [m.text for m in state.values["messages"]] == ["nest", "nested", "b", "re: b"]
    assert not isinstance(fresh, BaseException) and fresh["messages"][-1].text == "re: b"


async def test_a_node_of_an_isolated_tasks_turn_waiting_for_its_own_thread_is_refused(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # An isolated task's fire takes no lock on its fresh thread (nobody else knows it),
    # so it did not mark the thread held: a node running a turn on its own thread (read
    # off its config) was not refused but ran it inside the turn, which then lost it.
    seen: dict[str, str] = {}

    async def nest() -> None:
        own: RunnableConfig = {"configurable": {"thread_id": _run_thread_id()}}
        turn = rt.ainvoke({"messages": [HumanMessage("hi")]}, own)
        results = await asyncio.gather(
            asyncio.wait_for(turn, _PROBE_SECS),
            asyncio.wait_for(_held(rt.thread_lock(_run_thread_id())), _PROBE_SECS),
            return_exceptions=True,
        )
        seen.update(zip(("own turn", "own hold"), map(_outcome, results), strict=True))

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url)
    async with rt:
        task = await rt.create_task(name="iso", schedule=Interval(hours=1), trigger="nest")
        record = await rt.run_now(task.id)
        assert record.thread_id is not None
        config: RunnableConfig = {"configurable": {"thread_id": record.thread_id}}
        state = await rt.graph.aget_state(config)
    inside = f"RuntimeError: this call runs inside a turn on thread {record.thread_id!r}"
    assert seen["own turn"].startswith(inside), seen
    assert seen["own hold"].startswith(inside), seen
    assert (record.outcome, record.summary) == ("success", "nested")
    assert [m.text for m in state.values["messages"]] == ["nest", "nested"]


_NO_SLOT = "RuntimeError: this call runs inside a turn of the scheduler (a node or tool of it)"


@pytest.mark.parametrize("turn", ["scheduled", "run_now"])
async def test_a_node_waiting_for_a_run_with_the_only_slot_its_own_is_refused(
    sqlite_url: str, runtime_factory: Any, clock: FakeClock, turn: str
) -> None:
    # With max_concurrency=1 the node's own turn holds the one turn slot, so a run it
    # waits for could only begin once that turn ended: the node waited until the turn's
    # timeout (or for good). It is refused at once, claiming nothing; a run not waited
    # for begins once the turn ends.
    seen: dict[str, str] = {}

    async def nest() -> None:
        calls = {
            "waited run": rt.run_now(other.id),
            "run not waited for": rt.run_now(other.id, wait=False),
        }
        seen.update((call, _outcome(r)) for call, r in (await _probed(calls)).items())

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url, max_concurrency=1, clock=clock)
    async with rt:
        other = await rt.create_task(name="other", schedule=Interval(hours=1), trigger="other")
        nester = await rt.create_task(name="nest", schedule=Interval(seconds=1), trigger="nest")
        if turn == "scheduled":
            assert await step(rt, clock, 1) == 2  # the turn, then the run not waited for
        else:
            await rt.run_now(nester.id)
        await rt.wait_idle()
        (nested,) = await rt.history(nester.id)
        others = await rt.history(other.id)
    assert seen["waited run"].startswith(_NO_SLOT), seen
    assert "run_now(task_id, wait=False)" in seen["waited run"]
    assert "max_concurrency" in seen["waited run"] and repr(other.id) in seen["waited run"]
    assert seen["run not waited for"] == "ok"
    assert (nested.outcome, nested.summary) == ("success", "nested")
    assert [(r.outcome, r.summary) for r in others] == [("success", "re: other")]


@pytest.mark.parametrize("on_busy", ["wait", "skip"])
async def test_a_node_waiting_for_a_run_of_its_own_task_is_refused(
    sqlite_url: str, runtime_factory: Any, on_busy: Literal["wait", "skip"]
) -> None:
    # A task's runs never overlap: a run of the task a node's turn is a run of waits
    # for that turn to end. Waited for from the node, it waited max_wait_secs (300 s by
    # default, past most turns' timeouts) and then ended skipped. It is refused at once,
    # claiming nothing; a run not waited for runs after the turn. A task that skips a busy
    # run is not refused: its waited run ends skipped at once.
    seen: dict[str, str] = {}
    got: list[TaskRunRecord] = []

    async def nest() -> None:
        if seen:  # the run started from the first turn: nothing more
            return
        seen["started"] = "ok"
        calls = {
            "waited run": rt.run_now(nester.id),
            "run not waited for": rt.run_now(nester.id, wait=False),
        }
        results = await _probed(calls)
        seen.update((call, _outcome(result)) for call, result in results.items())
        got.extend(r for r in results.values() if isinstance(r, TaskRunRecord))

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url, max_concurrency=4)
    async with rt:
        nester = await rt.create_task(
            name="nest",
            schedule=Interval(hours=1),
            trigger="nest",
            options=TaskOptions(on_busy=on_busy),
        )
        first = await rt.run_now(nester.id)
        await rt.wait_idle()
        records = await rt.history(nester.id)
    assert (first.outcome, first.summary) == ("success", "nested")
    assert seen["run not waited for"] == "ok"
    if on_busy == "wait":
        assert seen["waited run"].startswith(
            f"RuntimeError: this call runs inside a turn of task {nester.id!r}"
        ), seen
        assert "run_now(task_id, wait=False)" in seen["waited run"]
        assert sorted(r.outcome for r in records) == ["success", "success"]
    else:
        assert seen["waited run"] == "ok" and got[0].outcome == "skipped"
        assert sorted(r.outcome for r in records) == ["skipped", "skipped", "success"]


async def test_a_node_waiting_for_a_run_gets_it_once_another_slot_frees(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # With a second slot, which no turn waiting for a run holds, the waited run begins
    # beside the node's turn, and the node gets its finished record.
    got: list[TaskRunRecord] = []

    async def nest() -> None:
        got.append(await asyncio.wait_for(rt.run_now(other.id), _PROBE_SECS))

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url, max_concurrency=2)
    async with rt:
        other = await rt.create_task(name="other", schedule=Interval(hours=1), trigger="other")
        nester = await rt.create_task(name="nest", schedule=Interval(hours=1), trigger="nest")
        nested = await rt.run_now(nester.id)
    assert (nested.outcome, nested.summary) == ("success", "nested")
    assert [(r.task_id, r.outcome, r.summary) for r in got] == [(other.id, "success", "re: other")]


def _chaining_runtime(
    runtime_factory: Any, database: str, max_concurrency: int
) -> tuple[Any, list[str], list[str]]:
    """A runtime whose turns on "nest" each wait for a run of the first of its targets
    (taken off; nothing once none is left), with the targets and what each wait raised
    or "ok"."""
    targets: list[str] = []
    seen: list[str] = []

    async def nest() -> None:
        if not targets:
            return
        try:
            await asyncio.wait_for(rt.run_now(targets.pop(0)), _PROBE_SECS)
        except Exception as exc:
            seen.append(_outcome(exc))
        else:
            seen.append("ok")

    rt = runtime_factory(nesting_graph(nest), database=database, max_concurrency=max_concurrency)
    return rt, targets, seen


async def _nesting_tasks(rt: Any, names: str, options: TaskOptions | None = None) -> list[Task]:
    """A task per letter of ``names``, hourly, whose turns say "nest"."""
    return [
        await rt.create_task(name=name, schedule=Interval(hours=1), trigger="nest", options=options)
        for name in names
    ]


async def test_a_node_waiting_for_a_run_while_every_other_slot_waits_too_is_refused(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # Two slots: turn A's node waits for a run of B, whose turn takes the second slot and
    # waits for a run of C. A's slot frees only once B's run ends, B's once C's: C would
    # never get a slot. B's wait is refused at once; A's gets B's finished run.
    rt, targets, seen = _chaining_runtime(runtime_factory, sqlite_url, 2)
    async with rt:
        a, b = await _nesting_tasks(rt, "ab")
        c = await rt.create_task(name="c", schedule=Interval(hours=1), trigger="c")
        targets.extend([b.id, c.id])
        first = await rt.run_now(a.id)
        (second,) = await rt.history(b.id)
        third = await rt.history(c.id)
    assert len(seen) == 2 and seen[0].startswith(_NO_SLOT) and repr(c.id) in seen[0], seen
    assert seen[1] == "ok"  # A's wait for B, which ended second
    assert (first.outcome, second.outcome, third) == ("success", "success", [])


async def test_a_node_waiting_for_a_run_of_a_task_whose_turn_waits_for_it_is_refused(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # Turn A's node waits for a run of B; B's node waits for a run of A. A's runs never
    # overlap, so that run waits for A's turn, which waits for B's, which waits for it:
    # it waited max_wait_secs and ended skipped (or each turn its timeout). B's wait is
    # refused at once, claiming nothing, as a wait for its own task's run is; A's gets
    # B's finished run. A wait for a run of a task whose turn waits for no one still works.
    rt, targets, seen = _chaining_runtime(runtime_factory, sqlite_url, 4)
    async with rt:
        # max_wait_secs bounds the wait the refusal saves, so the test ends either way.
        a, b = await _nesting_tasks(rt, "ab", TaskOptions(max_wait_secs=5))
        targets.extend([b.id, a.id])
        first = await rt.run_now(a.id)
        await rt.wait_idle()
        (run_of_b,) = await rt.history(b.id)
        targets.append(a.id)  # a node of B, waited for by no turn, may wait for A
        second = await rt.run_now(b.id)
        runs_of_a = await rt.history(a.id)
    assert len(seen) == 3 and seen[0].startswith(
        f"RuntimeError: this call runs inside a turn of task {b.id!r}"
    ), seen
    assert repr(a.id) in seen[0] and "run_now(task_id, wait=False)" in seen[0]
    assert seen[1:] == ["ok", "ok"]
    assert (first.outcome, run_of_b.outcome, second.outcome) == ("success",) * 3
    assert [r.outcome for r in runs_of_a] == ["success"] * 2


async def test_a_node_may_wait_for_a_run_of_a_task_whose_turn_gave_up_waiting_for_it(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # Turn A's node starts waiting for a run of B and gives up (cancels its wait) once
    # B's turn began; A's turn then ends without B's. B's node, waiting for a run of A
    # after that, is not refused: that run waits only for A's turn, which ends.
    b_began, a_gave_up = asyncio.Event(), asyncio.Event()
    seen: dict[str, str] = {}

    async def nest() -> None:
        if "a" not in seen:
            seen["a"] = "began"
            waiting = asyncio.ensure_future(rt.run_now(b.id))
            await b_began.wait()
            waiting.cancel()
            await asyncio.wait({waiting})
            a_gave_up.set()
        elif "b" not in seen:
            seen["b"] = "began"
            b_began.set()
            await a_gave_up.wait()
            (waited,) = (await _probed({"wait": rt.run_now(a.id)})).values()
            seen["b"] = _outcome(waited)

    rt = runtime_factory(nesting_graph(nest), database=sqlite_url, max_concurrency=4)
    async with rt:
        a, b = [
            await rt.create_task(name=name, schedule=Interval(hours=1), trigger="nest")
            for name in "ab"
        ]
        first = await rt.run_now(a.id)
        await rt.wait_idle()
        runs_of_a = await rt.history(a.id)
    assert seen["b"] == "ok" and first.outcome == "success", seen
    assert [r.outcome for r in runs_of_a] == ["success", "success"]


async def test_a_node_of_a_run_a_turn_waits_for_waiting_for_that_turns_thread_is_refused(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # Turn A on thread "alice" waits for a run of B (a fresh thread of its own); B's node
    # waiting for "alice" (a turn on it, a run of a task talking there, a hold of it)
    # waited for A's turn, which waits for B's: until the turns' timeout. Refused at once,
    # as inside A's turn itself; a turn on another thread still works.
    alice: RunnableConfig = {"configurable": {"thread_id": "alice"}}
    seen: dict[str, str] = {}

    async def nest() -> None:
        if _run_thread_id() == "alice":
            await rt.run_now(b.id)
            return
        hi = {"messages": [HumanMessage("hi")]}
        calls = {
            "turn": rt.ainvoke(hi, alice),
            "run": rt.run_now(follow.id),
            "hold": _held(rt.thread_lock("alice")),
            "other turn": rt.ainvoke(hi, {"configurable": {"thread_id": "bob"}}),
        }
        seen.update((call, _outcome(r)) for call, r in (await _probed(calls)).items())

    # The turns' timeout bounds the waits refused, so the test ends either way.
    rt = runtime_factory(
        nesting_graph(nest), database=sqlite_url, max_concurrency=4, default_timeout_secs=20
    )
    async with rt:
        a = await rt.create_task(
            name="a", schedule=Interval(hours=1), trigger="nest", thread_id="alice"
        )
        (b,) = await _nesting_tasks(rt, "b")
        follow = await rt.create_task(
            name="follow", schedule=Interval(hours=1), trigger="follow", thread_id="alice"
        )
        first = await rt.run_now(a.id)
        (run_of_b,) = await rt.history(b.id)
    inside = "RuntimeError: this call runs inside a turn that a turn or hold of thread 'alice'"
    assert [seen[call][: len(inside)] for call in ("turn", "run", "hold")] == [inside] * 3, seen
    assert seen["other turn"] == "ok"
    assert (first.outcome, run_of_b.outcome) == ("success", "success")


def _run_thread_id() -> str:
    """The thread of the run the caller (a node) is in."""
    return str(get_config()["configurable"]["thread_id"])


async def _held(lock: Any) -> None:
    async with lock:
        pass


def _asks_in_a_subgraph() -> StateGraph[Any, Any, Any, Any]:
    """A graph whose subgraph asks the user with ``interrupt()`` on a message saying
    "ask", and otherwise answers what it saw."""

    def answer(state: SchedulerState) -> dict[str, Any]:
        last = state["messages"][-1].text
        reply = str(interrupt("Which one?")) if last == "ask" else f"re: {last}"
        return {"messages": [AIMessage(reply)]}

    inner = StateGraph(SchedulerState)
    inner.add_node("answer", answer)
    inner.add_edge(START, "answer")
    builder = StateGraph(SchedulerState)
    builder.add_node("inner", inner.compile())
    builder.add_edge(START, "inner")
    return builder


async def test_a_fire_on_a_thread_waiting_for_an_answer_is_skipped_and_the_question_kept(
    database: str, runtime_factory: Any
) -> None:
    # A turn sent to a thread held at an interrupt() starts the graph afresh: LangGraph
    # drops the pending question, so the user's answer reaches nothing (an agent's
    # unanswered tool call then breaks every later turn with a real provider).
    rt = runtime_factory(_asks_in_a_subgraph(), database=database)
    config: RunnableConfig = {"configurable": {"thread_id": "asked"}}
    async with rt:
        task = await rt.create_task(
            name="digest", schedule=Interval(hours=1), trigger="digest", thread_id="asked"
        )
        waiting = await rt.ainvoke({"messages": [HumanMessage("ask")]}, config)
        assert waiting["__interrupt__"]

        record = await rt.run_now(task.id)
        assert record.outcome == "skipped"
        assert "waiting for an answer" in (record.error or "")
        state = await rt.graph.aget_state(config)
        assert state.interrupts and [m.text for m in state.values["messages"]] == ["ask"]

        answered = await rt.ainvoke(Command(resume="the blue one"), config)
        assert answered["messages"][-1].text == "the blue one"
        after = await rt.run_now(task.id)  # answered: the thread takes fires again
        assert after.outcome == "success" and after.summary == "re: digest"


class _CountingSaver(InMemorySaver):
    """An in-memory checkpointer that notes the thread and namespace of every
    ``aget_tuple``, to tell how often a turn reads its thread."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, str]] = []

    async def aget_tuple(self, config: RunnableConfig) -> Any:
        conf = config["configurable"]
        self.reads.append((conf["thread_id"], conf.get("checkpoint_ns", "")))
        return await super().aget_tuple(config)


async def test_a_fire_continuing_a_thread_reads_its_checkpoint_once(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # The interrupt guard reads the thread's latest checkpoint before the turn; LangGraph
    # then reads it again to begin the graph. The turn is handed the guard's read: one
    # read of the thread's top level per fire, while a subgraph's reads (its own
    # namespace) still go to the checkpointer, and the turn sees the whole thread.
    saver = _CountingSaver()
    rt = runtime_factory(_asks_in_a_subgraph(), database=sqlite_url, checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "kept"}}
    async with rt:
        task = await rt.create_task(
            name="digest", schedule=Interval(hours=1), trigger="digest", thread_id="kept"
        )
        await rt.ainvoke({"messages": [HumanMessage("hello")]}, config)
        for _ in range(2):
            saver.reads.clear()
            record = await rt.run_now(task.id)
            assert record.outcome == "success" and record.summary == "re: digest"
            assert saver.reads.count(("kept", "")) == 1
            assert any(t == "kept" and ns.startswith("inner") for t, ns in saver.reads)
        texts = [m.text for m in (await rt.graph.aget_state(config)).values["messages"]]
        assert texts == ["hello", "re: hello", "digest", "re: digest", "digest", "re: digest"]
        saver.reads.clear()
        await rt.ainvoke({"messages": [HumanMessage("again")]}, config)
        assert saver.reads.count(("kept", "")) == 1  # a user's own turn reads as before


async def test_a_fire_in_a_fresh_thread_reads_no_checkpoint_and_keeps_its_turn(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # An isolated task's fire talks in a thread made for that run: there is nothing in
    # it to read, so the turn begins without reading it, and its checkpoints are kept.
    saver = _CountingSaver()
    rt = runtime_factory(_asks_in_a_subgraph(), database=sqlite_url, checkpointer=saver)
    async with rt:
        task = await rt.create_task(name="digest", schedule=Interval(hours=1), trigger="digest")
        for _ in range(2):
            saver.reads.clear()
            record = await rt.run_now(task.id)
            assert record.outcome == "success" and record.summary == "re: digest"
            assert record.thread_id and record.thread_id.startswith(f"task-{task.id}-")
            assert (record.thread_id, "") not in saver.reads
            assert any(ns.startswith("inner") for _, ns in saver.reads)  # the subgraph's
            config: RunnableConfig = {"configurable": {"thread_id": record.thread_id}}
            state = await rt.graph.aget_state(config)
            assert [m.text for m in state.values["messages"]] == ["digest", "re: digest"]
            assert state.config["configurable"]["checkpoint_id"] == record.checkpoint_id


async def test_a_copy_of_the_turns_checkpointer_reads_through_its_own_serializer() -> None:
    # LangGraph copies a checkpointer to give it another serializer (with_allowlist, for
    # strict msgpack): the guard's read, made with the checkpointer's own, is no answer
    # for that copy, which reads the thread itself; the copy the turns run answers it.
    saver = InMemorySaver()
    graph = _asks_in_a_subgraph().compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke({"messages": [HumanMessage("hi")]}, config)
    twin = _answering_known_reads(graph).checkpointer
    assert isinstance(twin, InMemorySaver) and twin is not saver
    assert twin.storage is saver.storage  # the same checkpoints

    class Counting(JsonPlusSerializer):
        loads = 0

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            Counting.loads += 1
            return super().loads_typed(data)

    latest: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    guard_read = await saver.aget_tuple(latest)
    clone = copy.copy(twin)
    clone.serde = Counting()
    token = _KNOWN_LATEST.set(_KnownLatest("t", guard_read, saver.serde))
    try:
        saved = await clone.aget_tuple(latest)
        assert saved is not None and saved is not guard_read and Counting.loads > 0
        assert await twin.aget_tuple(latest) is guard_read
    finally:
        _KNOWN_LATEST.reset(token)


async def test_a_stopping_runtime_claims_nothing_more(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    rt = runtime_factory(make_graph("ok"), database=sqlite_url)
    async with rt:
        task = await rt.create_task(name="c", schedule=Interval(hours=1), trigger="hi")
    # Stopped: the fire due now stays in the table for the next runtime.
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(
            update(tasks_table)
            .where(tasks_table.c.id == task.id)
            .values(next_run_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        )
    engine.dispose()
    assert runs.records == []
    async with runtime_factory(make_graph("ok"), database=sqlite_url):
        (record,) = await runs.wait_for(1, task_id=task.id)
        assert record.outcome == "success"


async def test_a_claim_in_flight_at_stop_ends_recorded_before_the_store_closes(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    """A claim pass waiting for the write lock when the runtime stops is not cut off:
    its fire is recorded (interrupted, for the next runtime) before ``stop`` returns,
    and nothing is written once it has. Cut off, the claim was still written by its
    store thread after the stop, and the fire stayed claimed by a stopped runtime until
    its lease ran out."""
    rt = runtime_factory(make_graph("ok"), database=sqlite_url, sync_interval_secs=0.05)
    await rt.start()
    task = await rt.create_task(
        name="c",
        schedule=Interval(hours=1),
        trigger="hi",
        options=TaskOptions(retry_backoff_secs=0.1),
    )
    bridge = rt._bridge
    assert bridge is not None
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    # On the loop, so no claim pass starts in between: the fire falls due, and another
    # connection takes the write lock, which the next pass waits for.
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    other.execute(
        "UPDATE lgs_tasks SET next_run_at = ? WHERE id = ?",
        (past.strftime("%Y-%m-%d %H:%M:%S.%f"), task.id),
    )
    other.execute("BEGIN IMMEDIATE")
    try:

        async def claiming() -> None:
            while not bridge._claim_lock.locked():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(claiming(), 10)
        await asyncio.sleep(0.2)
        assert bridge._claim_lock.locked(), "the claim pass should be waiting for the lock"
        stopping = asyncio.ensure_future(rt.stop(drain_timeout_secs=0))
        await asyncio.sleep(0.2)
    finally:
        other.execute("COMMIT")
    await stopping
    (record,) = await runs.wait_for(1, task_id=task.id)
    assert record.outcome == "interrupted"
    await asyncio.sleep(0.3)  # a store call cut off would write now
    count = other.execute("SELECT count(*) FROM lgs_runs WHERE outcome IS NULL").fetchone()
    other.close()
    assert count == (0,)
    async with runtime_factory(make_graph("ok"), database=sqlite_url):
        (_, retried) = await runs.wait_for(2, task_id=task.id)
        assert retried.outcome == "success" and retried.scheduled_for == record.scheduled_for


async def test_a_stop_cuts_off_a_recording_the_store_does_not_answer(
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    runs: RunWaiter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A turn's outcome that cannot be recorded (another connection holds the write lock)
    holds the stop only for the recording grace: then it is cut off, nothing of the
    stopped runtime writes afterwards, and the fire, still running in the store, is
    recorded interrupted by the next runtime once its lease runs out."""
    monkeypatch.setattr(_bridge, "_RECORD_GRACE_SECS", 0.5)
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_SECS", 0.2)
    go = asyncio.Event()

    async def node(state: Any) -> dict[str, Any]:
        await go.wait()
        return {"messages": [AIMessage("ok")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    # Checkpoints in memory, so the turn itself never needs the file's write lock.
    rt = runtime_factory(builder, database=sqlite_url, checkpointer=InMemorySaver(), lease_secs=1)
    await rt.start()
    task = await rt.create_task(name="c", schedule=Interval(hours=1), trigger="hi")
    running = await rt.run_now(task.id, wait=False)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        go.set()
        await asyncio.sleep(0.5)  # the turn is over; its finish waits for the lock
        await asyncio.wait_for(rt.stop(drain_timeout_secs=0), 10)
    finally:
        other.execute("COMMIT")
    await asyncio.sleep(0.5)  # a recording left going would write now
    row = other.execute(
        "SELECT outcome FROM lgs_runs WHERE run_id = ?", (running.run_id,)
    ).fetchone()
    other.close()
    assert row == (None,) and runs.records == []
    async with runtime_factory(make_graph("ok"), database=sqlite_url, lease_secs=1):
        (record,) = await runs.wait_for(1, task_id=task.id)
        assert record.run_id == running.run_id and record.outcome == "interrupted"


async def test_schema_is_versioned_and_indexed(database: str, make_graph: Any) -> None:
    from sqlalchemy import inspect

    from langgraph_scheduler.store import SCHEMA_VERSION

    async with SchedulerRuntime(make_graph(), database=database) as rt:
        assert await rt.store.schema_version() == SCHEMA_VERSION

        def indexes(sync_conn: Any) -> dict[str, list[list[str]]]:
            inspector = inspect(sync_conn)
            return {
                table: [list(i["column_names"]) for i in inspector.get_indexes(table)]
                for table in ("lgs_tasks", "lgs_runs")
            }

        found = await rt.store.transaction(indexes)
        assert ["owner", "created_at", "id"] in found["lgs_tasks"]
        assert ["task_id", "started_at"] in found["lgs_runs"]


async def test_scheduled_turn_config_carries_owner_run_name_tags_and_metadata(
    sqlite_url: str, runtime_factory: Any
) -> None:
    from langgraph.graph import START, StateGraph

    from langgraph_scheduler.state import SchedulerState

    seen: list[RunnableConfig] = []

    async def node(state: Any, config: RunnableConfig) -> dict[str, Any]:
        seen.append(config)
        return {"messages": [AIMessage("ok")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    async with runtime_factory(builder, database=sqlite_url) as rt:
        task = await rt.create_task(
            name="digest", schedule=Interval(hours=1), trigger="hi", thread_id="t", owner="alice"
        )
        record = await rt.run_now(task.id)
    (config,) = seen
    assert config["configurable"]["thread_id"] == "t"
    assert config["configurable"]["user_id"] == "alice"  # the task's owner is the turn's user
    metadata = config["metadata"]
    assert metadata["task_id"] == task.id and metadata["task_name"] == "digest"
    assert metadata["run_id"] == record.run_id and metadata["source"] == "scheduler"
    assert {"langgraph-scheduler", f"task:{task.id}"} <= set(config["tags"])


async def test_in_memory_database_keeps_every_record_under_concurrency(
    make_graph: Any, runtime_factory: Any
) -> None:
    # One in-memory connection must not be shared by concurrent transactions: one's
    # rollback or commit would take the others' writes with it.
    rt = runtime_factory(make_graph("ok"), database="sqlite://", max_concurrency=4)
    async with rt:
        tasks = [
            await rt.create_task(name=f"m{i}", schedule=Interval(hours=1), trigger="go")
            for i in range(30)
        ]
        records = await asyncio.gather(*(rt.run_now(t.id) for t in tasks))
        assert [r.outcome for r in records] == ["success"] * 30
        for task, record in zip(tasks, records, strict=True):
            assert await rt.history(task.id) == [record]


async def test_a_fire_claimed_ahead_of_its_instant_begins_its_turn_on_time(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # The timer wakes the runtime a little before each instant so the claim is done by
    # then; the turn itself must still wait for the instant, and the record says when
    # the turn began.
    began: dict[str, datetime] = {}

    async def node(state: SchedulerState) -> dict[str, Any]:
        source = state["task_source"]
        assert source is not None
        began[source["task_id"]] = datetime.now(timezone.utc)
        return {"messages": [AIMessage("on time")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    rt = runtime_factory(builder, database=sqlite_url)
    async with rt:
        first = datetime.now(timezone.utc) + timedelta(seconds=1)
        tasks = [
            await rt.create_task(
                name=f"t{i}", schedule=Once(first + timedelta(milliseconds=40 * i)), trigger="go"
            )
            for i in range(5)
        ]
        records = await runs.wait_for(5, timeout=30)
    due = {t.id: t.next_run_at for t in tasks}
    for record in records:
        assert record.outcome == "success"
        assert record.started_at >= record.scheduled_for == due[record.task_id]
        assert began[record.task_id] >= record.started_at


async def test_records_and_checkpoints_share_one_durability_setting(
    sqlite_url: str, runtime_factory: Any, make_graph: Any
) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    rt = runtime_factory(make_graph("ok"), database=sqlite_url)
    async with rt:
        store_level = await rt.store.transaction(
            lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar()
        )
        saver = rt.checkpointer
        assert isinstance(saver, AsyncSqliteSaver)
        async with saver.conn.execute("PRAGMA synchronous") as cursor:
            row = await cursor.fetchone()
    assert row is not None
    (checkpoint_level,) = row
    assert store_level == checkpoint_level == 1  # NORMAL


@pytest.mark.parametrize(
    ("spacing_ms", "fires", "slots", "on_file"),
    [
        # Each wake sets the timer's job for the next instant at a time already come.
        (5, 20, 4, False),
        # A turn is shorter than the spacing: a slot frees before the next instant the
        # timer woke the runtime for (nothing else would wake it for that fire).
        (12, 10, 1, False),
        # Claims on a thread: slots free while a claim for an instant to come runs.
        (10, 200, 4, True),
    ],
)
async def test_fires_closer_together_than_the_claim_lead_all_start_without_a_poll(
    make_graph: Any,
    runtime_factory: Any,
    runs: RunWaiter,
    request: pytest.FixtureRequest,
    spacing_ms: int,
    fires: int,
    slots: int,
    on_file: bool,
) -> None:
    # The timer wakes the runtime 25 ms before an instant; with the polls 10 minutes
    # apart, only the timer and the freed slots can start these fires.
    database = request.getfixturevalue("sqlite_url") if on_file else "sqlite://"
    rt = runtime_factory(
        make_graph("ok"), database=database, sync_interval_secs=600, max_concurrency=slots
    )
    async with rt:
        first = datetime.now(timezone.utc) + timedelta(seconds=1)
        for i in range(fires):
            at = first + timedelta(milliseconds=spacing_ms * i)
            await rt.create_task(name=f"close {i}", schedule=Once(at=at), trigger="go")

        records = await runs.wait_for(fires, timeout=30)

    assert [r.outcome for r in records] == ["success"] * fires


@pytest.mark.parametrize(
    ("step", "outcome", "recorded"),
    [
        (RuntimeError("bad \x00 byte"), "error", "RuntimeError: bad \ufffd byte"),
        (RuntimeError("path /tmp/\udcff"), "error", "RuntimeError: path /tmp/\ufffd"),
        ("done \x00 here", "success", "done \ufffd here"),
        ("half \ud800 a pair", "success", "half \ufffd a pair"),
    ],
)
async def test_text_no_database_stores_in_a_turns_outcome_is_recorded_replaced(
    database: str, make_graph: Any, runtime_factory: Any, step: Any, outcome: str, recorded: str
) -> None:
    # An exception's message or a model's answer comes from outside: a NUL (PostgreSQL
    # refused the finish, and the run stayed running) or a lone surrogate becomes U+FFFD.
    runtime = runtime_factory(make_graph(step), database=database)
    async with runtime:
        task = await runtime.create_task(name="n", schedule=Interval(hours=1), trigger="go")
        run = await runtime.run_now(task.id)
        (stored,) = await runtime.history(task.id)

    assert run.outcome == stored.outcome == outcome
    assert (stored.error if outcome == "error" else stored.summary) == recorded
    assert stored == run


@pytest.mark.parametrize(
    ("other_database", "refused"),
    [("same, spelled alike", True), ("same, spelled otherwise", True), ("another", False)],
)
async def test_a_node_waiting_for_its_thread_through_another_runtime_on_its_database_is_refused(
    postgres_url: str,
    runtime_factory: Any,
    request: pytest.FixtureRequest,
    other_database: str,
    refused: bool,
) -> None:
    # On PostgreSQL a turn holds its thread against every runtime on the database: a node
    # of one runtime's turn waiting for its own thread through another runtime's ainvoke
    # or thread_lock was not refused (the mark named the turn's store, not its database)
    # and waited for its own turn until the turn's timeout. Nor was it when the other
    # runtime's URL named the same database otherwise (localhost for 127.0.0.1, the
    # default port left out): the mark named the URL, not the server's database. Another
    # database of the server holds threads of its own: its "alice" is another thread.
    seen: dict[str, str] = {}
    alice: RunnableConfig = {"configurable": {"thread_id": "alice"}}

    async def nest() -> None:
        calls = {
            "other runtime's turn": other.ainvoke({"messages": [HumanMessage("hi")]}, alice),
            "other runtime's hold": _held(other.thread_lock("alice")),
        }
        seen.update((call, _outcome(r)) for call, r in (await _probed(calls)).items())

    other_url = {
        "same, spelled alike": postgres_url,
        "same, spelled otherwise": respelled_url(postgres_url),
        "another": respelled_url(request.getfixturevalue("other_postgres_url")),
    }[other_database]
    rt = runtime_factory(nesting_graph(nest), database=postgres_url)
    other = runtime_factory(nesting_graph(nest), database=other_url)
    async with rt, other:
        task = await rt.create_task(
            name="nest", schedule=Interval(hours=1), trigger="nest", thread_id="alice"
        )
        record = await rt.run_now(task.id)
    inside = "RuntimeError: this call runs inside a turn on thread 'alice'"
    if refused:
        assert all(seen[call].startswith(inside) for call in seen) and len(seen) == 2, seen
    else:
        assert seen == {"other runtime's turn": "ok", "other runtime's hold": "ok"}
    assert (record.outcome, record.summary) == ("success", "nested")


async def test_postgres_lock_scope_names_the_servers_database_however_the_url_spells_it(
    postgres_url: str, other_postgres_url: str
) -> None:
    # The scope a thread is held in is the database the server knows, read when the
    # store is set up: two spellings of one database's URL name one scope, and another
    # database of the same server another.
    stores = [open_store(url) for url in (postgres_url, respelled_url(postgres_url))]
    stores.append(open_store(other_postgres_url))
    try:
        for store in stores:
            await store.setup()
        same, respelled, other = (store.lock_scope for store in stores)
    finally:
        for store in stores:
            await store.close()
    assert same == respelled
    assert same != other
