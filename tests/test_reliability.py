"""Fault injection: crashes, downtime, duplicate jobs, retries, overload, store outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from langgraph_scheduler import (
    Interval,
    Once,
    SchedulerRuntime,
    TaskOptions,
)
from langgraph_scheduler.models import Task
from langgraph_scheduler.scripted import HANG, ScriptedChatModel
from langgraph_scheduler.testing import FakeClock

from .helpers import (
    FAKE_START,
    HeldGraph,
    RunWaiter,
    build_graph,
    child_process,
    record_count,
    stalling_graph,
    step,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(FAKE_START)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _eventually(check: Any, timeout: float = 30.0) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_sigkill_mid_turn_is_recorded_interrupted_and_schedule_goes_on(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    child = child_process("crash_child", sqlite_url)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
        assert line.startswith("RUNNING"), (line, child.stderr.read() if child.poll() else "")  # type: ignore[union-attr]
        _, task_id, next_run = line.split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    async with runtime_factory(make_graph("back"), database=sqlite_url) as rt:
        (record,) = await rt.history(task_id)
        # The dead process's claim is recorded at start (its pid is gone on this host),
        # without waiting for its 60 s lease.
        assert record.outcome == "interrupted" and record.trigger == "schedule"
        assert "stopped before it finished" in (record.error or "")
        task = await rt.get_task(task_id)
        assert task.state == "active" and task.run_count == 1
        assert task.next_run_at == datetime.fromisoformat(next_run)
        assert task.next_run_at - record.scheduled_for == timedelta(hours=1)


async def test_a_graph_calling_sys_exit_ends_the_process_and_its_fire_is_retried_after(
    sqlite_url: str, make_graph: Any, runtime_factory: Any
) -> None:
    """As the README's turn outcomes say: asyncio lets a node's ``SystemExit`` out of the
    event loop, so ``asyncio.run`` ends (the process with its code), cancelling the turns
    in flight as a stop does: that fire is recorded ``interrupted`` and its retry, due
    after its backoff, runs on the next runtime on the database."""
    child = child_process("crash_child", sqlite_url, "exit")
    try:
        code = await asyncio.to_thread(child.wait, 60)
        err = child.stderr.read()  # type: ignore[union-attr]
    finally:
        if child.poll() is None:
            child.kill()
    assert code == 3, err
    async with runtime_factory(make_graph("back"), database=sqlite_url) as rt:
        (task,) = await rt.list_tasks()
        # The child's own ending records the cut turn; were it killed first, this
        # runtime's start records it (either way it is heard once, then the retry).

        async def retried() -> list[Any]:
            found = await rt.history(task.id)
            return found if any(r.outcome == "success" for r in found) else []

        records = sorted(await _eventually(retried, timeout=30), key=lambda r: r.attempt)
    assert [(r.attempt, r.outcome) for r in records] == [(1, "interrupted"), (2, "success")]
    assert "stopped before" in (records[0].error or "")


@pytest.mark.parametrize("policy", ["catch_up", "skip"])
async def test_downtime_catches_up_once_or_skips_per_policy(
    policy: str,
    sqlite_url: str,
    make_graph: Any,
    runtime_factory: Any,
    runs: RunWaiter,
    clock: FakeClock,
) -> None:
    options = TaskOptions(misfire=policy)  # type: ignore[arg-type]
    graph = make_graph("caught up")
    async with runtime_factory(graph, database=sqlite_url, clock=clock) as rt:
        start = clock.now() + timedelta(minutes=1)
        task = await rt.create_task(
            name="minutely",
            schedule=Interval(minutes=1, start=start),
            trigger="tick",
            thread_id="t",
            options=options,
        )
    await clock.advance(3.5 * 60)  # down across three fire times
    async with runtime_factory(graph, database=sqlite_url, clock=clock) as rt2:
        restarted = clock.now()
        # The start looks for what fell due while down; run_due makes sure it has looked.
        await rt2.run_due()
        await rt2.wait_idle()
        history = await rt2.history(task.id, limit=50)
        due = [
            t
            for t in task.schedule.next_fire_times(10, after=start - timedelta(seconds=1))
            if t <= restarted
        ]
        assert due == [start + timedelta(minutes=m) for m in range(3)]
        missed = [r for r in history if r.outcome == "missed"]
        ran = [r for r in history if r.outcome == "success"]
        assert len(history) == len(missed) + len(ran) == await record_count(rt2)
        if policy == "catch_up":
            assert [r.scheduled_for for r in ran] == [due[-1]]
            assert len(missed) == 1 and f"{len(due) - 1} occurrence(s) missed" in missed[0].summary
        else:
            assert ran == []
            assert len(missed) == 1 and f"{len(due)} occurrence(s) missed" in missed[0].summary
        assert missed[0].scheduled_for == due[0]
        assert sorted(r.run_id for r in runs.records) == sorted(r.run_id for r in history)
        # Caught up once: the schedule goes on from its next fire time.
        assert (await rt2.get_task(task.id)).next_run_at == due[-1] + timedelta(minutes=1)
        assert await step(rt2, clock, 29) == 0
        assert await step(rt2, clock, 1) == 1
        assert runs.records[-1].scheduled_for == due[-1] + timedelta(minutes=1)


async def test_one_shot_due_while_down_still_runs_once(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter, clock: FakeClock
) -> None:
    graph = make_graph("late but done")
    async with runtime_factory(graph, database=sqlite_url, clock=clock) as rt:
        task = await rt.create_task(
            name="reminder",
            schedule=Once(at=clock.now() + timedelta(seconds=30)),
            trigger="remind",
        )
    await clock.advance(3600)  # down when it falls due, and long after
    async with runtime_factory(graph, database=sqlite_url, clock=clock) as rt2:
        await rt2.run_due()
        await rt2.wait_idle()
        assert await record_count(rt2) == 1
        (record,) = runs.records
        assert record.task_id == task.id
        assert record.outcome == "success" and record.scheduled_for == task.next_run_at
        assert (await rt2.get_task(task.id)).state == "completed"
        assert await step(rt2, clock, 3600) == 0


@pytest.mark.slow
async def test_duplicate_jobs_and_run_now_give_one_run_per_fire(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    rt1 = runtime_factory(make_graph("one"), database=sqlite_url)
    rt2 = runtime_factory(make_graph("two"), database=sqlite_url)
    async with rt1:
        task = await rt1.create_task(
            name="dup",
            schedule=Interval(seconds=1, start=_now() + timedelta(seconds=1)),
            trigger="go",
            max_runs=3,
        )
        async with rt2:  # two runtimes on one database, both waking for the same fires
            manual = await asyncio.gather(rt1.run_now(task.id), rt2.run_now(task.id))
            scheduled = await _eventually(lambda: _scheduled_runs(rt1, task.id, 3), timeout=20)
            await asyncio.sleep(1.5)  # a duplicate would have landed by now
            history = await rt1.history(task.id, limit=100)
    fires = [(r.scheduled_for, r.attempt) for r in history if r.trigger == "schedule"]
    assert len(fires) == len(set(fires))  # one record per fire, whoever claimed it
    # On a loaded machine a 1-s fire may be claimed so late that the occurrence before it
    # is recorded missed (the catch_up policy); missed occurrences do not count as runs.
    ran = [r for r in history if r.outcome != "missed"]
    assert {r.run_id for r in manual} <= {r.run_id for r in ran}
    assert len(ran) == 5 and all(r.outcome == "success" for r in ran)
    assert len(scheduled) == 3
    told = [r for r in runs.records if r.task_id == task.id and r.outcome != "missed"]
    assert len(told) == 5


async def _scheduled_runs(rt: SchedulerRuntime, task_id: str, n: int) -> list[Any] | None:
    """The task's scheduled fires that ran and ended, once there are ``n`` of them."""
    found = [
        r
        for r in await rt.history(task_id, limit=100)
        if r.trigger == "schedule" and r.outcome not in (None, "missed")
    ]
    return found if len(found) >= n else None


