"""The engine on a fake clock: retries as rows, corrupt rows, windows, leases.

Time moves only when a test says so (``FakeClock.advance``); ``run_due`` claims what
is due at the fake "now" and ``wait_idle`` waits for the turns it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START as START_NODE
from langgraph.graph import StateGraph
from sqlalchemy import insert, literal_column, select, text, update

from langgraph_scheduler import (
    Cron,
    Interval,
    InvalidSchedule,
    InvalidTask,
    Once,
    QuotaExceeded,
    SchedulerRuntime,
    TaskEvent,
    TaskNotFound,
    TaskOptions,
)
from langgraph_scheduler._upkeep import _MEND_EVERY_SECS, Upkeep
from langgraph_scheduler.cli import main
from langgraph_scheduler.models import Task, TaskState
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import (
    COUNTER_MOST,
    LAST_ATTEMPT,
    NO_NEXT_RUN,
    UNREADABLE_TIME,
    retries_table,
    runs_table,
    tasks_table,
)
from langgraph_scheduler.testing import FakeClock, SystemClock
from langgraph_scheduler.trigger import ConversationTrigger
from langgraph_scheduler.webhooks import Webhook, WebhookPayload

from .helpers import RunWaiter, build_graph, step, until
from .test_tools import ALICE, Tools
from .test_webhooks import Receiver, eventually, settled

START = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)  # in the past: real timers fire at once
RETRYING = TaskOptions(retries=2, retry_backoff_secs=10, pause_after_failures=None)


def failing_then(*answers: Any) -> ScriptedChatModel:
    """A model whose first call fails and whose later calls give ``answers``."""
    return ScriptedChatModel(steps=[RuntimeError("model down"), *answers])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def runtime(graph: Any, database: str, clock: FakeClock, runs: RunWaiter, **kw: Any) -> Any:
    return SchedulerRuntime(
        graph, database=database, clock=clock, on_run=runs, drain_timeout_secs=2, **kw
    )


async def test_a_failed_fire_retries_after_its_backoff_as_a_stored_attempt(
    clock: FakeClock, runs: RunWaiter
) -> None:
    graph = build_graph(failing_then("ok"))
    async with runtime(graph, "sqlite://", clock, runs) as rt:
        task = await rt.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", options=RETRYING
        )
        assert await step(rt, clock, 3600) == 1
        (first,) = runs.records
        assert (first.outcome, first.attempt) == ("error", 1)
        (pending,) = await rt.store.pending_retries(task.id)
        assert pending == (first.scheduled_for, 2, START + timedelta(seconds=3610))
        assert await step(rt, clock, 9) == 0  # still in its backoff
        assert await step(rt, clock, 1) == 1
        second = runs.records[-1]
        assert (second.outcome, second.attempt) == ("success", 2)
        assert second.scheduled_for == first.scheduled_for
        assert second.due_at == pending[2] and second.lateness == timedelta(0)
        assert await rt.store.pending_retries(task.id) == []


@pytest.mark.parametrize("change", ["pause", "delete", "update"])
async def test_pause_delete_or_update_during_a_backoff_cancels_the_retry(
    clock: FakeClock, runs: RunWaiter, change: str
) -> None:
    graph = build_graph(failing_then("ok"))
    async with runtime(graph, "sqlite://", clock, runs) as rt:
        task = await rt.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", options=RETRYING
        )
        await step(rt, clock, 3600)
        assert len(await rt.store.pending_retries(task.id)) == 1
        if change == "pause":
            await rt.pause_task(task.id)
        elif change == "delete":
            await rt.delete_task(task.id)
        else:
            await rt.update_task(task.id, name="renamed")
        assert await rt.store.pending_retries(task.id) == []
        assert await step(rt, clock, 60) == 0
        assert [r.attempt for r in runs.records] == [1]


async def test_a_restart_during_a_backoff_still_runs_the_retry_once(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str
) -> None:
    async with runtime(build_graph(failing_then("ok")), sqlite_url, clock, runs) as rt:
        task = await rt.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", options=RETRYING
        )
        await step(rt, clock, 3600)
    assert [r.outcome for r in runs.records] == ["error"]
    # A new process: the retry is a row, so it survives the restart.
    async with runtime(
        build_graph(ScriptedChatModel(steps=["ok"])), sqlite_url, clock, runs
    ) as rt2:
        assert len(await rt2.store.pending_retries(task.id)) == 1
        assert await step(rt2, clock, 10) == 1
        assert await step(rt2, clock, 60) == 0
        history = await rt2.history(task.id)
        assert [(r.attempt, r.outcome) for r in history] == [(2, "success"), (1, "error")]


async def test_failures_exhaust_retries_then_auto_pause_on_the_fake_clock(
    clock: FakeClock, runs: RunWaiter
) -> None:
    events: list[TaskEvent] = []
    graph = build_graph(ScriptedChatModel(steps=[RuntimeError("down")]))
    options = TaskOptions(retries=2, retry_backoff_secs=5, pause_after_failures=2)
    async with runtime(graph, "sqlite://", clock, runs, on_event=events.append) as rt:
        task = await rt.create_task(
            name="r", schedule=Interval(minutes=1), trigger="go", options=options
        )
        # Per fire: attempt 1, its retry after 5 s, then after 10 s (exponential backoff).
        for secs, written in ((60, 1), (5, 1), (9, 0), (1, 1), (45, 1), (5, 1), (9, 0), (1, 1)):
            assert await step(rt, clock, secs) == written
        paused = await rt.get_task(task.id)
        assert paused.state == "paused" and paused.failure_streak == 2
        records = runs.records
        assert [(r.attempt, r.outcome) for r in records] == [(n, "error") for n in (1, 2, 3)] * 2
        assert all(r.error == "RuntimeError: down" for r in records)
        fires = [records[:3], records[3:]]
        assert [len({r.scheduled_for for r in fire}) for fire in fires] == [1, 1]
        assert records[0].scheduled_for != records[3].scheduled_for
        for fire in fires:
            gaps = [b.started_at - a.finished_at for a, b in zip(fire, fire[1:], strict=False)]  # type: ignore[operator]
            assert gaps == [timedelta(seconds=5), timedelta(seconds=10)]
        assert [(e.kind, e.task_id) for e in events] == [("auto_paused", task.id)]
        assert "2 consecutive failed fires" in events[0].reason
        assert "RuntimeError: down" in events[0].reason
        assert await step(rt, clock, 600) == 0


async def test_lowering_max_runs_to_the_runs_done_completes_at_once(
    clock: FakeClock, runs: RunWaiter
) -> None:
    async with runtime(build_graph(ScriptedChatModel()), "sqlite://", clock, runs) as rt:
        task = await rt.create_task(
            name="m", schedule=Interval(minutes=1), trigger="go", max_runs=5
        )
        await step(rt, clock, 60)
        await step(rt, clock, 60)
        done = await rt.update_task(task.id, max_runs=2)
        assert done.state == "completed" and done.next_run_at is None
        assert done.upcoming_runs() == []
        assert await step(rt, clock, 600) == 0
        assert len(runs.records) == 2


async def test_a_fire_later_than_its_grace_is_recorded_missed(
    clock: FakeClock, runs: RunWaiter
) -> None:
    options = TaskOptions(misfire_grace_secs=30)
    async with runtime(build_graph(ScriptedChatModel()), "sqlite://", clock, runs) as rt:
        task = await rt.create_task(
            name="g", schedule=Cron("*/5 * * * *", tz="UTC"), trigger="go", options=options
        )
        await clock.advance(300 + 45)  # nobody claimed it for 45 s
        await rt.run_due()
        await rt.wait_idle()
        (record,) = runs.records
        assert record.outcome == "missed" and record.task_id == task.id
        assert (await rt.get_task(task.id)).next_run_at == START + timedelta(minutes=10)


async def test_an_expired_lease_is_recorded_interrupted_and_retried(
    clock: FakeClock, runs: RunWaiter
) -> None:
    async with runtime(
        build_graph(ScriptedChatModel()), "sqlite://", clock, runs, lease_secs=30
    ) as rt:
        await rt.create_task(name="l", schedule=Interval(hours=1), trigger="go", options=RETRYING)
        # A claim whose holder never renews it, as if its process died mid-turn; made by
        # a replica whose clock runs ahead, so this runtime never gets to claim the fire.
        due = clock.now() + timedelta(hours=1)
        (claim,) = await rt.store.claim_due(
            as_of=due,
            limit=1,
            holder="elsewhere:1:gone",
            lease_until=due + timedelta(seconds=30),
            started_at=START,
        )
        assert claim.run is not None
        await clock.advance(3600)
        await clock.advance(31)  # the upkeep (every lease/3 on this clock) sweeps it
        await rt.wait_idle()
        stale = await rt.get_run(claim.run.run_id)
        assert stale is not None and stale.outcome == "interrupted"
        assert "stopped renewing" in (stale.error or "")
        assert await step(rt, clock, 10) == 1  # its retry, attempt 2
        assert runs.records[-1].attempt == 2 and runs.records[-1].outcome == "success"


async def test_only_fires_within_the_window_are_held_in_memory(
    clock: FakeClock, runs: RunWaiter
) -> None:
    async with runtime(
        build_graph(ScriptedChatModel()), "sqlite://", clock, runs, window_secs=60
    ) as rt:
        for minutes in (0.5, 0.5, 0.75, 5, 90):
            await rt.create_task(
                name=f"w{minutes}", schedule=Once(START + timedelta(minutes=minutes)), trigger="x"
            )
        assert rt._timer.pending == 2  # two distinct due instants within the next minute
        assert await step(rt, clock, 45) == 3
        assert await step(rt, clock, 600) == 1
        assert len(runs.records) == 4


def _timer(clock: FakeClock, woken: list[datetime | None]) -> Any:
    """A runtime's due timer on ``clock`` (in memory, not started), waking into ``woken``."""
    from langgraph_scheduler._bridge import CLAIM_AHEAD
    from langgraph_scheduler._jobs import DueTimer
    from langgraph_scheduler.store import open_store

    return DueTimer(
        open_store("sqlite://"),
        clock=clock,
        window_secs=3600,
        poll_secs=600,
        wake=woken.append,
        ahead=CLAIM_AHEAD,
    )


