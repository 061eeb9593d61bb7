"""Listeners (``on_run``, ``on_event``) that never answer delay themselves, not the
schedule: fires, manual runs, webhooks and the stop go on without them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from langgraph_scheduler import (
    Interval,
    SchedulerRuntime,
    SyncSchedulerRuntime,
    TaskEvent,
    TaskOptions,
    TaskRunRecord,
)
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.testing import FakeClock
from langgraph_scheduler.webhooks import Webhook

from .helpers import FAKE_START, RunWaiter, build_graph, record_count
from .test_webhooks import Receiver

FIRES = 8
"""Fires due at once, four times the runtime's turn slots."""


class Hung:
    """A coroutine listener that never returns (a push service that never answers) when
    ``told`` holds for what it hears; it notes what it heard and what it was cut off
    from hearing."""

    def __init__(self, *, kind: str | None = None) -> None:
        self.kind = kind
        self.heard: list[Any] = []
        self.cancelled: list[Any] = []

    async def __call__(self, item: TaskRunRecord | TaskEvent) -> None:
        self.heard.append(item)
        if self.kind is not None and getattr(item, "kind", None) != self.kind:
            return
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise


@pytest.fixture(params=["memory", "file"])
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path / 'l.db'}"


async def _recorded(rt: SchedulerRuntime, count: int) -> None:
    """Wait until the store holds ``count`` finished runs (a guard fails a runtime whose
    fires stopped instead of hanging the test)."""

    async def poll() -> None:
        while await record_count(rt) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 60)


async def _runs_per_task(rt: SchedulerRuntime) -> dict[str, list[str | None]]:
    query = text("SELECT task_id, outcome FROM lgs_runs ORDER BY task_id")
    rows = await rt.store.transaction(lambda conn: conn.execute(query).all())
    found: dict[str, list[str | None]] = {}
    for task_id, outcome in rows:
        found.setdefault(task_id, []).append(outcome)
    return found


async def _due_burst(rt: SchedulerRuntime, clock: FakeClock, **options: Any) -> set[str]:
    """``FIRES`` tasks falling due at once; returns their ids once each fire is stored."""
    ids = set()
    for n in range(FIRES):
        task = await rt.create_task(
            name=f"t{n}", schedule=Interval(hours=1), trigger="go", options=TaskOptions(**options)
        )
        ids.add(task.id)
    await clock.advance(3600)
    await rt.run_due()
    await _recorded(rt, FIRES)
    return ids


async def test_a_hung_coroutine_on_run_holds_no_turn_slot(sqlite_db: str) -> None:
    # It used to hold its fire's slot until it returned: two such records and the
    # runtime ran no fire again.
    clock = FakeClock(FAKE_START)
    hung = Hung()
    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    async with SchedulerRuntime(
        graph,
        database=sqlite_db,
        clock=clock,
        max_concurrency=2,
        on_run=hung,
        drain_timeout_secs=0,
    ) as rt:
        ids = await _due_burst(rt, clock)
        assert await _runs_per_task(rt) == {task_id: ["success"] for task_id in ids}
        assert {r.task_id for r in hung.heard} == ids
    assert len(hung.cancelled) == FIRES  # cut off by the stop, not left running


async def test_a_hung_event_listener_holds_no_turn_slot_nor_the_webhook(sqlite_db: str) -> None:
    # Each fire fails and auto-pauses its task, whose event the listener never takes:
    # it used to hold the fire's slot, and its record was told (and sent) only after.
    clock = FakeClock(FAKE_START)
    hung, runs = Hung(kind="auto_paused"), RunWaiter()
    receiver = Receiver()
    graph = build_graph(ScriptedChatModel(steps=[RuntimeError("down")]))
    try:
        async with SchedulerRuntime(
            graph,
            database=sqlite_db,
            clock=clock,
            max_concurrency=2,
            on_run=runs,
            on_event=hung,
            drain_timeout_secs=0,
            webhook=Webhook(url=receiver.url),
        ) as rt:
            ids = await _due_burst(rt, clock, retries=0, pause_after_failures=1)
            assert await _runs_per_task(rt) == {task_id: ["error"] for task_id in ids}
            assert {r.task_id for r in runs.records} == ids
            assert {(e.kind, e.task_id) for e in hung.heard} == {("auto_paused", i) for i in ids}
            assert {t.state for t in await rt.list_tasks()} == {"paused"}
            for _ in range(6000):  # delivered in the background, at once
                if len(receiver.accepted) == FIRES:
                    break
                await asyncio.sleep(0.01)
            assert len(receiver.accepted) == FIRES
    finally:
        receiver.close()
    assert len(hung.cancelled) == FIRES