async def test_a_success_resets_the_failure_streak(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter, clock: FakeClock
) -> None:
    model = ScriptedChatModel(steps=[RuntimeError("once"), "fine", RuntimeError("again"), "fine"])
    rt = runtime_factory(build_graph(model), database=sqlite_url, clock=clock)
    async with rt:
        task = await rt.create_task(
            name="streak",
            schedule=Interval(minutes=1),
            trigger="go",
            thread_id="s",
            options=TaskOptions(retries=0, pause_after_failures=2),
        )
        streaks = []
        for _ in range(4):
            assert await step(rt, clock, 60) == 1
            streaks.append((await rt.get_task(task.id)).failure_streak)
        assert [r.outcome for r in runs.records] == ["error", "success", "error", "success"]
        assert streaks == [1, 0, 1, 0]
        current = await rt.get_task(task.id)
        assert current.state == "active" and current.failure_streak == 0


@pytest.mark.slow
async def test_flood_beyond_capacity_runs_every_fire_within_the_limit(
    sqlite_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    model = ScriptedChatModel(steps=["ok"], cycle=True, delay_secs=0.05)
    rt = runtime_factory(build_graph(model), database=sqlite_url, max_concurrency=2)
    async with rt:
        # Far enough ahead for 60 creates on a loaded machine: all must be made before it.
        at = _now() + timedelta(seconds=5.0)
        tasks = [
            await rt.create_task(name=f"f{i}", schedule=Once(at=at), trigger="go")
            for i in range(60)
        ]
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, model.in_flight)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        records = await runs.wait_for(60, timeout=60)
        watcher.cancel()
    outcomes = {r.task_id: r.outcome for r in records}
    assert set(outcomes) == {t.id for t in tasks}  # every fire has exactly one record
    assert len(records) == 60
    assert set(outcomes.values()) == {"success"}  # waiting for a slot is not "skipped"
    assert peak == 2
    # The later fires waited in the table: their lateness says how long.
    lateness = sorted(r.lateness for r in records)
    assert lateness[-1] > lateness[0] >= timedelta(0)