async def test_a_timer_wake_lets_go_of_every_instant_it_covers(clock: FakeClock) -> None:
    woken: list[datetime | None] = []
    timer = _timer(clock, woken)
    now = clock.now()
    earlier, job, within, later = (now + timedelta(seconds=s) for s in (10, 20, 20.01, 40))
    for when in (job, within, later, earlier):  # the earliest one set after the job's
        timer.at(when)

    await clock.advance(19.99)  # the job's run, CLAIM_AHEAD before its instant
    timer.fire(job)

    assert woken == [within]  # one wake for everything come or within the lead
    assert timer.pending == 1  # only the later instant is still held
    timer.shutdown()


async def test_a_timer_job_that_comes_before_the_runtimes_clock_waits_for_that_clock(
    clock: FakeClock,
) -> None:
    # APScheduler judges its job by the wall clock, long past this fake clock's instants,
    # so the job comes at once; by the runtime's clock the instant is a minute away.
    woken: list[datetime | None] = []
    timer = _timer(clock, woken)
    came: list[datetime] = []
    fire = timer.fire

    def counted(due: datetime) -> None:
        came.append(due)
        fire(due)

    timer.fire = counted
    timer.start()
    try:
        instant = clock.now() + timedelta(minutes=1)
        timer.at(instant)
        await until(lambda: came, "the job come")  # real time (APScheduler's clock)
        for _ in range(20):  # and long enough to come again, if it would
            await asyncio.sleep(0.01)
        assert came == [instant]  # once: it waits, instead of coming back at once
        assert woken == [] and timer.pending == 1
        await clock.advance(59.9)
        assert woken == []
        await clock.advance(0.1)  # the instant, by the runtime's clock
        assert woken == [instant] and timer.pending == 0
    finally:
        timer.shutdown()


# -- corrupt rows ------------------------------------------------------------------------


async def _bad_and_good(rt: SchedulerRuntime) -> tuple[Task, Task]:
    """Two of alice's tasks due every minute: "bad", for a test to write by hand, and
    "good", which must fire all the same."""
    made = [
        await rt.create_task(name=name, schedule=Interval(minutes=1), trigger="x", owner="alice")
        for name in ("bad", "good")
    ]
    return made[0], made[1]


async def _corrupt(rt: SchedulerRuntime, task_id: str, column: str) -> None:
    garbage: Any = json.dumps("{not json") if rt.store.dialect == "postgresql" else "{not json"
    if column in ("run_count", "failure_streak", "version"):
        garbage = COUNTER_MOST  # the most it counts to: no fire or change can count it on
    statement = text(f"UPDATE lgs_tasks SET {column} = :g WHERE id = :i")
    await rt.store.transaction(lambda conn: conn.execute(statement, {"g": garbage, "i": task_id}))


@pytest.mark.parametrize(
    "column", ["schedule", "options", "run_count", "failure_streak", "version"]
)
async def test_a_corrupt_row_is_quarantined_and_the_others_fire(
    clock: FakeClock, runs: RunWaiter, database: str, column: str
) -> None:
    # A counter at its most used to stop every fire: its fire could not count it on
    # ("integer out of range" on PostgreSQL), so each claim pass failed as a whole.
    events: list[TaskEvent] = []
    async with runtime(None, database, clock, runs) as admin:
        bad, good = await _bad_and_good(admin)
        await _corrupt(admin, bad.id, column)
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, database, clock, runs, on_event=events.append) as rt:  # starts
        listed = {t.id: t for t in await rt.list_tasks(owner="alice")}
        assert listed[bad.id].problem and column in listed[bad.id].problem
        assert listed[good.id].problem is None
        assert await step(rt, clock, 60) == 2
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes == {bad.id: "error", good.id: "success"}
        error = next(r for r in runs.records if r.task_id == bad.id)
        assert "cannot be read" in (error.error or "") and column in (error.error or "")
        assert [(e.kind, e.task_id) for e in events] == [("quarantined", bad.id)]
        assert (await rt.get_task(bad.id)).state == "quarantined"
        await step(rt, clock, 60)
        assert [r.task_id for r in runs.records].count(bad.id) == 1  # no more fires
        assert [r.task_id for r in runs.records].count(good.id) == 2
        running = text("SELECT count(*) FROM lgs_runs WHERE outcome IS NULL")
        assert await rt.store.transaction(lambda conn: conn.execute(running).scalar_one()) == 0
        assert (await rt.run_now(bad.id)).outcome == "success"  # by hand it still runs
        # Its owner can pause, list and delete it from Python.
        assert (await rt.pause_task(bad.id)).state == "quarantined"
        deleted = await rt.delete_task(bad.id, owner="alice")
        assert deleted.id == bad.id
        with pytest.raises(TaskNotFound):
            await rt.get_task(bad.id)


_BAD_PAYLOADS: dict[str, tuple[Any, str]] = {
    # how the payload was written by hand: (what is stored, what its problem says)
    "not json": ("{not json", "payload: task payload is not valid JSON"),
    "null": (None, "payload: task has no payload"),
    "a list": (["hi"], "payload: task payload must be a JSON object, got a list"),
    "no prompt": ({"system_addon": "be brief"}, "payload: field 'prompt' is required"),
    "an empty prompt": ({"prompt": "  "}, "field 'prompt': String should have at least"),
    "an unknown field": ({"prompt": "hi", "colour": "red"}, "unknown field 'colour'"),
}
PAYLOAD_RETRYING = TaskOptions(retries=2, retry_backoff_secs=10, pause_after_failures=3)


async def _write_payload(rt: SchedulerRuntime, task_id: str, payload: Any) -> None:
    """Write a task's payload by hand, as another process or an older version might."""
    if payload is None:  # SQL NULL, not JSON null
        statement = text("UPDATE lgs_tasks SET payload = NULL WHERE id = :i")
        await rt.store.transaction(lambda conn: conn.execute(statement, {"i": task_id}))
    elif payload == "{not json":
        await _corrupt(rt, task_id, "payload")
    else:
        written = update(tasks_table).where(tasks_table.c.id == task_id).values(payload=payload)
        await rt.store.transaction(lambda conn: conn.execute(written))


@pytest.mark.parametrize("how", list(_BAD_PAYLOADS))
async def test_a_fire_of_a_task_whose_payload_cannot_be_read_quarantines_it_once(
    clock: FakeClock, runs: RunWaiter, database: str, how: str
) -> None:
    # Each fire used to be recorded error and retried per the task's options (three
    # records a fire here), the task listed active with no problem until the failure
    # streak paused it: a row that cannot be read is quarantined at once instead.
    stored, said = _BAD_PAYLOADS[how]
    events: list[TaskEvent] = []
    async with runtime(None, database, clock, runs) as admin:
        bad = await admin.create_task(
            name="bad", schedule=Interval(minutes=1), trigger="x", options=PAYLOAD_RETRYING
        )
        good = await admin.create_task(name="good", schedule=Interval(minutes=1), trigger="x")
        await _write_payload(admin, bad.id, stored)
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, database, clock, runs, on_event=events.append) as rt:
        listed = {t.id: t for t in await rt.list_tasks()}
        assert said in (listed[bad.id].problem or "")
        assert listed[good.id].problem is None
        assert await step(rt, clock, 60) == 2
        (error,) = [r for r in runs.records if r.task_id == bad.id]
        assert error.outcome == "error"
        assert "cannot be read" in (error.error or "") and said in (error.error or "")
        assert await rt.store.pending_retries(bad.id) == []
        assert [(e.kind, e.task_id) for e in events] == [("quarantined", bad.id)]
        assert said in events[0].reason
        quarantined = await rt.get_task(bad.id)
        assert quarantined.state == "quarantined"
        assert said in (quarantined.problem or "")  # still says why
        for _ in range(3):  # past the retries' backoff and the next fires
            await step(rt, clock, 60)
        assert [r.task_id for r in runs.records].count(bad.id) == 1
        assert [r.task_id for r in runs.records].count(good.id) == 4


async def test_a_manual_run_of_a_task_whose_payload_cannot_be_read_quarantines_it(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # It used to be recorded error with the task left active, to fail again at each fire.
    events: list[TaskEvent] = []
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, database, clock, runs, on_event=events.append) as rt:
        bad = await rt.create_task(
            name="bad", schedule=Interval(minutes=1), trigger="x", options=PAYLOAD_RETRYING
        )
        await _write_payload(rt, bad.id, {"prompt": "", "colour": "red"})
        record = await rt.run_now(bad.id)
        assert (record.outcome, record.trigger) == ("error", "manual")
        assert "unknown field 'colour'" in (record.error or "")
        assert [r.run_id for r in runs.records] == [record.run_id]
        assert await rt.get_run(record.run_id) == record
        assert [(e.kind, e.task_id) for e in events] == [("quarantined", bad.id)]
        assert (await rt.get_task(bad.id)).state == "quarantined"
        assert await step(rt, clock, 120) == 0  # its schedule no longer fires it
        again = await rt.run_now(bad.id)  # by hand: recorded again, the same way
        assert again.outcome == "error" and "unknown field 'colour'" in (again.error or "")
        assert len(events) == 1  # quarantined once
        assert await rt.store.pending_retries(bad.id) == []


