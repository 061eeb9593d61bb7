"""SyncSchedulerRuntime and the scheduler tools called synchronously.

The facade runs the runtime on an event loop in a thread of its own; these tests call it
from plain functions (no loop), from a plain script in a fresh interpreter, and from
inside a running loop. Sync tools hand their work to the runtime's loop from any other
thread, and fail loudly where blocking would deadlock.
"""

from __future__ import annotations

import _thread
import asyncio
import contextvars
import functools
import inspect
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from langgraph_scheduler import (
    Interval,
    NotRunning,
    SchedulerRuntime,
    SchedulerState,
    StoreError,
    SyncSchedulerRuntime,
    TaskOptions,
    ThreadBusy,
    _loops,
    scheduler_tools,
)
from langgraph_scheduler import sync as sync_module
from langgraph_scheduler.errors import InvalidTask
from langgraph_scheduler.scripted import HANG, ScriptedChatModel, tool_call

from .helpers import build_graph, nesting_graph

ALICE: Any = {"configurable": {"thread_id": "alice"}}
SCHEDULE = {"name": "Stretch", "schedule": "every day at 9:00", "prompt": "Time to stretch."}


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "langgraph-scheduler"]


@pytest.fixture
def facade(tmp_path: Path) -> Iterator[SyncSchedulerRuntime]:
    graph = build_graph(ScriptedChatModel(steps=["Done: stretched."], cycle=True))
    with SyncSchedulerRuntime(graph, database=f"sqlite:///{tmp_path / 'sync.db'}") as rt:
        yield rt
    assert not rt.running and _threads() == []


def _tools(rt: SyncSchedulerRuntime) -> dict[str, BaseTool]:
    return {t.name: t for t in scheduler_tools(lambda: rt.runtime)}


# -- the facade ------------------------------------------------------------------------


def test_every_async_method_of_the_runtime_has_a_sync_twin() -> None:
    lifecycle = {"start", "stop", "ainvoke"}
    coroutines = {
        name
        for name, member in inspect.getmembers(SchedulerRuntime, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in lifecycle
    }
    missing = {
        name for name in coroutines if not callable(getattr(SyncSchedulerRuntime, name, None))
    }
    assert not missing, f"SyncSchedulerRuntime lacks {sorted(missing)}"
    for name in coroutines:
        twin = getattr(SyncSchedulerRuntime, name)
        assert not inspect.iscoroutinefunction(twin), name
        assert twin.__doc__ == getattr(SchedulerRuntime, name).__doc__, name
    assert callable(SyncSchedulerRuntime.invoke) and callable(SyncSchedulerRuntime.thread_lock)


def test_the_methods_work_as_plain_functions_without_an_event_loop(
    facade: SyncSchedulerRuntime,
) -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # a plain test: no loop here, the runtime has its own
    task = facade.create_task(
        name="Stretch", schedule=Interval(hours=1), trigger="Time to stretch.", thread_id="alice"
    )
    assert facade.get_task(task.id).name == "Stretch"
    assert [t.id for t in facade.list_tasks()] == [task.id]
    assert len(facade.next_run_times(task.id, 3)) == 3
    assert facade.update_task(task.id, name="Stretch more").name == "Stretch more"
    assert facade.pause_task(task.id).state == "paused"
    assert facade.resume_task(task.id).state == "active"

    record = facade.run_now(task.id)
    assert record.outcome == "success" and record.summary == "Done: stretched."
    assert facade.get_run(record.run_id) == record
    assert facade.get_run(record.run_id, owner=task.owner) == record
    assert facade.get_run(record.run_id, owner=f"not-{task.owner}") is None
    assert [r.run_id for r in facade.history(task.id)] == [record.run_id]
    turn = facade.transcript("alice").scheduled_turns[0]
    assert turn.source is not None and turn.source["run_id"] == record.run_id
    assert facade.verify_task_source(turn.source, "alice")
    assert not facade.verify_task_source(turn.source, "bob")  # signed for its own thread
    facade.wait_idle()
    assert facade.run_due() == 0

    result = facade.invoke({"messages": [HumanMessage("Hello")]}, ALICE)
    assert result["messages"][-1].content == "Done: stretched."
    assert facade.graph.get_state(ALICE).values["messages"][-1].content == "Done: stretched."
    assert facade.delete_task(task.id).id == task.id
    assert facade.list_tasks() == []


def test_errors_are_the_runtimes(facade: SyncSchedulerRuntime) -> None:
    from langgraph_scheduler import TaskNotFound

    with pytest.raises(TaskNotFound, match="no task with id 'nope'"):
        facade.get_task("nope")


def test_the_twins_refuse_an_id_of_another_kind_as_the_runtime_does(
    facade: SyncSchedulerRuntime,
) -> None:
    # get_run(5) answered None, transcript(5) an empty transcript, and thread_lock([...])
    # failed with a TypeError before reaching the runtime.
    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("task_id", facade.get_task),
        ("task_id", facade.delete_task),
        ("task_id", facade.run_now),
        ("run_id", facade.get_run),
        ("run_id", facade.deliveries),
        ("thread_id", lambda v: facade.list_tasks(thread_id=v)),
    ]
    for name, call in calls:
        for bad, got in ((5, "an int"), ("  ", "'  '")):
            with pytest.raises(InvalidTask, match=f"^{name} must be a non-blank string, got {got}"):
                call(bad)
    with pytest.raises(InvalidTask, match="^thread_id must be a string, got an int$"):
        facade.transcript(5)  # type: ignore[arg-type]
    kinds: list[tuple[Any, str]] = [(["x"], "a list"), (None, "None"), ("", "''")]
    for bad, got in kinds:
        with pytest.raises(InvalidTask, match=f"^thread_id must be a non-blank string, got {got}$"):
            with facade.thread_lock(bad):
                pass
    with facade.thread_lock("alice", timeout=1):  # the hold is not kept
        pass


def test_it_works_inside_a_running_event_loop_too(facade: SyncSchedulerRuntime) -> None:
    # As in Jupyter: the caller's loop is busy running this cell; the runtime has its own.
    async def cell() -> str:
        task = facade.create_task(name="In a loop", schedule=Interval(hours=1), trigger="hi")
        return facade.run_now(task.id).outcome or ""

    assert asyncio.run(cell()) == "success"


