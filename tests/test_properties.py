"""Property-based tests: arbitrary input never escapes as an unexpected exception, and the
store stays consistent with the scheduler after every operation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableConfig
from sqlalchemy import select

from langgraph_scheduler import (
    ConversationTrigger,
    InvalidPayload,
    SchedulerError,
    SchedulerRuntime,
    parse_schedule,
)
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import runs_table
from langgraph_scheduler.tools import TOOL_NAMES

from .helpers import build_graph

VALID_SCHEDULES = st.sampled_from(
    ["in 2 hours", "every 3 hours", "every weekday at 9:00", "0 9 * * 1-5", "@daily"]
)
SCHEDULES = st.one_of(
    VALID_SCHEDULES,
    VALID_SCHEDULES,
    st.sampled_from(
        [
            "in 2 hours",
            "every 3 hours",
            "every weekday at 9:00",
            "every monday at 8am",
            "0 9 * * 1-5",
            "30 2 * * 0,7",
            "@daily",
            "2031-01-01T09:00",
            "2001-01-01T09:00",
            "61 * * * *",
            "every 0 minutes",
            "tomorrow at 25:00",
        ]
    ),
    st.text(max_size=30),
)
PAYLOADS = st.one_of(
    st.builds(lambda p: {"prompt": p}, st.text(min_size=1, max_size=30)),
    st.text(min_size=1, max_size=40),
    st.none(),
    st.text(max_size=40),
    st.dictionaries(
        st.sampled_from(["prompt", "system_addon", "timeout_secs", "extra"]),
        st.one_of(st.text(max_size=20), st.integers(-5, 100_000), st.none()),
        max_size=4,
    ),
)
FIRST = st.tuples(
    st.just("create"), VALID_SCHEDULES, st.just("Remind me"), st.sampled_from([None, "t1"])
)
MORE = st.lists(
    st.one_of(
        st.tuples(st.just("create"), SCHEDULES, PAYLOADS, st.sampled_from([None, "t1", "t2"])),
        st.tuples(st.just("pause"), st.integers(0, 5)),
        st.tuples(st.just("resume"), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("update"), st.integers(0, 5), SCHEDULES, PAYLOADS),
        st.tuples(st.just("run"), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=10,
)
OPS = st.builds(lambda first, more: [first, *more], FIRST, MORE)


@given(PAYLOADS)
def test_any_payload_parses_or_raises_invalid_payload(payload: Any) -> None:
    try:
        trigger = ConversationTrigger.from_task_payload(payload)
    except InvalidPayload as exc:
        assert str(exc)
    else:
        assert ConversationTrigger.from_task_payload(trigger.to_payload()) == trigger


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(OPS)
def test_operations_keep_store_and_scheduler_consistent(ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(_run_ops(ops))


async def _run_ops(ops: list[tuple[Any, ...]]) -> None:
    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    async with SchedulerRuntime(graph, database="sqlite://", timezone="Europe/Berlin") as rt:
        ids: list[str] = []
        for op in ops:
            try:
                await _apply(rt, ids, op)
            except SchedulerError:
                pass  # bad input: a typed error, and nothing stored (checked below)
            await _check_consistent(rt)


async def _apply(rt: SchedulerRuntime, ids: list[str], op: tuple[Any, ...]) -> None:
    now = datetime.now(timezone.utc)
    kind = op[0]
    if kind == "create":
        _, text, payload, thread = op
        schedule = parse_schedule(text, tz=rt.timezone, now=now)
        task = await rt.create_task(name="p", schedule=schedule, trigger=payload, thread_id=thread)
        event("created a task")
        ids.append(task.id)
        return
    if not ids:
        return
    task_id = ids[op[1] % len(ids)]
    if kind == "pause":
        await rt.pause_task(task_id)
    elif kind == "resume":
        await rt.resume_task(task_id)
    elif kind == "delete":
        await rt.delete_task(task_id)
    elif kind == "update":
        _, _, text, payload = op
        schedule = parse_schedule(text, tz=rt.timezone, now=now)
        await rt.update_task(task_id, schedule=schedule, trigger=payload)
    elif kind == "run":
        record = await rt.run_now(task_id)
        assert record.outcome == "success"


async def _check_consistent(rt: SchedulerRuntime) -> None:
    tasks = await rt.list_tasks(limit=1000)
    for task in tasks:
        # Only active and completed tasks may have retries waiting for their backoff.
        if task.state not in ("active", "completed"):
            assert await rt.store.pending_retries(task.id) == []
        task.trigger  # noqa: B018  # the API never stores an invalid payload
        assert (task.next_run_at is not None) == (task.state == "active")
    running_runs = select(runs_table.c.run_id).where(runs_table.c.outcome.is_(None))
    # A run started without waiting (run_task_now) may still be going: it must end
    # recorded within moments, never stay running.
    deadline = asyncio.get_running_loop().time() + 30
    while await rt.store.transaction(lambda conn: conn.execute(running_runs).all()):
        assert asyncio.get_running_loop().time() < deadline, "a run was left running"
        await asyncio.sleep(0.02)
    run_tasks = await rt.store.transaction(
        lambda conn: set(conn.execute(select(runs_table.c.task_id)).scalars())
    )
    assert run_tasks <= {t.id for t in tasks}, "no run without its task"


TOOL_ARG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10_000),
    st.text(max_size=30),
    st.sampled_from(["in 2 hours", "every day at 9:00", "0 9 * * 1-5", "Europe/Berlin", "x"]),
    st.lists(st.integers(), max_size=2),
)
TOOL_CALLS = st.lists(
    st.tuples(
        st.sampled_from(TOOL_NAMES),
        st.dictionaries(
            st.sampled_from(
                ["name", "schedule", "prompt", "timezone", "task_id", "limit", "thread", "bogus"]
            ),
            TOOL_ARG_VALUES,
            max_size=5,
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(TOOL_CALLS)
def test_any_tool_arguments_give_a_tool_message_and_a_consistent_store(
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    asyncio.run(_run_tool_calls(calls))


async def _run_tool_calls(calls: list[tuple[str, dict[str, Any]]]) -> None:
    from langchain_core.messages import ToolMessage

    from langgraph_scheduler import SchedulerLimits, scheduler_tools

    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    config: RunnableConfig = {"configurable": {"thread_id": "t", "user_id": "u"}}
    async with SchedulerRuntime(graph, database="sqlite://") as rt:
        tools = {t.name: t for t in scheduler_tools(rt, limits=SchedulerLimits())}
        created = await tools["schedule_task"].ainvoke(
            {
                "name": "schedule_task",
                "args": {"name": "seed", "schedule": "every day at 9:00", "prompt": "hi"},
                "id": "seed",
                "type": "tool_call",
            },
            config=config,
        )
        assert created.status == "success"
        known = [t.id for t in await rt.list_tasks()]
        for i, (name, args) in enumerate(calls):
            if "task_id" in args and isinstance(args["task_id"], int) and known:
                args = {**args, "task_id": known[args["task_id"] % len(known)]}
            call = {"name": name, "args": args, "id": f"call-{i}", "type": "tool_call"}
            message = await tools[name].ainvoke(call, config=config)
            assert isinstance(message, ToolMessage) and message.text
            await _check_consistent(rt)
            known = [t.id for t in await rt.list_tasks()] or known
