"""Several replica processes on one PostgreSQL database: exactly one run per fire."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from langgraph_scheduler import Interval, Once, SchedulerRuntime, Task, TaskOptions, TaskRunRecord
from langgraph_scheduler._upkeep import process_host
from langgraph_scheduler.errors import NotRunning, ThreadBusy
from langgraph_scheduler.models import RunOutcome
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import (
    SCHEMA_VERSION,
    Finish,
    Store,
    open_store,
    runs_table,
    thread_locks_table,
)
from langgraph_scheduler.testing import FakeClock

from .helpers import RunWaiter, build_graph, stalling_graph

pytestmark = pytest.mark.slow  # replica processes on the real clock

ROOT = Path(__file__).resolve().parents[1]


class Replica:
    """A replica process and the holder id it reported."""

    def __init__(self, process: subprocess.Popen[str], holder: str) -> None:
        self.process = process
        self.holder = holder

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[Callable[[int], Any]]:
    """Start replica processes on the test database; all are stopped after the test."""
    started: list[Replica] = []

    async def start(n: int, *, url: str = postgres_url) -> list[Replica]:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.replica_child", url],
                cwd=ROOT,
                env=_child_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]
        made = []
        for proc in procs:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 90)  # type: ignore[union-attr]
            assert line.startswith("READY"), line
            made.append(Replica(proc, line.split()[1]))
        started.extend(made)
        return made

    yield start
    for replica in started:
        replica.terminate()


def _child_env() -> dict[str, str]:
    """The environment of a child process: this checkout's package and tests."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "plugin"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    return env


@pytest.fixture
async def observer(postgres_url: str) -> AsyncIterator[Store]:
    """Reads the shared run table without running any scheduler."""
    store = open_store(postgres_url)
    await store.setup()
    yield store
    await store.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _rows(store: Store, *columns: Any, where: Any = None) -> list[Any]:
    query = select(*columns)
    if where is not None:
        query = query.where(where)
    return await store.transaction(lambda conn: list(conn.execute(query).all()))


async def _count_until(store: Store, count: int, *, where: Any, timeout: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = int((await _rows(store, func.count(), where=where))[0][0])
        if found >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def _terminate(store: Store, application_name: str) -> int:
    """End every session of the processes connected as ``application_name``: how many."""
    terminate = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :name"
    )
    params = {"name": application_name}
    return await store.transaction(lambda conn: int(conn.execute(terminate, params).scalar() or 0))


def _held_by(replica: Replica) -> Any:
    """The thread lock rows of ``replica``."""
    return thread_locks_table.c.holder == replica.holder


async def _claim_on_thread(
    admin: SchedulerRuntime, thread_id: str
) -> tuple[Task, TaskRunRecord, datetime]:
    """A task continuing ``thread_id``, and its fire claimed through the store by the
    runtime's holder (its turn left to the test); the instant it was claimed at."""
    task = await admin.create_task(
        name="t", schedule=Once(at=_now() + timedelta(hours=1)), trigger="x", thread_id=thread_id
    )
    due = _now() + timedelta(hours=2)
    (claim,) = await admin.store.claim_due(
        as_of=due,
        limit=1,
        holder=admin.holder,
        lease_until=due + timedelta(seconds=30),
        started_at=due,
    )
    assert claim.run is not None
    return task, claim.run, due


def _admin(postgres_url: str) -> SchedulerRuntime:
    """A runtime that manages tasks only (graph=None): it claims no fire, so it is never
    an extra replica."""
    return SchedulerRuntime(None, database=postgres_url)


