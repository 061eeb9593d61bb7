"""Hypothesis drives pause, resume, update, delete and run-now between fires in flight
(on a fake clock), and tool calls with wrongly typed arguments; the store must stay
consistent and the rules must hold after every step."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from sqlalchemy import select

from langgraph_scheduler import Interval, SchedulerError, SchedulerRuntime, TaskOptions
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import retries_table, runs_table, tasks_table
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.tools import SchedulerLimits, scheduler_tools

from .helpers import FAKE_START, build_graph

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.sampled_from([1, 5, 30, 60, 61, 300])),
        st.tuples(st.sampled_from(["pause", "resume", "delete", "run"]), st.integers(0, 3)),
        st.tuples(st.just("update"), st.integers(0, 3), st.sampled_from([30, 60, 90])),
        st.tuples(st.just("max_runs"), st.integers(0, 3), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(STEPS, st.integers(0, 3))
# A fire claimed just before a pause, its turn not yet begun when the clock moves on.
@example([("advance", 60), ("pause", 0), ("advance", 1)], 0)
@pytest.mark.slow
def test_lifecycle_changes_between_fires_in_flight_keep_the_rules(
    steps: list[tuple[Any, ...]], seed: int
) -> None:
    asyncio.run(_interleave(steps, seed))


async def _interleave(steps: list[tuple[Any, ...]], seed: int) -> None:
    clock = FakeClock(FAKE_START)
    # Every other answer fails, so fires leave retries waiting for their backoff.
    model = ScriptedChatModel(
        steps=[RuntimeError("down"), "ok"][seed % 2 :] + ["ok", RuntimeError("down")],
        cycle=True,
        delay_secs=0.001,
    )
    options = TaskOptions(retries=1, retry_backoff_secs=20, pause_after_failures=3)
    async with SchedulerRuntime(
        build_graph(model), database="sqlite://", clock=clock, lease_secs=600
    ) as rt:
        ids = [
            (
                await rt.create_task(
                    name=f"t{i}",
                    schedule=Interval(seconds=60),
                    trigger="go",
                    thread_id=f"t{i}",
                    options=options,
                )
            ).id
            for i in range(3)
        ]
        paused_at: dict[str, Any] = {}
        for step in steps:
            kind = step[0]
            if kind == "advance":
                await clock.advance(step[1])
                await rt.run_due()  # fires start; their turns may still be running
                continue
            task_id = ids[step[1] % len(ids)]
            try:
                if kind == "pause":
                    await rt.pause_task(task_id)
                elif kind == "resume":
                    await rt.resume_task(task_id)
                elif kind == "delete":
                    await rt.delete_task(task_id)
                elif kind == "run":
                    await rt.run_now(task_id, wait=False)
                elif kind == "update":
                    await rt.update_task(task_id, schedule=Interval(seconds=step[2]))
                else:
                    await rt.update_task(task_id, max_runs=step[2])
            except SchedulerError:
                continue
            task = await rt.tasks.get(task_id) if kind != "delete" else None
            if task is not None and task.state == "paused":
                paused_at[task_id] = clock.now()
            else:
                paused_at.pop(task_id, None)
            await _check(rt, paused_at)
        await rt.wait_idle()
        await _check(rt, paused_at, settled=True)


async def _check(rt: SchedulerRuntime, paused_at: dict[str, Any], *, settled: bool = False) -> None:
    def read(conn: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return (
            list(conn.execute(select(tasks_table)).mappings()),
            list(conn.execute(select(runs_table)).mappings()),
            list(conn.execute(select(retries_table)).mappings()),
        )

    tasks, runs, retries = await rt.store.transaction(read)
    by_id = {t["id"]: t for t in tasks}
    # A fire attempt is recorded at most once.
    keys = Counter((r["task_id"], r["scheduled_for"], r["attempt"]) for r in runs)
    assert max(keys.values(), default=1) == 1
    # No run or retry outlives its task; only active or completed tasks wait for retries.
    assert {r["task_id"] for r in runs} <= set(by_id)
    for retry in retries:
        assert by_id[retry["task_id"]]["state"] in ("active", "completed"), retry
    for task in tasks:
        # An active task knows when it fires next; others do not fire.
        assert (task["next_run_at"] is not None) == (task["state"] == "active"), task
        if task["max_runs"] is not None and task["state"] == "active":
            # max_runs may be lowered below the runs done: that completes the task.
            assert task["run_count"] < task["max_runs"], task
        # Nothing scheduled starts for a task after it was paused.
        since = paused_at.get(task["id"])
        if since is not None and task["state"] == "paused":
            started = [
                r
                for r in runs
                if r["task_id"] == task["id"]
                and r["trigger"] == "schedule"
                and r["started_at"] > since
            ]
            assert started == [], started
    if settled:
        assert all(r["outcome"] is not None for r in runs), "a run was left running"


TYPED_WRONG = st.sampled_from([True, False, "5", "20", 5.5, [1], {"n": 1}, None])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(
        [
            ("schedule_task", "max_runs"),
            ("schedule_task", "timeout_secs"),
            ("update_task", "max_runs"),
            ("update_task", "timeout_secs"),
            ("list_tasks", "limit"),
            ("list_tasks", "offset"),
            ("task_history", "limit"),
        ]
    ),
    TYPED_WRONG,
)
def test_a_wrongly_typed_number_is_refused_and_changes_nothing(
    target: tuple[str, str], value: Any
) -> None:
    asyncio.run(_wrongly_typed(target, value))


async def _wrongly_typed(target: tuple[str, str], value: Any) -> None:
    tool, field = target
    config: RunnableConfig = {"configurable": {"thread_id": "t", "user_id": "u"}}
    async with SchedulerRuntime(None, database="sqlite://") as rt:
        tools = {t.name: t for t in scheduler_tools(rt, limits=SchedulerLimits())}
        seed = await rt.create_task(
            name="seed", schedule=Interval(hours=1), trigger="hi", owner="u", thread_id="t"
        )
        args: dict[str, Any] = {
            "schedule_task": {"name": "n", "schedule": "in 1h", "prompt": "p"}
        }.get(tool, {"task_id": seed.id} if tool != "list_tasks" else {})
        call = {"name": tool, "args": {**args, field: value}, "id": "c", "type": "tool_call"}
        message = await tools[tool].ainvoke(call, config=config)
        assert isinstance(message, ToolMessage)
        if value is None and field in ("max_runs", "timeout_secs"):
            return  # "not given": a valid call
        assert message.status == "error", (tool, field, value, message.text)
        assert field in message.text
        (only,) = await rt.list_tasks()
        assert only == seed