def test_thread_lock_holds_a_thread_against_other_turns(facade: SyncSchedulerRuntime) -> None:
    with facade.thread_lock("alice"):
        with pytest.raises(ThreadBusy, match="'alice' is busy"):
            with facade.thread_lock("alice", timeout=0):
                pass
    with facade.thread_lock("alice", timeout=0):  # released, also when the block raised
        pass
    with pytest.raises(ValueError, match="boom"):
        with facade.thread_lock("alice"):
            raise ValueError("boom")
    with facade.thread_lock("alice", timeout=0):
        pass


def test_a_turn_inside_its_own_callers_hold_is_refused_not_waited_for(
    facade: SyncSchedulerRuntime,
) -> None:
    # invoke inside the caller's own thread_lock of that thread waited for itself for
    # good; it is refused at once, naming the fix. Another thread still waits for it.
    # run_now of a task talking there (whose run would wait for the hold) is refused too.
    task = facade.create_task(
        name="Alice's",
        schedule=Interval(hours=1),
        trigger="hi",
        thread_id="alice",
        options={"max_wait_secs": 30},  # how long its run waited for the hold (a bound)
    )
    with facade.thread_lock("alice"):
        with pytest.raises(RuntimeError, match="outside the hold \\(invoke holds"):
            facade.invoke({"messages": [HumanMessage("Hello")]}, ALICE)
        with pytest.raises(RuntimeError, match=r"call run_now\(task_id, wait=False\)"):
            facade.run_now(task.id)
        with pytest.raises(RuntimeError, match="holds thread 'alice' already"):
            with facade.thread_lock("alice"):
                pass
        other: list[Any] = []
        waiting = threading.Thread(
            target=lambda: other.append(facade.invoke({"messages": [HumanMessage("Yo")]}, ALICE))
        )
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive()  # waits for the hold, as any other caller's turn
    waiting.join(30)
    assert len(other) == 1 and other[0]["messages"][-1].type == "ai"
    with facade.thread_lock("alice", timeout=0):  # nothing left held
        pass
    assert len(facade.history(task.id)) == 0  # the refused run was not claimed


def _probed(calls: dict[str, Callable[[], Any]]) -> dict[str, str]:
    """Each call made in a thread of its own with a copy of the caller's context (as
    LangGraph gives a sync node's worker thread), at once: what it raised, "ok", or that
    it still waited after 60 s (a bound for a hang, not a time the test expects)."""
    made = {}
    for name, call in calls.items():
        context = contextvars.copy_context()
        made[name] = _in_thread(functools.partial(context.run, call))
    deadline = time.monotonic() + 60
    seen = {}
    for name, (thread, outcome) in made.items():
        thread.join(max(deadline - time.monotonic(), 0))
        if not outcome:
            seen[name] = "still waiting"
        elif isinstance(outcome[0], BaseException):
            seen[name] = f"{type(outcome[0]).__name__}: {outcome[0]}"
        else:
            seen[name] = "ok"
    return seen


@pytest.mark.parametrize("turn", ["scheduled", "invoke"])
def test_a_sync_node_waiting_for_its_own_thread_is_refused_not_left_waiting(
    tmp_path: Path, turn: str
) -> None:
    # A sync node of a turn on thread "alice" calling invoke on "alice", run_now of a
    # task talking there, or thread_lock("alice") waited for its own turn for good. It
    # is refused at once, in the node's thread; another thread and a run not waited for
    # work as before.
    seen: dict[str, str] = {}

    def nest() -> None:
        def hold(**kwargs: Any) -> None:
            with rt.thread_lock("alice", **kwargs):
                pass

        hi = {"messages": [HumanMessage("hi")]}
        calls = {
            "own turn": lambda: rt.invoke(hi, ALICE),
            "own run": lambda: rt.run_now(follow.id),
            "own hold": hold,
            "hold with a timeout": lambda: hold(timeout=0.05),
            "other turn": lambda: rt.invoke(hi, {"configurable": {"thread_id": "bob"}}),
            "run not waited for": lambda: rt.run_now(follow.id, wait=False),
        }
        seen.update(_probed(calls))

    graph = nesting_graph(nest)
    with SyncSchedulerRuntime(graph, database=f"sqlite:///{tmp_path / 'n.db'}") as rt:
        follow = rt.create_task(
            name="follow", schedule=Interval(hours=1), trigger="follow", thread_id="alice"
        )
        if turn == "scheduled":
            nester = rt.create_task(
                name="nest", schedule=Interval(hours=1), trigger="nest", thread_id="alice"
            )
            assert rt.run_now(nester.id).outcome == "success"
        else:
            assert rt.invoke({"messages": [HumanMessage("nest")]}, ALICE)["messages"][-1].text == (
                "nested"
            )
        rt.wait_idle()
        followed = rt.history(follow.id)  # the run not waited for, after the turn
    inside = "RuntimeError: this call runs inside a turn on thread 'alice'"
    assert len(seen) == 6 and seen["own turn"].startswith(inside), seen
    assert seen["own run"].startswith(inside) and repr(follow.id) in seen["own run"]
    assert (
        seen["own hold"].startswith(inside) and "run_now(task_id, wait=False)" in seen["own hold"]
    )
    assert seen["hold with a timeout"].startswith("ThreadBusy")
    assert seen["other turn"] == "ok" and seen["run not waited for"] == "ok"
    assert [(r.outcome, r.summary) for r in followed] == [("success", "re: follow")]


@pytest.mark.parametrize("max_concurrency", [1, 2])
def test_a_sync_node_waiting_for_a_run_with_the_only_slot_its_own_is_refused(
    tmp_path: Path, max_concurrency: int
) -> None:
    # With max_concurrency=1 a sync node's run_now of another task waited until its own
    # turn's timeout (or for good) for the slot that turn holds. It is refused at once,
    # claiming nothing; a run not waited for runs after the turn. With a second slot the
    # waited run begins beside the turn.
    seen: dict[str, str] = {}

    def nest() -> None:
        calls = {
            "waited run": lambda: rt.run_now(other.id),
            "run not waited for": lambda: rt.run_now(other.id, wait=False),
        }
        seen.update(_probed(calls))

    database = f"sqlite:///{tmp_path / 'n.db'}"
    with SyncSchedulerRuntime(
        nesting_graph(nest), database=database, max_concurrency=max_concurrency
    ) as rt:
        other = rt.create_task(name="other", schedule=Interval(hours=1), trigger="other")
        nester = rt.create_task(name="nest", schedule=Interval(hours=1), trigger="nest")
        nested = rt.run_now(nester.id)
        rt.wait_idle()
        others = rt.history(other.id)
    assert (nested.outcome, nested.summary) == ("success", "nested")
    assert seen["run not waited for"] == "ok"
    if max_concurrency == 1:
        assert seen["waited run"].startswith(
            "RuntimeError: this call runs inside a turn of the scheduler"
        ), seen
        assert "run_now(task_id, wait=False)" in seen["waited run"]
    else:
        assert seen["waited run"] == "ok"
    assert [(r.outcome, r.summary) for r in others] == [("success", "re: other")] * (
        max_concurrency
    )


