"""One conformance suite every store twin must pass: memory, SQLite file and PostgreSQL.

Time never passes by itself here: every claim, finish and sweep is given its instant,
and tasks are made by the task service on a fake clock.
"""

from __future__ import annotations

import asyncio
import gc
import traceback
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, literal_column, text, update
from sqlalchemy.engine import Connection

from langgraph_scheduler import Cron, Interval, InvalidTask, Once, QuotaExceeded, TaskOptions
from langgraph_scheduler._fire import RunConsequence
from langgraph_scheduler._service import TaskService
from langgraph_scheduler.errors import StoreError, StoreUnavailable
from langgraph_scheduler.models import Task, TaskRunRecord
from langgraph_scheduler.store import (
    LAST_ATTEMPT,
    CallAnswer,
    Claimed,
    Finish,
    Store,
    TaskChange,
    isolated_thread_id,
    open_store,
    retries_table,
    tasks_table,
)
from langgraph_scheduler.testing import FakeClock

from .helpers import HOLDER, T0, assert_paused_unfired, at, claim, claim_one, every_minute

_STATE = ["state", "next_run_at"]


@pytest.fixture(params=["memory", "sqlite_file", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Store]:
    """A set-up, empty store per backend (PostgreSQL: a fresh database per test)."""
    if request.param == "memory":
        url = "sqlite://"
    elif request.param == "sqlite_file":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    opened = open_store(url)
    await opened.setup()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def service(store: Store, clock: FakeClock) -> TaskService:
    return TaskService(store, clock=clock)


async def finish(
    store: Store, run: TaskRunRecord, outcome: Any, when: datetime, *, holder: str = HOLDER
) -> Any:
    (done,) = await store.finish_runs([Finish(run, outcome, error="boom")], now=when, holder=holder)
    return done


async def manual_run(
    store: Store, task: Task, when: datetime, lease_until: datetime
) -> TaskRunRecord:
    """Claim a manual run of ``task`` due ``when``; its running record."""
    claimed = await store.claim_manual(task.id, at=when, holder=HOLDER, lease_until=lease_until)
    assert isinstance(claimed, tuple)
    return claimed[1]


async def write_raw(store: Store, task_id: str, column: str, garbage: str) -> None:
    """Put text that is no JSON document into a task's JSON column, behind the store's back.

    SQLite keeps the raw text; PostgreSQL's JSONB refuses it, so there the column holds a
    JSON string whose content is the garbage (what a hand-written UPDATE can leave).
    """
    assert column in ("schedule", "options", "payload")
    value = "CAST(:v AS TEXT)" if store.dialect == "sqlite" else "to_jsonb(CAST(:v AS TEXT))"
    statement = text(f"UPDATE lgs_tasks SET {column} = {value} WHERE id = :id")

    def work(conn: Connection) -> None:
        conn.execute(statement, {"v": garbage, "id": task_id})

    await store.transaction(work)


async def write_runs(store: Store, column: str, raws: dict[str, str]) -> None:
    """Set a column of runs behind the store's back, each run id to its SQL literal."""

    def work(conn: Connection) -> None:
        for run_id, raw in raws.items():
            statement = text(f"UPDATE lgs_runs SET {column} = {raw} WHERE run_id = :r")
            conn.execute(statement, {"r": run_id})

    await store.transaction(work)


# -- tasks: insert, read, count -------------------------------------------------------


async def test_inserted_task_reads_back_by_id_list_and_count(
    store: Store, service: TaskService, clock: FakeClock
) -> None:
    first = await every_minute(service, name="first", owner="alice")
    await clock.advance(1)  # listed oldest first
    second = await every_minute(service, name="second", owner="bob", paused=True)

    stored = await store.get_task(first.id)
    assert stored == first
    assert stored.next_run_at == at(60) and stored.version == 0
    page = await store.list_tasks()
    assert [t.id for t in page.tasks] == [first.id, second.id]
    assert page.next_offset is None
    assert [t.id for t in (await store.list_tasks(owner="bob")).tasks] == [second.id]
    assert [t.id for t in (await store.list_tasks(states=["paused"])).tasks] == [second.id]
    assert (await store.list_tasks(limit=1)).next_offset == 1
    assert await store.count_tasks(states=["active", "paused"]) == 2
    assert await store.count_tasks(owner="alice", states=["active"]) == 1
    assert await store.count_tasks(owner="alice", states=["paused"]) == 0


async def test_get_is_scoped_to_the_owner(store: Store, service: TaskService) -> None:
    task = await every_minute(service, owner="alice")

    assert await store.get_task(task.id, owner="alice") == task
    assert await store.get_task(task.id, owner="bob") is None
    assert await store.get_task("no-such-task") is None


async def test_a_run_and_its_deliveries_are_scoped_to_the_owner_of_its_task(
    store: Store, service: TaskService
) -> None:
    """`get_run(owner=)` and `deliveries(owner=)` answer as `get_task(owner=)` does: a run
    of another owner's task is not there (an application serving several users passed
    them ids its users gave, and read anyone's runs)."""
    runs = {}
    for owner in ("alice", "bob"):
        task = await every_minute(service, owner=owner)
        run = await manual_run(store, task, at(60), at(90))
        (finished,) = await store.finish_runs([Finish(run, "success")], now=at(61), holder=HOLDER)
        assert finished is not None
        runs[owner] = done = finished.record
        await store.queue_deliveries(
            [done], urls=["https://hooks.example.com/in"], now=at(61), lease_until=at(91), limit=1
        )
    alice, bob = runs["alice"], runs["bob"]

    assert await store.get_run(alice.run_id, owner="alice") == alice
    assert await store.get_run(bob.run_id, owner="alice") is None
    assert await store.get_run(bob.run_id) == bob
    assert await store.get_run("no-such-run", owner="alice") is None
    mine = await store.deliveries(run_id=alice.run_id, owner="alice")
    assert [d.run_id for d in mine] == [alice.run_id]
    assert await store.deliveries(run_id=bob.run_id, owner="alice") == []
    assert [d.run_id for d in await store.deliveries(owner="bob")] == [bob.run_id]
    assert len(await store.deliveries()) == 2


# -- tasks: conditional writes ----------------------------------------------------------


async def test_save_task_writes_only_over_the_version_it_read(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)

    renamed = task.model_copy(update={"name": "renamed"})
    assert await store.save_task(renamed, expected_version=0, columns=["name"]) == "saved"
    stale = task.model_copy(update={"name": "stale"})
    assert await store.save_task(stale, expected_version=0, columns=["name"]) == "conflict"

    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("renamed", 1)


async def test_save_task_of_a_deleted_task_is_missing(store: Store, service: TaskService) -> None:
    task = await every_minute(service)
    assert await store.delete_task(task.id)

    assert await store.save_task(task, expected_version=0, columns=["name"]) == "missing"
    assert not await store.delete_task(task.id)


async def test_save_task_refuses_an_activation_beyond_the_quota(
    store: Store, service: TaskService
) -> None:
    await every_minute(service, owner="alice")
    paused = await every_minute(service, owner="alice", paused=True)
    await every_minute(service, owner="bob")
    active = paused.model_copy(update={"state": "active", "next_run_at": at(60)})

    assert (
        await store.save_task(active, expected_version=0, columns=_STATE, max_active=1) == "quota"
    )
    assert (await store.get_task(paused.id)).state == "paused"  # type: ignore[union-attr]
    assert (
        await store.save_task(active, expected_version=0, columns=_STATE, max_active=2) == "saved"
    )
    assert await store.count_tasks(owner="alice", states=["active"]) == 2


async def test_concurrent_creates_stay_within_the_quota(service: TaskService) -> None:
    results = await asyncio.gather(
        *(every_minute(service, name=f"t{i}", owner="alice", max_active=3) for i in range(8)),
        return_exceptions=True,
    )

    assert sum(isinstance(r, Task) for r in results) == 3
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 5


@pytest.mark.parametrize(("owner", "taken"), [("alice", False), ("bob", True)])
async def test_a_create_within_a_quota_meeting_its_id_inserted_meanwhile_is_answered(
    postgres_url: str, owner: str, taken: bool
) -> None:
    # Another transaction inserts the id (a create without quota, or of another owner,
    # whose owner lock is not this one's) after this create found it absent: its insert
    # waits for that commit and used to end in a duplicate key error (StoreError).
    import psycopg

    store = open_store(postgres_url)
    await store.setup()
    service = TaskService(store, clock=FakeClock(T0))
    create: dict[str, Any] = {
        "name": "standup",
        "schedule": Cron("0 9 * * *"),
        "trigger": "hi",
        "owner": "alice",
    }
    try:
        seed = await service.create(**create, task_id="seed")
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute(
                "CREATE TEMP TABLE held AS SELECT * FROM lgs_tasks WHERE id = 'seed'"
            )
            await other.execute("UPDATE held SET id = 'dup', owner = %s", (owner,))
            await other.execute("INSERT INTO lgs_tasks SELECT * FROM held")
            made = asyncio.ensure_future(service.create(**create, task_id="dup", max_active=5))
            for _ in range(400):  # until the create waits for the held row
                cursor = await other.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                row = await cursor.fetchone()
                if made.done() or (row is not None and row[0] > 0):
                    break
                await asyncio.sleep(0.05)
            await other.commit()
        if taken:
            with pytest.raises(InvalidTask, match="is taken"):
                await made
        else:
            assert (await made).model_copy(update={"id": "seed"}) == seed
    finally:
        await store.close()


async def test_concurrent_resumes_stay_within_the_quota(store: Store, service: TaskService) -> None:
    paused = [await every_minute(service, owner="alice", paused=True) for _ in range(6)]

    results = await asyncio.gather(
        *(service.resume(t.id, max_active=3) for t in paused), return_exceptions=True
    )

    assert sum(isinstance(r, Task) for r in results) == 3
    assert sum(isinstance(r, QuotaExceeded) for r in results) == 3
    assert await store.count_tasks(owner="alice", states=["active"]) == 3


async def test_concurrent_updates_of_one_task_all_land(store: Store, service: TaskService) -> None:
    task = await every_minute(service)

    await asyncio.gather(
        service.update(task.id, name="renamed"),
        service.update(task.id, timeout_secs=30),
        service.update(task.id, options=TaskOptions(retries=5)),
        service.update(task.id, max_runs=7),
        service.update(task.id, schedule=Interval(seconds=120)),
    )

    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.name, stored.payload) == ("renamed", {"prompt": "tick", "timeout_secs": 30})
    assert (stored.options.retries, stored.max_runs, stored.version) == (5, 7, 5)
    assert isinstance(stored.schedule, Interval) and stored.schedule.seconds == 120


# -- claiming due fires -------------------------------------------------------------