async def test_three_replicas_run_every_fire_exactly_once(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    group = await replicas(3)
    # Tasks created after the replicas started reach them through LISTEN/NOTIFY.
    async with _admin(postgres_url) as admin:
        start = _now() + timedelta(seconds=3)
        tasks = [
            await admin.create_task(
                name=f"load-{i}",
                schedule=Interval(seconds=1, start=start),
                trigger=f"tick {i}",
                max_runs=6,
                thread_id=f"thread-{i}",
            )
            for i in range(50)
        ]
    expected = 50 * 6
    succeeded = runs_table.c.outcome == "success"
    found = await _count_until(observer, expected, where=succeeded, timeout=90)
    await asyncio.sleep(2)  # a late duplicate would land now
    rows = await _rows(
        observer,
        runs_table.c.task_id,
        runs_table.c.scheduled_for,
        runs_table.c.attempt,
        runs_table.c.outcome,
        runs_table.c.holder,
    )
    # max_runs counts runs: each task runs exactly 6 times. An occurrence that fell due
    # while the task's previous fire still waited for a free slot is coalesced into the
    # later one and recorded "missed" (never dropped, never run twice).
    ran = [r for r in rows if r.outcome == "success"]
    assert found == expected == len(ran)
    assert {r.outcome for r in rows} <= {"success", "missed"}, "nothing left running"
    fires = [(r.task_id, r.scheduled_for, r.attempt) for r in rows]
    assert len(set(fires)) == len(fires), "a fire was claimed twice"
    assert {t for t, _, _ in fires} == {t.id for t in tasks}
    per_holder = {h: sum(r.holder == h for r in ran) for h in {r.holder for r in ran}}
    assert set(per_holder) <= {r.holder for r in group}
    assert len(per_holder) >= 2, f"runs were not spread over replicas: {per_holder}"


async def test_killed_replica_claim_is_recorded_interrupted_and_retried(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    (victim,) = await replicas(1)
    async with _admin(postgres_url) as admin:
        hang = await admin.create_task(
            name="hang",
            schedule=Once(at=_now() + timedelta(seconds=1.5)),
            trigger="hang",  # the replicas' model never answers a first attempt of "hang"
            thread_id="hang",
            options=TaskOptions(retries=1, retry_backoff_secs=0.2),
        )
        ticker = await admin.create_task(
            name="ticker",
            schedule=Interval(seconds=1, start=_now() + timedelta(seconds=1.5)),
            trigger="tick",
            thread_id="ticker",
        )
    claimed = runs_table.c.task_id == hang.id
    assert await _count_until(observer, 1, where=claimed, timeout=30) == 1
    await asyncio.sleep(0.3)
    victim.kill()
    killed_at = _now()
    survivors = await replicas(2)
    # A survivor on the same host found the victim dead as it started: its thread is free
    # at once, not when its lease runs out.
    assert await _rows(observer, thread_locks_table.c.thread_id, where=_held_by(victim)) == []
    done = claimed & runs_table.c.outcome.is_not(None)
    assert await _count_until(observer, 2, where=done, timeout=30) == 2
    history = sorted(await observer.history(hang.id), key=lambda r: r.attempt)
    assert [(r.attempt, r.outcome) for r in history] == [(1, "interrupted"), (2, "success")]
    assert "stopped" in (history[0].error or "")
    holders = dict(await _rows(observer, runs_table.c.attempt, runs_table.c.holder, where=claimed))
    assert holders[1] == victim.holder
    assert holders[2] in {s.holder for s in survivors}
    # Later fires of other tasks go on, on the survivors.
    later = (runs_table.c.task_id == ticker.id) & (runs_table.c.started_at > killed_at)
    assert await _count_until(observer, 2, where=later, timeout=30) >= 2
    after = await _rows(
        observer, runs_table.c.holder, where=later & (runs_table.c.outcome == "success")
    )
    assert {h for (h,) in after} <= {s.holder for s in survivors}


async def test_a_turn_finishing_after_another_replica_recorded_it_is_logged_not_recorded(
    postgres_url: str, replicas: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # This runtime's loop blocks past its lease mid-turn; a replica records the fire
    # "interrupted" meanwhile. The late finish writes nothing, tells no listener, returns
    # what the store keeps, and says in the log that its outcome was dropped.
    (sweeper,) = await replicas(1)
    turns: list[str] = []
    told: list[TaskRunRecord] = []
    stalled = SchedulerRuntime(
        stalling_graph(turns, stalls=1, secs=6.0),
        database=postgres_url,
        lease_secs=1.0,
        on_run=told.append,
    )
    async with stalled:
        task = await stalled.create_task(
            name="stall", schedule=Once(at=_now() + timedelta(hours=1)), trigger="go"
        )
        record = await stalled.run_now(task.id)
        assert turns == ["go"]
        assert record.outcome == "interrupted", record
        assert "stopped renewing" in (record.error or "")
        assert [(r.run_id, r.outcome) for r in await stalled.history(task.id)] == [
            (record.run_id, "interrupted")
        ]
        assert told == [], "the late finish told listeners of an outcome never recorded"
        assert f"run {record.run_id} of task {task.id} ended here (success)" in caplog.text
        assert "the store keeps what another runtime recorded meanwhile (interrupted)" in (
            caplog.text
        )
    assert sweeper.process.poll() is None


async def test_a_killed_replicas_thread_is_free_once_its_lease_runs_out(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    first, second = await replicas(2)
    async with _admin(postgres_url) as admin:
        hang = await admin.create_task(
            name="hang",
            schedule=Once(at=_now() + timedelta(seconds=1.5)),
            trigger="hang",  # never answered on its first attempt: the thread stays held
            thread_id="held",
            options=TaskOptions(retries=0),
        )
        claimed = runs_table.c.task_id == hang.id
        assert await _count_until(observer, 1, where=claimed, timeout=30) == 1
        ((holder,),) = await _rows(observer, runs_table.c.holder, where=claimed)
        victim, survivor = (first, second) if first.holder == holder else (second, first)
        assert await _count_until(observer, 1, where=_held_by(victim), timeout=30) == 1
        victim.kill()  # no survivor starts after it: nobody finds it dead but its lease
        after = await admin.create_task(
            name="after",
            schedule=Once(at=_now() + timedelta(seconds=0.5)),
            trigger="after",
            thread_id="held",
        )
    done = (runs_table.c.task_id == after.id) & runs_table.c.outcome.is_not(None)
    assert await _count_until(observer, 1, where=done, timeout=60) == 1
    (record,) = await observer.history(after.id)
    assert (record.outcome, record.summary) == ("success", "done: after")
    assert await _rows(observer, runs_table.c.holder, where=done) == [(survivor.holder,)]


async def test_a_thread_held_past_its_lease_is_renewed_not_taken(postgres_url: str) -> None:
    # Both runtimes read one clock moved by hand: the first holds a thread for four lease
    # lengths, its upkeep renewing the lease every third of one; the second never gets it.
    clock = FakeClock()
    lease = 3.0
    one = SchedulerRuntime(None, database=postgres_url, clock=clock, lease_secs=lease)
    two = SchedulerRuntime(None, database=postgres_url, clock=clock, lease_secs=lease)
    held = thread_locks_table.c.thread_id == "long"
    async with one, two:
        async with one.thread_lock("long"):
            for _ in range(12):
                await clock.advance(lease / 3)
                until = clock.now() + timedelta(seconds=lease)
                renewed = held & (thread_locks_table.c.lease_expires_at == until)
                assert await _count_until(two.store, 1, where=renewed, timeout=10) == 1, (
                    "the held thread's lease was not renewed"
                )
            with pytest.raises(ThreadBusy):
                async with two.thread_lock("long", timeout=0):
                    pass
            assert await _rows(two.store, thread_locks_table.c.holder) == [(one.holder,)]
        async with two.thread_lock("long", timeout=0):  # freed when the hold ended
            assert await _rows(two.store, thread_locks_table.c.holder) == [(two.holder,)]


async def test_a_thread_taken_after_its_lease_ran_out_is_logged_and_left_to_its_taker(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The holder's clock stands still (a replica cut off for longer than its lease) while
    # the other's moves past the lease: the other takes the thread. The holder's next
    # renewal finds it taken and says so; its hold goes on, and its end frees nothing of
    # the taker's.
    start = _now()
    stuck, moving = FakeClock(start), FakeClock(start)
    one = SchedulerRuntime(None, database=postgres_url, clock=stuck, lease_secs=3.0)
    two = SchedulerRuntime(None, database=postgres_url, clock=moving, lease_secs=3.0)
    async with one, two:
        held = one.thread_lock("cut-off")
        await held.__aenter__()
        await moving.advance(4)
        async with two.thread_lock("cut-off", timeout=0):
            await stuck.advance(1)  # the holder's upkeep renews
            deadline = asyncio.get_running_loop().time() + 10
            while "'cut-off' was taken by another replica" not in caplog.text:
                assert asyncio.get_running_loop().time() < deadline, caplog.text
                await asyncio.sleep(0.05)
            await held.__aexit__(None, None, None)
            assert await _rows(two.store, thread_locks_table.c.holder) == [(two.holder,)]


@pytest.mark.parametrize("thread_id", ["t" * 300, "nul\x00in-it", "é" * 200])
async def test_any_thread_id_can_be_held_across_replicas(postgres_url: str, thread_id: str) -> None:
    # Thread ids are the application's (LangGraph takes any string): one too long for the
    # lock table's key, or holding a NUL PostgreSQL text cannot, is held all the same.
    one, two = _admin(postgres_url), _admin(postgres_url)
    async with one, two:
        async with one.thread_lock(thread_id, timeout=0):
            with pytest.raises(ThreadBusy):
                async with two.thread_lock(thread_id, timeout=0):
                    pass
        async with two.thread_lock(thread_id, timeout=0):
            assert await _rows(two.store, thread_locks_table.c.holder) == [(two.holder,)]


async def test_an_id_spelt_like_a_digest_holds_a_thread_of_its_own(postgres_url: str) -> None:
    # A long id is held under its digest ("sha256:<hex>"): an id spelt that way is
    # another thread, whose hold and free leave the long id's row alone.
    long_id = "t" * 300
    alias = "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()
    one, two = _admin(postgres_url), _admin(postgres_url)
    async with one, two:
        async with one.thread_lock(long_id, timeout=0):
            async with one.thread_lock(alias, timeout=0):
                pass
            with pytest.raises(ThreadBusy):
                async with two.thread_lock(long_id, timeout=0):
                    pass
            async with two.thread_lock(alias, timeout=0):
                pass


async def test_a_hold_cut_short_while_it_frees_its_thread_still_frees_it(
    postgres_url: str,
) -> None:
    # The free at a hold's end goes on when the holder is cancelled meanwhile (a
    # timeout around the hold): the thread is free at once, not after its lease.
    one, two = _admin(postgres_url), _admin(postgres_url)
    async with one, two:
        for round_ in range(20):
            thread_id = f"cut-{round_}"

            async def hold(thread_id: str = thread_id) -> None:
                async with one.thread_lock(thread_id, timeout=5):
                    pass

            holding = asyncio.ensure_future(hold())
            for _ in range(round_):  # cut at another point of the hold each round
                await asyncio.sleep(0)
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
            async with two.thread_lock(thread_id, timeout=5):  # not the 30-s lease
                assert await _rows(two.store, thread_locks_table.c.holder) == [(two.holder,)]


async def test_a_hold_still_waiting_when_its_runtime_stops_is_never_granted(
    postgres_url: str,
) -> None:
    # A hold waiting for a thread another runtime holds, when its own runtime stops: it
    # ends with NotRunning, and takes nothing (nobody would renew the row any more).
    one = _admin(postgres_url)
    two = SchedulerRuntime(None, database=postgres_url, lease_secs=2.0)
    async with one:
        await two.start()
        async with one.thread_lock("wanted", timeout=0):

            async def wait_for_it() -> None:
                async with two.thread_lock("wanted", timeout=30):
                    pytest.fail("granted after its runtime stopped")

            waiting = asyncio.ensure_future(wait_for_it())
            await asyncio.sleep(0.3)
            await two.stop(drain_timeout_secs=0.2)
        with pytest.raises(NotRunning):
            await waiting
        assert await _rows(one.store, thread_locks_table.c.holder) == []


async def test_a_fire_on_a_thread_is_held_from_its_claim_to_its_finish(
    postgres_url: str, observer: Store
) -> None:
    # A fire that continues a thread takes the thread's row with its claim, and frees
    # it with its finish: no statement of its own for either, and no other replica's
    # turn on the thread in between.
    locks = (thread_locks_table.c.thread_id, thread_locks_table.c.holder)
    model = ScriptedChatModel(steps=["slow"], delay_secs=3)
    # The other replica is started first: its start on a loaded machine must not outlast
    # the turn it is to find holding the thread.
    async with (
        SchedulerRuntime(build_graph(model), database=postgres_url) as one,
        _admin(postgres_url) as other,
    ):
        task = await one.create_task(
            name="slow",
            schedule=Once(at=_now() + timedelta(seconds=0.5)),
            trigger="hi",
            thread_id="shared",
        )
        running = (runs_table.c.task_id == task.id) & runs_table.c.outcome.is_(None)
        assert await _count_until(observer, 1, where=running, timeout=30) == 1
        ((run_id,),) = await _rows(observer, runs_table.c.run_id, where=running)
        taken = await _rows(observer, *locks, thread_locks_table.c.run_id)
        assert taken == [("shared", one.holder, run_id)]
        with pytest.raises(ThreadBusy):
            async with other.thread_lock("shared", timeout=0):
                pass
        finished = runs_table.c.task_id == task.id
        finished &= runs_table.c.outcome == "success"
        assert await _count_until(observer, 1, where=finished, timeout=30) == 1
        assert await _rows(observer, *locks) == []
        async with other.thread_lock("shared", timeout=0):
            pass


async def test_a_turn_takes_its_thread_again_if_this_process_touched_it_after_the_claim(
    postgres_url: str, observer: Store
) -> None:
    # A hold of this process took and freed the thread after the fire's claim took it
    # (its free deleted the claim's row): the fire's turn takes the thread itself
    # instead of running without its row.
    columns = (thread_locks_table.c.holder, thread_locks_table.c.run_id)
    async with _admin(postgres_url) as admin:
        store = admin.store
        _, run, _ = await _claim_on_thread(admin, "T")
        run_id = run.run_id
        assert await _rows(observer, *columns) == [(admin.holder, run_id)]
        async with store.thread_lock("T", timeout=0):  # the row is this process's: taken
            assert await _rows(observer, *columns) == [(admin.holder, None)]
        assert await _rows(observer, *columns) == []  # freed at the hold's end
        async with store.thread_lock("T", timeout=0, run_id=run_id):
            assert await _rows(observer, *columns) == [(admin.holder, None)]
        assert await _rows(observer, *columns) == []


@pytest.mark.parametrize("outcome", ["success", "skipped", "error"])
async def test_a_fires_finish_frees_the_thread_its_claim_took_even_if_its_task_is_gone(
    postgres_url: str, observer: Store, outcome: RunOutcome
) -> None:
    # Deleted between its claim and its turn (or during the turn): the fire's finish
    # finds no run to write, and frees its thread all the same; a lone settled finish
    # ("success") and a finish in a transaction alike.
    columns = (thread_locks_table.c.thread_id, thread_locks_table.c.run_id)
    async with _admin(postgres_url) as admin:
        task, run, due = await _claim_on_thread(admin, "T")
        assert await _rows(observer, *columns) == [("T", run.run_id)]
        await admin.delete_task(task.id)  # its runs go with it
        (done,) = await admin.store.finish_runs(
            [Finish(run, outcome, error="boom" if outcome == "error" else None)],
            now=due,
            holder=admin.holder,
        )
        assert done is None  # nothing to write: the run is gone
        assert await _rows(observer, *columns) == []
        async with _admin(postgres_url) as other:
            async with other.thread_lock("T", timeout=0):
                pass


async def test_a_stop_waits_for_a_held_thread_and_one_held_past_it_stays_taken(
    postgres_url: str,
) -> None:
    # A user's hold open when its runtime stops (a request in flight at shutdown): the
    # stop waits for it up to its drain timeout; a hold that outlives the stop keeps
    # its thread taken until the lease runs out, since its block may still run.
    two = _admin(postgres_url)
    async with two:
        one = SchedulerRuntime(None, database=postgres_url, lease_secs=2.0)
        await one.start()
        held = one.thread_lock("open-at-stop")
        await held.__aenter__()
        stopping = asyncio.ensure_future(one.stop(drain_timeout_secs=60))
        await asyncio.sleep(0.3)
        assert not stopping.done(), "the stop did not wait for the held thread"
        await held.__aexit__(None, None, None)
        await stopping
        async with two.thread_lock("open-at-stop", timeout=0):  # freed by its hold's end
            pass

        three = SchedulerRuntime(None, database=postgres_url, lease_secs=2.0)
        await three.start()
        held = three.thread_lock("held-past-stop")
        await held.__aenter__()
        await three.stop(drain_timeout_secs=0)
        with pytest.raises(ThreadBusy):
            async with two.thread_lock("held-past-stop", timeout=0):
                pass
        async with two.thread_lock("held-past-stop", timeout=30):  # once its lease ran out
            assert await _rows(two.store, thread_locks_table.c.holder) == [(two.holder,)]
        await held.__aexit__(None, None, None)  # ends quietly: its store is closed


async def test_a_runtime_without_a_graph_frees_a_dead_processs_threads_as_it_starts(
    postgres_url: str, observer: Store
) -> None:
    # A process of this host that held a thread and is gone (its pid free again): the
    # row it left is freed at start-up, not after its lease, by any kind of runtime.
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    holder = f"{process_host()}:{gone.stdout.strip()}:deadbeef"
    until = _now() + timedelta(hours=1)
    row = {"thread_id": "left-behind", "holder": holder, "lease_expires_at": until}
    await observer.transaction(lambda conn: conn.execute(insert(thread_locks_table), row))
    async with _admin(postgres_url) as admin:
        async with admin.thread_lock("left-behind", timeout=0):
            assert await _rows(admin.store, thread_locks_table.c.holder) == [(admin.holder,)]


@pytest.mark.parametrize("lease", ["'infinity'", "'10000-01-01 00:00:00+00'"])
async def test_a_thread_whose_lease_cannot_be_read_is_taken_as_a_lapsed_one(
    postgres_url: str, observer: Store, runs: RunWaiter, lease: str
) -> None:
    # A row written by hand, its holder on another host (not known to be dead here),
    # whose lease no Python time holds: it never read as run out, so every fire on its
    # thread was skipped as busy and every hold refused, for good. It is taken as a
    # lapsed one is, as a running fire's unreadable lease is swept.
    row = text(
        "INSERT INTO lgs_thread_locks (thread_id, holder, lease_expires_at) "
        f"VALUES ('stuck', 'elsewhere:1:gone', {lease})"
    )
    await observer.transaction(lambda conn: conn.execute(row))
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=postgres_url, on_run=runs) as rt:
        task = await rt.create_task(
            name="stuck",
            schedule=Once(at=_now() + timedelta(seconds=0.3)),
            trigger="go",
            thread_id="stuck",
            options=TaskOptions(max_wait_secs=5),
        )
        (record,) = await runs.wait_for(1, task_id=task.id, timeout=30)
        assert (record.outcome, record.summary) == ("success", "ran")
        async with rt.thread_lock("stuck", timeout=5):
            assert await _rows(observer, thread_locks_table.c.holder) == [(rt.holder,)]


async def test_created_on_one_replica_fires_on_another_and_deleted_fires_nowhere(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    (other,) = await replicas(1)
    async with _admin(postgres_url) as admin:
        once = await admin.create_task(
            name="hello", schedule=Once(at=_now() + timedelta(seconds=1.5)), trigger="hello"
        )
    mine = runs_table.c.task_id == once.id
    assert (
        await _count_until(observer, 1, where=mine & runs_table.c.outcome.is_not(None), timeout=30)
        == 1
    )
    assert await _rows(observer, runs_table.c.holder, where=mine) == [(other.holder,)]

    async with SchedulerRuntime(
        build_graph(ScriptedChatModel(steps=["here"])), database=postgres_url
    ) as local:
        ticking = await local.create_task(
            name="ticking",
            schedule=Interval(seconds=1, start=_now() + timedelta(seconds=0.5)),
            trigger="tick",
            thread_id="ticking",
        )
        gone = runs_table.c.task_id == ticking.id
        assert await _count_until(observer, 2, where=gone, timeout=30) >= 2
        await local.delete_task(ticking.id)
        await asyncio.sleep(3)  # several fire times pass
        assert await _rows(observer, runs_table.c.run_id, where=gone) == []


async def test_a_task_added_by_another_process_is_heard_through_notify_and_fires_when_due(
    postgres_url: str, runs: RunWaiter
) -> None:
    # Polls and window loads far beyond the test: only the NOTIFY of the task's insert
    # can tell this runtime of the task in time.
    async with SchedulerRuntime(
        build_graph(ScriptedChatModel(steps=["pong"])),
        database=postgres_url,
        sync_interval_secs=600,
        window_secs=3600,
        on_run=runs,
    ):
        added = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "langgraph_scheduler", "tasks", "add", "--schedule",
             "in 1 second", "--prompt", "ping", "--database", postgres_url, "--json"],
            cwd=ROOT,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        task_id = json.loads(added.stdout)["id"]
        (record,) = await runs.wait_for(1, task_id=task_id, timeout=20)
    assert (record.trigger, record.outcome) == ("schedule", "success")


async def test_replicas_starting_at_once_share_one_schema(postgres_url: str) -> None:
    runtimes = [_admin(postgres_url) for _ in range(3)]
    await asyncio.gather(*(rt.start() for rt in runtimes))
    try:
        versions = {await rt.store.schema_version() for rt in runtimes}
        assert versions == {SCHEMA_VERSION}
        task = await runtimes[0].create_task(name="x", schedule=Interval(hours=1), trigger="hi")
        assert (await runtimes[2].get_task(task.id)).name == "x"
    finally:
        await asyncio.gather(*(rt.stop() for rt in runtimes))


async def test_one_turn_per_thread_across_replicas(postgres_url: str) -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import START, StateGraph

    from langgraph_scheduler.state import SchedulerState

    spans: dict[str, list[tuple[float, float]]] = {}
    # The first turn on each thread waits (up to 30 s, then fails) for one on the other:
    # they meet however slow the machine, unless the other's turn cannot begin beside it.
    entered = {"shared": asyncio.Event(), "own": asyncio.Event()}

    async def slow(state: Any, config: RunnableConfig) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        thread = config["configurable"]["thread_id"]
        entered[thread].set()
        await asyncio.wait_for(entered["own" if thread == "shared" else "shared"].wait(), 30)
        await asyncio.sleep(0.4)
        spans.setdefault(thread, []).append((began, loop.time()))
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    # Two runtimes in one process share no in-process lock: only PostgreSQL's advisory
    # lock keeps their turns on the shared thread apart.
    one = SchedulerRuntime(builder, database=postgres_url)
    two = SchedulerRuntime(builder, database=postgres_url)
    async with one, two:
        a = await one.create_task(
            name="a", schedule=Interval(hours=1), trigger="a", thread_id="shared"
        )
        b = await two.create_task(
            name="b", schedule=Interval(hours=1), trigger="b", thread_id="shared"
        )
        c = await two.create_task(
            name="c", schedule=Interval(hours=1), trigger="c", thread_id="own"
        )
        records = await asyncio.gather(one.run_now(a.id), two.run_now(b.id), two.run_now(c.id))
    assert [r.outcome for r in records] == ["success"] * 3
    first, second = sorted(spans["shared"])
    assert second[0] >= first[1], "two turns on one thread overlapped across replicas"
    (own,) = spans["own"]
    assert own[0] < first[1] and own[1] > first[0] or own[0] < second[1], "other threads run"


async def test_a_lost_session_does_not_free_its_threads(postgres_url: str) -> None:
    # Two replicas take turns on one thread; whichever holds it has every connection
    # terminated mid-turn (a failover, an idle kill). The other replica must still wait
    # for the turn to end: the thread's lock is a leased row, not the lost session's.
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import START, StateGraph

    from langgraph_scheduler.state import SchedulerState

    spans: list[tuple[str, float, float]] = []
    turning: asyncio.Queue[str] = asyncio.Queue()

    def graph(label: str) -> StateGraph[Any, Any, Any, Any]:
        async def slow(state: Any, config: RunnableConfig) -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            began = loop.time()
            turning.put_nowait(label)
            await asyncio.sleep(1.5)
            spans.append((label, began, loop.time()))
            return {"messages": [AIMessage("done")]}

        builder = StateGraph(SchedulerState)
        builder.add_node("slow", slow)
        builder.add_edge(START, "slow")
        return builder

    def runtime(label: str) -> SchedulerRuntime:
        url = f"{postgres_url}?application_name=lgs_{label}"
        return SchedulerRuntime(graph(label), database=url, lease_secs=5.0)

    observer = open_store(postgres_url)
    one, two = runtime("one"), runtime("two")
    try:
        async with one, two:
            turns = []
            for rt in (one, two, one, two):
                task = await rt.create_task(
                    name="turn", schedule=Interval(hours=1), trigger="go", thread_id="shared"
                )
                turns.append(asyncio.ensure_future(rt.run_now(task.id)))
            for _ in turns:  # each turn, once it runs, loses every connection of its replica
                label = await asyncio.wait_for(turning.get(), 60)
                await asyncio.sleep(0.2)
                assert await _terminate(observer, f"lgs_{label}") >= 1
            records = await asyncio.gather(*turns)
    finally:
        await observer.close()
    assert len(spans) == 4, [r.outcome for r in records]
    ordered = sorted(spans, key=lambda span: span[1])
    for (_, _, ended), (label, began, _) in zip(ordered, ordered[1:], strict=False):
        assert began >= ended, f"a turn of {label} started beside another on its thread"


async def test_terminated_backends_lose_nothing_and_strand_nothing(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    # What a failover, a pooler's idle kill or an operator does: every connection of the
    # replica is terminated, several times while it runs turns.
    (replica,) = await replicas(1, url=f"{postgres_url}?application_name=lgs_victim")
    async with _admin(postgres_url) as admin:
        start = _now() + timedelta(seconds=1.5)
        tasks = [
            await admin.create_task(
                name=f"t{i}",
                schedule=Interval(seconds=1, start=start),
                trigger=f"tick {i}",
                max_runs=5,
                thread_id=f"t{i}",
                options=TaskOptions(retries=3, retry_backoff_secs=0.2),
            )
            for i in range(10)
        ]
    killed: list[int] = []
    for _ in range(4):
        await asyncio.sleep(1.0)
        killed.append(await _terminate(observer, "lgs_victim"))
    assert sum(killed) >= 4, killed  # its connections were there, and were terminated
    assert replica.process.poll() is None  # the replica lives on
    # Every scheduled fire of every task ends in one success (a retry where needed),
    # nothing stays running, and the turns after the kills ran on that same replica.
    fired = (runs_table.c.attempt == 1) & (runs_table.c.outcome != "missed")
    assert (
        await _count_until(
            observer, 50, where=fired & runs_table.c.outcome.is_not(None), timeout=60
        )
        >= 50
    )
    deadline = asyncio.get_running_loop().time() + 30
    while await _rows(observer, runs_table.c.run_id, where=runs_table.c.outcome.is_(None)):
        assert asyncio.get_running_loop().time() < deadline, "a run was left running"
        await asyncio.sleep(0.2)
    rows = await _rows(
        observer,
        runs_table.c.task_id,
        runs_table.c.scheduled_for,
        runs_table.c.attempt,
        runs_table.c.outcome,
        runs_table.c.holder,
    )
    fires: dict[tuple[str, datetime], list[str]] = {}
    for row in rows:
        if row.outcome != "missed":
            fires.setdefault((row.task_id, row.scheduled_for), []).append(row.outcome)
    for task in tasks:
        assert len([f for f in fires if f[0] == task.id]) == 5, task.id
    assert all("success" in outcomes for outcomes in fires.values()), fires
    assert {r.holder for r in rows} == {replica.holder}


async def test_a_schedule_change_racing_claims_always_wins(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    # A replica keeps claiming a task due every second while its schedule is changed
    # again and again: no claim may write a next run time from the schedule it replaced.
    await replicas(2)
    async with _admin(postgres_url) as admin:
        task = await admin.create_task(
            name="racing",
            schedule=Interval(seconds=1, start=_now() + timedelta(seconds=0.5)),
            trigger="tick",
            thread_id="racing",
        )
        for i in range(10):
            await asyncio.sleep(0.25 + (i % 3) * 0.1)
            phase = _now() + timedelta(seconds=0.5 + (i % 4) * 0.1)
            seconds = 1 + i % 2
            updated = await admin.update_task(
                task.id, schedule=Interval(seconds=seconds, start=phase)
            )
            stored = await admin.get_task(task.id)
            assert stored.schedule == updated.schedule
            await asyncio.sleep(0.2)  # claims happen meanwhile
            now = await admin.get_task(task.id)
            assert now.schedule == updated.schedule, "a claim overwrote the new schedule"
            assert now.next_run_at is not None
            offset = (now.next_run_at - phase).total_seconds()
            assert offset >= 0 and abs(offset / seconds - round(offset / seconds)) < 1e-3, (
                f"next run {now.next_run_at} is not on the new grid ({phase}, {seconds}s)"
            )


async def test_ten_replicas_within_a_capped_connection_budget_run_every_fire(
    postgres_url: str, replicas: Any, observer: Store
) -> None:
    # A role allowed 60 connections; ten replicas with default settings need at most 8
    # each. Running short of connections may delay a fire; it must never lose one.
    role = f"lgs_capped_{uuid.uuid4().hex[:8]}"
    base, _, name = postgres_url.rpartition("/")
    admin_url = f"{base}/postgres"
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 60')
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the observer's tables
        conn.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
    capped = postgres_url.replace("postgres@", f"{role}@", 1)
    group: list[Replica] = []
    try:
        group = await replicas(10, url=capped)
        async with _admin(capped) as admin:
            start = _now() + timedelta(seconds=2)
            for i in range(30):
                await admin.create_task(
                    name=f"c{i}",
                    schedule=Interval(seconds=1, start=start),
                    trigger=f"tick {i}",
                    max_runs=3,
                    thread_id=f"c{i}",
                )
        ran = runs_table.c.outcome == "success"
        found = await _count_until(observer, 90, where=ran, timeout=90)
        rows = await _rows(observer, runs_table.c.task_id, runs_table.c.outcome, runs_table.c.error)
        assert found == 90, sorted({(o, (e or "")[:120]) for _, o, e in rows})
        assert {o for _, o, _ in rows} <= {"success", "missed"}
        assert all(r.process.poll() is None for r in group)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            used = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)
            ).fetchone()
        assert used is not None and used[0] <= 60
    finally:
        for replica in group:
            replica.terminate()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
            conn.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO postgres')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