def test_a_sync_node_waiting_for_a_run_of_its_own_task_is_refused(tmp_path: Path) -> None:
    # The task's runs never overlap: the run waited for would wait for the node's turn
    # (max_wait_secs, 300 s by default) and end skipped. Refused at once; a run not
    # waited for runs after the turn.
    seen: dict[str, str] = {}

    def nest() -> None:
        if seen:  # the run started from the first turn: nothing more
            return
        calls = {
            "waited run": lambda: rt.run_now(nester.id),
            "run not waited for": lambda: rt.run_now(nester.id, wait=False),
        }
        seen.update(_probed(calls))

    database = f"sqlite:///{tmp_path / 'n.db'}"
    with SyncSchedulerRuntime(nesting_graph(nest), database=database) as rt:
        nester = rt.create_task(name="nest", schedule=Interval(hours=1), trigger="nest")
        nested = rt.run_now(nester.id)
        rt.wait_idle()
        records = rt.history(nester.id)
    assert (nested.outcome, nested.summary) == ("success", "nested")
    assert seen["waited run"].startswith(
        f"RuntimeError: this call runs inside a turn of task {nester.id!r}"
    ), seen
    assert seen["run not waited for"] == "ok"
    assert [r.outcome for r in records] == ["success", "success"]


def test_a_sync_node_waiting_for_a_run_of_a_task_whose_turn_waits_for_it_is_refused(
    tmp_path: Path,
) -> None:
    # Turn A's sync node waits for a run of B, B's for a run of A: that run would wait
    # for A's turn (max_wait_secs) and end skipped, A's turn waiting for B's meanwhile.
    # B's wait is refused at once, claiming nothing; A's gets B's finished run.
    targets: list[str] = []
    seen: list[str] = []

    def nest() -> None:
        if targets:  # the last run waited for waits for nothing
            target = targets.pop(0)
            seen.extend(_probed({"wait": lambda: rt.run_now(target)}).values())

    database = f"sqlite:///{tmp_path / 'n.db'}"
    with SyncSchedulerRuntime(nesting_graph(nest), database=database, max_concurrency=4) as rt:
        a, b = [
            rt.create_task(
                name=name,
                schedule=Interval(hours=1),
                trigger="nest",
                options=TaskOptions(max_wait_secs=5),  # bounds the wait refused, either way
            )
            for name in "ab"
        ]
        targets.extend([b.id, a.id])
        first = rt.run_now(a.id)
        rt.wait_idle()
        runs_of_a = rt.history(a.id)
    assert len(seen) == 2 and seen[0].startswith(
        f"RuntimeError: this call runs inside a turn of task {b.id!r}"
    ), seen
    assert seen[1] == "ok" and first.outcome == "success"
    assert [r.outcome for r in runs_of_a] == ["success"]


def test_a_sync_node_of_a_run_a_turn_waits_for_waiting_for_that_turns_thread_is_refused(
    tmp_path: Path,
) -> None:
    # Turn A on "alice" waits for a run of B; B's sync node waiting for a turn on "alice"
    # waited for A's turn, which waited for it, until the turns' timeout. Refused at once.
    alice: RunnableConfig = {"configurable": {"thread_id": "alice"}}
    seen: dict[str, str] = {}

    def nest() -> None:
        if "a" not in seen:
            seen["a"] = "began"
            rt.run_now(b.id)
        else:
            seen.update(_probed({"turn": lambda: rt.invoke({"messages": ["hi"]}, alice)}))

    database = f"sqlite:///{tmp_path / 'n.db'}"
    # The turns' timeout bounds the wait refused, so the test ends either way.
    with SyncSchedulerRuntime(
        nesting_graph(nest), database=database, max_concurrency=4, default_timeout_secs=20
    ) as rt:
        a = rt.create_task(name="a", schedule=Interval(hours=1), trigger="nest", thread_id="alice")
        b = rt.create_task(name="b", schedule=Interval(hours=1), trigger="nest")
        first = rt.run_now(a.id)
    assert seen["turn"].startswith(
        "RuntimeError: this call runs inside a turn that a turn or hold of thread 'alice'"
    ), seen
    assert first.outcome == "success"


def test_listeners_run_on_the_runtimes_thread_and_cannot_block_it(
    facade: SyncSchedulerRuntime,
) -> None:
    seen: list[str] = []
    refused: list[BaseException] = []

    def on_run(record: Any) -> None:
        seen.append(threading.current_thread().name)
        try:
            facade.get_task(record.task_id)  # a blocking call on the loop it would wait for
        except RuntimeError as exc:
            refused.append(exc)

    facade.add_listener(on_run)
    task = facade.create_task(name="Listened", schedule=Interval(hours=1), trigger="hi")
    facade.run_now(task.id)
    facade.wait_idle()
    assert seen == ["langgraph-scheduler"]
    assert len(refused) == 1 and "would block" in str(refused[0])
    assert "SyncSchedulerRuntime" in str(refused[0])

    def on_event(event: Any) -> None:
        try:
            facade.stop()
        except RuntimeError as exc:
            refused.append(exc)

    facade.add_event_listener(on_event)
    facade.create_task(name="Once", schedule=Interval(seconds=1), trigger="hi", max_runs=1)
    deadline = time.monotonic() + 20
    while len(refused) < 2:  # its one run completes it: an event
        assert time.monotonic() < deadline, refused
        time.sleep(0.05)
    assert "called on the runtime's own thread" in str(refused[1])
    assert facade.running