async def test_claim_due_takes_at_most_limit_earliest_first(
    store: Store, service: TaskService
) -> None:
    last = await service.create(name="third", schedule=Once(at(180)), trigger="t")
    first = await service.create(name="first", schedule=Once(at(60)), trigger="t")
    second = await service.create(name="second", schedule=Once(at(120)), trigger="t")

    claimed = await claim(store, at(180), limit=2)

    assert [c.task.id for c in claimed] == [first.id, second.id]
    assert [c.run.scheduled_for for c in claimed if c.run] == [at(60), at(120)]
    (rest,) = await claim(store, at(180), limit=2)
    assert rest.task.id == last.id


async def test_a_burst_is_claimed_in_order_and_on_postgres_through_the_locked_claim_alone(
    store: Store, service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More due than there is room for: on PostgreSQL the locked claim splits a burst
    # between replicas; once a claim filled its room that way, the next goes straight to
    # it instead of reading the burst again through the usual claim, until a locked
    # claim finds less than its room. A lone fire after that takes the usual claim.
    burst = [
        await service.create(name=f"b{i}", schedule=Once(at(60 + i)), trigger="t") for i in range(7)
    ]
    later = await service.create(name="later", schedule=Once(at(600)), trigger="t")
    usual_reads: list[int] = []
    run_alone = store._run_alone

    async def counted(work: Any) -> Any:
        usual_reads[-1] += 1
        return await run_alone(work)

    monkeypatch.setattr(store, "_run_alone", counted)
    claimed: list[list[str]] = []
    for when in (at(120), at(120), at(120), at(600)):
        usual_reads.append(0)
        claimed.append([c.task.id for c in await claim(store, when, limit=3)])

    ids = [t.id for t in burst]
    assert claimed == [ids[:3], ids[3:6], ids[6:], [later.id]]
    for task in [*burst, later]:
        assert len(await store.history(task.id)) == 1
    assert usual_reads == ([1, 0, 0, 1] if store.dialect == "postgresql" else [1, 1, 1, 1])


async def test_claim_due_moves_the_task_on_and_inserts_a_running_record(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)

    assert await claim(store, at(59)) == []
    (claimed,) = await claim(store, at(67))

    run = claimed.run
    assert run is not None and run.running
    assert (run.task_id, run.attempt, run.trigger) == (task.id, 1, "schedule")
    assert (run.scheduled_for, run.due_at, run.started_at) == (at(60), at(60), at(67))
    assert run.lateness == timedelta(seconds=7)
    assert claimed.next_run_at == at(120)
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.next_run_at, stored.run_count, stored.version) == (at(120), 1, 1)
    assert await store.history(task.id) == [run]
    assert await store.running_holders() == [HOLDER]


async def test_the_store_keeps_the_validated_form_of_tasks_that_fire_again_only(
    store: Store, service: TaskService
) -> None:
    # What the fire path keeps beside each row it read grows with the tasks that still
    # fire, not with every one-off task that ever fired.
    recurring = await every_minute(service)
    once = await service.create(name="once", schedule=Once(at=at(60)), trigger="tick")

    claimed = {c.task.id: c for c in await claim(store, at(60))}

    assert claimed[once.id].run is not None and claimed[once.id].event == "completed"
    assert recurring.id in store._tasks and once.id not in store._tasks
    (again,) = await claim(store, at(120))  # the kept form is still right after the move
    assert again.task.id == recurring.id and again.next_run_at == at(180)


async def test_a_second_claim_of_the_same_instant_claims_nothing(
    store: Store, service: TaskService
) -> None:
    await every_minute(service)

    assert len(await claim(store, at(60))) == 1
    assert await claim(store, at(60)) == []


async def test_a_fire_whose_record_exists_is_not_run_again_but_its_task_moves_on(
    store: Store, service: TaskService
) -> None:
    # A record of the same fire already stored (its key: task, occurrence, attempt).
    task = await every_minute(service)
    manual = await manual_run(store, task, at(60), at(90))
    await store.finish_runs([Finish(manual, "success")], now=at(61), holder=HOLDER)

    (claimed,) = await claim(store, at(62))

    assert (claimed.run, claimed.next_run_at) == (None, at(120))
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.next_run_at, stored.run_count, stored.version) == (at(120), 0, 1)
    assert [r.run_id for r in await store.history(task.id)] == [manual.run_id]


async def test_a_once_task_completes_when_claimed(store: Store, service: TaskService) -> None:
    task = await service.create(name="once", schedule=Once(at(60)), trigger="t")

    (claimed,) = await claim(store, at(60))

    assert claimed.event == "completed"
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at, stored.run_count) == ("completed", None, 1)


async def test_occurrences_due_while_nobody_claimed_are_recorded_missed(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)

    (claimed,) = await claim(store, at(185))

    assert claimed.run is not None and claimed.run.scheduled_for == at(180)
    (missed,) = claimed.finished
    assert (missed.outcome, missed.scheduled_for) == ("missed", at(60))
    assert missed.summary is not None and missed.summary.startswith("2 occurrence(s) missed")
    assert claimed.next_run_at == at(240)
    assert [r.outcome for r in await store.history(task.id, outcome="missed")] == ["missed"]


async def test_a_manual_run_leaves_the_schedule_and_the_failure_policy_alone(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service, options=TaskOptions(retries=2, pause_after_failures=1))

    run = await manual_run(store, task, at(30), at(60))
    done = await finish(store, run, "error", at(31))

    assert (run.trigger, run.scheduled_for, run.due_at, run.running) == (
        "manual",
        at(30),
        at(30),
        True,
    )
    assert (done.consequence.retry_at, done.consequence.event) == (None, None)
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at, stored.run_count) == ("active", at(60), 0)
    assert (stored.failure_streak, stored.last_outcome) == (0, "error")


async def test_a_manual_claim_reads_its_task_by_id_and_owner_in_the_same_transaction(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    lease = at(60)

    mine = await store.claim_manual(
        task.id, owner=task.owner, at=at(1), holder=HOLDER, lease_until=lease
    )
    anyone = await store.claim_manual(task.id, at=at(2), holder=HOLDER, lease_until=lease)
    theirs = await store.claim_manual(
        task.id, owner="mallory", at=at(3), holder=HOLDER, lease_until=lease
    )
    nobody = await store.claim_manual("no-such-task", at=at(4), holder=HOLDER, lease_until=lease)

    assert isinstance(mine, tuple) and isinstance(anyone, tuple)
    assert mine[0].id == anyone[0].id == task.id
    assert mine[0].model_dump() == (await store.get_task(task.id)).model_dump()  # type: ignore[union-attr]
    assert (mine[1].task_id, mine[1].trigger, mine[1].scheduled_for) == (task.id, "manual", at(1))
    assert (theirs, nobody) == (None, None)
    running = [r.run_id for r in await store.history(task.id)]
    assert sorted(running) == sorted([mine[1].run_id, anyone[1].run_id])  # no run for the others


async def test_manual_claims_of_one_instant_each_get_their_own_fire_as_stored(
    store: Store, service: TaskService
) -> None:
    # The record handed back is built beside the row written (on PostgreSQL, one
    # statement writes the row from the task it reads): they must be the same record.
    isolated = await every_minute(service)
    threaded = await every_minute(service, thread_id="t-7")
    lease = at(60)
    for task in (isolated, threaded):
        first = await store.claim_manual(task.id, at=at(1), holder=HOLDER, lease_until=lease)
        second = await store.claim_manual(
            task.id, owner=task.owner, at=at(1), holder=HOLDER, lease_until=lease
        )
        assert isinstance(first, tuple) and isinstance(second, tuple)
        assert (first[1].scheduled_for, second[1].scheduled_for) == (
            at(1),
            at(1) + timedelta(microseconds=1),
        )
        for _, record in (first, second):
            assert await store.get_run(record.run_id) == record
            expected = task.thread_id or isolated_thread_id(task.id, record.run_id)
            assert record.thread_id == expected
            assert (record.trigger, record.attempt, record.outcome) == ("manual", 1, None)
    assert len(await store.history(isolated.id)) == len(await store.history(threaded.id)) == 2


async def test_manual_claims_under_limits_count_the_runs_since_per_task_and_owner(
    store: Store, service: TaskService
) -> None:
    a = await every_minute(service, owner="alice", name="a")
    b = await every_minute(service, owner="alice", name="b")
    limits: dict[str, Any] = {"max_per_task": 2, "max_per_owner": 3, "since": at(0)}
    lease = at(120)

    def claim_of(task: Task, secs: float, **changed: Any) -> Any:
        kw = limits | changed
        return store.claim_manual(task.id, at=at(secs), holder=HOLDER, lease_until=lease, **kw)

    ran = [await claim_of(a, 1 + i) for i in range(3)]
    assert [type(r) for r in ran[:2]] == [tuple, tuple] and ran[2] == "task"
    assert isinstance(await claim_of(b, 5), tuple)
    assert await claim_of(b, 6) == "owner"
    assert isinstance(await claim_of(a, 7, since=at(7)), tuple)  # earlier runs not counted
    assert len(await store.history(a.id)) == 3 and len(await store.history(b.id)) == 1


# -- finishing fires ----------------------------------------------------------------


async def test_finish_records_an_outcome_exactly_once(store: Store, service: TaskService) -> None:
    task = await every_minute(service)
    run = await claim_one(store, at(60))

    first, again = await store.finish_runs(
        [Finish(run, "success", summary="done"), Finish(run, "error", error="late")],
        now=at(70),
        holder=HOLDER,
    )

    assert first is not None and again is None
    assert (first.record.outcome, first.record.finished_at) == ("success", at(70))
    (stored_run,) = await store.history(task.id)
    assert (stored_run.outcome, stored_run.summary) == ("success", "done")
    assert await store.finish_runs([Finish(run, "timeout")], now=at(80), holder=HOLDER) == [None]
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.last_outcome, stored.last_run_at) == ("success", at(60))
    assert await store.running_holders() == []


@pytest.mark.parametrize("outcome", ["success", "error", "interrupted"])
async def test_a_finish_tells_its_own_stored_outcome_from_anothers(
    store: Store, service: TaskService, outcome: Any
) -> None:
    # A finish sent again after its answer was lost finds the run finished: the stored
    # record tells whether that was its own write (then listeners still hear of it).
    await every_minute(service, options=TaskOptions(retries=1))
    run = await claim_one(store, at(60))
    mine = Finish(
        run,
        outcome,
        summary="s",
        error=None if outcome == "success" else "e",
        checkpoint_id="cp-1",
        started_at=at(61),
    )
    assert await store.finish_runs([mine], now=at(70), holder=HOLDER) != [None]
    assert await store.finish_runs([mine], now=at(75), holder=HOLDER) == [None]  # sent again, later
    stored = await store.get_run(run.run_id)
    assert stored is not None and mine.recorded_in(stored)
    for other in (
        Finish(run, outcome, summary="s", error="other", checkpoint_id="cp-1", started_at=at(61)),
        Finish(
            run, outcome, summary="s", error=mine.error, checkpoint_id="cp-2", started_at=at(61)
        ),
        Finish(
            run, "timeout", summary="s", error=mine.error, checkpoint_id="cp-1", started_at=at(61)
        ),
        Finish(run, outcome, summary="s", error=mine.error, checkpoint_id="cp-1"),
    ):
        assert not other.recorded_in(stored)
    # A lease sweep's interrupted is not ours.
    swept = next(c.run for c in await claim(store, at(120)) if c.run is not None)
    done = await store.interrupt_expired(now=at(300), reason="holder died")
    (sweep,) = [d.record for d in done if d.record.run_id == swept.run_id]
    assert not Finish(swept, "interrupted", error="stopped").recorded_in(sweep)