async def test_a_retry_of_a_task_whose_payload_became_unreadable_quarantines_it(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # A payload written by hand while a retry waits: the retry ran into the payload,
    # was recorded error and left the task active, to fail again at its next fire.
    events: list[TaskEvent] = []
    graph = build_graph(failing_then("ok"))
    async with runtime(graph, database, clock, runs, on_event=events.append) as rt:
        task = await rt.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", options=PAYLOAD_RETRYING
        )
        assert await step(rt, clock, 3600) == 1  # the model fails: a retry waits
        assert len(await rt.store.pending_retries(task.id)) == 1
        await _write_payload(rt, task.id, {"prompt": "go", "colour": "red"})
        assert await step(rt, clock, 10) == 1
        retry = runs.records[-1]
        assert (retry.outcome, retry.attempt) == ("error", 2)
        assert "unknown field 'colour'" in (retry.error or "")
        assert [(e.kind, e.task_id) for e in events] == [("quarantined", task.id)]
        assert (await rt.get_task(task.id)).state == "quarantined"
        assert await rt.store.pending_retries(task.id) == []
        assert await step(rt, clock, 3600) == 0


async def test_a_task_quarantined_for_its_payload_comes_back_with_a_new_prompt(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, database, clock, runs) as rt:
        bad = await rt.create_task(
            name="bad", schedule=Interval(minutes=1), trigger="x", options=PAYLOAD_RETRYING
        )
        await _write_payload(rt, bad.id, ["hi"])
        assert await step(rt, clock, 60) == 1
        assert (await rt.get_task(bad.id)).state == "quarantined"
        with pytest.raises(InvalidTask, match="give it a new prompt with update_task"):
            await rt.resume_task(bad.id)
        # A new schedule alone does not bring it back: its payload still cannot be read.
        kept = await rt.update_task(bad.id, schedule=Interval(minutes=2))
        assert (kept.state, kept.next_run_at) == ("quarantined", None)
        assert "payload" in (kept.problem or "")
        mended = await rt.update_task(bad.id, trigger="hello again")
        assert (mended.state, mended.problem) == ("active", None)
        assert mended.next_run_at == clock.now() + timedelta(minutes=2)
        assert await step(rt, clock, 120) == 1
        assert runs.records[-1].outcome == "success"
        assert runs.records[-1].task_id == bad.id


async def test_a_task_whose_payload_cannot_be_read_does_not_resume(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # A resume used to make it active, to fail (and retry) at each fire.
    async with runtime(None, database, clock, runs) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="x")
        await rt.pause_task(task.id)
        await _write_payload(rt, task.id, None)
        with pytest.raises(
            InvalidTask,
            match=r"cannot resume: its stored payload cannot be read \(payload: task has no "
            r"payload.*\); give it a new prompt with update_task, or delete it",
        ):
            await rt.resume_task(task.id)
        assert (await rt.get_task(task.id)).state == "paused"
        await rt.update_task(task.id, trigger="hello again")  # paused still
        assert (await rt.resume_task(task.id)).state == "active"


@pytest.mark.parametrize(
    ("column", "value"),
    [("thread_mode", "bogus"), ("last_outcome", "bogus"), ("state", "bogus")],
)
async def test_a_row_with_a_value_the_schema_forbids_stops_nothing(
    clock: FakeClock, runs: RunWaiter, database: str, column: str, value: str
) -> None:
    # Written by hand: a value no task can hold. The row is read (quarantined, naming
    # the column), and the other tasks fire; it used to fail every claim and listing.
    async with runtime(None, database, clock, runs) as admin:
        bad, good = await _bad_and_good(admin)
        statement = text(f"UPDATE lgs_tasks SET {column} = :v WHERE id = :i")
        await admin.store.transaction(
            lambda conn: conn.execute(statement, {"v": value, "i": bad.id})
        )
    async with runtime(build_graph(ScriptedChatModel()), database, clock, runs) as rt:
        listed = {t.id: t for t in await rt.list_tasks(owner="alice")}
        assert listed[bad.id].state == "quarantined"
        assert f"{column}: 'bogus' cannot be read" in (listed[bad.id].problem or "")
        await step(rt, clock, 60)
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes[good.id] == "success"
        # An active row is claimed and quarantined with an error record; a row whose
        # state is unreadable is never due.
        assert outcomes.get(bad.id) == (None if column == "state" else "error")
        await rt.delete_task(bad.id, owner="alice")
        assert [t.id for t in await rt.list_tasks(owner="alice")] == [good.id]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        *((column, "feb30") for column in ("next_run_at", "created_at", "updated_at")),
        # A number (SQLite keeps it as one): every claim failed with "fromisoformat:
        # argument must be str", so no task fired at all.
        *((column, 12345) for column in ("next_run_at", "created_at", "updated_at")),
        ("next_run_at", 1.5),
    ],
)
async def test_a_sqlite_time_that_is_no_time_stops_nothing(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str, column: str, value: object
) -> None:
    # February 30th, written by hand: it sorts as due, and used to fail start-up (the
    # timers), every claim and the change feed.
    async with runtime(None, sqlite_url, clock, runs) as admin:
        bad = await admin.create_task(name="bad", schedule=Interval(minutes=1), trigger="x")
        good = await admin.create_task(name="good", schedule=Interval(minutes=1), trigger="x")
        if value == "feb30":
            value = f"{clock.now().year - 1}-02-30 09:00:00.000000"
        statement = text(f"UPDATE lgs_tasks SET {column} = :v WHERE id = :i")
        await admin.store.transaction(
            lambda conn: conn.execute(statement, {"v": value, "i": bad.id})
        )
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        listed = {t.id: t for t in await rt.list_tasks()}
        assert listed[bad.id].state == "quarantined"
        assert listed[bad.id].problem == f"{column}: {UNREADABLE_TIME} cannot be read"
        await step(rt, clock, 60)
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes[good.id] == "success"
        assert outcomes[bad.id] == "error"  # claimed when due, and quarantined
        quarantined = await rt.get_task(bad.id)
        assert quarantined.state == "quarantined"
        # Still saying why, its unreadable due time included (kept as stored).
        assert quarantined.problem == f"{column}: {UNREADABLE_TIME} cannot be read"


@pytest.mark.parametrize("when", ["in 30 s", "last year"])
async def test_a_sqlite_time_written_as_isoformat_is_unreadable(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str, when: str
) -> None:
    # Python's isoformat ("T", an offset), written by hand, read as the time it says but
    # was compared as text with the store's own form ('2026-01-01 09:00:00.000000'): the
    # task showed active and fell due a day late (or, with another offset, hours off). It
    # reads as unreadable, as other hand-written times do: quarantined, saying why.
    async with runtime(None, sqlite_url, clock, runs) as admin:
        bad = await admin.create_task(name="bad", schedule=Interval(minutes=1), trigger="x")
        good = await admin.create_task(name="good", schedule=Interval(minutes=1), trigger="x")
        due = clock.now() + timedelta(seconds=30)
        if when == "last year":
            due = due.replace(year=due.year - 1)
        statement = text("UPDATE lgs_tasks SET next_run_at = :v WHERE id = :i")
        await admin.store.transaction(
            lambda conn: conn.execute(statement, {"v": due.isoformat(), "i": bad.id})
        )
    problem = f"next_run_at: {UNREADABLE_TIME} cannot be read"
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        listed = {t.id: t for t in await rt.list_tasks(state="quarantined")}
        assert list(listed) == [bad.id]
        assert listed[bad.id].problem == problem
        await step(rt, clock, 60)
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes[good.id] == "success"
        # one that sorts as due is claimed and quarantined, with an error record
        assert outcomes.get(bad.id) == ("error" if when == "last year" else None)
        assert (await rt.get_task(bad.id)).state == "quarantined"


_NEVER_DUE_BY_HAND = {"sqlite": "'zzz'", "postgresql": "'infinity'"}
"""Per backend, a retry's due time written by hand that sorts after every time."""


async def _retry_by_hand(
    admin: SchedulerRuntime,
    task: Task,
    raw: str,
    *,
    minutes_ago: int = 5,
    column: str = "due_at",
) -> datetime:
    """Write a waiting retry (attempt 2) of ``task`` for its occurrence ``minutes_ago``
    before START, due START, behind the store's back, its ``column`` the SQL literal
    ``raw``; the occurrence."""
    occurrence = START - timedelta(minutes=minutes_ago)
    row = {"task_id": task.id, "scheduled_for": occurrence, "attempt": 2, "due_at": START}
    await admin.store.transaction(lambda conn: conn.execute(insert(retries_table), row))
    held = retries_table.c.scheduled_for == occurrence
    written = update(retries_table).where(held).values({column: literal_column(raw)})
    await admin.store.transaction(lambda conn: conn.execute(written))
    return occurrence


async def _waiting(rt: SchedulerRuntime) -> list[tuple[Any, ...]]:
    """Every waiting retry as stored: (scheduled_for, attempt, due_at as the store reads it)."""
    query = select(retries_table.c.scheduled_for, retries_table.c.attempt, retries_table.c.due_at)
    return await rt.store.transaction(lambda conn: [tuple(r) for r in conn.execute(query)])