async def test_overlapping_run_of_the_same_task_is_skipped_per_policy(
    sqlite_url: str, runtime_factory: Any
) -> None:
    held = HeldGraph()
    rt = runtime_factory(held.graph, database=sqlite_url)
    async with rt:
        task = await rt.create_task(
            name="iso",
            schedule=Interval(hours=1),
            trigger="go",
            options=TaskOptions(on_busy="skip"),
        )
        running = asyncio.ensure_future(rt.run_now(task.id))
        await asyncio.wait_for(held.entered.wait(), 30)  # the first run's turn is under way
        second = await asyncio.wait_for(rt.run_now(task.id), 30)
        held.release.set()
        first = await running
        assert first.outcome == "success"
        assert second.outcome == "skipped"
        assert "previous run was still going" in (second.error or "")
        assert held.prompts == ["go"]


async def test_retention_keeps_the_newest_and_never_touches_running(
    sqlite_url: str, runtime_factory: Any, clock: FakeClock
) -> None:
    model = ScriptedChatModel(steps=["a", "b", "c", "d", "e", HANG])
    # Trimming is the runtime's upkeep (every lease_secs / 3), off the turn's path.
    rt = runtime_factory(
        build_graph(model),
        database=sqlite_url,
        history_limit=3,
        lease_secs=30,
        drain_timeout_secs=0,
        clock=clock,
    )
    async with rt:
        task = await rt.create_task(
            name="r", schedule=Interval(hours=1), trigger="go", thread_id="r"
        )
        for _ in range(5):
            # A second apart: two manual runs of a task at one instant share a fire key
            # (task, scheduled_for, attempt) and the second one's record is not stored.
            await clock.advance(1)
            await rt.run_now(task.id)
        assert len(await rt.history(task.id)) == 5  # not trimmed on the turn's path
        await clock.advance(10)  # past the upkeep's next round (every 10 s)
        kept = await _eventually(lambda: _trimmed(rt, task.id, 3))
        assert [r.summary for r in kept] == ["e", "d", "c"]
        running = await rt.run_now(task.id, wait=False)
        await _eventually(lambda: _in_turn(model))
        purged = await rt.store.purge_history(finished_before=clock.now() + timedelta(days=1))
        assert purged == 3
        (left,) = await rt.history(task.id)
        assert left.run_id == running.run_id and left.running