async def test_an_error_with_retries_left_waits_as_a_retry_row_until_due(
    store: Store, service: TaskService
) -> None:
    options = TaskOptions(retries=2, retry_backoff_secs=10)
    task = await every_minute(service, options=options)
    run = await claim_one(store, at(60))

    done = await finish(store, run, "error", at(61))

    assert done.consequence.retry_at == at(71)
    assert await store.pending_retries(task.id) == [(at(60), 2, at(71))]
    assert await store.due_times(until=at(100)) == [at(71)]
    assert await claim(store, at(70)) == []
    retry = await claim_one(store, at(73))
    assert (retry.attempt, retry.scheduled_for, retry.due_at) == (2, at(60), at(71))
    assert retry.lateness == timedelta(seconds=2)
    assert await store.pending_retries(task.id) == []
    assert await claim(store, at(73)) == []


async def test_an_interruption_finished_as_final_leaves_no_retry_and_the_streak_as_it_was(
    store: Store, service: TaskService
) -> None:
    # A client of the server stopped the turn's server run: recorded, not retried.
    options = TaskOptions(retries=2, retry_backoff_secs=10, pause_after_failures=1)
    task = await every_minute(service, options=options)
    run = await claim_one(store, at(60))

    (done,) = await store.finish_runs(
        [Finish(run, "interrupted", error="cancelled by a client", retry=False)],
        now=at(61),
        holder=HOLDER,
    )

    assert done is not None and done.consequence == RunConsequence(None, 0)
    assert done.record.outcome == "interrupted"
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at) == ("active", at(120))
    assert (stored.failure_streak, stored.last_outcome) == (0, "interrupted")


@pytest.mark.parametrize("due_tasks", [0, 1, 3])
async def test_a_due_retry_is_claimed_before_due_tasks_whatever_else_is_due(
    store: Store, service: TaskService, due_tasks: int
) -> None:
    options = TaskOptions(retries=1, retry_backoff_secs=10)
    failing = await every_minute(service, name="failing", options=options)
    await finish(store, await claim_one(store, at(60)), "error", at(61))  # retry due at 71
    others = [await every_minute(service, name=f"other {i}") for i in range(due_tasks)]

    first = await claim(store, at(75), limit=1)
    rest = await claim(store, at(75))

    assert [(c.task.id, c.run.attempt if c.run else None) for c in first] == [(failing.id, 2)]
    assert sorted(c.task.id for c in rest) == sorted(t.id for t in others)
    assert await store.pending_retries(failing.id) == []
    assert await claim(store, at(75)) == []


async def test_the_last_retry_failing_schedules_no_further_attempt(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service, options=TaskOptions(retries=1, retry_backoff_secs=10))
    await finish(store, await claim_one(store, at(60)), "error", at(61))

    done = await finish(store, await claim_one(store, at(71)), "timeout", at(72))

    assert done.consequence.retry_at is None
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.failure_streak, stored.last_outcome) == (1, "timeout")


async def retries_waiting_by_hand(
    store: Store, service: TaskService, column: str, raws: list[str]
) -> tuple[Task, list[tuple[datetime, int, datetime]]]:
    """A task (2 retries, 600 s apart) whose first fires, one per SQL literal of ``raws``,
    failed, each retry waiting with ``column`` set to its literal behind the store's
    back: the task and its retries as they were before (scheduled_for, attempt,
    due_at). The retry of the nth occurrence (at(60 n), failed at at(60 n + 1)) is due
    at(60 n + 601)."""
    options = TaskOptions(retries=2, retry_backoff_secs=600, pause_after_failures=None)
    task = await every_minute(service, options=options)
    for n in range(1, len(raws) + 1):  # a failed first attempt per occurrence: a retry each
        await finish(store, await claim_one(store, at(60 * n)), "error", at(60 * n + 1))
    retries = await store.pending_retries(task.id)
    assert [attempt for _, attempt, _ in retries] == [2] * len(raws)

    def by_hand(conn: Connection) -> None:
        for (scheduled_for, _, _), raw in zip(retries, raws, strict=True):
            held = retries_table.c.scheduled_for == scheduled_for  # as the store writes it
            written: dict[str, Any] = {column: literal_column(raw)}
            conn.execute(update(retries_table).where(held).values(written))

    await store.transaction(by_hand)
    return task, retries


async def retries_by_hand(
    store: Store, service: TaskService, column: str, raws: list[str]
) -> tuple[Task, list[tuple[datetime, int, datetime]], list[TaskRunRecord]]:
    """:func:`retries_waiting_by_hand`, then claimed once all are due: the task, its
    retries as they were before, and the runs claimed."""
    task, retries = await retries_waiting_by_hand(store, service, column, raws)
    last = retries[-1][2]  # every retry due (and the task's latest occurrence)
    return task, retries, [c.run for c in await claim(store, last) if c.run is not None]


def retried(claimed: list[Claimed]) -> list[TaskRunRecord]:
    """The retries among the fires ``claimed`` (attempts after the first)."""
    return [c.run for c in claimed if c.run is not None and c.run.attempt > 1]


async def test_a_retry_whose_attempt_cannot_be_read_runs_once_as_its_last_attempt(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # A waiting retry's attempt written by hand. Its claim handed the value on as read:
    # text or a real failed its finish (SQLite), so the fire was never recorded by its
    # runtime, and 0 or -1 was retried from there, more often than the task allows.
    # Now it is claimed as its fire's last attempt, as the sweep reads such a running
    # row: it runs once, its outcome counts, and no retry follows.
    raws = _UNREADABLE_ATTEMPTS[store.dialect]
    task, retries, claimed = await retries_by_hand(store, service, "attempt", raws)
    last = retries[-1][2]
    retried = [r for r in claimed if r.scheduled_for <= at(60 * len(raws))]
    assert sorted(r.scheduled_for for r in retried) == [f for f, _, _ in retries]
    assert {r.attempt for r in retried} == {LAST_ATTEMPT}
    assert "its stored attempt cannot be read" in caplog.text
    done = await store.finish_runs(
        [Finish(r, "error", error="boom") for r in retried], now=last, holder=HOLDER
    )

    assert len(done) == len(raws)
    assert all(d is not None and d.consequence.retry_at is None for d in done)
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.last_outcome, stored.failure_streak) == ("error", len(raws))
    history = {(r.scheduled_for, r.attempt): r.outcome for r in await store.history(task.id)}
    assert all(history[(r.scheduled_for, LAST_ATTEMPT)] == "error" for r in retried)


_OCCURRENCES_BY_HAND = {"sqlite": ["'no time'", "12345"], "postgresql": ["'-infinity'"]}
"""Per backend, a retry's occurrence written by hand that reads as no time it holds."""


