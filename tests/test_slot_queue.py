"""Manual runs waiting for a turn slot take freed slots first come, first served: a
run that arrives as a slot frees queues behind those waiting already, and a waiter that
is cancelled (or ends with the runtime's stop) neither loses a slot nor strands the
runs behind it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from sqlalchemy import text

from langgraph_scheduler import Interval, Once, SchedulerRuntime, Task, TaskRunRecord
from langgraph_scheduler._bridge import STOPPED
from langgraph_scheduler.state import SchedulerState

from .helpers import HeldGraph, RunWaiter, until


async def _slot_held(
    runtime_factory: Any, database: str, prompts: str
) -> tuple[HeldGraph, SchedulerRuntime, dict[str, Task]]:
    """A started runtime with one turn slot, a task per prompt (by prompt: each run's
    turn notes its prompt in ``HeldGraph``), and a run of task ``h`` holding the slot."""
    held = HeldGraph()
    rt = runtime_factory(held.graph, database=database, max_concurrency=1)
    await rt.start()
    tasks = {
        p: await rt.create_task(name=p, schedule=Interval(hours=1), trigger=p)
        for p in "h" + prompts
    }
    await rt.run_now(tasks["h"].id, wait=False)
    await asyncio.wait_for(held.entered.wait(), 30)
    return held, rt, tasks


async def _waiting(
    rt: SchedulerRuntime, tasks: dict[str, Task], prompts: str
) -> list[asyncio.Future[TaskRunRecord]]:
    """Waited runs of the tasks of ``prompts``, each claimed before the next is asked for:
    its turn then waits for a slot (the store's answer took loop turns, in which the run
    began waiting)."""
    waiting: list[asyncio.Future[TaskRunRecord]] = []
    for prompt in prompts:
        task = tasks[prompt]
        waiting.append(asyncio.ensure_future(rt.run_now(task.id)))
        await until(partial(_has_history, rt, task), f"a run of {task.name} claimed")
    return waiting


async def _has_history(rt: SchedulerRuntime, task: Task) -> bool:
    return bool(list(await rt.history(task.id)))


def _on_record_of(rt: SchedulerRuntime, task: Task) -> asyncio.Event:
    """An event set when the task's run is recorded: just before its turn's slot frees
    (a plain listener is told on the spot, in the same step)."""
    told = asyncio.Event()

    def listen(record: TaskRunRecord) -> None:
        if record.task_id == task.id:
            told.set()

    rt.add_listener(listen)
    return told


async def test_waiting_manual_runs_begin_in_the_order_they_began_waiting(
    sqlite_url: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs a, b, c wait for the only slot, held by h's turn; run n's claim is answered
    # as h's slot frees, so n asks for a slot at that very moment. It used to take it
    # (it found the slot free before the waiters woke), and could do so again and again.
    held, rt, tasks = await _slot_held(runtime_factory, sqlite_url, "abcn")
    freeing = _on_record_of(rt, tasks["h"])
    claim_manual = rt.store.claim_manual

    async def claim_as_the_slot_frees(task_id: str, **kwargs: Any) -> Any:
        claimed = await claim_manual(task_id, **kwargs)
        if task_id == tasks["n"].id:
            await freeing.wait()
        return claimed

    monkeypatch.setattr(rt.store, "claim_manual", claim_as_the_slot_frees)
    waiting = await _waiting(rt, tasks, "abcn")
    held.release.set()
    records = await asyncio.wait_for(asyncio.gather(*waiting), 30)
    assert held.prompts == ["h", "a", "b", "c", "n"]
    assert [r.outcome for r in records] == ["success"] * 4


async def test_a_cancelled_waiter_hands_its_place_on(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # a is cancelled as h's slot is handed to it, b while it waits: each is recorded
    # interrupted, once, and c, behind them, gets the slot.
    held, rt, tasks = await _slot_held(runtime_factory, sqlite_url, "abc")
    freeing = _on_record_of(rt, tasks["h"])
    bridge = rt._bridge
    assert bridge is not None
    executions = {}
    for prompt in "abc":
        _, executions[prompt] = await bridge.run_now(tasks[prompt].id)
    executions["b"].cancel()
    await asyncio.wait({executions["b"]})

    async def cancel_a_as_the_slot_frees() -> None:
        await freeing.wait()  # woken before the slot is handed to a, it runs after that
        executions["a"].cancel()

    canceller = asyncio.ensure_future(cancel_a_as_the_slot_frees())
    held.release.set()
    await asyncio.wait_for(asyncio.wait({canceller, *executions.values()}), 30)
    assert executions["a"].cancelled() and executions["b"].cancelled()
    assert executions["c"].result().outcome == "success"
    assert held.prompts == ["h", "c"]
    await rt.wait_idle()
    outcomes = sorted((r.task_id, r.outcome, r.error) for r in runs.records)
    assert outcomes == sorted(
        [
            (tasks["h"].id, "success", None),
            (tasks["a"].id, "interrupted", STOPPED),
            (tasks["b"].id, "interrupted", STOPPED),
            (tasks["c"].id, "success", None),
        ]
    )


async def test_the_stop_ends_every_waiting_run_once(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # Each waiting run ends with its recorded outcome, the turn not begun, told once.
    held, rt, tasks = await _slot_held(runtime_factory, sqlite_url, "abc")
    waiting = await _waiting(rt, tasks, "abc")
    await rt.stop(drain_timeout_secs=0.1)
    records = await asyncio.gather(*waiting)
    not_started = "runtime is stopping: the turn was not started"
    assert [(r.task_id, r.outcome, r.error) for r in records] == [
        (tasks[p].id, "interrupted", not_started) for p in "abc"
    ]
    assert sorted(r.task_id for r in runs.records) == sorted(t.id for t in tasks.values())
    assert held.prompts == ["h"]


class _CountedGraph:
    """A graph whose turns wait for ``release`` and count how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = self.most = 0
        self.prompts: list[str] = []
        self.graph: StateGraph[Any, Any, Any, Any] = StateGraph(SchedulerState)
        self.graph.add_node("model", self._turn)
        self.graph.add_edge(START, "model")

    async def _turn(self, state: SchedulerState) -> dict[str, Any]:
        self.prompts.append(state["messages"][-1].text)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return {"messages": [AIMessage("done")]}