async def _trimmed(rt: SchedulerRuntime, task_id: str, keep: int) -> list[Any] | None:
    kept = await rt.history(task_id)
    return kept if len(kept) <= keep else None


async def _in_turn(model: ScriptedChatModel) -> bool:
    return model.in_flight == 1


def _server_of(postgres_url: str) -> tuple[str, str]:
    """The test database's name, and a URL of the server's maintenance database."""
    base, _, name = postgres_url.rpartition("/")
    return name, base + "/postgres"


def _terminate_sessions(conn: Any, name: str) -> int:
    """End every session on database ``name`` (but ``conn``'s own); how many there were."""
    row = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchone()
    return int(row[0])


class _AnswerLosingProxy:
    """A TCP proxy in front of PostgreSQL that can lose one answer: once armed with
    markers, the client's message holding them all is passed on, the server's whole
    answer is awaited (up to its ReadyForQuery, so the statement ran and committed), and
    then the client is cut off without it, as a network cut after the commit would.
    Armed ``at_commit``, the answer lost is that of the COMMIT which ends the
    transaction of the marked message."""

    _IDLE = b"Z\x00\x00\x00\x05I"  # ReadyForQuery, idle: nothing left uncommitted

    def __init__(self, postgres_url: str) -> None:
        from sqlalchemy.engine import make_url

        self._target = make_url(postgres_url)
        self._markers: tuple[bytes, ...] = ()
        self._at_commit = False
        self._server: asyncio.Server | None = None
        self.lost: list[bytes] = []
        """The answers withheld, one per cut."""

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        url = self._target.set(host="127.0.0.1", port=port)
        return url.update_query_dict({"sslmode": "disable"}).render_as_string(False)

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def arm(self, *markers: bytes, at_commit: bool = False) -> None:
        self._markers, self._at_commit = markers, at_commit

    async def _serve(self, client: asyncio.StreamReader, back: asyncio.StreamWriter) -> None:
        host, port = self._target.host or "127.0.0.1", self._target.port or 5432
        server, forth = await asyncio.open_connection(host, port)
        doomed = asyncio.Event()
        marked = False  # a marked message went out here: its transaction's COMMIT dooms

        async def upward() -> None:
            nonlocal marked
            while data := await client.read(1 << 16):
                if self._markers and all(marker in data for marker in self._markers):
                    self._markers = ()
                    marked = self._at_commit
                    if not marked:
                        doomed.set()
                elif marked and b"COMMIT" in data:
                    marked = False
                    doomed.set()
                forth.write(data)
                await forth.drain()

        async def downward() -> None:
            withheld = b""
            while data := await server.read(1 << 16):
                if doomed.is_set():
                    withheld += data
                    if self._IDLE in withheld:
                        self.lost.append(withheld)
                        return
                    continue
                back.write(data)
                await back.drain()

        up = asyncio.ensure_future(upward())
        try:
            await downward()
        except ConnectionError:
            pass
        finally:
            up.cancel()
            for writer in (back, forth):
                writer.close()