async def test_a_retry_no_claim_finds_due_runs_once_the_upkeep_mends_it(
    clock: FakeClock, runs: RunWaiter, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A waiting retry whose due_at, written by hand, sorts after every time: no claim
    # ever found it due, so its attempt never ran and its row waited for ever. The
    # runtime's upkeep (not its claims) finds it by what it holds and makes it due now:
    # it runs once, as the attempt it was, logged with its task and attempt.
    async with runtime(None, database, clock, runs) as admin:
        task = await admin.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", options=RETRYING
        )
        occurrence = await _retry_by_hand(admin, task, _NEVER_DUE_BY_HAND[admin.store.dialect])
    async with runtime(build_graph(ScriptedChatModel()), database, clock, runs) as rt:
        assert await rt.run_due() == 0  # the claims alone never find it due
        assert "cannot be read" not in caplog.text
        await clock.advance(10)  # the upkeep's first pass (every lease_secs / 3)
        (record,) = await runs.wait_for(1)
        assert (record.task_id, record.scheduled_for, record.attempt, record.outcome) == (
            task.id,
            occurrence,
            2,
            "success",
        )
        assert record.due_at == START + timedelta(seconds=10)  # made due by that pass
        said = f"retry of task {task.id} (attempt 2): its stored due_at cannot be read"
        assert caplog.text.count(said) == 1
        assert await _waiting(rt) == []
        assert await step(rt, clock, 600) == 0  # recorded once
        assert [r.attempt for r in await rt.history(task.id)] == [2]


async def test_a_retry_whose_occurrence_is_in_another_form_runs_once(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str
) -> None:
    # A waiting retry's scheduled_for written by hand in Python's isoformat ("T"), which
    # SQLite keeps as text that reads as its time. It ran, but its row, dropped as the
    # store writes that time, stayed: once the history limit trimmed its run's record,
    # the next claim ran it again. Now its claim drops the row as it holds it.
    async with runtime(None, sqlite_url, clock, runs) as admin:
        task = await admin.create_task(
            name="r", schedule=Interval(minutes=1), trigger="go", options=RETRYING
        )
        occurrence = START - timedelta(minutes=5)
        raw = f"'{occurrence.replace(tzinfo=None).isoformat()}'"
        await _retry_by_hand(admin, task, raw, column="scheduled_for")
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, sqlite_url, clock, runs, history_limit=1) as rt:
        assert await rt.run_due() == 1
        await rt.wait_idle()
        for _ in range(3):  # the task's fires, each trimming the records before it
            await step(rt, clock, 60)
        retried = [(r.scheduled_for, r.attempt) for r in runs.records if r.attempt > 1]
        assert retried == [(occurrence, 2)]
        assert await _waiting(rt) == []


def _upkeep_of(
    rt: SchedulerRuntime, clock: FakeClock, *, history_max_age_days: float | None = None
) -> Upkeep:
    """An upkeep of its own over the runtime's store and claims, on ``clock``."""
    return Upkeep(
        rt.store,
        rt._bridge,
        clock=clock,
        lease_secs=30,
        history_limit=None,
        history_max_age_days=history_max_age_days,
    )


@pytest.mark.parametrize("days", [1e6, 1e12])
async def test_an_age_limit_older_than_the_calendar_purges_nothing_and_fails_no_upkeep(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str, days: float
) -> None:
    # Its cutoff, now less the age, is before the year 1 (or no timedelta at all): every
    # upkeep pass raised OverflowError, logged as a failed lease upkeep once a minute for
    # as long as the runtime ran. No record is that old: nothing is purged.
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        task = await rt.create_task(name="r", schedule=Interval(hours=1), trigger="go")
        record = await rt.run_now(task.id)
        upkeep = _upkeep_of(rt, clock, history_max_age_days=days)
        await upkeep.tend()
        assert [r.run_id for r in await rt.history(task.id)] == [record.run_id]


async def test_the_upkeep_mends_waiting_retries_every_ten_minutes(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str
) -> None:
    # The mend scans every waiting retry: the upkeep runs it at its first pass, then
    # once per _MEND_EVERY_SECS, not at every pass (every lease_secs / 3), and whether
    # or not history is purged or webhooks are sent. An upkeep of its own, on a clock of
    # its own, over the runtime's store and claims (the runtime's clock stands still).
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        task = await rt.create_task(name="r", schedule=Interval(hours=1), trigger="go")
        own = FakeClock(START)
        upkeep = _upkeep_of(rt, own)
        first = await _retry_by_hand(rt, task, "'zzz'")
        await upkeep.tend()  # mended: due START, when the runtime's clock stands
        assert (await runs.wait_for(1))[0].scheduled_for == first
        await rt.wait_idle()
        second = await _retry_by_hand(rt, task, "'zzz'", minutes_ago=6)
        for _ in range(int(_MEND_EVERY_SECS) // 10 - 1):
            await own.advance(10)
            await upkeep.tend()
        held = text("SELECT due_at FROM lgs_retries")
        assert await rt.store.transaction(lambda conn: conn.scalars(held).all()) == ["zzz"]
        assert await rt.run_due() == 0  # still no time a claim compares
        await own.advance(10)
        await upkeep.tend()  # 600 s after the first: mended, due then
        mended = START + timedelta(seconds=_MEND_EVERY_SECS)
        assert await _waiting(rt) == [(second, 2, mended)]
        assert await step(rt, clock, _MEND_EVERY_SECS) == 1
        assert (runs.records[-1].scheduled_for, runs.records[-1].attempt) == (second, 2)


@pytest.mark.parametrize(
    ("column", "raw"),
    [
        ("name", "x'00ff'"),  # a blob that is no UTF-8
        ("name", "CAST(x'62e96164' AS TEXT)"),  # text that is no UTF-8
        ("owner", "x'00ff'"),
        ("thread_id", "x'00ff'"),
        ("version", "'v'"),
        ("schedule", "CAST(x'7b22e9' AS TEXT)"),
    ],
)
async def test_a_sqlite_value_written_by_hand_stops_nothing(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str, column: str, raw: str
) -> None:
    # SQLite keeps any value in any column: a blob, or text that is no UTF-8, used to
    # fail the read of every due task (the fetch of the whole result), so nothing fired
    # and nothing could be listed or deleted.
    async with runtime(None, sqlite_url, clock, runs) as admin:
        bad = await admin.create_task(
            name="bad", schedule=Interval(minutes=1), trigger="x", thread_id="t-bad"
        )
        good = await admin.create_task(name="good", schedule=Interval(minutes=1), trigger="x")
    path = sqlite_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"UPDATE lgs_tasks SET {column} = {raw} WHERE id = ?", (bad.id,))
        conn.commit()
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        listed = {t.id: t for t in await rt.list_tasks()}
        assert listed[good.id].problem is None
        await step(rt, clock, 60)
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes[good.id] == "success"
        if column == "name" and raw.startswith("CAST"):  # read, with U+FFFD in its place
            assert listed[bad.id].name == "b\ufffdad" and outcomes[bad.id] == "success"
        else:  # read with its problem; claimed when due, and quarantined
            assert column in (listed[bad.id].problem or "")
            assert outcomes[bad.id] == "error"
            assert (await rt.get_task(bad.id)).state == "quarantined"
        await rt.delete_task(bad.id)
        assert [t.id for t in await rt.list_tasks()] == [good.id]


async def test_a_sqlite_retry_row_with_a_number_for_a_time_stops_nothing(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str
) -> None:
    # A retry row whose due time is a number, written by hand: every claim failed on it
    # ("fromisoformat: argument must be str"), so no task fired.
    async with runtime(None, sqlite_url, clock, runs) as admin:
        good = await admin.create_task(name="good", schedule=Interval(minutes=1), trigger="x")
    with contextlib.closing(sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))) as conn:
        conn.execute(
            "INSERT INTO lgs_retries VALUES (?, '2027-01-01 00:00:00.000000', 2, 12345)",
            (good.id,),
        )
        conn.commit()
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        await step(rt, clock, 60)
        assert "success" in {r.outcome for r in runs.records if r.task_id == good.id}