def test_a_sync_node_calls_the_facade_and_an_async_node_is_told_to_await(
    tmp_path: Path,
) -> None:
    # As documented: sync nodes run on the loop's worker threads, where the blocking
    # methods work; async nodes run on the runtime's thread, where they would block it.
    answers: list[str] = []

    def sync_node(state: SchedulerState) -> dict[str, Any]:
        answers.append(f"sync: {len(rt.list_tasks())} task(s)")
        return {}

    async def async_node(state: SchedulerState) -> dict[str, Any]:
        try:
            rt.list_tasks()
        except RuntimeError as error:
            answers.append(f"async: {error}")
        answers.append(f"awaited: {len(await rt.runtime.list_tasks())} task(s)")
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("sync_node", sync_node)
    builder.add_node("async_node", async_node)
    builder.add_edge(START, "sync_node")
    builder.add_edge("sync_node", "async_node")
    with SyncSchedulerRuntime(builder, database=f"sqlite:///{tmp_path / 'n.db'}") as rt:
        task = rt.create_task(name="Nodes", schedule=Interval(hours=1), trigger="hi")
        assert rt.run_now(task.id).outcome == "success"
    assert answers[0] == "sync: 1 task(s)" and answers[2] == "awaited: 1 task(s)"
    assert "would block" in answers[1] and "await" in answers[1], answers


def test_calls_before_start_and_after_stop_raise_not_running(tmp_path: Path) -> None:
    graph = build_graph(ScriptedChatModel())
    rt = SyncSchedulerRuntime(graph, database=f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(NotRunning, match=r"not started: use 'with SyncSchedulerRuntime"):
        rt.list_tasks()
    rt.start()
    assert rt.running and rt.list_tasks() == []
    rt.stop()
    rt.stop()  # again: nothing to do
    assert not rt.running and _threads() == []
    with pytest.raises(NotRunning, match="stopped: make a new SyncSchedulerRuntime"):
        rt.list_tasks()
    with pytest.raises(NotRunning, match="started before; make a new one"):
        rt.start()
    with pytest.raises(NotRunning, match="stopped"):
        _ = rt.graph


def test_a_call_made_while_another_thread_starts_the_runtime_waits_for_the_start(
    tmp_path: Path,
) -> None:
    # A web app's request arriving while start() runs (its factory, or the store's opening)
    # was refused with the async runtime's "the runtime is starting; ... await
    # runtime.start() first"; it waits for the start and is answered.
    building, release = threading.Event(), threading.Event()
    from_the_start: list[BaseException] = []

    def factory(runtime: SchedulerRuntime) -> Any:
        try:
            rt.list_tasks()  # on the runtime's thread: refused at once, not waited for
        except RuntimeError as error:
            from_the_start.append(error)
        building.set()
        release.wait(30)
        return build_graph(ScriptedChatModel())

    rt = SyncSchedulerRuntime(factory, database=f"sqlite:///{tmp_path / 's.db'}")
    starter, started = _in_thread(rt.start)
    assert building.wait(30)
    caller, answer = _in_thread(rt.list_tasks)
    caller.join(0.2)  # let the call arrive while the start is under way
    release.set()
    assert _ended(starter, caller)
    assert started == [None] and answer == [[]], answer
    assert len(from_the_start) == 1 and "would block" in str(from_the_start[0])
    rt.stop()
    assert _threads() == []


def test_a_stop_called_while_another_thread_starts_the_runtime_stops_it(tmp_path: Path) -> None:
    # A stop from another thread in the first moments of start(), before the runtime's
    # loop existed, returned at once doing nothing: the start went on and the runtime ran
    # on. It waits for the start and stops what it started (or the start is refused).
    for attempt in range(12):
        graph = build_graph(ScriptedChatModel())
        rt = SyncSchedulerRuntime(graph, database=f"sqlite:///{tmp_path / f'{attempt}.db'}")
        starter, started = _in_thread(rt.start)
        while not rt._lifecycle.locked() and starter.is_alive():
            pass  # the start is under way
        time.sleep(attempt * 0.0002)  # at different moments of it
        rt.stop()
        assert _ended(starter)
        assert started == [None] or isinstance(started[0], NotRunning), started
        assert not rt.running and not rt.runtime.running, attempt
        assert _threads() == []


def test_a_bad_url_fails_start_in_one_line_and_leaves_no_thread(tmp_path: Path) -> None:
    no_folder = r"^no folder \S+/missing for the SQLite database \S+/x\.db: create it \(mkdir"
    with pytest.raises(StoreError, match=no_folder):
        with SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path}/missing/x.db"):
            pass
    assert _threads() == []


def test_it_wraps_a_runtime_not_yet_started(tmp_path: Path) -> None:
    runtime = SchedulerRuntime(None, database=f"sqlite:///{tmp_path / 'w.db'}")
    with SyncSchedulerRuntime(runtime) as rt:
        assert rt.runtime is runtime and runtime.running
    assert not runtime.running
    with pytest.raises(TypeError, match="either a SchedulerRuntime or a graph with options"):
        SyncSchedulerRuntime(runtime, database="sqlite://")