async def test_manual_claim_whose_answer_is_lost_claims_one_run(postgres_url: str) -> None:
    # A manual claim's commit went through but its answer was lost: sent again (on the
    # replica's session, or its transaction run again on a fresh pooled connection), it
    # must find its own run, not claim the next microsecond as a second run (which would
    # run, while the first stayed running until its lease ran out).
    from sqlalchemy import select

    from langgraph_scheduler._service import TaskService
    from langgraph_scheduler.store import open_store, runs_table

    from .helpers import HOLDER, LEASE, at, every_minute

    proxy = _AnswerLosingProxy(postgres_url)
    async with proxy as url:
        store = open_store(url)
        await store.setup()
        try:
            service = TaskService(store, clock=FakeClock(at(0)))
            task = await every_minute(service)
            claims = []
            # Alone: one statement on the session (its CTE is named manual_run). Under
            # limits: a transaction on a pooled connection; its COMMIT's answer is lost.
            cases: list[tuple[bytes, dict[str, Any]]] = [
                (b"manual_run", {}),
                (b"COMMIT", {"max_per_task": 2, "since": at(0)}),
            ]
            for i, (marker, limits) in enumerate(cases):
                proxy.arm(marker)
                claimed = await store.claim_manual(
                    task.id, at=at(i), holder=HOLDER, lease_until=at(i) + LEASE, **limits
                )
                assert isinstance(claimed, tuple), claimed
                assert len(proxy.lost) == i + 1  # its answer was lost, after the commit
                claims.append(claimed[1])

            def stored(conn: Any) -> list[Any]:
                query = select(runs_table.c.run_id, runs_table.c.scheduled_for)
                return list(conn.execute(query.where(runs_table.c.task_id == task.id)))

            rows = await store.transaction(stored)
            assert sorted((r.run_id, r.scheduled_for) for r in rows) == sorted(
                (c.run_id, c.scheduled_for) for c in claims
            )
            # The second claim counted the first, not itself: under max_per_task=2 a
            # third is still refused only after it.
            assert (
                await store.claim_manual(
                    task.id,
                    at=at(5),
                    holder=HOLDER,
                    lease_until=at(5) + LEASE,
                    max_per_task=2,
                    since=at(0),
                )
                == "task"
            )
        finally:
            await store.close()


@pytest.mark.parametrize("claim", ["usual", "locked"])
async def test_claimed_fires_whose_answer_is_lost_run_now_and_once(
    postgres_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter, claim: str
) -> None:
    # A claim of due fires committed but its answer was lost: the fires are written as
    # running under this runtime and their tasks moved on, so no later claim finds them
    # due. They must run now, each once, not wait out their lease (120 s here) and then
    # be recorded interrupted without ever running (no retries).
    proxy = _AnswerLosingProxy(postgres_url)
    async with proxy as url:
        rt = runtime_factory(make_graph("ran"), database=url, lease_secs=120, max_concurrency=2)
        async with rt:
            # One fire: the usual claim, one statement sent alone (its CTE is named
            # claimed_run). Three fires for two slots: the locked claim, a transaction
            # whose due read takes row locks; its COMMIT's answer is lost.
            n = 1 if claim == "usual" else 3
            due = _now() + timedelta(seconds=1)
            tasks = [
                await rt.create_task(
                    name=f"lost claim {i}",
                    schedule=Once(at=due),
                    trigger="go",
                    options=TaskOptions(retries=0),
                )
                for i in range(n)
            ]
            if claim == "usual":
                proxy.arm(b"claimed_run")
            else:
                proxy.arm(b"retry_due", b"FOR UPDATE SKIP LOCKED", at_commit=True)
            records = await runs.wait_for(n, timeout=20)
            assert len(proxy.lost) == 1  # the claim's answer was lost, after the commit
            await rt.wait_idle()
            history = [await rt.history(task.id) for task in tasks]
    assert sorted(r.task_id for r in records) == sorted(task.id for task in tasks)
    assert all(r.outcome == "success" and r.summary == "ran" for r in records)
    assert [len(runs_of_task) for runs_of_task in history] == [1] * n