async def test_an_unreadable_running_row_stops_neither_start_up_nor_the_sweep(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # A dead holder's running row whose trigger no run can have: start-up ends it
    # (interrupted, saying why) instead of failing on it, and fires go on.
    async with runtime(None, database, clock, runs) as admin:
        task = await admin.create_task(name="t", schedule=Interval(minutes=1), trigger="x")
        rows = [
            {"run_id": run_id, "task_id": task.id, "attempt": 1, "trigger": trigger,
             "scheduled_for": clock.now() - timedelta(minutes=offset),
             "started_at": clock.now(), "holder": "elsewhere:1:dead",
             "lease_expires_at": clock.now() - timedelta(seconds=1)}
            for run_id, trigger, offset in (("r-bad", "bogus", 1), ("r-good", "schedule", 2))
        ]  # fmt: skip
        await admin.store.transaction(lambda conn: conn.execute(insert(runs_table), rows))
    async with runtime(build_graph(ScriptedChatModel()), database, clock, runs) as rt:
        await rt.wait_idle()
        ended = await rt.store.transaction(
            lambda conn: {r.run_id: r.outcome for r in conn.execute(select(runs_table))}
        )
        assert ended["r-bad"] == "interrupted" and ended["r-good"] == "interrupted"
        assert await step(rt, clock, 60) >= 1
        assert "success" in {r.outcome for r in runs.records if r.task_id == task.id}


def _database(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The database ``where`` names: SQLite in memory, a SQLite file, or PostgreSQL."""
    if where == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return "sqlite://" if where == "memory" else f"sqlite:///{tmp_path / 'hand.db'}"


@contextlib.asynccontextmanager
async def _dead_holders_rows(
    database: str, clock: FakeClock, runs: RunWaiter, run_ids: list[str]
) -> AsyncIterator[tuple[SchedulerRuntime, Task, Receiver]]:
    """A runtime (leases of 30 s, a webhook to the receiver given) with an hourly task
    that retries, and running rows ``run_ids`` of that task, each for an occurrence of
    its own, whose holder died and whose lease lapses at START + 5 s."""
    receiver = Receiver()
    webhook = Webhook(url=receiver.url, secret="s3cret")
    try:
        graph = build_graph(ScriptedChatModel())
        async with runtime(graph, database, clock, runs, webhook=webhook, lease_secs=30) as rt:
            task = await rt.create_task(
                name="t", schedule=Interval(hours=1), trigger="x", options=RETRYING
            )
            lease = START + timedelta(seconds=5)
            rows = [
                {"run_id": run_id, "task_id": task.id, "attempt": 1, "trigger": "schedule",
                 "scheduled_for": START - timedelta(minutes=n), "started_at": START,
                 "due_at": START, "holder": "elsewhere:1:dead", "lease_expires_at": lease}
                for n, run_id in enumerate(run_ids)
            ]  # fmt: skip
            await rt.store.transaction(lambda conn: conn.execute(insert(runs_table), rows))
            yield rt, task, receiver
    finally:
        receiver.close()


_ATTEMPT_BY_HAND = {"sqlite": "'second'", "postgresql": "-1"}
"""Per backend, an attempt written by hand that no fire has (PostgreSQL refuses text)."""


@pytest.mark.parametrize("where", ["memory", "file", "postgres"])
async def test_a_running_row_whose_attempt_cannot_be_read_ends_as_any_swept_fire(
    clock: FakeClock, runs: RunWaiter, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    # A dead holder's running row with its attempt written by hand. The sweep closed it
    # without a word: no listener, webhook or last outcome (SQLite), or it read
    # attempt -1 and retried it (PostgreSQL). Now it ends once, as its last attempt.
    database = _database(where, tmp_path, request)
    async with _dead_holders_rows(database, clock, runs, ["r-hand"]) as (rt, task, receiver):
        raw = _ATTEMPT_BY_HAND[rt.store.dialect]
        await _by_hand(rt, f"UPDATE lgs_runs SET attempt = {raw} WHERE run_id = 'r-hand'")

        for _ in range(2):  # past its lease: the upkeep (every 10 s) sweeps it
            await clock.advance(30)
        (record,) = await runs.wait_for(1, task_id=task.id)
        (delivery,) = await eventually(settled(rt, "r-hand"))
        await clock.advance(30)  # another sweep: nothing more
        await rt.wait_idle()

        assert [r.run_id for r in runs.records] == ["r-hand"]
        assert (record.outcome, record.attempt) == ("interrupted", LAST_ATTEMPT)
        assert "its stored attempt could not be read" in (record.error or "")
        assert delivery.status == "delivered"
        (request_,) = receiver.requests
        assert WebhookPayload.model_validate_json(request_.body).run == record
        assert await rt.store.pending_retries(task.id) == []
        stored = await rt.get_task(task.id)
        assert (stored.last_outcome, stored.state) == ("interrupted", "active")
        ended = await rt.store.transaction(
            lambda conn: conn.execute(text("SELECT outcome FROM lgs_runs")).scalars().all()
        )
        assert ended == ["interrupted"]
        assert await rt.history(task.id) == []  # its row still cannot be read


@pytest.mark.parametrize("where", ["memory", "file", "postgres"])
async def test_a_retry_whose_attempt_cannot_be_read_ends_once_as_its_last_attempt(
    clock: FakeClock, runs: RunWaiter, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    # A waiting retry's attempt written by hand. Its claim handed the value on: text
    # failed the fire's finish (SQLite), so nobody was told and the sweep closed it
    # later; -1 ran, failed and was retried as attempt 0 (PostgreSQL). Now it runs once
    # as its fire's last attempt, and ends as any fire: recorded once, told, counted.
    database = _database(where, tmp_path, request)
    receiver = Receiver()
    webhook = Webhook(url=receiver.url, secret="s3cret")
    try:
        graph = build_graph(failing_then("ok"))
        # Leases far longer than the clock's steps: a turn slow in real time (a loaded
        # machine) is not taken for a dead one's while the fake clock jumps past it.
        async with runtime(graph, database, clock, runs, webhook=webhook, lease_secs=300) as rt:
            task = await rt.create_task(
                name="t", schedule=Interval(hours=1), trigger="x", options=RETRYING
            )
            retry = {"task_id": task.id, "scheduled_for": START - timedelta(hours=1),
                     "attempt": 2, "due_at": START + timedelta(seconds=5)}  # fmt: skip
            await rt.store.transaction(lambda conn: conn.execute(insert(retries_table), retry))
            raw = _ATTEMPT_BY_HAND[rt.store.dialect]
            await _by_hand(rt, f"UPDATE lgs_retries SET attempt = {raw}")

            for _ in range(3):  # past its due time: the window loads it, and it runs
                await clock.advance(30)
            (record,) = await runs.wait_for(1, task_id=task.id)
            (delivery,) = await eventually(settled(rt, record.run_id))
            await clock.advance(60)  # a retry's backoff (10 s): nothing more
            await rt.wait_idle()

            assert [r.run_id for r in runs.records] == [record.run_id]
            assert (record.outcome, record.attempt) == ("error", LAST_ATTEMPT)
            assert delivery.status == "delivered"
            (request_,) = receiver.requests
            assert WebhookPayload.model_validate_json(request_.body).run == record
            assert await rt.store.pending_retries(task.id) == []
            stored = await rt.get_task(task.id)
            assert (stored.last_outcome, stored.failure_streak) == ("error", 1)
            assert await rt.history(task.id) == [record]
    finally:
        receiver.close()


_TIMES_BY_HAND = {
    "sqlite": {"scheduled_for": "'no time'", "started_at": "'9999-02-30 09:00:00.000000'"},
    "postgresql": {"scheduled_for": "'-infinity'", "started_at": "'infinity'"},
}
"""Per backend, times written by hand that no time Python holds can be read from."""


@pytest.mark.parametrize("where", ["memory", "file", "postgres"])
async def test_a_running_row_whose_time_cannot_be_read_ends_once_without_a_retry(
    clock: FakeClock, runs: RunWaiter, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    # A dead holder's running rows, one with its occurrence written by hand, one with
    # its start. Such a time reads as the earliest (or latest) one: the sweep retried
    # the first as a fire of year 1 (or 9999), and made the second's start its task's
    # last run, so that the task read quarantined and fired no more. Now each ends
    # once, interrupted, saying which time, not retried; the task goes on.
    database = _database(where, tmp_path, request)
    hand = ["r-scheduled_for", "r-started_at"]
    async with _dead_holders_rows(database, clock, runs, hand) as (rt, task, receiver):
        for column, raw in _TIMES_BY_HAND[rt.store.dialect].items():
            await _by_hand(rt, f"UPDATE lgs_runs SET {column} = {raw} WHERE run_id = 'r-{column}'")

        for _ in range(2):  # past their leases: the upkeep (every 10 s) sweeps them
            await clock.advance(30)
        records = {r.run_id: r for r in await runs.wait_for(2, task_id=task.id)}
        for run_id in records:
            (delivery,) = await eventually(settled(rt, run_id))
            assert delivery.status == "delivered"
        await clock.advance(30)  # another sweep, and a retry's backoff: nothing more
        await rt.wait_idle()

        assert sorted(r.run_id for r in runs.records) == ["r-scheduled_for", "r-started_at"]
        for column in ("scheduled_for", "started_at"):
            record = records[f"r-{column}"]
            assert (record.outcome, record.attempt) == ("interrupted", 1)
            assert f"its stored {column} could not be read: not retried" in (record.error or "")
        told = [WebhookPayload.model_validate_json(r.body).run for r in receiver.requests]
        assert sorted(told, key=lambda r: r.run_id) == sorted(
            records.values(), key=lambda r: r.run_id
        )
        assert await rt.store.pending_retries(task.id) == []
        stored = await rt.get_task(task.id)
        assert (stored.state, stored.problem, stored.last_outcome) == (
            "active",
            None,
            "interrupted",
        )
        assert stored.last_run_at == START  # the start that could be read

        assert await step(rt, clock, 3600) == 1  # its next fire runs as any
        assert runs.records[-1].outcome == "success"


async def test_postgresql_times_python_cannot_hold_stop_nothing(
    clock: FakeClock, runs: RunWaiter, postgres_url: str
) -> None:
    # infinity, -infinity and years BC, written by hand: the tasks holding them are read
    # quarantined (the one due is recorded error when claimed), instead of failing
    # start-up and every claim.
    async with runtime(None, postgres_url, clock, runs) as admin:
        tasks = {
            name: await admin.create_task(name=name, schedule=Interval(minutes=1), trigger="x")
            for name in ("never", "long ago", "good")
        }
        run = {"run_id": "r-lost", "task_id": tasks["good"].id, "attempt": 1,
               "trigger": "schedule", "scheduled_for": clock.now() - timedelta(minutes=5),
               "started_at": clock.now(), "holder": "elsewhere:1:dead"}  # fmt: skip
        await admin.store.transaction(lambda conn: conn.execute(insert(runs_table), run))
        for statement in (
            f"UPDATE lgs_tasks SET next_run_at = 'infinity' WHERE id = '{tasks['never'].id}'",
            f"UPDATE lgs_tasks SET next_run_at = '0100-01-01 BC' WHERE id = "
            f"'{tasks['long ago'].id}'",
            "UPDATE lgs_runs SET lease_expires_at = '-infinity' WHERE run_id = 'r-lost'",
        ):
            await admin.store.transaction(lambda conn, sql=statement: conn.execute(text(sql)))
    async with runtime(build_graph(ScriptedChatModel()), postgres_url, clock, runs) as rt:
        listed = {t.name: t for t in await rt.list_tasks()}
        for name in ("never", "long ago"):
            assert listed[name].state == "quarantined"
            assert listed[name].problem == f"next_run_at: {UNREADABLE_TIME} cannot be read"
        assert (await rt.get_run("r-lost")).outcome == "interrupted"
        await step(rt, clock, 60)
        outcomes = {r.task_id: r.outcome for r in runs.records}
        assert outcomes == {tasks["good"].id: "success", tasks["long ago"].id: "error"}


async def test_a_corrupt_row_can_be_listed_and_deleted_through_the_tools(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str
) -> None:
    async with runtime(build_graph(ScriptedChatModel()), sqlite_url, clock, runs) as rt:
        bad = await rt.create_task(
            name="bad", schedule=Interval(minutes=1), trigger="x", owner="alice"
        )
        await _corrupt(rt, bad.id, "schedule")
        tools = Tools(rt)
        listed = await tools("list_tasks", ALICE, scope="all")
        assert listed.status == "success" and "unreadable schedule" in listed.text
        history = await tools("task_history", ALICE, task_id=bad.id)
        assert history.status == "success"
        gone = await tools("delete_task", ALICE, task_id=bad.id)
        assert gone.status == "success" and "Deleted task 'bad'" in gone.text
        assert await rt.list_tasks() == []


def test_a_corrupt_row_can_be_listed_and_deleted_through_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    import asyncio

    db = f"sqlite:///{tmp_path / 'cli.db'}"

    async def make() -> str:
        async with SchedulerRuntime(None, database=db) as rt:
            bad = await rt.create_task(name="bad", schedule=Interval(minutes=1), trigger="x")
            await _corrupt(rt, bad.id, "options")
            return bad.id

    bad_id = asyncio.run(make())
    assert main(["tasks", "list", "--database", db]) == 0
    assert "bad" in capsys.readouterr().out
    assert main(["tasks", "show", bad_id, "--database", db]) == 0
    assert "options" in capsys.readouterr().out
    assert main(["tasks", "delete", bad_id, "--database", db]) == 0
    assert f"deleted task {bad_id}" in capsys.readouterr().out
    assert main(["tasks", "list", "--database", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


async def _by_hand(rt: SchedulerRuntime, sql: str) -> None:
    await rt.store.transaction(lambda conn: conn.exec_driver_sql(sql))


_UNREADABLE_BY_HAND = {
    "sqlite": [
        ("next_run_at", "12345"),
        ("created_at", "'2025-02-30 09:00:00.000000'"),
        ("updated_at", "'2025-03-01 25:00:00.000000'"),  # a day, but no time of day
        ("next_run_at", "'2025-03-01 09:00:00 or so'"),
        ("last_run_at", "1.5"),
        ("name", "x'00ff'"),
        ("thread_id", "x'00ff'"),
        ("version", "'v'"),
        ("max_runs", "'v'"),
        ("failure_streak", "x'00'"),
    ],
    "postgresql": [
        ("next_run_at", "'infinity'"),
        ("last_run_at", "'0100-01-01 BC'"),
        ("created_at", "'-infinity'"),
        ("updated_at", "'10000-01-01 00:00:00+00'"),
    ],
}
"""Per backend, values written by hand that a task row cannot be read with."""


async def test_a_state_filter_lists_each_row_as_it_reads(
    clock: FakeClock, runs: RunWaiter, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A row written by hand with a state or another value no task can hold reads as
    # quarantined; the state filter used the stored state, so such rows were listed (and
    # counted) as active, and never as quarantined until claimed.
    async with runtime(None, database, clock, runs) as rt:
        shared = [
            ("state", "'bogus'"),
            ("state", "'quarantined'"),
            ("thread_mode", "'bogus'"),
            ("last_outcome", "'bogus'"),
            ("next_run_at", "NULL"),  # an active task without a due time
        ]
        corrupt = {}
        for n, (column, raw) in enumerate(shared + _UNREADABLE_BY_HAND[rt.store.dialect]):
            task = await rt.create_task(
                name=f"bad {n}", schedule=Interval(minutes=1), trigger="x", owner="alice"
            )
            await _by_hand(rt, f"UPDATE lgs_tasks SET {column} = {raw} WHERE id = '{task.id}'")
            corrupt[task.id] = column
        good = await rt.create_task(
            name="good", schedule=Interval(minutes=1), trigger="x", owner="alice"
        )
        paused = await rt.create_task(
            name="paused", schedule=Interval(minutes=1), trigger="x", owner="alice"
        )
        await rt.pause_task(paused.id)
        odd = await rt.create_task(  # an unreadable schedule: active until it falls due
            name="odd", schedule=Interval(minutes=1), trigger="x", owner="alice"
        )
        await _corrupt(rt, odd.id, "schedule")
        everything = await rt.list_tasks(limit=100)
        reading = {task.id: task.state for task in everything}
        assert {i for i, state in reading.items() if state == "quarantined"} == set(corrupt)
        assert (reading[good.id], reading[paused.id], reading[odd.id]) == (
            "active", "paused", "active",
        )  # fmt: skip
        for state in get_args(TaskState):
            expected = [task.id for task in everything if task.state == state]
            listed = await rt.list_tasks(state=state)
            assert [task.id for task in listed] == expected, state
            assert await rt.store.count_tasks(states=[state]) == len(expected)
            pages = [await rt.list_tasks(state=state, limit=2, offset=at) for at in (0, 2, 4)]
            assert [task.id for page in pages for task in page] == expected[:6], state
        # The tool's filter and its count of tasks elsewhere agree as well.
        answer = await Tools(rt)("list_tasks", ALICE, state="active")
        assert "No active scheduled tasks in this conversation. 2 more task(s)" in answer.text
        answer = await Tools(rt)("list_tasks", ALICE, state="active", scope="all")
        # No task named "bad …" (a random hex id may hold the letters "bad").
        assert answer.text.startswith("2 task(s):") and "name: bad" not in answer.text
        # The model may ask for the quarantined ones too (the filter took three states).
        answer = await Tools(rt)("list_tasks", ALICE, state="quarantined", scope="all")
        assert answer.text.startswith(f"{len(corrupt)} task(s):"), answer.text
        assert answer.text.count("state: quarantined") == len(corrupt)
    assert "reads as" not in caplog.text  # the database told every row as it reads


async def test_an_active_row_without_a_due_time_reads_as_quarantined_until_resumed(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # Written by hand: an active task whose next_run_at is NULL is never found due. It
    # read as a healthy active task (no problem), listed and counted as one, and never
    # fired, with nothing to say why.
    async with runtime(None, database, clock, runs) as admin:
        bad, good = await _bad_and_good(admin)
        await _by_hand(admin, f"UPDATE lgs_tasks SET next_run_at = NULL WHERE id = '{bad.id}'")
    async with runtime(build_graph(ScriptedChatModel()), database, clock, runs) as rt:
        read = await rt.get_task(bad.id)
        assert (read.state, read.problem) == ("quarantined", NO_NEXT_RUN)
        assert [t.id for t in await rt.list_tasks(state="quarantined")] == [bad.id]
        assert [t.id for t in await rt.list_tasks(state="active")] == [good.id]
        assert await rt.store.count_tasks(owner="alice", states=["active"]) == 1
        answer = await Tools(rt)("list_tasks", ALICE, state="quarantined", scope="all")
        assert f"problem: its stored row cannot be read ({NO_NEXT_RUN})" in answer.text
        await step(rt, clock, 60)
        assert [r.task_id for r in runs.records] == [good.id]
        resumed = await rt.resume_task(bad.id)  # what the problem says to do
        assert (resumed.state, resumed.problem) == ("active", None)
        assert resumed.next_run_at == clock.now() + timedelta(minutes=1)
        await step(rt, clock, 60)
        assert sorted(r.task_id for r in runs.records[1:]) == sorted([bad.id, good.id])
        assert {r.outcome for r in runs.records} == {"success"}


async def test_a_row_that_reads_as_quarantined_takes_no_room_in_the_quota(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # The quota counted the rows whose stored state is 'active', rows written by hand
    # that read as quarantined among them, while listings and counts leave those out: an
    # owner whose only "active" tasks were such rows could create none.
    async with runtime(None, database, clock, runs) as rt:
        # A value no task can hold on any backend, and one this backend cannot read.
        for column, raw in [("thread_mode", "'bogus'"), _UNREADABLE_BY_HAND[rt.store.dialect][0]]:
            bad = await rt.create_task(
                name=column, schedule=Interval(minutes=1), trigger="x", owner="alice"
            )
            await _by_hand(rt, f"UPDATE lgs_tasks SET {column} = {raw} WHERE id = '{bad.id}'")
        paused = await rt.create_task(
            name="paused", schedule=Interval(minutes=1), trigger="x", owner="alice"
        )
        await rt.pause_task(paused.id)
        good = await rt.create_task(  # the insert's quota
            name="good", schedule=Interval(minutes=1), trigger="x", owner="alice", max_active=1
        )
        with pytest.raises(QuotaExceeded):
            await rt.create_task(
                name="more", schedule=Interval(minutes=1), trigger="x", owner="alice", max_active=1
            )
        with pytest.raises(QuotaExceeded):
            await rt.resume_task(paused.id, max_active=1)
        await rt.resume_task(paused.id, max_active=2)  # the update's quota
        listed = await rt.list_tasks(owner="alice", state="active")
        assert sorted(task.id for task in listed) == sorted([good.id, paused.id])
        assert await rt.store.count_tasks(owner="alice", states=["active"]) == 2
        assert await rt.store.count_tasks(owner="alice", states=["quarantined"]) == 2


async def test_a_row_the_database_tells_apart_from_its_reading_is_left_out(
    clock: FakeClock, runs: RunWaiter, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A name kept as a blob of UTF-8 reads as text, though SQL tells it unreadable: the
    # quarantined page leaves the task out (logged) instead of listing it active.
    async with runtime(None, sqlite_url, clock, runs) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="x")
        await _by_hand(rt, f"UPDATE lgs_tasks SET name = x'6869' WHERE id = '{task.id}'")
        assert [(t.name, t.state) for t in await rt.list_tasks()] == [("hi", "active")]
        assert await rt.list_tasks(state="quarantined") == []
    assert f"task {task.id}: its row reads as active, not as the quarantined" in caplog.text


def test_the_cli_lists_rows_that_read_as_quarantined(
    capsys: pytest.CaptureFixture[str], database: str
) -> None:
    # A hand-written row with a state no task has, or a due time out of range, never falls
    # due to be quarantined: `tasks list --state quarantined` missed it, and `--state
    # active` listed the second, shown quarantined (and the third, an active row without
    # a due time, shown active).
    async def make() -> tuple[str, str, str, str]:
        async with SchedulerRuntime(None, database=database) as rt:
            ids = [
                (await rt.create_task(name=name, schedule=Interval(minutes=1), trigger="x")).id
                for name in ("good", "lost", "never", "idle")
            ]
            never = "'infinity'" if rt.store.dialect == "postgresql" else "12345"
            await _by_hand(rt, f"UPDATE lgs_tasks SET state = 'bogus' WHERE id = '{ids[1]}'")
            await _by_hand(rt, f"UPDATE lgs_tasks SET next_run_at = {never} WHERE id = '{ids[2]}'")
            await _by_hand(rt, f"UPDATE lgs_tasks SET next_run_at = NULL WHERE id = '{ids[3]}'")
            return ids[0], ids[1], ids[2], ids[3]

    good, lost, never, idle = asyncio.run(make())
    listing = ["tasks", "list", "--database", database, "--json", "--state"]
    assert main([*listing, "quarantined"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(t["id"] for t in listed) == sorted([lost, never, idle])
    assert {t["state"] for t in listed} == {"quarantined"}
    assert [t["problem"] for t in listed if t["id"] == idle] == [NO_NEXT_RUN]
    assert main([*listing, "active"]) == 0
    assert [t["id"] for t in json.loads(capsys.readouterr().out)] == [good]


async def test_manual_runs_at_the_same_instant_are_each_recorded(
    clock: FakeClock, runs: RunWaiter
) -> None:
    async with runtime(build_graph(ScriptedChatModel()), "sqlite://", clock, runs) as rt:
        task = await rt.create_task(name="m", schedule=Interval(hours=1), trigger="go")
        records = [await rt.run_now(task.id) for _ in range(5)]  # the clock stands still
        assert len({r.run_id for r in records}) == 5
        assert [r.outcome for r in records] == ["success"] * 5
        assert len(await rt.history(task.id)) == 5 == len(runs.records)


async def test_trimming_keeps_the_newest_records_even_when_start_times_tie(
    clock: FakeClock, runs: RunWaiter
) -> None:
    async with runtime(
        build_graph(ScriptedChatModel()), "sqlite://", clock, runs, history_limit=1
    ) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="go")
        # Three occurrences due at once: one missed record and one run, started together.
        await step(rt, clock, 180)
        assert sorted(r.outcome for r in await rt.history(task.id)) == ["missed", "success"]
        assert await rt.store.trim_history([task.id], keep=1) == 1
        (kept,) = await rt.history(task.id)
        assert kept.outcome in ("missed", "success")


async def test_without_a_history_limit_finished_task_ids_are_not_kept_forever(
    clock: FakeClock, runs: RunWaiter
) -> None:
    # The ids of tasks that finished a run wait for the upkeep's trim; with no limit
    # there is nothing to trim, and they must not pile up for the process's life.
    async with runtime(
        build_graph(ScriptedChatModel()), "sqlite://", clock, runs, history_limit=None
    ) as rt:
        for n in range(3):
            await rt.create_task(name=f"t{n}", schedule=Interval(minutes=1), trigger="go")
        assert await step(rt, clock, 60) == 3
        bridge = rt._bridge
        assert bridge is not None and len(bridge.finished_tasks) == 3
        await step(rt, clock, rt.lease_secs)  # an upkeep round comes by
        assert bridge.finished_tasks == set()
        assert await step(rt, clock, 60 - rt.lease_secs) == 3
        assert len(await rt.store.recent_runs(limit=50)) == 6  # no limit: every record kept


async def test_a_row_changed_behind_the_runtimes_back_is_read_again(
    clock: FakeClock, runs: RunWaiter, database: str
) -> None:
    # The runtime keeps the tasks it read and wrote beside their rows; a row that differs
    # from what it wrote (here: garbage written by hand) is read again, not trusted.
    graph = build_graph(ScriptedChatModel())
    async with runtime(graph, database, clock, runs) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="x")
        assert await step(rt, clock, 60) == 1
        await _corrupt(rt, task.id, "options")
        assert await step(rt, clock, 60) == 1
        assert [r.outcome for r in runs.records] == ["success", "error"]
        assert "options" in (runs.records[-1].error or "")
        assert (await rt.get_task(task.id)).state == "quarantined"


async def test_a_task_changed_by_its_caller_after_create_is_not_what_fires(
    clock: FakeClock, runs: RunWaiter
) -> None:
    # The runtime keeps the tasks it wrote; what a caller does to the object it got back
    # must not reach the stored task's turns.
    seen: list[str] = []

    def reply(messages: list[Any]) -> str:
        seen.append(str(messages[-1].content))
        return "ok"

    graph = build_graph(ScriptedChatModel(steps=[reply], cycle=True))
    async with runtime(graph, "sqlite://", clock, runs) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="stored")
        task.payload["prompt"] = "changed by the caller"
        assert await step(rt, clock, 60) == 1
        assert seen == ["stored"]
        fetched = await rt.get_task(task.id)
        fetched.payload["prompt"] = "changed again"
        assert await step(rt, clock, 60) == 1
        assert seen == ["stored", "stored"]


async def test_each_fire_talks_with_the_prompt_its_task_has_now(
    clock: FakeClock, runs: RunWaiter, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task's trigger is parsed once per stored payload, not at every fire: a prompt
    # changed through the API, or rewritten by another process, is the next turn's.
    seen: list[str] = []

    def reply(messages: list[Any]) -> str:
        seen.append(str(messages[-1].content))
        return "ok"

    parsed: list[Any] = []
    parse = ConversationTrigger.from_task_payload.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ConversationTrigger], payload: Any) -> ConversationTrigger:
        parsed.append(payload)
        trigger: ConversationTrigger = parse(cls, payload)
        return trigger

    monkeypatch.setattr(ConversationTrigger, "from_task_payload", classmethod(counting))
    graph = build_graph(ScriptedChatModel(steps=[reply], cycle=True))
    async with runtime(graph, database, clock, runs) as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="first")
        parsed.clear()
        assert await step(rt, clock, 60) == 1
        assert await step(rt, clock, 60) == 1
        assert seen == ["first", "first"]
        assert len(parsed) == 1  # the unchanged row's payload, parsed at the first fire
        await rt.update_task(task.id, trigger="second")
        assert await step(rt, clock, 60) == 1
        # Another process rewrites the payload (through the table, as it would).
        rewrite = (
            update(tasks_table)
            .where(tasks_table.c.id == task.id)
            .values(payload={"prompt": "third"}, version=tasks_table.c.version + 1)
        )
        await rt.store.transaction(lambda conn: conn.execute(rewrite))
        assert await step(rt, clock, 60) == 1
        assert await step(rt, clock, 60) == 1
        # A task that fires no more does not keep its parsed trigger.
        at = clock.now() + timedelta(seconds=30)
        once = await rt.create_task(name="once", schedule=Once(at=at), trigger="once")
        assert await step(rt, clock, 60) == 2
        assert once.id not in rt._bridge._triggers and task.id in rt._bridge._triggers
    assert seen[:5] == ["first", "first", "second", "third", "third"]
    assert sorted(seen[5:]) == ["once", "third"]
    assert [r.outcome for r in runs.records] == ["success"] * 7


# -- fires claimed ahead of their instant ----------------------------------------------


async def _claimed_ahead(
    clock: FakeClock, runs: RunWaiter, model: ScriptedChatModel
) -> tuple[SchedulerRuntime, Any]:
    """A runtime whose timer has claimed a fire due 20 ms after the (standing) clock:
    the timer wakes the bridge ahead of the instant, and the turn waits for it."""
    rt = runtime(build_graph(model), "sqlite://", clock, runs)
    await rt.start()
    due = clock.now() + timedelta(milliseconds=20)
    task = await rt.create_task(
        name="ahead", schedule=Interval(seconds=60, start=due), trigger="go"
    )
    # The timer's job runs on the loop, at once.
    (claimed,) = await until(lambda: rt.history(task.id), "the fire claimed")
    assert claimed.running and claimed.scheduled_for == due
    return rt, task


async def test_a_fire_claimed_ahead_begins_its_turn_at_its_instant(
    clock: FakeClock, runs: RunWaiter
) -> None:
    model = ScriptedChatModel(steps=["on time"], cycle=True)
    rt, task = await _claimed_ahead(clock, runs, model)
    try:
        await asyncio.sleep(0.05)
        assert model.calls == 0  # claimed, but its instant has not come
        await clock.advance(0.02)
        await rt.wait_idle()
        (record,) = runs.records
        assert record.outcome == "success" and model.calls == 1
        assert record.started_at == record.scheduled_for and record.lateness == timedelta(0)
    finally:
        await rt.stop()


@pytest.mark.parametrize("change", ["pause", "delete"])
async def test_a_fire_claimed_ahead_does_not_begin_once_its_task_stops(
    clock: FakeClock, runs: RunWaiter, change: str
) -> None:
    model = ScriptedChatModel(steps=["should not run"], cycle=True)
    rt, task = await _claimed_ahead(clock, runs, model)
    try:
        if change == "pause":
            await rt.pause_task(task.id)
        else:
            await rt.delete_task(task.id)
        await clock.advance(0.02)
        await rt.wait_idle()
        assert model.calls == 0
        if change == "pause":
            (record,) = runs.records
            assert record.outcome == "skipped" and "paused" in (record.error or "")
            assert record.started_at == record.scheduled_for
        else:
            assert runs.records == []  # deleted with its runs; nothing began
    finally:
        await rt.stop()


async def _a_fire_that_cannot_run_claimed_ahead(
    rt: SchedulerRuntime, clock: FakeClock
) -> tuple[Any, datetime]:
    """A task whose stored payload is no trigger, its fire claimed 20 ms ahead of its
    instant (as its timer does, ``CLAIM_AHEAD`` before it)."""
    due = clock.now() + timedelta(hours=1)
    task = await rt.create_task(name="bad", schedule=Once(at=due), trigger="go")
    statement = text("UPDATE lgs_tasks SET payload = :p WHERE id = :i")
    await rt.store.transaction(
        lambda conn: conn.execute(statement, {"p": '{"not": "a trigger"}', "i": task.id})
    )
    await clock.advance(3600 - 0.02)
    assert rt._bridge is not None
    rt._bridge.wake(due)
    return task, due


async def test_a_fire_claimed_ahead_that_cannot_run_is_recorded_as_at_its_instant(
    clock: FakeClock, runs: RunWaiter
) -> None:
    # A payload that is no trigger is found by the claim, which records the fire error
    # and quarantines the task (as for an unreadable schedule): no turn is built, and
    # the record is stamped with the instant its claim was made for.
    model = ScriptedChatModel(steps=["should not run"], cycle=True)
    async with runtime(build_graph(model), "sqlite://", clock, runs) as rt:
        task, due = await _a_fire_that_cannot_run_claimed_ahead(rt, clock)
        (record,) = await runs.wait_for(1, timeout=10)
        assert record.outcome == "error" and "prompt" in (record.error or "")
        assert record.started_at == due == record.finished_at
        assert (await rt.get_task(task.id)).state == "quarantined"
        await clock.advance(0.02)
        await rt.wait_idle()
        assert len(runs.records) == 1 and model.calls == 0


async def test_a_fire_claimed_ahead_does_not_begin_once_the_runtime_stops(
    clock: FakeClock, runs: RunWaiter
) -> None:
    model = ScriptedChatModel(steps=["should not run"], cycle=True)
    rt, task = await _claimed_ahead(clock, runs, model)
    stopping = asyncio.ensure_future(rt.stop())
    await asyncio.sleep(0.05)  # stop waits for the turn, which waits for its instant
    assert not stopping.done()
    await clock.advance(0.02)
    await asyncio.wait_for(stopping, 10)
    assert model.calls == 0
    (record,) = runs.records
    assert record.outcome == "interrupted" and "not started" in (record.error or "")
    assert record.started_at == record.scheduled_for


class _BrokenShortWaits(FakeClock):
    """A fake clock whose short waits (a claimed fire's wait for its instant) fail."""

    async def sleep(self, secs: float) -> None:
        if 0 < secs < 0.5:
            raise RuntimeError("the clock broke")
        await super().sleep(secs)


@pytest.mark.parametrize("runnable", [True, False])
async def test_a_fire_whose_wait_for_its_instant_fails_is_recorded_not_stuck(
    runs: RunWaiter, runnable: bool
) -> None:
    # Runnable: the turn waits for its instant, and that wait failing must end in a
    # record. Not runnable (a payload that is no trigger): its claim records it and
    # quarantines the task, with no wait to fail.
    clock = _BrokenShortWaits(START)
    model = ScriptedChatModel(steps=["should not run"], cycle=True)
    async with runtime(build_graph(model), "sqlite://", clock, runs) as rt:
        if runnable:
            due = clock.now() + timedelta(milliseconds=20)  # claimed ahead, at once
            schedule = Interval(seconds=60, start=due)
            task = await rt.create_task(name="ahead", schedule=schedule, trigger="go")
        else:
            task, due = await _a_fire_that_cannot_run_claimed_ahead(rt, clock)
        (record,) = await runs.wait_for(1, timeout=10)
        assert record.outcome == "error"
        if runnable:
            assert "the clock broke" in (record.error or "")
            assert "could not wait" in (record.error or "")
        else:
            assert "the stored task cannot be read: payload:" in (record.error or "")
        assert model.calls == 0
        (stored,) = await rt.history(task.id)
        assert stored.outcome == "error" and not stored.running  # its lease let go


# -- the system clock ends its waits on time, never early ------------------------------


@pytest.mark.parametrize("secs", [0.0, 0.0002, 0.0009, 0.001, 0.0013, 0.0047, 0.02])
async def test_the_system_clock_never_wakes_before_its_deadline(secs: float) -> None:
    clock = SystemClock()
    loop = asyncio.get_running_loop()
    others = 0

    async def other() -> None:  # runs while the clock waits (all but its last fraction)
        nonlocal others
        while True:
            others += 1
            await asyncio.sleep(0)

    neighbour = asyncio.ensure_future(other())
    try:
        for _ in range(20):
            deadline = loop.time() + secs
            await clock.sleep(secs)
            assert loop.time() >= deadline
    finally:
        neighbour.cancel()
    assert others >= 20  # the loop went on with other tasks during every wait


def _short_sleep_in_a_new_loop() -> None:
    asyncio.run(SystemClock().sleep(0.0005))


async def test_the_system_clock_still_wakes_in_a_forked_child() -> None:
    await SystemClock().sleep(0.0005)  # the clock's thread runs in this process
    child = multiprocessing.get_context("fork").Process(target=_short_sleep_in_a_new_loop)
    child.start()
    await asyncio.get_running_loop().run_in_executor(None, child.join, 30)
    if child.exitcode is None:  # its wait never ended: no thread of its own
        child.kill()
    assert child.exitcode == 0


async def test_a_fire_on_the_system_clock_never_begins_before_its_instant(
    runs: RunWaiter,
) -> None:
    begun: list[tuple[datetime, datetime]] = []

    async def answer(state: SchedulerState) -> dict[str, Any]:
        source = state["task_source"]
        assert source is not None
        begun.append((datetime.fromisoformat(source["scheduled_for"]), datetime.now(timezone.utc)))
        return {"messages": [AIMessage(content="ok")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("answer", answer)
    builder.add_edge(START_NODE, "answer")
    async with SchedulerRuntime(builder, database="sqlite://", on_run=runs) as rt:
        first = datetime.now(timezone.utc) + timedelta(seconds=0.3)
        for i in range(12):  # instants a few ms apart, each claimed ahead of it
            await rt.create_task(
                name=f"soon {i}",
                schedule=Once(at=first + timedelta(milliseconds=7 * i + 0.3 * i)),
                trigger="go",
            )
        records = await runs.wait_for(12)
    assert {r.outcome for r in records} == {"success"} and len(begun) == 12
    for scheduled, started in begun:
        assert started >= scheduled, f"began {scheduled - started} before its instant"
    for record in records:
        assert record.started_at is not None and record.started_at >= record.scheduled_for


async def test_fires_on_a_sqlite_file_make_no_blocking_call_on_the_loop(
    runs: RunWaiter, tmp_path: Path
) -> None:
    # What `langgraph dev` enforces (blockbuster, a BlockingError for a blocking call on
    # the event loop), for fires claimed ahead and waiting for their instants.
    blockbuster = pytest.importorskip("blockbuster", reason="comes with langgraph-cli[inmem]")
    model = ScriptedChatModel(steps=["ok"], cycle=True)
    database = f"sqlite:///{tmp_path / 'blocking.db'}"
    async with SchedulerRuntime(build_graph(model), database=database, on_run=runs) as rt:
        with blockbuster.blockbuster_ctx():
            # Far enough ahead that a loaded machine still creates all five in time.
            first = datetime.now(timezone.utc) + timedelta(seconds=2)
            for i in range(5):
                at = first + timedelta(milliseconds=30 * i)
                await rt.create_task(name=f"soon {i}", schedule=Once(at=at), trigger="go")
            records = await runs.wait_for(5)
    assert [r.outcome for r in records] == ["success"] * 5, [r.error for r in records]
    assert model.calls == 5


_PAST_THE_CALENDAR = (
    r"^schedule every \d hours \(.+\) has no fire time after 9999-12-31 22:00 UTC: one "
    r"interval later is past the end of the calendar \(year 9999\); use a shorter interval$"
)


async def test_an_interval_at_the_end_of_the_calendar_completes_or_is_refused_typed(
    runs: RunWaiter,
) -> None:
    """Near year 9999 an interval whose first fire is past the calendar is refused with
    InvalidSchedule (creating one raised OverflowError), and one whose last fire fits
    runs it and completes, as a schedule that ends does."""
    clock = FakeClock(datetime(9999, 12, 31, 22, 0, tzinfo=timezone.utc))
    async with runtime(
        build_graph(ScriptedChatModel(steps=["ok"])), "sqlite://", clock, runs
    ) as rt:
        for schedule in (Interval(hours=3), Interval(hours=2, tz="Pacific/Kiritimati")):
            with pytest.raises(InvalidSchedule, match=_PAST_THE_CALENDAR):
                await rt.create_task(name="late", schedule=schedule, trigger="go")
        assert await rt.list_tasks() == []
        task = await rt.create_task(name="last", schedule=Interval(hours=1), trigger="go")
        assert task.upcoming_runs(3) == [datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)]
        assert await step(rt, clock, 3600) == 1
        done = await rt.get_task(task.id)
        assert (done.state, done.next_run_at, done.run_count) == ("completed", None, 1)