@pytest.mark.slow
def test_a_plain_script_without_asyncio(tmp_path: Path) -> None:
    """What a user's script does: no asyncio anywhere, a turn fires on schedule, and the
    interpreter exits on its own even when the script forgets stop() (atexit drains)."""
    database = f"sqlite:///{tmp_path / 'script.db'}"
    script = textwrap.dedent(
        f"""
        import sys, threading, time
        from langgraph_scheduler import Interval, SyncSchedulerRuntime
        from langgraph_scheduler.assistant import build_assistant, demo_model

        holder = []
        graph = build_assistant(lambda: holder[0], model=demo_model())
        rt = SyncSchedulerRuntime(lambda runtime: holder.append(runtime) or graph,
                                  database={database!r}, on_run=lambda r: print("ran", r.outcome))
        rt.start()
        task = rt.create_task(name="Tick", schedule=Interval(seconds=1), trigger="Say tick",
                              thread_id="script", max_runs=2)
        deadline = time.monotonic() + 30
        while [r.outcome for r in rt.history(task.id)] != ['success'] * 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        print("history", [r.outcome for r in rt.history(task.id)])
        print("state", rt.get_task(task.id).state)
        rt.stop()
        print("threads", [t.name for t in threading.enumerate() if t.name == "langgraph-scheduler"])

        late = SyncSchedulerRuntime(None, database={database!r})
        late.start()  # never stopped: atexit does it
        print("late", len(late.list_tasks()))
        """
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.count("ran success") == 2
    assert "history ['success', 'success']" in lines and "state completed" in lines
    assert "threads []" in lines and "late 1" in lines
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


# -- stopping while other threads call -----------------------------------------------------


def _gated_graph(started: threading.Event, release: threading.Event) -> StateGraph[Any]:
    """A one-node graph whose turn says it started, then finishes once released."""

    async def work(state: SchedulerState) -> dict[str, Any]:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        return {"messages": [AIMessage("finished")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    return builder


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call()`` in a thread of its own; the list gets its result or its error."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _ended(*threads: threading.Thread) -> bool:
    for thread in threads:
        thread.join(30)  # a bound for a hang, not a time the test expects
    return not any(thread.is_alive() for thread in threads)


def _turn_under_way(
    database: str, release: threading.Event
) -> tuple[SyncSchedulerRuntime, threading.Thread, list[Any]]:
    """A started facade, and another thread's ``invoke`` under way until ``release``."""
    started = threading.Event()
    rt = SyncSchedulerRuntime(_gated_graph(started, release), database=database)
    rt.start()
    user, answer = _in_thread(lambda: rt.invoke({"messages": [("user", "hi")]}, ALICE))
    assert started.wait(30)
    return rt, user, answer


def _still_stopping(rt: SyncSchedulerRuntime, *stoppers: threading.Thread) -> bool:
    """Whether the stop begun in ``stoppers`` refuses new calls and keeps waiting (for a
    call under way, which cannot end before the test lets it)."""
    for _ in range(3000):
        try:
            rt.list_tasks()
        except NotRunning as error:
            assert "stopping: make a new SyncSchedulerRuntime" in str(error)
            break
        time.sleep(0.01)
    else:
        raise AssertionError("calls were still taken after stop() began")
    for stopper in stoppers:
        stopper.join(0.5)  # long enough for a stop that does not wait to return
    return all(stopper.is_alive() for stopper in stoppers)


def test_stop_waits_for_another_threads_invoke_and_refuses_new_calls(tmp_path: Path) -> None:
    release = threading.Event()
    rt, user, answer = _turn_under_way(f"sqlite:///{tmp_path / 's.db'}", release)
    stopper, stopped = _in_thread(rt.stop)
    assert _still_stopping(rt, stopper)  # the turn waits for release
    release.set()
    assert _ended(user, stopper)
    assert answer[0]["messages"][-1].content == "finished" and stopped == [None]
    assert _threads() == []


def test_a_call_past_the_drain_timeout_is_cut_short_with_not_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = f"sqlite:///{tmp_path / 's.db'}"
    rt, user, answer = _turn_under_way(database, threading.Event())  # never released
    rt.stop(drain_timeout_secs=0.2)
    assert _ended(user) and _threads() == []
    (error,) = answer
    assert isinstance(error, NotRunning)
    assert "SyncSchedulerRuntime.invoke was cut short" in str(error)
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no generator torn down
    # Nothing is left held: a new runtime takes the thread at once.
    with SyncSchedulerRuntime(None, database=database) as again:
        with again.thread_lock("alice", timeout=5):
            pass


def test_run_now_cut_short_by_the_stop_names_its_run(tmp_path: Path) -> None:
    # The async runtime's run_now says which run the stop interrupted; the sync one said
    # only "SyncSchedulerRuntime.run_now was cut short", naming no run to look up.
    database = f"sqlite:///{tmp_path / 's.db'}"
    model = ScriptedChatModel(steps=[HANG])
    rt = SyncSchedulerRuntime(build_graph(model), database=database)
    rt.start()
    task = rt.create_task(name="Hangs", schedule=Interval(hours=1), trigger="hi")
    caller, outcome = _in_thread(lambda: rt.run_now(task.id))
    deadline = time.monotonic() + 30
    # Its turn under way (a run the stop keeps from beginning returns its record instead)
    while not model.in_flight:
        assert time.monotonic() < deadline, "the turn did not begin"
        time.sleep(0.02)
    rt.stop(drain_timeout_secs=0.2)
    assert _ended(caller) and _threads() == []
    with SyncSchedulerRuntime(None, database=database) as again:
        (record,) = again.history(task.id)
    assert record.outcome == "interrupted"
    (error,) = outcome
    assert isinstance(error, NotRunning)
    assert f"while run {record.run_id} ran" in str(error), error
    assert "recorded interrupted" in str(error)


def test_stop_waits_for_a_thread_held_in_another_thread(tmp_path: Path) -> None:
    rt = SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path / 's.db'}")
    rt.start()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rt.thread_lock("alice"):
            held.set()
            release.wait(30)

    holder, outcome = _in_thread(hold)
    assert held.wait(30)
    stopper, stopped = _in_thread(rt.stop)
    assert _still_stopping(rt, stopper)  # the hold waits for release
    release.set()
    assert _ended(holder, stopper)
    assert outcome == [None] and stopped == [None] and _threads() == []


def test_a_thread_held_past_the_stop_stays_taken_across_replicas(postgres_url: str) -> None:
    # The hold is cut short at the drain deadline, but its block still runs: another
    # replica must not take the thread until the hold's lease runs out.
    rt = SyncSchedulerRuntime(None, database=postgres_url, lease_secs=2.0)
    other = SyncSchedulerRuntime(None, database=postgres_url)
    rt.start()
    other.start()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rt.thread_lock("alice"):
            held.set()
            release.wait(60)

    holder, _ = _in_thread(hold)
    try:
        assert held.wait(30)
        rt.stop(drain_timeout_secs=0)
        with pytest.raises(ThreadBusy), other.thread_lock("alice", timeout=0):
            pass
        with other.thread_lock("alice", timeout=30):  # once its lease ran out
            pass
    finally:
        release.set()
        holder.join(30)
        other.stop()


def test_stop_inside_the_callers_own_hold_does_not_wait_for_it(tmp_path: Path) -> None:
    rt = SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path / 's.db'}")
    rt.start()

    def stop_while_holding() -> None:
        with rt.thread_lock("alice"):
            rt.stop(drain_timeout_secs=3600)  # the hold ends only after this returns

    caller, outcome = _in_thread(stop_while_holding)
    assert _ended(caller) and _threads() == []
    (error,) = outcome
    assert isinstance(error, NotRunning) and "stopped" in str(error)


def test_a_hold_cut_short_by_the_stop_lets_the_blocks_own_error_through(tmp_path: Path) -> None:
    # The NotRunning of a hold the stop cut short replaced the error its block raised,
    # which was left in __context__ and hidden ('from None'): the caller saw "stopped" and
    # never its own failure. The block's error goes through; a block that ended without
    # one still hears the hold was cut short.
    rt = SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path / 's.db'}")
    rt.start()
    held, release = threading.Barrier(3), threading.Event()

    def hold(thread_id: str, error: Exception | None) -> None:
        with rt.thread_lock(thread_id):
            held.wait(30)
            release.wait(30)
            if error is not None:
                raise error

    failing, failed = _in_thread(lambda: hold("alice", ValueError("the block's own")))
    quiet, cut = _in_thread(lambda: hold("bob", None))
    held.wait(30)
    rt.stop(drain_timeout_secs=0)
    release.set()
    assert _ended(failing, quiet)
    (error,) = failed
    assert isinstance(error, ValueError) and str(error) == "the block's own"
    (error,) = cut
    assert isinstance(error, NotRunning) and "stopped" in str(error)

    def stop_then_fail() -> None:
        with again.thread_lock("alice"):
            again.stop(drain_timeout_secs=0)
            raise KeyError("after the stop")

    again = SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path / 's.db'}")
    again.start()
    caller, outcome = _in_thread(stop_then_fail)
    assert _ended(caller)
    (error,) = outcome
    assert isinstance(error, KeyError) and _threads() == []