async def _counted_runtime(
    runtime_factory: Any, database: str, capacity: int, names: str, **options: Any
) -> tuple[_CountedGraph, SchedulerRuntime, dict[str, Task]]:
    """A started runtime on a :class:`_CountedGraph` with ``capacity`` turn slots, and an
    hourly task per name in ``names`` (its turns' prompt)."""
    counted = _CountedGraph()
    rt = runtime_factory(counted.graph, database=database, max_concurrency=capacity, **options)
    await rt.start()
    tasks = {n: await rt.create_task(name=n, schedule=Interval(hours=1), trigger=n) for n in names}
    return counted, rt, tasks


async def _assert_no_slot_lost(rt: SchedulerRuntime) -> None:
    """Once idle, every slot is back: none taken, kept or waited for."""
    await rt.wait_idle()
    bridge = rt._bridge
    assert bridge is not None
    assert (bridge._busy, len(bridge._slot_queue), bridge._reserved) == (0, 0, 0)


async def test_a_manual_run_asking_while_a_claim_pass_waits_for_the_store_queues(
    sqlite_url: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With one slot free, a claim pass asks the store for one due fire; a manual run
    # asking for a slot before the store answers used to take it, and the pass then
    # started its fire as well: two turns at once under max_concurrency=1.
    counted, rt, tasks = await _counted_runtime(runtime_factory, sqlite_url, 1, "m")
    manual = tasks["m"]
    asking, answer = asyncio.Event(), asyncio.Event()
    claim_due = rt.store.claim_due

    async def claim_held_until_the_manual_run_waits(**kwargs: Any) -> Any:
        claimed = await claim_due(**kwargs)
        if any(c.task.name == "s" for c in claimed):
            asking.set()
            await answer.wait()
        return claimed

    monkeypatch.setattr(rt.store, "claim_due", claim_held_until_the_manual_run_waits)
    await rt.create_task(
        name="s",
        schedule=Once(at=datetime.now(timezone.utc) + timedelta(seconds=1)),
        trigger="s",
    )
    await asyncio.wait_for(asking.wait(), 30)
    bridge = rt._bridge
    assert bridge is not None
    _, execution = await bridge.run_now(manual.id)
    await until(lambda: bridge._slot_queue or counted.running, "the manual run waiting or begun")
    answer.set()
    await until(lambda: "s" in counted.prompts, "the claimed fire's turn begun")
    counted.release.set()
    record = await asyncio.wait_for(execution, 30)
    assert counted.most == 1
    assert counted.prompts == ["s", "m"]
    assert record.outcome == "success"


async def test_a_caller_cancelled_while_its_run_is_claimed_leaves_the_run_to_run(
    database: str, runtime_factory: Any, runs: RunWaiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller of run_now is cancelled while the store writes its run's claim: the
    # claim is written all the same (a SQLite file's transaction runs on a thread of its
    # own), and the run used to stay claimed by no turn, "running", until its lease ran
    # out. A caller cancelled leaves its run to run, as it does once the run waits.
    counted, rt, tasks = await _counted_runtime(runtime_factory, database, 1, "m", lease_secs=600)
    counted.release.set()
    task = tasks["m"]
    asking = asyncio.Event()
    claim_manual = rt.store.claim_manual

    async def claim_noted(task_id: str, **kwargs: Any) -> Any:
        asking.set()
        return await claim_manual(task_id, **kwargs)

    monkeypatch.setattr(rt.store, "claim_manual", claim_noted)
    caller = asyncio.ensure_future(rt.run_now(task.id))
    await asking.wait()
    caller.cancel()
    await asyncio.wait({caller})
    assert caller.cancelled()
    [record] = await runs.wait_for(1, task_id=task.id)
    assert (record.outcome, counted.prompts) == ("success", ["m"])
    await _assert_no_slot_lost(rt)


async def test_a_claim_pass_failing_gives_its_kept_slots_to_the_runs_queued_meanwhile(
    database: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A claim pass keeps the free slot while it asks the store; a manual run asking then
    # waits in line. The store then fails the pass (its tasks table renamed away by
    # another transaction): the kept slot goes to the waiting run all the same. Kept
    # for good, no pass would start again (none has room) and the run would wait forever.
    counted, rt, tasks = await _counted_runtime(runtime_factory, database, 2, "hm")
    await rt.run_now(tasks["h"].id, wait=False)
    await until(lambda: counted.running == 1, "h's turn begun")
    asking, answer = asyncio.Event(), asyncio.Event()
    claim_due = rt.store.claim_due

    async def claim_held_until_told(**kwargs: Any) -> Any:
        if not answer.is_set():
            asking.set()
            await answer.wait()
        return await claim_due(**kwargs)

    monkeypatch.setattr(rt.store, "claim_due", claim_held_until_told)
    bridge = rt._bridge
    assert bridge is not None
    bridge.wake()
    await asyncio.wait_for(asking.wait(), 30)
    _, execution = await bridge.run_now(tasks["m"].id)
    await until(lambda: bridge._slot_queue, "the manual run waiting in line")

    def rename(old: str, new: str) -> Any:
        return lambda conn: conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

    await rt.store.transaction(rename("lgs_tasks", "lgs_tasks_away"))
    try:
        answer.set()
        await until(lambda: "m" in counted.prompts, "the waiting run begun")
    finally:
        await rt.store.transaction(rename("lgs_tasks_away", "lgs_tasks"))
    counted.release.set()
    record = await asyncio.wait_for(execution, 30)
    assert (record.outcome, counted.most) == ("success", 2)
    await _assert_no_slot_lost(rt)


async def test_a_run_of_a_task_whose_turn_waits_for_a_run_takes_no_slot_meanwhile(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # Two slots: h's turn holds one, p's the other, and p's node then waits for a run of
    # q, queued behind a second run of p. h's slot used to go to that run of p, which
    # held it waiting for p's turn to end (runs of a task never overlap), while p's turn
    # waited for q's run, which waited for a slot: all stalled until p's run gave up
    # waiting (max_wait_secs, 300 s by default). p's second run now waits in line
    # without a slot until p's turn waits no more; q's run takes h's slot.
    counted = _CountedGraph()
    go = asyncio.Event()
    box: dict[str, Any] = {}

    async def turn(state: SchedulerState) -> dict[str, Any]:
        prompt = state["messages"][-1].text
        if prompt != "p" or "p" in counted.prompts:
            return await counted._turn(state)
        counted.prompts.append(prompt)
        await go.wait()
        box["q"] = await box["rt"].run_now(box["tasks"]["q"].id)
        return {"messages": [AIMessage("done")]}

    graph: StateGraph[Any, Any, Any, Any] = StateGraph(SchedulerState)
    graph.add_node("model", turn)
    graph.add_edge(START, "model")
    rt = box["rt"] = runtime_factory(graph, database=sqlite_url, max_concurrency=2)
    await rt.start()
    tasks = box["tasks"] = {
        n: await rt.create_task(name=n, schedule=Interval(hours=1), trigger=n) for n in "hpq"
    }
    bridge = rt._bridge
    assert bridge is not None
    await rt.run_now(tasks["h"].id, wait=False)
    await until(lambda: counted.running == 1, "h's turn begun")
    await rt.run_now(tasks["p"].id, wait=False)
    await until(lambda: "p" in counted.prompts, "p's turn begun")
    second = asyncio.ensure_future(rt.run_now(tasks["p"].id))
    await until(lambda: bridge._slot_queue, "p's second run waiting in line")
    go.set()
    await until(lambda: len(bridge._slot_queue) == 2, "q's run waiting in line")
    counted.release.set()  # h's turn ends, and q's and p's second once begun
    record = await asyncio.wait_for(second, 30)
    assert (record.outcome, box["q"].outcome) == ("success", "success")
    assert counted.prompts == ["h", "p", "q", "p"]
    await _assert_no_slot_lost(rt)


async def test_a_run_claimed_as_the_runtime_stops_is_recorded_not_left_running(
    database: str, runtime_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stop begins while the store writes a manual run's claim. The stop used to go on
    # without it and close the store; the claim then started its run's turn on a closed
    # runtime, which could not record it: the run stayed "running" until its lease ran
    # out. The stop waits for the claim, as for a claim pass, and records the run.
    counted, rt, tasks = await _counted_runtime(runtime_factory, database, 1, "m", lease_secs=600)
    counted.release.set()
    claimed, answer = asyncio.Event(), asyncio.Event()
    claim_manual = rt.store.claim_manual

    async def claim_answered_late(task_id: str, **kwargs: Any) -> Any:
        found = await claim_manual(task_id, **kwargs)
        claimed.set()
        await answer.wait()
        return found

    monkeypatch.setattr(rt.store, "claim_manual", claim_answered_late)
    caller = asyncio.ensure_future(rt.run_now(tasks["m"].id))
    await asyncio.wait_for(claimed.wait(), 30)
    stopping = asyncio.ensure_future(rt.stop(drain_timeout_secs=0.1))
    await until(lambda: rt._state != "running", "the stop begun")
    answer.set()
    await asyncio.wait_for(stopping, 60)
    await asyncio.wait({caller}, timeout=60)
    again = runtime_factory(counted.graph, database=database)
    await again.start()
    [record] = await again.history(tasks["m"].id)
    assert (record.outcome, record.error) == (
        "interrupted",
        "runtime is stopping: the turn was not started",
    )
    assert caller.result() == record
    assert counted.prompts == []