async def test_a_retry_whose_occurrence_cannot_be_read_is_dropped_unrun(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # A waiting retry's scheduled_for written by hand reads as year 1. Its claim ran it
    # for that occurrence, then dropped the retry of year 1, which is not the row: kept,
    # every claim found it due again, took the locked path for it, and ran nothing.
    # Now it is dropped unrun (a fire of no known occurrence), as the sweep ends such a
    # running fire without a retry; the task fires on.
    raws = _OCCURRENCES_BY_HAND[store.dialect]
    task, retries, runs = await retries_by_hand(store, service, "scheduled_for", raws)

    assert [(r.scheduled_for > at(60 * len(raws)), r.attempt) for r in runs] == [(True, 1)]
    assert await store.pending_retries(task.id) == []
    assert caplog.text.count("its stored scheduled_for cannot be read; dropped") == len(raws)
    assert await claim(store, retries[-1][2]) == []


def _in_other_forms(*moments: datetime) -> list[str]:
    """SQL literals of ``moments`` as SQLite text in other forms than the store writes
    that read as the same times: Python's isoformat ("T"), then with an offset, by
    turns."""
    offset = timezone(timedelta(hours=5))
    forms = [
        (moment.astimezone(offset) if n % 2 else moment.replace(tzinfo=None)).isoformat()
        for n, moment in enumerate(moments)
    ]
    return [f"'{form}'" for form in forms]


async def test_a_retry_whose_occurrence_is_in_another_form_runs_once_and_is_dropped(
    store: Store, service: TaskService
) -> None:
    # A waiting retry's scheduled_for written by hand as text in another form that
    # reads as its time ("T", an offset). Its claim ran it, then dropped the row of that
    # time in the store's form, which is not the row: kept, every claim found it due
    # again and took the locked path for it, the rows taking the room of the retries
    # due after them; once its run's record was trimmed, the next claim ran it again.
    # Now the claim drops the row as it holds it; one in the store's form is as before.
    if store.dialect != "sqlite":
        pytest.skip("only SQLite keeps a time as text in another form")
    stored = f"'{at(180).replace(tzinfo=None).isoformat(' ', 'microseconds')}'"
    raws = [*_in_other_forms(at(60), at(120)), stored]
    task, retries, runs = await retries_by_hand(store, service, "scheduled_for", raws)
    last = retries[-1][2]

    waited = [(f, attempt) for f, attempt, _ in retries]
    assert sorted((r.scheduled_for, r.attempt) for r in runs if r.attempt > 1) == waited
    assert await store.pending_retries(task.id) == []
    await store.finish_runs([Finish(r, "success") for r in runs], now=last, holder=HOLDER)
    await store.trim_history([task.id], keep=0)  # the records its claims ran into
    assert await store.history(task.id) == []
    assert retried(await claim(store, last + timedelta(seconds=1))) == []


async def test_a_retry_in_another_form_beside_its_own_in_the_stores_form_runs_once(
    store: Store, service: TaskService
) -> None:
    # The same retry twice (written by hand): its row with scheduled_for in another
    # form beside the row in the store's form, one key to SQLite's compare as text.
    # Each claim dropped the one in the store's form: the other stayed due for ever.
    # Now each is dropped as it holds it, and the fire runs once.
    if store.dialect != "sqlite":
        pytest.skip("only SQLite keeps a time as text in another form")
    task, retries = await retries_waiting_by_hand(
        store, service, "scheduled_for", _in_other_forms(at(60))
    )
    ((scheduled_for, attempt, due_at),) = retries
    row = {"task_id": task.id, "scheduled_for": scheduled_for, "attempt": 2, "due_at": due_at}
    await store.transaction(lambda conn: conn.execute(insert(retries_table), row))
    assert await store.pending_retries(task.id) == retries * 2

    runs = retried(await claim(store, due_at))

    assert [(r.scheduled_for, r.attempt) for r in runs] == [(scheduled_for, attempt)]
    assert await store.pending_retries(task.id) == []
    assert retried(await claim(store, due_at + timedelta(seconds=1))) == []


_DUE_TIMES_BY_HAND = {
    # Text that sorts after every date; February 30th of a year to come (due with
    # March 1st's, a time nobody set).
    "sqlite": ["'zzz'", "'2031-02-30 12:00:00.000000'"],
    "postgresql": ["'infinity'", "'10000-01-01 00:00:00+00'"],
}
"""Per backend, a retry's due time written by hand that reads as no time and that no
claim finds due (for years, or ever)."""


async def test_a_retry_whose_due_time_cannot_be_read_is_made_due_by_the_mend(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # A waiting retry's due_at written by hand, read by the claims on the due_at index:
    # never due, so its attempt was never run, and the row waited for ever. The mend
    # finds it by what it holds and makes it due now, logged: run late, not never.
    raws = _DUE_TIMES_BY_HAND[store.dialect]
    task, retries = await retries_waiting_by_hand(store, service, "due_at", raws)
    now = retries[-1][2] + timedelta(days=1)
    assert retried(await claim(store, now)) == []  # a claim alone never finds them due

    assert await store.mend_retry_times(now=now) == [now]

    said = "its stored due_at cannot be read; due now"
    assert caplog.text.count(said) == len(raws)
    assert f"retry of task {task.id} (attempt 2)" in caplog.text
    assert await store.pending_retries(task.id) == [(f, 2, now) for f, _, _ in retries]
    runs = retried(await claim(store, now))
    assert sorted((r.scheduled_for, r.attempt, r.due_at) for r in runs) == [
        (f, 2, now) for f, _, _ in retries
    ]
    assert await store.pending_retries(task.id) == []
    assert await store.mend_retry_times(now=now) == []
    assert caplog.text.count(said) == len(raws)  # said once each


async def test_a_retry_due_at_minus_infinity_runs_at_once_recorded_due_then(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # -infinity (PostgreSQL) or a number (SQLite), by hand, reads as the earliest time:
    # the next claim finds it due and runs it, as the mend would have made it due now.
    # Its record said it was due in year 1 (late by 2,000 years); now it says the claim's
    # time, logged, as the mend does.
    raw = "'-infinity'" if store.dialect == "postgresql" else "12345"
    task, retries = await retries_waiting_by_hand(store, service, "due_at", [raw, raw])
    runs = retried(await claim(store, at(70)))
    assert sorted((r.scheduled_for, r.attempt, r.due_at) for r in runs) == [
        (f, 2, at(70)) for f, _, _ in retries
    ]
    said = f"retry of task {task.id} (attempt 2): its stored due_at cannot be read; due now"
    assert caplog.text.count(said) == 2


async def test_a_retry_due_time_in_another_form_falls_due_at_its_time(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite compares times as text: a due time written by hand in Python's isoformat
    # ("T", an offset) sorted after the store's own times of its day, so the retry fell
    # due up to a day late (hours, for an offset). The mend writes the time it says in
    # the store's form: it falls due at that time. (PostgreSQL keeps times, not text.)
    if store.dialect != "sqlite":
        pytest.skip("only SQLite keeps a time as text in another form")
    dues = [at(60 * n + 601) for n in (1, 2)]
    raws = [
        f"'{dues[0].replace(tzinfo=None).isoformat()}'",  # 'T'
        f"'{dues[1].astimezone(timezone(timedelta(hours=5))).isoformat(' ')}'",  # +05:00
    ]
    task, retries = await retries_waiting_by_hand(store, service, "due_at", raws)
    assert [due for _, _, due in retries] == dues
    assert retried(await claim(store, dues[-1])) == []  # due, yet not found due

    assert await store.mend_retry_times(now=at(300)) == dues

    assert "cannot be read" not in caplog.text
    assert await store.pending_retries(task.id) == retries
    assert retried(await claim(store, dues[0] - timedelta(seconds=1))) == []
    (first,) = retried(await claim(store, dues[0]))
    (second,) = retried(await claim(store, dues[1]))
    assert [(r.scheduled_for, r.attempt, r.due_at) for r in (first, second)] == retries


async def test_the_mend_leaves_a_readable_retry_as_it_is(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service, options=TaskOptions(retries=1, retry_backoff_secs=600))
    await finish(store, await claim_one(store, at(60)), "error", at(61))
    waiting = await store.pending_retries(task.id)

    assert await store.mend_retry_times(now=at(120)) == []

    assert await store.pending_retries(task.id) == waiting == [(at(60), 2, at(661))]
    assert retried(await claim(store, at(660))) == []
    assert [r.due_at for r in retried(await claim(store, at(661)))] == [at(661)]


async def test_saving_with_cancel_retries_drops_waiting_retries(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    await finish(store, await claim_one(store, at(60)), "error", at(61))
    current = await store.get_task(task.id)
    assert current is not None

    kept = current.model_copy(update={"name": "renamed"})
    assert (
        await store.save_task(kept, expected_version=current.version, columns=["name"]) == "saved"
    )
    assert len(await store.pending_retries(task.id)) == 1
    dropped = current.model_copy(update={"name": "renamed again"})
    result = await store.save_task(
        dropped, expected_version=current.version + 1, columns=["name"], cancel_retries=True
    )

    assert result == "saved"
    assert await store.pending_retries(task.id) == []
    assert await claim(store, at(100)) == []


async def test_delete_tells_the_runs_in_flight_it_leaves_to_finish(
    store: Store, service: TaskService
) -> None:
    # A delete stops no turn under way: the tools' answer says so, from this count, read
    # in the delete's own transaction (the answer made from it is kept with the delete).
    task = await every_minute(service)
    await claim_one(store, at(60))  # its turn is under way
    told: list[int] = []

    def answer(running: int) -> CallAnswer:
        told.append(running)
        return CallAnswer(
            id="call", owner=task.owner, tool="delete_task", status="success", text="ok",
            created_at=at(61),
        )  # fmt: skip

    assert await store.delete_task(task.id, answer=answer)
    assert told == [1]
    assert await store.get_call_answer("call") is not None
    assert await store.history(task.id) == []
    assert not await store.delete_task(task.id, answer=answer)  # not called again
    assert told == [1]


async def test_delete_drops_the_task_its_history_and_its_retries(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    await finish(store, await claim_one(store, at(60)), "error", at(61))
    told: list[int] = []

    assert await store.delete_task(task.id, answer=told.append)

    assert told == [0]  # a finished run is no run in flight
    assert await store.get_task(task.id) is None
    assert await store.history(task.id) == []
    assert await store.pending_retries(task.id) == []
    assert await claim(store, at(100)) == []


async def test_consecutive_failed_fires_pause_the_task(store: Store, service: TaskService) -> None:
    options = TaskOptions(retries=0, pause_after_failures=2)
    task = await every_minute(service, options=options)

    first = await finish(store, await claim_one(store, at(60)), "error", at(61))
    second = await finish(store, await claim_one(store, at(120)), "error", at(121))

    assert (first.consequence.failure_streak, first.consequence.event) == (1, None)
    assert (second.consequence.failure_streak, second.consequence.event) == (2, "auto_paused")
    assert "paused after 2 consecutive failed fires" in second.consequence.reason
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at, stored.failure_streak) == ("paused", None, 2)
    assert await claim(store, at(180)) == []


async def test_failed_fires_finished_as_not_counted_leave_the_streak_as_it_was(
    store: Store, service: TaskService
) -> None:
    # The LangGraph server could not be reached: recorded error, but neither one more
    # failure in a row (two would pause the task here) nor a reset.
    options = TaskOptions(retries=0, pause_after_failures=2)
    task = await every_minute(service, options=options)
    await finish(store, await claim_one(store, at(60)), "error", at(61))

    outages = []
    for minute in (2, 3):
        run = await claim_one(store, at(60 * minute))
        (done,) = await store.finish_runs(
            [Finish(run, "error", error="unreachable", counted=False)],
            now=at(60 * minute + 1),
            holder=HOLDER,
        )
        assert done is not None
        outages.append(done)

    assert [d.consequence for d in outages] == [RunConsequence(None, 1)] * 2
    assert [d.record.outcome for d in outages] == ["error", "error"]
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at) == ("active", at(240))
    assert (stored.failure_streak, stored.last_outcome) == (1, "error")
    assert await store.pending_retries(task.id) == []


async def test_a_success_resets_the_failure_streak(store: Store, service: TaskService) -> None:
    task = await every_minute(service, options=TaskOptions(retries=0))
    await finish(store, await claim_one(store, at(60)), "error", at(61))

    await finish(store, await claim_one(store, at(120)), "success", at(121))

    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.failure_streak, stored.last_outcome) == (0, "success")


async def test_a_streak_broken_by_a_success_counts_again_from_zero(
    store: Store, service: TaskService
) -> None:
    # The success is recorded without reading the task; the failures after it read the
    # task (the store's kept form of it included) and must see the streak it reset.
    task = await every_minute(service, options=TaskOptions(retries=0, pause_after_failures=2))
    await finish(store, await claim_one(store, at(60)), "error", at(61))
    manual = await manual_run(store, task, at(90), at(150))
    (ran,) = await store.finish_runs([Finish(manual, "success")], now=at(91), holder=HOLDER)
    reset = await finish(store, await claim_one(store, at(120)), "success", at(121))
    again = await finish(store, await claim_one(store, at(180)), "error", at(181))

    assert ran is not None and ran.consequence.failure_streak == 1  # manual: left alone
    assert (reset.consequence.failure_streak, reset.consequence.event) == (0, None)
    assert (again.consequence.failure_streak, again.consequence.event) == (1, None)
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.failure_streak, stored.last_outcome) == ("active", 1, "error")
    assert stored.last_run_at == at(180)


async def test_a_success_of_a_deleted_task_is_recorded_without_its_task(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    run = await claim_one(store, at(60))
    await store.transaction(
        lambda conn: conn.execute(text("DELETE FROM lgs_tasks WHERE id = :id"), {"id": task.id})
    )

    (done,) = await store.finish_runs(
        [Finish(run, "success", summary="ok")], now=at(61), holder=HOLDER
    )

    assert done is not None
    assert (done.record.outcome, done.consequence.failure_streak) == ("success", 0)
    (stored_run,) = await store.history(task.id)
    assert (stored_run.outcome, stored_run.summary, stored_run.running) == ("success", "ok", False)
    assert await store.get_task(task.id) is None


# -- leases -------------------------------------------------------------------------


async def test_an_expired_lease_is_recorded_interrupted_and_retried(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service, options=TaskOptions(retries=1, retry_backoff_secs=10))
    run = await claim_one(store, at(60))  # lease until at(90)

    assert await store.interrupt_expired(now=at(89), reason="holder died") == []
    (done,) = await store.interrupt_expired(now=at(91), reason="holder died")

    assert (done.record.run_id, done.record.outcome) == (run.run_id, "interrupted")
    assert done.record.error == "holder died"
    assert done.consequence.retry_at == at(101)
    assert await store.pending_retries(task.id) == [(at(60), 2, at(101))]
    assert await store.running_holders() == []
    assert await store.interrupt_expired(now=at(200), reason="again") == []


async def test_a_lapsed_lease_its_holder_still_runs_is_left_to_it(
    store: Store, service: TaskService
) -> None:
    # The holder's loop stalled past the lease: its own sweep must not take its live turn
    # for dead; anyone else's sweep records it as any lapsed claim.
    await every_minute(service)
    run = await claim_one(store, at(60))  # lease until at(90)
    alive = [run.run_id]

    swept = await store.interrupt_expired(now=at(91), reason="x", holder=HOLDER, alive=alive)
    assert swept == []
    (done,) = await store.interrupt_expired(
        now=at(91), reason="lapsed", holder="replica-b", alive=alive
    )
    assert (done.record.run_id, done.record.outcome) == (run.run_id, "interrupted")


_UNREADABLE_LEASES = {
    "sqlite": ["'no time'", "'9999-02-30 09:00:00.000000'"],  # text, and February 30th
    "postgresql": ["'infinity'", "'10000-01-01 00:00:00+00'"],
}
"""Per backend, leases written by hand that no time Python holds can be read from."""


async def test_a_running_fire_whose_lease_cannot_be_read_is_swept_as_lapsed(
    store: Store, service: TaskService
) -> None:
    # Its lease never read as past: a holder that died on another host (not known to
    # be dead here) left its fire running forever, neither taken over nor interrupted.

    async def lease(run: TaskRunRecord, raw: str) -> TaskRunRecord:
        statement = text(f"UPDATE lgs_runs SET lease_expires_at = {raw} WHERE run_id = :r")
        await store.transaction(lambda conn: conn.execute(statement, {"r": run.run_id}))
        return run

    await every_minute(service, options=TaskOptions(retries=0))
    runs = [
        await lease(await claim_one(store, at(60 * n)), raw)
        for n, raw in enumerate(_UNREADABLE_LEASES[store.dialect], start=1)
    ]
    good = await claim_one(store, at(180))  # its lease runs to at(210)

    assert [r.run_id for r in await store.expired_server_runs(now=at(181))] == []  # none named
    assert await store.take_over_run(
        runs[0].run_id, now=at(181), holder="replica-b", lease_until=at(240)
    )
    swept = await store.interrupt_expired(now=at(181), reason="holder died")

    assert sorted(d.record.run_id for d in swept) == [runs[1].run_id]
    assert [(d.record.outcome, d.record.error) for d in swept] == [
        ("interrupted", "holder died (its stored lease could not be read)")
    ]
    assert sorted(await store.running_holders()) == sorted({"replica-b", HOLDER})
    stored = {r.run_id: r.outcome for r in await store.recent_runs()}
    assert stored == {runs[0].run_id: None, runs[1].run_id: "interrupted", good.run_id: None}


_UNREADABLE_ATTEMPTS = {
    "sqlite": ["'first'", "2.5", "0", "-1"],  # SQLite keeps text and reals in any column
    "postgresql": ["0", "-1"],  # its integer column refuses what is no whole number
}
"""Per backend, attempts written by hand that no fire has (attempts count from 1)."""


async def test_a_running_fire_whose_attempt_cannot_be_read_is_swept_as_its_last_attempt(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture
) -> None:
    # The sweep used to close such a row without a word (no record to tell, the task's
    # last outcome untouched), and PostgreSQL read an attempt of 0 or -1 as valid, whose
    # interruption was retried. Now each ends as any swept fire, once, as its last
    # attempt (the attempts before it are unknown): no retry; the listings leave it out.
    task = await every_minute(service, options=TaskOptions(retries=2))
    raws = _UNREADABLE_ATTEMPTS[store.dialect]
    bad = [await claim_one(store, at(60 * n)) for n in range(1, len(raws) + 1)]

    await write_runs(
        store, "attempt", {run.run_id: raw for run, raw in zip(bad, raws, strict=True)}
    )
    await store.note_server_run(bad[0].run_id, thread_id="st", server_run_id="sr")
    good = await claim_one(store, at(60 * len(bad) + 60))  # leased past the sweep

    swept = await store.interrupt_expired(now=at(60 * len(bad) + 31), reason="holder died")

    assert sorted(d.record.run_id for d in swept) == sorted(r.run_id for r in bad)
    said = "holder died (its stored attempt could not be read: taken as its last, not retried)"
    for done in swept:
        assert (done.record.outcome, done.record.error) == ("interrupted", said)
        assert done.record.attempt == LAST_ATTEMPT
        assert done.consequence.retry_at is None
    (named,) = [d.record for d in swept if d.record.run_id == bad[0].run_id]
    assert (named.server_thread_id, named.server_run_id) == ("st", "sr")  # to be stopped
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None and stored.last_outcome == "interrupted"
    assert await store.interrupt_expired(now=at(60 * len(bad) + 31), reason="again") == []
    outcomes = text("SELECT run_id, outcome FROM lgs_runs")
    ended = await store.transaction(
        lambda conn: {run_id: outcome for run_id, outcome in conn.execute(outcomes)}
    )
    assert ended == {r.run_id: "interrupted" for r in bad} | {good.run_id: None}
    assert [r.run_id for r in await store.history(task.id)] == [good.run_id]
    assert [r.run_id for r in await store.recent_runs()] == [good.run_id]
    assert await store.get_run(bad[0].run_id) is None
    assert f"run {bad[0].run_id}: its stored row cannot be read" in caplog.text


_UNREADABLE_TIMES = {
    "sqlite": ["'no time'", "'9999-02-30 09:00:00.000000'"],  # text, and February 30th
    "postgresql": ["'infinity'", "'-infinity'", "'0044-03-15 00:00:00+00 BC'"],
}
"""Per backend, times written by hand that no time Python holds can be read from."""


@pytest.mark.parametrize("column", ["scheduled_for", "started_at"])
async def test_a_running_fire_whose_time_cannot_be_read_is_swept_without_a_retry(
    store: Store, service: TaskService, column: str
) -> None:
    # Such a time reads as the earliest (or latest) time. The sweep used to retry the
    # fire with that as its occurrence (a retry row of year 1), and to make it its
    # task's last run. Now it ends once, interrupted, saying which time, not retried;
    # the task keeps its last run time where the fire's start cannot be read.
    task = await every_minute(service, options=TaskOptions(retries=2))
    first = await claim_one(store, at(60))
    await finish(store, first, "success", at(61))
    raws = _UNREADABLE_TIMES[store.dialect]
    bad = [await claim_one(store, at(60 * n)) for n in range(2, len(raws) + 2)]

    await write_runs(store, column, {run.run_id: raw for run, raw in zip(bad, raws, strict=True)})
    await store.note_server_run(bad[0].run_id, thread_id="st", server_run_id="sr")
    # Not followed (timed from a start, retried for an occurrence, neither known): the
    # sweep ends it, naming its server run, which is then stopped.
    assert await store.expired_server_runs(now=at(60 * len(raws) + 91)) == []
    swept = await store.interrupt_expired(now=at(60 * len(raws) + 91), reason="holder died")

    assert sorted(d.record.run_id for d in swept) == sorted(r.run_id for r in bad)
    said = f"holder died (its stored {column} could not be read: not retried)"
    for done in swept:
        assert (done.record.outcome, done.record.error) == ("interrupted", said)
        assert done.record.attempt == 1
        assert done.consequence.retry_at is None
    (named,) = [d.record for d in swept if d.record.run_id == bad[0].run_id]
    assert (named.server_thread_id, named.server_run_id) == ("st", "sr")
    assert await store.pending_retries(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None and stored.problem is None
    assert (stored.state, stored.last_outcome) == ("active", "interrupted")
    # Its last run: when a fire began, as long as that can be read.
    known = [first.started_at] if column == "started_at" else [r.started_at for r in bad]
    assert stored.last_run_at in known
    assert await store.interrupt_expired(now=at(60 * len(raws) + 91), reason="again") == []
    assert [c.run.task_id for c in await claim(store, at(3600)) if c.run] == [task.id]


async def test_a_running_row_naming_no_readable_task_is_still_closed_by_the_sweep(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite keeps a blob in any column: a task id that is no text names no task whose
    # outcome or listeners could be told. The sweep still records it interrupted,
    # saying so, so that the fire ends; the listings go on without it.
    store = open_store(sqlite_url)
    await store.setup()
    try:
        task = await every_minute(TaskService(store, clock=FakeClock(T0)))
        bad = await claim_one(store, at(60))
        statement = text("UPDATE lgs_runs SET task_id = x'ff' WHERE run_id = :r")
        await store.transaction(lambda conn: conn.execute(statement, {"r": bad.run_id}))
        good = await claim_one(store, at(120))

        assert await store.interrupt_expired(now=at(91), reason="holder died") == []
        assert await store.running_holders() == [HOLDER]  # the other fire, still leased
        raw = text("SELECT outcome, error FROM lgs_runs WHERE run_id = :r")
        closed = await store.transaction(lambda conn: conn.execute(raw, {"r": bad.run_id}).one())
        assert tuple(closed) == ("interrupted", "holder died (its stored record could not be read)")
        assert [r.run_id for r in await store.history(task.id)] == [good.run_id]
        assert [r.run_id for r in await store.recent_runs()] == [good.run_id]
        assert await store.get_run(bad.run_id) is None
        assert f"run {bad.run_id}: its stored row cannot be read" in caplog.text
    finally:
        await store.close()


async def test_a_named_server_run_stays_on_the_record_a_sweep_interrupts(
    store: Store, service: TaskService
) -> None:
    await every_minute(service)
    run = await claim_one(store, at(60))  # lease until at(90)
    await store.note_server_run(run.run_id, thread_id="st", server_run_id="sr")
    running = await store.get_run(run.run_id)
    assert running is not None and running.outcome is None
    assert (running.server_thread_id, running.server_run_id) == ("st", "sr")

    (done,) = await store.interrupt_expired(now=at(91), reason="holder died")

    assert (done.record.server_thread_id, done.record.server_run_id) == ("st", "sr")
    assert await store.get_run(run.run_id) == done.record
    # A finished record is not renamed.
    await store.note_server_run(run.run_id, thread_id="other", server_run_id="other")
    assert await store.get_run(run.run_id) == done.record


async def test_a_renewed_lease_is_not_interrupted(store: Store, service: TaskService) -> None:
    await every_minute(service)
    run = await claim_one(store, at(60))

    await store.renew_leases([run.run_id], until=at(150), holder=HOLDER)

    assert await store.interrupt_expired(now=at(120), reason="expired") == []
    (dead,) = await store.interrupt_expired(now=at(120), reason="dead", holders=[HOLDER])
    assert dead.record.outcome == "interrupted"


async def test_a_lapsed_claim_is_taken_over_once_by_the_rule_of_the_sweep(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service, options=TaskOptions(retries=1))
    run = await claim_one(store, at(60))  # lease until at(90)

    async def take(now: int, holder: str, *dead: str) -> bool:
        return await store.take_over_run(
            run.run_id, now=at(now), holders=dead, holder=holder, lease_until=at(now + 60)
        )

    assert not await take(89, "replica-b")  # its lease still runs
    assert await take(89, "replica-b", HOLDER)  # its holder is known to be dead
    assert await store.running_holders() == ["replica-b"]
    assert not await take(91, "replica-c", HOLDER)  # the taker's lease runs (to at(149))
    assert await store.interrupt_expired(now=at(91), reason="dead", holders=[HOLDER]) == []
    assert await take(150, "replica-c")  # the taker stopped renewing in turn
    assert await store.running_holders() == ["replica-c"]
    assert await store.renew_leases([run.run_id], until=at(300), holder="replica-c") == []
    assert await store.interrupt_expired(now=at(250), reason="expired") == []

    done = await finish(store, run, "success", at(260), holder="replica-c")
    assert done is not None and done.record.outcome == "success"
    assert not await take(400, "replica-d", "replica-c")  # finished: nothing to take
    assert await store.pending_retries(task.id) == []
    (stored,) = await store.history(task.id)
    assert (stored.run_id, stored.outcome) == (run.run_id, "success")


async def test_only_the_holder_renews_or_finishes_a_claim_taken_over_from_it(
    store: Store, service: TaskService
) -> None:
    # A holder that stalled past its lease resumes after another took its claim over:
    # its renewal used to extend the taker's lease and its finish to write the record.
    # Now both are the taker's alone, and the renewal tells the first it lost the fire.
    await every_minute(service, options=TaskOptions(retries=1))
    run = await claim_one(store, at(60))  # lease until at(90)
    other = await claim_one(store, at(120))  # a fire HOLDER still holds
    assert await store.take_over_run(
        run.run_id, now=at(91), holder="replica-b", lease_until=at(130)
    )

    lost = await store.renew_leases([run.run_id, other.run_id], until=at(500), holder=HOLDER)

    assert lost == [run.run_id]
    # The taker's lease was not extended: it lapses when the taker stops renewing.
    assert await store.take_over_run(
        run.run_id, now=at(131), holder="replica-c", lease_until=at(200)
    )
    assert await finish(store, run, "success", at(140)) is None
    assert await finish(store, run, "error", at(141), holder="replica-b") is None
    assert await store.get_held_run(run.run_id) == (await store.get_run(run.run_id), "replica-c")
    done = await finish(store, run, "timeout", at(150), holder="replica-c")
    assert done is not None and done.record.outcome == "timeout"
    assert await store.get_held_run(run.run_id) == (done.record, "replica-c")
    # Finished: no longer anyone's to renew (a sweep's interrupted alike).
    assert await store.renew_leases([run.run_id], until=at(500), holder="replica-c") == [run.run_id]
    (swept,) = await store.interrupt_expired(now=at(700), reason="holder died")
    assert swept.record.run_id == other.run_id
    assert await store.renew_leases([other.run_id], until=at(800), holder=HOLDER) == [other.run_id]


@pytest.mark.parametrize("backend", ["sqlite_file", "postgres"])
async def test_runtimes_taking_over_and_sweeping_lapsed_claims_at_once_each_get_one_once(
    request: pytest.FixtureRequest, tmp_path: Any, clock: FakeClock, backend: str
) -> None:
    # Two stores on one database, as two replicas recovering the same dead holder at
    # once: each lapsed fire is taken over by exactly one of them, or swept by a third.
    if backend == "sqlite_file":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    first, second, third = open_store(url), open_store(url), open_store(url)
    await first.setup()
    await second.setup()
    await third.setup()
    try:
        service = TaskService(first, clock=clock)
        for i in range(12):
            await every_minute(service, name=f"t{i}", options=TaskOptions(retries=0))
        runs = [c.run for c in await claim(first, at(60), limit=20) if c.run is not None]
        ids = [r.run_id for r in runs]

        async def take_all(store: Store, holder: str) -> list[bool]:
            return list(
                await asyncio.gather(
                    *(
                        store.take_over_run(
                            run_id,
                            now=at(61),
                            holders=[HOLDER],
                            holder=holder,
                            lease_until=at(120),
                        )
                        for run_id in ids
                    )
                )
            )

        mine, theirs, swept = await asyncio.gather(
            take_all(first, "replica-b"),
            take_all(second, "replica-c"),
            third.interrupt_expired(now=at(61), reason="dead", holders=[HOLDER]),
        )
        stored = {r: await first.get_run(r) for r in ids}
    finally:
        await first.close()
        await second.close()
        await third.close()

    assert len(ids) == 12
    interrupted = {f.record.run_id for f in swept}
    for i, run_id in enumerate(ids):
        assert [mine[i], theirs[i], run_id in interrupted].count(True) == 1, run_id
        record = stored[run_id]
        assert record is not None
        assert record.outcome == ("interrupted" if run_id in interrupted else None)


# -- the window ---------------------------------------------------------------------


async def test_due_times_are_the_distinct_instants_within_the_window(
    store: Store, service: TaskService
) -> None:
    await service.create(name="soon", schedule=Once(at(30)), trigger="t")
    await every_minute(service, name="a")
    await every_minute(service, name="b")
    await service.create(name="later", schedule=Once(at(600)), trigger="t")
    await every_minute(service, name="paused", paused=True)

    assert await store.due_times(until=at(120)) == [at(30), at(60)]
    assert await store.due_times(until=at(60)) == [at(30)]
    assert await store.due_times(until=at(601)) == [at(30), at(60), at(600)]


async def test_changed_since_reports_tasks_written_after_the_instant(
    store: Store, service: TaskService, clock: FakeClock
) -> None:
    before = await every_minute(service, name="before")
    await clock.advance(10)
    after = await every_minute(service, name="after")

    changes = await store.changed_since(at(5))

    assert [(c.task_id, c.state, when) for c, when in changes] == [(after.id, "active", at(10))]
    assert before.id not in {c.task_id for c, _ in await store.changed_since(at(10))}


async def test_the_change_feed_keeps_no_change_it_told_through_its_nap(
    store: Store, service: TaskService
) -> None:
    # A burst of new tasks is read as as many changes: kept until the next poll, they
    # would live on while the burst's turns run, walked by every full collection.
    tasks = [await every_minute(service, name=f"t{i}") for i in range(3)]
    ids = {t.id for t in tasks}
    heard: list[str] = []
    alive: list[int] = []
    napped = asyncio.Event()

    async def on_change(change: TaskChange) -> None:
        heard.append(change.task_id)

    async def sleep(secs: float) -> None:
        if heard:  # the nap after the poll that told them
            gc.collect()
            # This feed's changes only: a change of an earlier test in this process
            # that its objects still hold is none of this feed's keeping.
            kept = [o for o in gc.get_objects() if isinstance(o, TaskChange)]
            alive.append(sum(o.task_id in ids for o in kept))
            napped.set()
            await asyncio.Event().wait()

    feed = asyncio.ensure_future(
        store.follow_changes(
            on_change, since=T0 - timedelta(minutes=1), poll_secs=1, sleep=sleep, now=lambda: T0
        )
    )
    try:
        await asyncio.wait_for(napped.wait(), 60)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
    assert sorted(heard) == sorted(ids)
    assert alive == [0]


async def test_every_task_write_is_announced_to_listeners_on_postgres(
    postgres_url: str, clock: FakeClock
) -> None:
    import psycopg

    from langgraph_scheduler.store_postgres import TASK_CHANGES_CHANNEL

    store = open_store(postgres_url)
    await store.setup()
    service = TaskService(store, clock=clock)
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {TASK_CHANGES_CHANNEL}")
            plain = await every_minute(service, name="plain")
            fixed = await every_minute(service, name="fixed id", task_id="fixed")
            capped = await every_minute(service, name="within a quota", max_active=5)
            await service.pause(plain.id)
            await service.delete(fixed.id)
            heard = [n.payload async for n in conn.notifies(timeout=5.0, stop_after=5)]
    finally:
        await store.close()

    # Creates on every insert path (plain, fixed id, quota-checked), a save and a delete.
    assert heard == [plain.id, fixed.id, capped.id, plain.id, fixed.id]


# -- a usual claim: read, then written fire by fire -----------------------------------


def _change_after_due_read(store: Store, task_id: str, **values: Any) -> None:
    """Have the task ``task_id`` written (``values``, its version bumped) right after the
    store's next unlocked read of its due tasks, between a usual claim's read and its
    writes, committed by itself as another writer's change would be."""
    seen, read = store._fire.due_seen, store._read
    change = (
        update(tasks_table)
        .where(tasks_table.c.id == bindparam("b_id"))
        .values(values | {"version": tasks_table.c.version + 1})
    )

    def hooked(conn: Connection, statement: Any, params: dict[str, Any]) -> Any:
        rows = read(conn, statement, params)
        if statement is seen:
            store._read = read  # type: ignore[method-assign]
            store._write(conn, change, {"b_id": task_id})
        return rows

    store._read = hooked  # type: ignore[method-assign]


async def test_a_task_rescheduled_between_a_claims_read_and_write_fires_when_next_due(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    _change_after_due_read(store, task.id, next_run_at=at(300))

    assert await claim(store, at(60)) == []

    assert await store.history(task.id) == []
    run = await claim_one(store, at(300))
    assert (run.task_id, run.scheduled_for) == (task.id, at(300))
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.next_run_at, stored.run_count, stored.version) == (at(360), 1, 2)


async def test_a_task_paused_between_a_claims_read_and_write_does_not_fire(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    other = await every_minute(service, name="other")
    _change_after_due_read(store, task.id, state="paused", next_run_at=None)

    (claimed,) = await claim(store, at(60))  # the other one runs

    assert claimed.task.id == other.id and claimed.run is not None
    await assert_paused_unfired(store, task.id)


async def test_a_usual_claim_on_postgres_skips_a_task_another_transaction_holds(
    postgres_url: str, clock: FakeClock
) -> None:
    # A row a locked claim (or a finish) of another replica holds is neither waited for
    # nor claimed twice: it is left, and claimed once it is free (if still due).
    import psycopg

    store = open_store(postgres_url)
    await store.setup()
    try:
        task = await every_minute(TaskService(store, clock=clock))
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (task.id,))
            held = await asyncio.wait_for(claim(store, at(60)), 30)
            await other.rollback()
        run = await claim_one(store, at(60))
        history = await store.history(task.id)
    finally:
        await store.close()

    assert held == []
    assert (run.scheduled_for, [r.run_id for r in history]) == (at(60), [run.run_id])


async def test_two_replicas_racing_usual_claims_on_postgres_claim_each_fire_once(
    postgres_url: str, clock: FakeClock
) -> None:
    # Room for every due fire: both take the usual claim, read the same rows and race
    # fire by fire; each fire is written by exactly one of them, none is lost.
    first, second = open_store(postgres_url), open_store(postgres_url)
    await first.setup()
    await second.setup()
    try:
        service = TaskService(first, clock=clock)
        tasks = [await every_minute(service, name=f"t{i}") for i in range(20)]
        for minute in (1, 2, 3):
            when = at(60 * minute)
            mine, theirs = await asyncio.gather(
                claim(first, when, limit=30), claim(second, when, limit=30)
            )
            runs = [c.run for c in mine + theirs if c.run is not None]
            assert sorted(r.task_id for r in runs) == sorted(t.id for t in tasks)
            assert {r.scheduled_for for r in runs} == {when}
        histories = [await first.history(t.id) for t in tasks]
        stored = [await first.get_task(t.id) for t in tasks]
    finally:
        await first.close()
        await second.close()

    assert all(len(h) == 3 for h in histories)
    assert all(s is not None and (s.run_count, s.next_run_at) == (3, at(240)) for s in stored)


# -- corrupt rows -------------------------------------------------------------------


@pytest.mark.parametrize("column", ["schedule", "options"])
async def test_a_corrupt_row_is_read_with_its_problem(
    store: Store, service: TaskService, clock: FakeClock, column: str
) -> None:
    task = await every_minute(service, owner="alice")
    await clock.advance(1)  # listed oldest first
    await every_minute(service, owner="alice", name="healthy")
    await write_raw(store, task.id, column, "{not json")

    stored = await store.get_task(task.id, owner="alice")

    assert stored is not None
    assert stored.problem is not None and stored.problem.startswith(f"{column}:")
    assert (stored.name, stored.state) == (task.name, "active")
    listed = (await store.list_tasks(owner="alice")).tasks
    assert [t.problem is not None for t in listed] == [True, False]


async def test_a_task_stored_in_a_zone_variant_says_which_zone_to_use(
    store: Store, service: TaskService
) -> None:
    # Written as a version that accepted the tz database's right/ variants stored it.
    task = await every_minute(service)
    schedule = {"kind": "cron", "expr": "0 9 * * *", "tz": "right/Europe/Paris"}
    change = update(tasks_table).where(tasks_table.c.id == task.id).values(schedule=schedule)
    await store.transaction(lambda conn: conn.execute(change))

    stored = await store.get_task(task.id)
    assert stored is not None and stored.problem is not None
    assert "use 'Europe/Paris'" in stored.problem
    returned = await service.update(task.id, schedule=Cron("0 9 * * *", tz="Europe/Paris"))
    mended = await store.get_task(task.id)
    assert mended is not None and (mended.problem, mended.state) == (None, "active")
    assert returned == mended  # what the update returns is the row as mended


@pytest.mark.parametrize(
    ("column", "value"),
    [("outcome", "bogus"), ("trigger", "bogus"), ("attempt", 0), ("attempt", -1)],
)
async def test_a_run_row_that_cannot_be_read_is_no_run_to_get_run_either(
    store: Store, service: TaskService, caplog: pytest.LogCaptureFixture, column: str, value: str
) -> None:
    # Written by hand: get_run used to raise pydantic's error where the listings leave
    # the row out (logged); now it reads as no run, logged the same way. An attempt
    # below 1, which no fire has, is read so on both backends.
    task = await every_minute(service)
    bad = await finish(store, await claim_one(store, at(60)), "success", at(61))
    good = await finish(store, await claim_one(store, at(120)), "success", at(121))
    statement = text(f"UPDATE lgs_runs SET {column} = :v WHERE run_id = :r")
    await store.transaction(
        lambda conn: conn.execute(statement, {"v": value, "r": bad.record.run_id})
    )

    assert await store.get_run(bad.record.run_id) is None
    assert f"run {bad.record.run_id}: its stored row cannot be read" in caplog.text
    assert await store.get_run(good.record.run_id) == good.record
    assert await store.history(task.id) == [good.record]


@pytest.mark.parametrize("column", ["schedule", "options", "payload"])
async def test_claiming_a_corrupt_row_quarantines_it_and_runs_the_others(
    store: Store, service: TaskService, column: str
) -> None:
    broken = await every_minute(service, name="broken")
    healthy = await every_minute(service, name="healthy")
    await write_raw(store, broken.id, column, "{not json")

    claimed = {c.task.id: c for c in await claim(store, at(60))}

    assert claimed[healthy.id].run is not None
    quarantined = claimed[broken.id]
    assert quarantined.run is None and quarantined.event == "quarantined"
    assert "the stored task cannot be read" in quarantined.reason
    (error,) = quarantined.finished
    assert (error.outcome, error.scheduled_for) == ("error", at(60))
    assert error.error is not None and column in error.error
    assert [r.outcome for r in await store.history(broken.id)] == ["error"]
    stored = await store.get_task(broken.id)
    assert stored is not None
    assert (stored.state, stored.next_run_at, stored.last_outcome) == ("quarantined", None, "error")
    assert await claim(store, at(120)) != []  # the healthy task keeps firing
    assert await store.history(broken.id) == [error]
    assert await store.delete_task(broken.id)


COUNTER_MOST = 2**31 - 1
"""The most PostgreSQL's INTEGER counter columns hold."""


async def set_counter(store: Store, task_id: str, column: str, value: int) -> None:
    """Set a task's counter column behind the store's back."""
    statement = text(f"UPDATE lgs_tasks SET {column} = :v WHERE id = :id")
    await store.transaction(lambda conn: conn.execute(statement, {"v": value, "id": task_id}))


@pytest.mark.parametrize("value", [COUNTER_MOST, 2**63 - 1])
@pytest.mark.parametrize("column", ["run_count", "version", "failure_streak"])
async def test_a_counter_at_its_most_quarantines_its_task_and_the_others_fire(
    store: Store, service: TaskService, column: str, value: int
) -> None:
    # Written by hand: its fire could not move it on ("integer out of range" on
    # PostgreSQL), and every claim failed, so no task fired at all.
    if value > COUNTER_MOST and store.dialect != "sqlite":
        pytest.skip("PostgreSQL's INTEGER holds no more")
    broken = await every_minute(service, name="broken")
    healthy = await every_minute(service, name="healthy")
    await set_counter(store, broken.id, column, value)

    claimed = {c.task.id: c for c in await claim(store, at(60))}

    run = claimed[healthy.id].run
    assert run is not None
    quarantined = claimed[broken.id]
    assert quarantined.run is None and quarantined.event == "quarantined"
    (error,) = quarantined.finished
    assert error.outcome == "error" and error.error is not None and column in error.error
    stored = await store.get_task(broken.id)
    assert stored is not None and stored.problem is not None and column in stored.problem
    assert (stored.state, stored.next_run_at) == ("quarantined", None)
    assert getattr(stored, column) == value  # the quarantine's own bump does not overflow
    assert broken.id in {t.id for t in (await store.list_tasks()).tasks}
    await finish(store, run, "success", at(61))
    again = await claim(store, at(120))
    assert [(c.task.id, c.run is not None) for c in again] == [(healthy.id, True)]
    assert await store.history(broken.id) == [error]
    assert [r.outcome for r in await store.history(healthy.id)] == [None, "success"]


@pytest.mark.parametrize("column", ["run_count", "version", "failure_streak"])
async def test_a_counter_brought_to_its_most_by_fires_quarantines_its_task_at_the_next(
    store: Store, service: TaskService, column: str
) -> None:
    # One short of it: the fire that brings it there is the last (the store keeps a
    # fired task's validated form, which must not hide the counter reaching its most).
    options = TaskOptions(retries=0, pause_after_failures=None)
    task = await every_minute(service, options=options)
    await set_counter(store, task.id, column, COUNTER_MOST - 1)

    outcome = "error" if column == "failure_streak" else "success"
    run = await claim_one(store, at(60))
    await finish(store, run, outcome, at(61))
    (quarantined,) = await claim(store, at(120))

    assert quarantined.event == "quarantined" and quarantined.run is None
    (error,) = quarantined.finished
    assert error.error is not None and column in error.error
    assert [r.outcome for r in await store.history(task.id)] == ["error", outcome]
    stored = await store.get_task(task.id)
    assert stored is not None and stored.state == "quarantined"
    assert getattr(stored, column) == COUNTER_MOST
    assert await claim(store, at(180)) == []


@pytest.mark.parametrize("swept", [False, True])
@pytest.mark.parametrize("pause_after", [None, 1])
async def test_a_fire_in_flight_whose_failure_streak_is_at_its_most_is_recorded(
    store: Store, service: TaskService, pause_after: int | None, swept: bool
) -> None:
    # Its failure used to add one to the streak: the finish failed ("integer out of
    # range" on PostgreSQL) and left the fire running. The lease sweep's `interrupted`
    # adds nothing to the streak: it must end the fire all the same.
    options = TaskOptions(retries=0, pause_after_failures=pause_after)
    task = await every_minute(service, options=options)
    run = await claim_one(store, at(60))  # lease until at(90)
    await set_counter(store, task.id, "failure_streak", COUNTER_MOST)

    if swept:  # its runtime died: the lease sweep ends it
        (done,) = await store.interrupt_expired(now=at(91), reason="holder died")
    else:
        done = await finish(store, run, "error", at(61))

    outcome = "interrupted" if swept else "error"
    assert done is not None and (done.record.run_id, done.record.outcome) == (run.run_id, outcome)
    assert [r.outcome for r in await store.history(task.id)] == [outcome]
    assert await store.running_holders() == []
    stored = await store.get_task(task.id)
    assert stored is not None and stored.failure_streak == COUNTER_MOST
    assert stored.last_outcome == outcome


async def test_a_change_of_a_task_whose_version_is_at_its_most_says_why_it_cannot(
    store: Store, service: TaskService
) -> None:
    task = await every_minute(service)
    await set_counter(store, task.id, "version", COUNTER_MOST)

    with pytest.raises(InvalidTask, match="version"):
        await service.pause(task.id)

    stored = await store.get_task(task.id)
    assert stored is not None and (stored.state, stored.version) == ("active", COUNTER_MOST)
    await service.delete(task.id)
    assert await store.get_task(task.id) is None


# -- the fire path's own writes -----------------------------------------------------


async def test_fire_writes_store_instants_as_every_other_write_does(
    store: Store, service: TaskService
) -> None:
    # The fire path's writes bypass SQLAlchemy's execution layer on SQLite; the stored
    # form must stay the one every query compares against (text on SQLite).
    task = await every_minute(service)  # next_run_at = at(60), written by the service
    before = await store.transaction(
        lambda conn: conn.execute(
            text("SELECT next_run_at FROM lgs_tasks WHERE id = :id"), {"id": task.id}
        ).scalar()
    )
    run = await claim_one(store, at(60) + timedelta(microseconds=1))
    await store.finish_runs([Finish(run, "success")], now=at(61), holder=HOLDER)

    def stored(conn: Connection) -> Any:
        query = "SELECT scheduled_for, due_at, finished_at, outcome FROM lgs_runs WHERE run_id = :r"
        return conn.execute(text(query), {"r": run.run_id}).one()

    scheduled_for, due_at, finished_at, outcome = await store.transaction(stored)
    assert scheduled_for == due_at == before
    assert outcome == "success" and finished_at is not None
    (read,) = await store.history(task.id)
    assert (read.scheduled_for, read.started_at, read.finished_at) == (
        at(60),
        at(60) + timedelta(microseconds=1),
        at(61),
    )
    assert await claim(store, at(60)) == []  # compared against the moved next_run_at


async def test_fire_reads_on_the_driver_give_what_sqlalchemy_gives(
    store: Store, service: TaskService
) -> None:
    # The fire path reads task rows on the driver, with SQLAlchemy's bind and result
    # processing but not its execution layer: every column must come back as the same
    # value (aware UTC instants, parsed JSON, booleans), or the kept tasks would differ.
    options = TaskOptions(retries=2, pause_after_failures=3, webhook_url="https://example.com/h")
    task = await every_minute(service, owner="alice", thread_id="t-1", options=options)
    run = await claim_one(store, at(60))
    await finish(store, run, "error", at(61))  # a retry row is now due at some point
    fire = store._fire
    by_id: dict[str, Any] = {"b_id": task.id}
    due: dict[str, Any] = {"b_as_of": at(3600), "b_room": 10}

    def both(conn: Connection) -> list[tuple[list[Any], list[Any]]]:
        pairs = []
        cases: list[tuple[Any, dict[str, Any]]] = [
            (fire.task_row, by_id),
            (fire.owned_task_row, by_id | {"b_owner": "alice"}),
            (fire.due_tasks, due),
        ]
        for statement, params in cases:
            plain = [tuple(row) for row in conn.execute(statement, params).all()]
            driver = store._read(conn, statement, params)
            pairs.append((plain, driver))
        return pairs

    for plain, driver in await store.transaction(both):
        assert plain and driver == plain
        types = [[type(value) for value in row] for row in driver]
        assert types == [[type(value) for value in row] for row in plain]
    (row, *_) = await store.transaction(lambda conn: store._read(conn, fire.task_row, by_id))
    assert store._task_of(row) == await store.get_task(task.id)


async def test_trimming_keeps_each_tasks_newest_finished_records_and_every_running_one(
    store: Store, service: TaskService
) -> None:
    keep = 2
    tasks = [await every_minute(service, name=f"t{i}") for i in range(4)]
    runs: dict[str, list[TaskRunRecord]] = {task.id: [] for task in tasks}
    for i, task in enumerate(tasks):  # 0, 1, 2 and 4 finished records
        for n in range((0, 1, 2, 4)[i]):
            run = await manual_run(store, task, at(10 + n), at(120))
            await finish(store, run, "success", at(10 + n))
            runs[task.id].append(run)
    running = await manual_run(store, tasks[3], at(5), at(120))  # the oldest, still running

    deleted = await store.trim_history([t.id for t in tasks] + ["no-such-task"], keep=keep)

    assert deleted == 2  # the last task's two oldest finished records
    for task in tasks:
        kept = {r.run_id for r in await store.history(task.id, limit=50)}
        newest = {r.run_id for r in runs[task.id][-keep:]}
        expected = newest | ({running.run_id} if task.id == tasks[3].id else set())
        assert kept == expected, task.name
    assert await store.trim_history([t.id for t in tasks], keep=keep) == 0


async def refuse(store: Store, what: str) -> None:
    """Make the database refuse ``what`` (``INSERT ON lgs_runs``, say) with a trigger
    named ``lgs_test_refuse``."""
    statement = (
        f"CREATE TRIGGER lgs_test_refuse BEFORE {what} "
        "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        if store.dialect == "sqlite"
        else "CREATE FUNCTION lgs_test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$; "
        f"CREATE TRIGGER lgs_test_refuse BEFORE {what} "
        "FOR EACH ROW EXECUTE FUNCTION lgs_test_refuse()"
    )
    await store.transaction(lambda conn: conn.execute(text(statement)))


async def test_a_fire_write_the_database_refuses_is_a_store_error(
    store: Store, service: TaskService
) -> None:
    await every_minute(service)
    await refuse(store, "INSERT ON lgs_runs")

    with pytest.raises(StoreError, match="refused by a trigger") as caught:
        await claim(store, at(60))

    assert not isinstance(caught.value, StoreUnavailable)
    task = (await store.list_tasks()).tasks[0]
    assert (task.next_run_at, task.run_count) == (at(60), 0)  # the claim rolled back whole


async def test_a_settled_finish_the_database_refuses_is_a_store_error_and_rolls_back(
    store: Store, service: TaskService
) -> None:
    # A lone success is written without reading its task (one statement on PostgreSQL,
    # the driver's own transaction in memory): a refused task write undoes the run's too.
    await every_minute(service)
    run = await claim_one(store, at(60))
    await refuse(store, "UPDATE OF last_outcome ON lgs_tasks")

    with pytest.raises(StoreError, match="refused by a trigger") as caught:
        await store.finish_runs([Finish(run, "success")], now=at(61), holder=HOLDER)

    assert not isinstance(caught.value, StoreUnavailable)
    stored = await store.get_run(run.run_id)
    assert stored is not None and stored.running  # the run's write rolled back with it
    drop = "DROP TRIGGER lgs_test_refuse" + (" ON lgs_tasks" if store.dialect != "sqlite" else "")
    await store.transaction(lambda conn: conn.execute(text(drop)))
    (done,) = await store.finish_runs(
        [Finish(run, "success")], now=at(62), holder=HOLDER
    )  # the store goes on
    assert done is not None and done.record.outcome == "success"
    task = (await store.list_tasks()).tasks[0]
    assert (task.last_outcome, task.failure_streak) == ("success", 0)


# -- errors at the boundary ---------------------------------------------------------


async def test_a_sqlite_file_locked_past_the_busy_timeout_is_unavailable(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import langgraph_scheduler.store_sqlite as store_sqlite

    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}")
    await store.setup()
    monkeypatch.setattr(store_sqlite, "BUSY_TIMEOUT_SECS", 0.3)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable, match="locked.db is unavailable.*locked"):
            await store.schema_version()
        blocker.execute("COMMIT")
        assert await store.schema_version() > 0  # and works again once it is free
    finally:
        blocker.close()
        await store.close()


async def test_an_unreachable_postgres_raises_store_unavailable_naming_the_url() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(StoreUnavailable, match=r"database postgresql\S*@127\.0\.0\.1:1/test"):
            await store.setup()
    finally:
        await store.close()


def test_a_sqlite_file_in_a_missing_directory_is_a_store_error(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'store.db'}"
    with pytest.raises(StoreError, match=r"missing/store\.db: create it \(mkdir -p ") as caught:
        open_store(url)  # refused before anything is opened (tests/test_packaging.py: more)
    assert not isinstance(caught.value, StoreUnavailable)


def test_an_unknown_url_names_the_accepted_forms() -> None:
    with pytest.raises(StoreError, match=r"unsupported database URL 'mysql://x/y': use sqlite"):
        open_store("mysql://x/y")


async def test_replicas_starting_together_share_one_secret(database: str) -> None:
    """Two stores on one database, each asking for the secret at once (the first start
    of two replicas): one secret is made, and both read it."""
    stores = [open_store(database), open_store(database)]
    try:
        for each in stores:
            await each.setup()
        found = await asyncio.gather(*(s.secret("attribution_key") for s in stores * 4))
        assert len(set(found)) == 1
        (secret,) = set(found)
        assert len(secret) == 64 and int(secret, 16) >= 0
        assert await stores[0].secret("other") != secret
        assert await stores[1].secret("attribution_key") == secret
    finally:
        for each in stores:
            await each.close()


async def refuse_writes(store: Store, table: str, when: str) -> None:
    """Make the database refuse ``when`` (INSERT, UPDATE) on ``table``, with a trigger."""
    if store.dialect == "postgresql":
        refuse = [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$",
            f"CREATE TRIGGER refuse BEFORE {when} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    else:
        refuse = [
            f"CREATE TRIGGER refuse BEFORE {when} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        ]
    await store.transaction(lambda conn: [conn.execute(text(sql)) for sql in refuse])


SECRET = "-".join(["only", "for", "its", "owner"])
"""Text only its owner should read (built, so that no traceback's source line shows it)."""


def assert_shown_without_the_secret(error: BaseException) -> None:
    """``error``, and the errors chained to it as a traceback shows them, name the
    database's refusal and none of the values sent."""
    shown = "".join(traceback.format_exception(error))
    assert "refused by a trigger" in str(error)
    assert "parameters" in shown  # the chained SQLAlchemy error is in the traceback
    assert SECRET not in shown


async def test_a_failed_write_shows_none_of_the_values_it_sent(
    store: Store, service: TaskService
) -> None:
    # A prompt (or a webhook URL) may hold what only its owner should read: the error of
    # a write the database refused, and the errors chained to it that a traceback or a
    # logged exception shows, name the failure, never the values sent.
    await refuse_writes(store, "lgs_tasks", "INSERT")
    with pytest.raises(StoreError) as raised:
        await every_minute(service, trigger=f"remind me of {SECRET}")
    assert_shown_without_the_secret(raised.value)


async def test_a_failed_finish_on_the_fire_path_shows_none_of_the_values_it_sent(
    store: Store, service: TaskService
) -> None:
    # The fire path sends its statements through the driver, past SQLAlchemy's
    # execution: its errors hide the values sent (a turn's reply, its error) as well.
    await every_minute(service)
    run = await claim_one(store, at(60))
    await refuse_writes(store, "lgs_runs", "UPDATE")
    with pytest.raises(StoreError) as raised:
        await store.finish_runs(
            [Finish(run, "success", summary=f"the answer is {SECRET}")], now=at(61), holder=HOLDER
        )
    assert_shown_without_the_secret(raised.value)