async def test_finish_whose_answer_is_lost_is_still_told(
    postgres_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    # A finish committed but its answer lost: sent again, it finds the run finished.
    # Its own write, not a lease sweep's, so listeners (and webhooks) still hear of it.
    proxy = _AnswerLosingProxy(postgres_url)
    async with proxy as url:
        rt = runtime_factory(make_graph("recorded once"), database=url)
        async with rt:
            task = await rt.create_task(
                name="lost answer", schedule=Once(at=_now() + timedelta(days=1)), trigger="go"
            )
            # A settled finish: one statement on the session (its CTE: finished_run).
            proxy.arm(b"finished_run")
            record = await rt.run_now(task.id)
            assert len(proxy.lost) == 1
            assert record.outcome == "success" and record.summary == "recorded once"
            (told,) = await runs.wait_for(1, task_id=task.id)
            assert told == record == await rt.get_run(record.run_id)


async def test_store_outage_does_not_lose_the_fire(
    postgres_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    import psycopg

    name, admin = _server_of(postgres_url)
    async with runtime_factory(make_graph("survived"), database=postgres_url) as rt:
        task = await rt.create_task(
            name="outage",
            schedule=Once(at=_now() + timedelta(seconds=0.5)),
            trigger="go",
            thread_id="o",
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            _terminate_sessions(conn, name)
        await asyncio.sleep(1.5)  # the fire comes due while the database is unreachable
        assert runs.records == []
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=30)
        assert record.outcome == "success" and record.summary == "survived"
        assert (await rt.get_task(task.id)).state == "completed"


async def test_fire_path_on_killed_connections_runs_again_on_fresh_ones(
    postgres_url: str,
) -> None:
    # The fire path's statements go to the driver, past SQLAlchemy's execution layer (a
    # claim's transaction on a pooled connection; a settled finish or a manual claim on
    # the replica's own session): a connection the server killed must still be told
    # apart from a failed statement, dropped, and the claim or finish run once more on
    # a fresh one.
    import psycopg

    from langgraph_scheduler._service import TaskService
    from langgraph_scheduler.store import Finish, open_store

    from .helpers import HOLDER, LEASE, at, claim, every_minute

    name, admin = _server_of(postgres_url)
    store = open_store(postgres_url)
    await store.setup()

    def kill() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            assert _terminate_sessions(conn, name) >= 1

    try:
        service = TaskService(store, clock=FakeClock(at(0)))
        task = await every_minute(service, options=TaskOptions(retries=1))
        for i in range(2):
            kill()
            claimed = await store.claim_manual(
                task.id, at=at(i), holder=HOLDER, lease_until=at(i) + LEASE
            )
            assert isinstance(claimed, tuple)
            kill()
            (manual,) = await store.finish_runs(
                [Finish(claimed[1], "success")], now=at(i), holder=HOLDER
            )
            assert manual is not None and manual.record.outcome == "success"
        kill()
        (due,) = await claim(store, at(60))
        assert due.run is not None
        kill()
        (failed,) = await store.finish_runs(
            [Finish(due.run, "error", error="x")], now=at(61), holder=HOLDER
        )
        assert failed is not None and failed.consequence.retry_at is not None
        history = await store.history(task.id)
        assert sorted(r.outcome or "" for r in history) == ["error", "success", "success"]
    finally:
        await store.close()


async def test_a_lock_timeout_on_postgresql_delays_the_finish_but_loses_nothing(
    postgres_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # A database whose sessions give up waiting for a lock (lock_timeout, as a DBA may
    # set): a finish refused while another session holds the runs table is sent again
    # once the lock is free, not given up (the fire would be recorded interrupted when
    # its lease ran out, and its turn run again). A failed scheduled fire: its finish
    # reads its task (the failure streak) in a transaction on a pooled connection.
    import psycopg

    name, admin = _server_of(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET lock_timeout = '100ms'")
    model = ScriptedChatModel(steps=[RuntimeError("no answer")], delay_secs=1.0)
    async with runtime_factory(build_graph(model), database=postgres_url) as rt:
        task = await _turn_under_way(rt, model, "locked")
        with psycopg.connect(postgres_url) as blocker:
            blocker.execute("SET lock_timeout = 0")
            blocker.execute("LOCK TABLE lgs_runs IN EXCLUSIVE MODE")  # writes wait
            await asyncio.sleep(2.5)  # the turn ends, and its finish meets the lock
            assert runs.records == [] and model.in_flight == 0
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=20)
        assert record.outcome == "error" and "no answer" in (record.error or "")
        assert record == await rt.get_run(record.run_id)
        assert (await rt.get_task(task.id)).failure_streak == 1


async def test_a_database_left_read_only_delays_the_finish_but_loses_nothing(
    postgres_url: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # A failover that leaves the replicas on a read-only standby: the turn's own writes
    # fail (its outcome), and its finish, refused while the database is read-only, is sent
    # again once it is writable, not given up (the fire would be recorded interrupted
    # when its lease ran out, and its turn run again).
    import psycopg

    name, admin = _server_of(postgres_url)

    def read_only(on: bool) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            setting = "on" if on else "off"
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {setting}')
            _terminate_sessions(conn, name)

    model = ScriptedChatModel(steps=["written"], delay_secs=1.0)
    async with runtime_factory(build_graph(model), database=postgres_url, lease_secs=120) as rt:
        task = await _turn_under_way(rt, model, "failover")
        read_only(True)
        try:
            await asyncio.sleep(2.5)  # the turn ends, and its finish is refused
            assert runs.records == [] and model.in_flight == 0
        finally:
            read_only(False)
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=30)
        assert record.outcome == "error"  # its checkpoint could not be written
        assert record == await rt.get_run(record.run_id)
        again = await rt.create_task(name="after", schedule=Interval(hours=1), trigger="go")
        assert (await rt.run_now(again.id)).outcome == "success"


async def _turn_under_way(rt: SchedulerRuntime, model: ScriptedChatModel, name: str) -> Task:
    """A one-shot task without retries, due at once, once its scheduled turn is in
    ``model``."""
    task = await rt.create_task(
        name=name,
        schedule=Once(at=_now() + timedelta(seconds=0.3)),
        trigger="go",
        options=TaskOptions(retries=0),
    )
    await _eventually(lambda: _in_turn(model), timeout=10)
    return task


async def test_locked_sqlite_database_delays_the_fire_but_loses_nothing(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    import sqlite3

    path = sqlite_url.removeprefix("sqlite:///")
    async with runtime_factory(make_graph("after the lock"), database=sqlite_url) as rt:
        task = await rt.create_task(
            name="locked", schedule=Once(at=_now() + timedelta(seconds=0.3)), trigger="go"
        )
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        try:
            await asyncio.sleep(1.5)  # the fire comes due while the file is locked
            assert runs.records == []
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=30)
        assert record.outcome == "success" and record.summary == "after the lock"
        assert (await rt.get_task(task.id)).state == "completed"


async def test_pooled_connections_killed_while_idle_cost_a_caller_nothing(
    postgres_url: str, runtime_factory: Any
) -> None:
    # What a failover or a pooler's idle kill does between two calls: the next call runs
    # on a fresh connection instead of failing (no pre-ping round trip on every call).
    import psycopg

    name, admin = _server_of(postgres_url)
    async with runtime_factory(None, database=postgres_url) as rt:
        task = await rt.create_task(name="kept", schedule=Interval(hours=1), trigger="go")
        for _ in range(3):
            with psycopg.connect(admin, autocommit=True) as conn:
                assert _terminate_sessions(conn, name) >= 1
            assert (await rt.get_task(task.id)).name == "kept"
            renamed = await rt.update_task(task.id, name="kept")
            assert renamed.version > task.version
            task = renamed


def _end_sessions_and_wait(admin: str, name: str) -> int:
    """End every session on database ``name`` and wait until each is gone (ended is
    signalled: a session checked in between would still answer); how many there were."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
        ]
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(%s)"
        deadline = time.monotonic() + 30
        while not conn.execute(gone, (pids,)).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the ended sessions did not go"
            time.sleep(0.05)
    return len(pids)


async def _killed_while_idle(pool: Any, size: int, admin: str, name: str) -> None:
    """Fill ``pool`` (the checkpointer's) with ``size`` idle connections, then end every
    session on the database. Held at once here: the saver, behind its lock, lends one
    connection at a time, so concurrent turns would leave one in the pool."""
    async with contextlib.AsyncExitStack() as held:
        for _ in range(size):
            await held.enter_async_context(pool.connection())
    assert pool.get_stats()["pool_available"] == size
    assert await asyncio.to_thread(_end_sessions_and_wait, admin, name) >= size


def _failed_checks(caplog: pytest.LogCaptureFixture) -> int:
    """How many connections psycopg_pool found dead when about to lend them."""
    return sum(
        r.name == "psycopg.pool" and r.getMessage().startswith("connection failed check")
        for r in caplog.records
    )


async def test_checkpointer_connections_killed_while_idle_cost_turns_one_failed_check(
    postgres_url: str, make_graph: Any, runtime_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A failover or a DBA ends every session while the checkpointer's connections sit
    # idle in its pool. The pool met a failed check by trying the next idle connection
    # after a pause doubling each time (none, 1 s, 2 s, 4 s...), one dead connection after
    # another, while the saver's lock held every other turn back (a turn could fail with
    # PoolTimeout, later fires be missed). Now the first failed check sweeps them all.
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    name, admin = _server_of(postgres_url)
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    async with runtime_factory(make_graph(*["done"] * 4), database=postgres_url) as rt:
        tasks = [
            await rt.create_task(
                name=f"t{i}", schedule=Interval(hours=1), trigger="go", thread_id=f"t{i}"
            )
            for i in range(4)
        ]
        saver = rt.checkpointer
        assert isinstance(saver, AsyncPostgresSaver)
        size = saver.conn.get_stats()["pool_max"]  # type: ignore[union-attr]
        assert size == 2  # the runtime's
        await _killed_while_idle(saver.conn, size, admin, name)
        caplog.clear()
        records = await asyncio.gather(*(rt.run_now(task.id) for task in tasks))
        assert [r.outcome for r in records] == ["success"] * 4
        assert _failed_checks(caplog) == 1  # one per wave, not one per dead connection
        assert saver.conn.get_stats()["connections_lost"] == size  # type: ignore[union-attr]


async def test_a_larger_checkpointer_pool_killed_while_idle_costs_one_failed_check(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The same with five idle connections (the store's open_checkpointer, as a caller
    # with a larger pool makes it): without the sweep, a turn's checkpoint walked all
    # five, pausing 15 s in all.
    from langgraph_scheduler.store import open_store

    name, admin = _server_of(postgres_url)
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    store = open_store(postgres_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.close)
        await store.setup()
        saver = await store.open_checkpointer(stack, max_connections=5)
        graph = build_graph(ScriptedChatModel(steps=["done"] * 3)).compile(checkpointer=saver)
        await _killed_while_idle(saver.conn, 5, admin, name)
        caplog.clear()
        for i in range(3):
            config: RunnableConfig = {"configurable": {"thread_id": f"t{i}"}}
            state = await graph.ainvoke({"messages": [("user", "go")]}, config)
            assert state["messages"][-1].content == "done"
        assert _failed_checks(caplog) == 1


async def test_a_turn_blocking_its_loop_past_its_lease_is_not_taken_from_it_by_its_own_runtime(
    database: str, runtime_factory: Any, runs: RunWaiter
) -> None:
    # The runtime's loop stalls longer than lease_secs, several times. Nobody else runs:
    # its own upkeep, waking after each stall, must renew the turn's lease, not record
    # the turn it is still running "interrupted" and run it again as a retry.
    turns: list[str] = []
    graph = stalling_graph(turns, stalls=3, secs=1.6)
    rt = runtime_factory(graph, database=database, lease_secs=1.0)
    async with rt:
        task = await rt.create_task(
            name="stall",
            schedule=Once(at=_now() + timedelta(seconds=0.5)),
            trigger="go",
            options=TaskOptions(retries=1, retry_backoff_secs=0.1),
        )
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=30)
        await asyncio.sleep(1.0)  # a retry would be claimed now
        assert (record.attempt, record.outcome) == (1, "success"), record.error
        assert [(r.attempt, r.outcome) for r in await rt.history(task.id)] == [(1, "success")]
        assert turns == ["go"]