def test_two_threads_stopping_at_once_both_wait_for_the_one_stop(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 's.db'}"
    for _ in range(3):  # nothing under way
        rt = SyncSchedulerRuntime(None, database=database)
        rt.start()
        stoppers = [_in_thread(rt.stop) for _ in range(2)]
        assert _ended(*(thread for thread, _ in stoppers))
        assert [outcome for _, outcome in stoppers] == [[None], [None]] and _threads() == []
    release = threading.Event()
    rt, user, answer = _turn_under_way(database, release)
    stoppers = [_in_thread(rt.stop) for _ in range(2)]
    assert _still_stopping(rt, *(thread for thread, _ in stoppers))  # both wait
    release.set()
    assert _ended(user, *(thread for thread, _ in stoppers))
    assert answer[0]["messages"][-1].content == "finished"  # the drain was not cut short
    assert [outcome for _, outcome in stoppers] == [[None], [None]] and _threads() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("turn_secs", "drain_secs", "worker_says"),
    [
        (0.5, 30, "worker: finished"),
        (3600, 0.2, "worker: NotRunning SyncSchedulerRuntime.invoke was cut short"),
    ],
)
def test_the_interpreter_exits_with_a_worker_thread_in_invoke(
    tmp_path: Path, turn_secs: float, drain_secs: float, worker_says: str
) -> None:
    """A script's main thread ends without stop() while a worker thread (not a daemon, as
    in a thread pool) waits in invoke: the exit hook drains it, and the process exits."""
    script = textwrap.dedent(
        f"""
        import asyncio, threading
        from langchain_core.messages import AIMessage
        from langgraph.graph import START, StateGraph
        from langgraph_scheduler import NotRunning, SchedulerState, SyncSchedulerRuntime

        started = threading.Event()

        async def work(state):
            started.set()
            await asyncio.sleep({turn_secs})
            return {{"messages": [AIMessage("finished")]}}

        builder = StateGraph(SchedulerState)
        builder.add_node("work", work)
        builder.add_edge(START, "work")
        rt = SyncSchedulerRuntime(builder, database={f"sqlite:///{tmp_path / 'x.db'}"!r},
                                  drain_timeout_secs={drain_secs})
        rt.start()

        def worker():
            try:
                out = rt.invoke({{"messages": [("user", "hi")]}}, {ALICE!r})
                print("worker:", out["messages"][-1].content, flush=True)
            except NotRunning as error:
                print("worker: NotRunning", error, flush=True)

        threading.Thread(target=worker).start()
        started.wait(30)
        print("main: exits without stop()", flush=True)
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "main: exits without stop()" and lines[1].startswith(worker_says)
    assert "Traceback" not in result.stderr and "asynchronous generator" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("while_", ["stop", "start"])
def test_a_signal_handler_stopping_the_runtime_again_cuts_the_first_call_short(
    tmp_path: Path, while_: str
) -> None:
    """A script whose SIGINT handler calls stop(), and a second Ctrl-C arriving while the
    first stop drains (or while start() waits for the store): the handler's stop ran on
    the thread whose start or stop held the facade, and waited for it for good. It cuts
    that call short: the running turn is recorded interrupted, and the process exits."""
    db = tmp_path / "x.db"
    script = textwrap.dedent(
        f"""
        import asyncio, logging, os, signal, sqlite3, sys, threading, time
        from langchain_core.messages import AIMessage
        from langgraph.graph import START, StateGraph
        from langgraph_scheduler import Interval, NotRunning, SchedulerState, SyncSchedulerRuntime

        started = threading.Event()

        async def work(state):
            started.set()
            await asyncio.sleep(3600)
            return {{"messages": [AIMessage("finished")]}}

        builder = StateGraph(SchedulerState)
        builder.add_node("work", work)
        builder.add_edge(START, "work")
        url = {f"sqlite:///{db}"!r}

        def ctrl_c(times):
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)

        def on_sigint(signum, frame):
            print("handler: stopping", flush=True)
            rt.stop()
            print("handler: stopped", flush=True)

        if {while_!r} == "stop":
            rt = SyncSchedulerRuntime(builder, database=url, drain_timeout_secs=3600)
            rt.start()
            rt.create_task(name="T", schedule=Interval(seconds=1), trigger="go", thread_id="t")
            assert started.wait(30)
            signal.signal(signal.SIGINT, on_sigint)
            threading.Thread(target=ctrl_c, args=(2,), daemon=True).start()
            while rt.running:
                time.sleep(0.05)
            print("main: stopped", flush=True)
        else:
            SyncSchedulerRuntime(None, database=url).__enter__().stop()  # the schema
            lock = sqlite3.connect({str(db)!r}, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")  # the start waits for the store
            rt = SyncSchedulerRuntime(builder, database=url, store_retry_secs=3600)
            signal.signal(signal.SIGINT, on_sigint)

            class CtrlCOnceTheStartWaits(logging.Handler):
                def emit(self, record):
                    if "the start waits" in record.getMessage():
                        threading.Thread(target=ctrl_c, args=(1,), daemon=True).start()

            logging.getLogger("langgraph_scheduler").addHandler(CtrlCOnceTheStartWaits())
            try:
                rt.start()
            except NotRunning as error:
                print("main:", error, flush=True)
            lock.execute("ROLLBACK")
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if while_ == "stop":
        assert lines == ["handler: stopping"] * 2 + ["handler: stopped"] * 2 + ["main: stopped"]
        with SyncSchedulerRuntime(None, database=f"sqlite:///{db}") as rt:
            (task,) = rt.list_tasks()
            assert [r.outcome for r in rt.history(task.id)] == ["interrupted"]
    else:
        assert lines == [
            "handler: stopping",
            "handler: stopped",
            "main: the runtime was stopped while it started: make a new SyncSchedulerRuntime",
        ]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_signal_handler_stopping_the_runtime_before_its_loop_exists_refuses_the_start(
    tmp_path: Path,
) -> None:
    """A SIGINT handler's stop() landing on the thread in start() before the runtime's
    loop existed marked the facade stopped, and the start then went on: the runtime ran
    beside a facade that said it was stopped. The start is refused instead."""
    script = textwrap.dedent(
        f"""
        import os, signal, threading, time
        from langgraph_scheduler import NotRunning, SyncSchedulerRuntime
        from langgraph_scheduler import sync

        serve = sync._serve

        def serve_once_ctrl_c_landed(loop, ready):
            os.kill(os.getpid(), signal.SIGINT)  # while start() waits for this thread
            handled.wait(30)
            serve(loop, ready)

        handled = threading.Event()
        sync._serve = serve_once_ctrl_c_landed

        def on_sigint(signum, frame):
            rt.stop()
            handled.set()

        rt = SyncSchedulerRuntime(None, database={f"sqlite:///{tmp_path / 'x.db'}"!r})
        signal.signal(signal.SIGINT, on_sigint)
        try:
            rt.start()
        except NotRunning as error:
            print("main:", error, flush=True)
        print("main: running" if rt.running or rt.runtime.running else "main: stopped")
        print(*(t.name for t in threading.enumerate() if t.name == "langgraph-scheduler"))
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "main: the runtime was stopped while it started: make a new SyncSchedulerRuntime",
        "main: stopped",
        "",
    ]


@pytest.mark.slow
def test_a_signal_handler_calling_the_runtime_while_its_thread_starts_it_is_answered(
    tmp_path: Path,
) -> None:
    """A SIGINT handler that calls the runtime (to list its tasks, say) while its own
    thread is in start(), waiting for the store: calls from other threads wait for the
    start, but this one cannot (the start resumes only after the handler returns), so it
    is answered at once that the runtime is starting, and the start then ends."""
    db = tmp_path / "x.db"
    script = textwrap.dedent(
        f"""
        import logging, os, signal, sqlite3, threading
        from langgraph_scheduler import SyncSchedulerRuntime

        url = {f"sqlite:///{db}"!r}
        SyncSchedulerRuntime(None, database=url).__enter__().stop()  # the schema
        lock = sqlite3.connect({str(db)!r}, isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")  # the start waits for the store

        def on_sigint(signum, frame):
            try:
                rt.list_tasks()
            except Exception as error:
                print("handler:", type(error).__name__, flush=True)
            lock.execute("ROLLBACK")

        class CtrlCOnceTheStartWaits(logging.Handler):
            def emit(self, record):
                if "the start waits" in record.getMessage():
                    os.kill(os.getpid(), signal.SIGINT)

        rt = SyncSchedulerRuntime(None, database=url, store_retry_secs=3600)
        signal.signal(signal.SIGINT, on_sigint)
        logging.getLogger("langgraph_scheduler").addHandler(CtrlCOnceTheStartWaits())
        rt.start()
        print("main: started,", len(rt.list_tasks()), "tasks", flush=True)
        rt.stop()
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["handler: NotRunning", "main: started, 0 tasks"]


def test_a_process_forked_from_a_running_runtime_refuses_calls_and_exits(
    tmp_path: Path,
) -> None:
    """A forked child (multiprocessing's default on Linux) has no copy of the runtime's
    thread. Before, its calls waited 10 s and blamed a blocked loop, and its exit hung
    for good, trying to stop the parent's runtime."""
    script = textwrap.dedent(
        f"""
        import multiprocessing, sys
        from langgraph_scheduler import NotRunning, SyncSchedulerRuntime

        rt = SyncSchedulerRuntime(None, database={f"sqlite:///{tmp_path / 'x.db'}"!r})
        rt.start()

        def child():
            try:
                rt.list_tasks()
            except NotRunning as error:
                print("child:", error, flush=True)
            sys.exit(7)

        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        process.join(60)
        print("parent: child exit code", process.exitcode, flush=True)
        print("parent: tasks", rt.list_tasks(), flush=True)
        rt.stop()
        """
    )
    result = subprocess.run(  # the timeout catches a hang; it is no performance bound
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("child: this SyncSchedulerRuntime runs in process "), lines
    assert "make a new SyncSchedulerRuntime in this process" in lines[0]
    assert lines[1:] == ["parent: child exit code 7", "parent: tasks []"]


# -- sync tools --------------------------------------------------------------------------


def test_sync_tool_calls_run_on_the_runtimes_loop(facade: SyncSchedulerRuntime) -> None:
    tools = _tools(facade)
    created = tools["schedule_task"].invoke(SCHEDULE, config=ALICE)
    assert "Stretch" in created and not created.startswith("Error")
    listed = tools["list_tasks"].invoke({}, config=ALICE)
    assert "Stretch" in listed
    (task,) = facade.list_tasks(owner="alice")
    message = tools["pause_task"].invoke(
        {"name": "pause_task", "args": {"task_id": task.id}, "id": "c1", "type": "tool_call"},
        config=ALICE,
    )
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert facade.get_task(task.id).state == "paused"
    # The tools' own errors still come back as tool messages:
    missing = tools["pause_task"].invoke({"task_id": "nope"}, config=ALICE)
    assert missing.startswith("Error: no task with id 'nope'")


def test_a_sync_graph_runs_the_scheduler_tools(tmp_path: Path) -> None:
    """A graph with only sync nodes, run with graph.invoke: ToolNode calls the tools
    synchronously, from LangGraph's worker threads."""
    holder: list[SchedulerRuntime] = []
    tools = scheduler_tools(lambda: holder[0])
    model = ScriptedChatModel(steps=[tool_call("schedule_task", SCHEDULE), "Scheduled."])

    def agent(state: SchedulerState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")

    def bind(runtime: SchedulerRuntime) -> Any:
        holder.append(runtime)
        return builder

    with SyncSchedulerRuntime(bind, database=f"sqlite:///{tmp_path / 'g.db'}") as rt:
        result = rt.graph.invoke({"messages": [HumanMessage("Remind me daily")]}, ALICE)
        answer = next(m for m in result["messages"] if isinstance(m, ToolMessage))
        assert answer.status == "success" and "Stretch" in str(answer.content)
        assert [t.name for t in rt.list_tasks(owner="alice")] == ["Stretch"]
        assert isinstance(result["messages"][-1], AIMessage)


async def test_an_async_tool_call_on_another_loop_is_handed_to_the_runtimes_loop(
    facade: SyncSchedulerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test's loop is not the runtime's: the tool's work must run over there.
    ran_on: list[str] = []
    list_tasks = facade.runtime.list_tasks

    async def recording(**kwargs: Any) -> Any:
        ran_on.append(threading.current_thread().name)
        return await list_tasks(**kwargs)

    monkeypatch.setattr(facade.runtime, "list_tasks", recording)
    tools = _tools(facade)
    created = await tools["schedule_task"].ainvoke(SCHEDULE, config=ALICE)
    assert "Stretch" in created and not created.startswith("Error")
    assert "Stretch" in await tools["list_tasks"].ainvoke({}, config=ALICE)
    assert ran_on == ["langgraph-scheduler"]


@pytest.mark.parametrize("mode", ["sync", "async on another loop"])
def test_the_callers_run_context_reaches_the_runtimes_loop(
    facade: SyncSchedulerRuntime, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """LangGraph's interrupt() (approvals) and get_config() read the run's config from a
    context variable: it must cross over with the call."""
    from langchain_core.runnables.config import var_child_runnable_config

    seen: list[Any] = []
    list_tasks = facade.runtime.list_tasks

    async def recording(**kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, var_child_runnable_config.get()))
        return await list_tasks(**kwargs)

    monkeypatch.setattr(facade.runtime, "list_tasks", recording)
    tool = _tools(facade)["list_tasks"]
    config = RunnableConfig(configurable=ALICE["configurable"], metadata={"marker": mode})
    if mode == "sync":
        tool.invoke({}, config=config)
    else:
        asyncio.run(tool.ainvoke({}, config=config))
    ((thread, seen_config),) = seen
    assert thread == "langgraph-scheduler"
    assert seen_config is not None and seen_config["metadata"]["marker"] == mode


async def test_a_sync_tool_call_on_the_runtimes_own_loop_names_the_fix(
    runtime_factory: Any, make_graph: Any, sqlite_url: str
) -> None:
    rt = runtime_factory(make_graph(), database=sqlite_url)
    await rt.start()
    tools = {t.name: t for t in scheduler_tools(rt)}
    with pytest.raises(RuntimeError, match=r"would block.*await graph\.ainvoke"):
        tools["list_tasks"].invoke({}, config=ALICE)
    # From another thread the same call is fine: the loop is free to take it.
    answer = await asyncio.to_thread(tools["list_tasks"].invoke, {}, config=ALICE)
    assert "no" in answer.lower() and not answer.startswith("Error")


def test_a_blocked_loop_fails_the_call_instead_of_hanging_and_nothing_is_done(
    facade: SyncSchedulerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_loops, "LOOP_GRACE_SECS", 0.3)
    loop = facade.runtime.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait, 30)  # something blocks the runtime's loop
    try:
        with pytest.raises(RuntimeError, match=r"did not respond.*Nothing was done"):
            _tools(facade)["schedule_task"].invoke(SCHEDULE, config=ALICE)
    finally:
        release.set()
    facade.wait_idle()
    assert facade.list_tasks() == []  # the abandoned call never ran


def test_ctrl_c_while_the_loop_is_blocked_leaves_nothing_done(
    facade: SyncSchedulerRuntime,
) -> None:
    # Ctrl-C before the loop took the call up: the call must not run later behind the
    # user's back (it did, once the loop was free again).
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the main thread only")
    loop = facade.runtime.loop
    assert loop is not None
    release = threading.Event()
    loop.call_soon_threadsafe(release.wait, 30)  # something blocks the runtime's loop
    ctrl_c = threading.Timer(0.2, _thread.interrupt_main)
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            facade.create_task(name="Interrupted", schedule=Interval(hours=1), trigger="hi")
    finally:
        ctrl_c.join()
        release.set()
    facade.wait_idle()
    assert facade.list_tasks() == []


def test_ctrl_c_as_a_thread_lock_is_taken_leaves_the_thread_free(
    facade: SyncSchedulerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C landing after the loop took the hold but before the caller had it (the
    # call's answer under way): the hold was kept for good, and every later turn of that
    # thread waited for it until the runtime stopped.
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Ctrl-C reaches the main thread only")
    taken = sync_module._Hold.acquired

    async def taken_then_ctrl_c(self: Any) -> None:
        await taken(self)
        _thread.interrupt_main()  # lands once the caller wakes with the hold's answer

    monkeypatch.setattr(sync_module._Hold, "acquired", taken_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with facade.thread_lock("alice"):
            pytest.fail("the block ran after Ctrl-C")
    monkeypatch.undo()
    with facade.thread_lock("alice", timeout=5):  # a bound for a hang: free at once
        pass


@pytest.mark.parametrize("inside_a_loop", [False, True])
def test_sync_tools_of_a_runtime_not_started_answer_with_the_reason(
    tmp_path: Path, inside_a_loop: bool
) -> None:
    runtime = SchedulerRuntime(None, database=f"sqlite:///{tmp_path / 'n.db'}")
    tool = next(t for t in scheduler_tools(runtime) if t.name == "list_tasks")

    def call() -> str:
        return str(tool.invoke({}, config=ALICE))

    async def in_loop() -> str:
        return call()

    answer = asyncio.run(in_loop()) if inside_a_loop else call()
    assert answer.startswith("Error: the runtime is not started")


@pytest.mark.parametrize("drain", [float("nan"), -1, "5"])
def test_a_stop_refuses_a_drain_timeout_it_cannot_wait_and_keeps_running(
    tmp_path: Path, drain: Any
) -> None:
    rt = SyncSchedulerRuntime(None, database=f"sqlite:///{tmp_path / 'sync.db'}")
    with rt:
        with pytest.raises(
            InvalidTask, match=re.escape(f"must be 0 or more seconds, got {drain!r}")
        ):
            rt.stop(drain_timeout_secs=drain)
        assert rt.running
        assert rt.list_tasks() == []
        rt.stop(drain_timeout_secs=float("inf"))  # waits for ever: nothing runs here
        assert not rt.running