async def test_a_stop_cuts_hung_listener_calls_off_and_names_their_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to wait for them 30 s past its drain timeout, then cut them off unsaid.
    clock = FakeClock(FAKE_START)
    hung = Hung()
    path = tmp_path / "stop.db"
    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    rt = SchedulerRuntime(
        graph,
        database=f"sqlite:///{path}",
        clock=clock,
        max_concurrency=2,
        on_run=hung,
        drain_timeout_secs=0.1,
    )
    await rt.start()
    try:
        ids = await _due_burst(rt, clock)
    finally:
        with caplog.at_level(logging.WARNING, logger="langgraph_scheduler"):
            await rt.stop()
    assert {r.task_id for r in hung.cancelled} == ids
    said = [r.getMessage() for r in caplog.records if "listener call(s)" in r.getMessage()]
    assert len(said) == 1 and all(r.run_id in said[0] for r in hung.cancelled), said
    with contextlib.closing(sqlite3.connect(path)) as conn:
        stored = conn.execute("SELECT task_id, outcome FROM lgs_runs").fetchall()
    assert sorted(stored) == sorted((task_id, "success") for task_id in ids)


async def test_run_now_returns_once_recorded_with_a_hung_listener(sqlite_db: str) -> None:
    # Decided: run_now's record does not wait for coroutine listeners (they hear it
    # beside it); it used to wait for them, forever for one that never answers.
    hung = Hung()
    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    async with SchedulerRuntime(
        graph, database=sqlite_db, max_concurrency=1, on_run=hung, drain_timeout_secs=0
    ) as rt:
        task = await rt.create_task(name="by hand", schedule=Interval(hours=1), trigger="go")
        first = await asyncio.wait_for(rt.run_now(task.id), 60)
        second = await asyncio.wait_for(rt.run_now(task.id), 60)  # the one slot is free
        assert [first.outcome, second.outcome] == ["success", "success"]
        assert await rt.get_run(first.run_id) == first
        assert [r.run_id for r in hung.heard] == [first.run_id, second.run_id]


async def test_wait_idle_waits_for_coroutine_listeners() -> None:
    # What run_now no longer waits for, wait_idle still does (scripts, tests).
    heard: list[str] = []

    async def slow(record: TaskRunRecord) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        heard.append(record.run_id)

    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    async with SchedulerRuntime(graph, database="sqlite://", on_run=slow) as rt:
        task = await rt.create_task(name="by hand", schedule=Interval(hours=1), trigger="go")
        record = await rt.run_now(task.id)
        await rt.wait_idle()
        assert heard == [record.run_id]


def test_the_sync_twin_runs_on_past_a_hung_listener(tmp_path: Path) -> None:
    hung = Hung()
    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    rt = SyncSchedulerRuntime(
        graph,
        database=f"sqlite:///{tmp_path / 'sync.db'}",
        max_concurrency=1,
        on_run=hung,
        drain_timeout_secs=0,
    )
    with rt:
        task = rt.create_task(name="by hand", schedule=Interval(hours=1), trigger="go")
        running = [rt.run_now(task.id, wait=False) for _ in range(3)]
        deadline = time.monotonic() + 60
        while [r.outcome for r in rt.history(task.id)] != ["success"] * 3:
            assert time.monotonic() < deadline, rt.history(task.id)
            time.sleep(0.02)
        assert rt.run_now(task.id).outcome == "success"
    assert {r.run_id for r in hung.cancelled} >= {r.run_id for r in running}


async def test_a_listener_that_raises_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = RunWaiter()

    def plain(record: TaskRunRecord) -> None:
        raise RuntimeError("plain listener down")

    async def coroutine(record: TaskRunRecord) -> None:
        raise RuntimeError("coroutine listener down")

    graph = build_graph(ScriptedChatModel(steps=["ok"]))
    rt = SchedulerRuntime(graph, database="sqlite://", on_run=plain)
    rt.add_listener(coroutine)
    rt.add_listener(runs)
    with caplog.at_level(logging.ERROR, logger="langgraph_scheduler"):
        async with rt:
            task = await rt.create_task(name="by hand", schedule=Interval(hours=1), trigger="go")
            record = await rt.run_now(task.id)
            await rt.wait_idle()
            assert record.outcome == "success" and runs.records == [record]
    failed = {str(r.exc_info[1]) for r in caplog.records if r.exc_info and "failed" in r.message}
    assert failed == {"plain listener down", "coroutine listener down"}
