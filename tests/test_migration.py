"""A database written by release 0.1.0 (schema version 1) opens and keeps working, and
so does one of schema version 2.

``tests/data/schema_v1.db`` was made by 0.1.0: three tasks (alice's cron standup with
one manual run, bob's hourly interval, alice's paused one-shot) and one run record.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect, text

from langgraph_scheduler import Cron, Interval, Once, SchedulerRuntime
from langgraph_scheduler.errors import StoreError
from langgraph_scheduler.store import (
    SCHEMA_VERSION,
    CallAnswer,
    meta_table,
    metadata,
    open_store,
    thread_locks_table,
    tool_calls_table,
)
from langgraph_scheduler.testing import FakeClock

DATA = Path(__file__).parent / "data" / "schema_v1.db"
NOW = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)

STANDUP = "d08149911c0f4fe7"
STRETCH = "88c8a151c6ba4bcc"
LATER = "d020124f17ee40ab"


@pytest.fixture
def v1_database(tmp_path: Path) -> str:
    """A copy of the 0.1.0 database (the original stays untouched)."""
    copy = tmp_path / "scheduler.db"
    shutil.copy(DATA, copy)
    return f"sqlite:///{copy}"


def utc(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=timezone.utc)


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute(query).fetchall()


V1_TASK_COLUMNS = (
    "SELECT id, owner, name, schedule, payload, options, thread_mode, thread_id, state, "
    "max_runs, run_count, failure_streak, next_run_at, last_run_at, last_outcome, "
    "created_at, updated_at FROM lgs_tasks ORDER BY created_at"
)


async def test_a_release_0_1_database_migrates_and_keeps_its_tasks(v1_database: str) -> None:
    before = rows(v1_database, V1_TASK_COLUMNS)

    async with SchedulerRuntime(None, database=v1_database, clock=FakeClock(NOW)) as rt:
        assert SCHEMA_VERSION == 3
        assert await rt.store.schema_version() == 3
        tasks = {t.id: t for t in await rt.list_tasks()}

    assert rows(v1_database, V1_TASK_COLUMNS) == before
    schema = {name for (name,) in rows(v1_database, "SELECT name FROM sqlite_master")}
    assert {
        "lgs_retries",
        "lgs_tasks_due",
        "lgs_thread_locks",
        "lgs_tool_calls",
        "lgs_tool_calls_created",
    } <= schema
    assert "lgs_tasks_state" not in schema
    assert [(t.id, t.name, t.owner, t.state) for t in tasks.values()] == [
        (STANDUP, "daily standup", "alice", "active"),
        (STRETCH, "stretch", "bob", "active"),
        (LATER, "paused one", "alice", "paused"),
    ]
    assert all(t.problem is None and t.version == 0 for t in tasks.values())
    standup, stretch, later = tasks[STANDUP], tasks[STRETCH], tasks[LATER]
    assert standup.schedule == Cron("0 9 * * 1-5", tz="Europe/Berlin")
    assert (standup.thread_mode, standup.thread_id) == ("continue", "alice")
    assert standup.trigger.prompt == "Summarise yesterday"
    assert standup.trigger.timeout_secs == 60
    assert (standup.next_run_at, standup.last_outcome) == (utc(2026, 12, 2, 8, 0), "success")
    assert stretch.schedule == Interval(
        seconds=3600, tz="UTC", start=utc(2026, 12, 2, 5, 24, 17, 595035)
    )
    assert (stretch.max_runs, stretch.options.on_busy, stretch.options.retries) == (10, "skip", 1)
    assert later.schedule == Once(utc(2030, 1, 1, 9, 0), tz="UTC")
    assert later.next_run_at is None


async def test_the_old_run_stays_in_history(v1_database: str) -> None:
    async with SchedulerRuntime(None, database=v1_database, clock=FakeClock(NOW)) as rt:
        (run,) = await rt.history(STANDUP, owner="alice")

    assert (run.task_id, run.trigger, run.attempt, run.outcome) == (STANDUP, "manual", 1, "success")
    assert (run.summary, run.thread_id) == ("done", "alice")
    assert run.due_at is None  # written before schema version 2
    assert run.lateness == run.started_at - run.scheduled_for


async def test_a_migrated_database_takes_new_tasks_and_claims(v1_database: str) -> None:
    clock = FakeClock(NOW)
    async with SchedulerRuntime(None, database=v1_database, clock=clock) as rt:
        new = await rt.create_task(
            name="water", schedule=Interval(minutes=30), trigger="Drink water", owner="carol"
        )
        as_of = NOW + timedelta(minutes=30)
        claimed = await rt.store.claim_due(
            as_of=as_of,
            limit=10,
            holder="h",
            lease_until=as_of + timedelta(seconds=30),
            started_at=NOW,
        )

    runs = {c.task.id: c.run.scheduled_for for c in claimed if c.run is not None}
    # Stretch (hourly since 05:24 UTC) is due too: its latest occurrence runs, the two
    # before it are recorded missed.
    assert runs == {new.id: as_of, STRETCH: utc(2026, 12, 2, 7, 24, 17, 595035)}
    (stretch,) = [c for c in claimed if c.task.id == STRETCH]
    assert [(r.outcome, r.scheduled_for) for r in stretch.finished] == [
        ("missed", utc(2026, 12, 2, 5, 24, 17, 595035))
    ]


async def test_setup_of_a_migrated_database_is_idempotent(v1_database: str) -> None:
    async with SchedulerRuntime(None, database=v1_database, clock=FakeClock(NOW)) as rt:
        created = await rt.create_task(name="again", schedule=Interval(hours=1), trigger="hi")

    async with SchedulerRuntime(None, database=v1_database, clock=FakeClock(NOW)) as rt:
        assert await rt.store.schema_version() == 3
        ids = [t.id for t in await rt.list_tasks()]
        assert ids == [STANDUP, STRETCH, LATER, created.id]
        assert len(await rt.history(STANDUP)) == 1


async def test_an_earlier_schema_3_thread_lock_table_gains_its_run_column(
    database: str,
) -> None:
    # Schema 3 is not released: a database an earlier build of it made has the table
    # without the column of the fire whose claim took a thread, and gains it at setup.
    store = open_store(database)

    def write_early_3(conn: Any) -> None:
        others = [t for t in metadata.sorted_tables if t is not thread_locks_table]
        metadata.create_all(conn, tables=others)
        conn.execute(
            text(
                "CREATE TABLE lgs_thread_locks (thread_id VARCHAR(256) PRIMARY KEY, "
                "holder VARCHAR(128) NOT NULL, lease_expires_at TIMESTAMP NOT NULL)"
            )
        )
        conn.execute(insert(meta_table).values(key="schema_version", value="3"))

    def shape(conn: Any) -> tuple[set[str], set[str | None]]:
        found = inspect(conn)
        columns = {c["name"] for c in found.get_columns("lgs_thread_locks")}
        return columns, {i["name"] for i in found.get_indexes("lgs_thread_locks")}

    try:
        await store.transaction(write_early_3)
        await store.setup()
        await store.setup()  # again: nothing left to add
        columns, indexes = await store.transaction(shape)
        assert columns == {"thread_id", "holder", "lease_expires_at", "run_id"}
        assert "lgs_thread_locks_run" in indexes
    finally:
        await store.close()


async def test_a_schema_2_database_gains_the_thread_locks_and_the_tool_call_answers(
    database: str,
) -> None:
    store = open_store(database)
    new = (thread_locks_table, tool_calls_table)
    v2_tables = [t for t in metadata.sorted_tables if t not in new]

    def write_v2(conn: Any) -> None:
        metadata.create_all(conn, tables=v2_tables)
        conn.execute(insert(meta_table).values(key="schema_version", value="2"))

    def tables(conn: Any) -> set[str]:
        return set(inspect(conn).get_table_names())

    try:
        await store.transaction(write_v2)
        assert not {"lgs_thread_locks", "lgs_tool_calls"} & await store.transaction(tables)
        await store.setup()
        assert await store.schema_version() == SCHEMA_VERSION == 3
        assert {"lgs_thread_locks", "lgs_tool_calls"} <= await store.transaction(tables)
        columns = await store.transaction(
            lambda conn: {c["name"] for c in inspect(conn).get_columns("lgs_thread_locks")}
        )
        assert columns == {"thread_id", "holder", "lease_expires_at", "run_id"}
        answer = CallAnswer(
            id="k",
            owner="alice",
            tool="delete_task",
            status="success",
            text="Deleted.",
            created_at=NOW,
        )
        assert await store.add_call_answer(answer) == answer
        assert await store.get_call_answer("k") == answer
        assert await store.purge_call_answers(before=NOW + timedelta(days=1)) == 1
    finally:
        await store.close()


async def test_a_database_of_an_earlier_build_gains_the_webhook_floors_and_late_indexes(
    database: str,
) -> None:
    # Among them the index of the approvals approved and not carried out yet, which a
    # model's retry of an approved change looks for (TaskService.propose_update).
    store = open_store(database)

    def write_earlier(conn: Any) -> None:
        metadata.create_all(conn)
        conn.execute(insert(meta_table).values(key="schema_version", value=str(SCHEMA_VERSION)))
        conn.execute(text("DROP INDEX IF EXISTS lgs_runs_finished"))
        conn.execute(text("DROP TABLE IF EXISTS lgs_delivery_floors"))
        conn.execute(text("DROP INDEX IF EXISTS lgs_approvals_approved"))

    def schema(conn: Any) -> tuple[set[str], set[str]]:
        found = inspect(conn)
        tables = ("lgs_runs", "lgs_approvals")
        return set(found.get_table_names()), {
            i["name"] for table in tables for i in found.get_indexes(table)
        }

    try:
        await store.transaction(write_earlier)
        await store.setup()
        await store.build_indexes()  # after the setup on PostgreSQL (a runtime's start does)
        tables, indexes = await store.transaction(schema)
        assert "lgs_delivery_floors" in tables
        assert {"lgs_runs_finished", "lgs_approvals_approved"} <= indexes
        if database.startswith("sqlite"):  # the retry's look-up uses it
            query = (
                "EXPLAIN QUERY PLAN SELECT * FROM lgs_approvals WHERE owner = 'a' AND "
                "status = 'approved' AND action = 'update' AND task_id = 't'"
            )
            plan = await store.transaction(lambda conn: conn.exec_driver_sql(query).all())
            assert "USING INDEX lgs_approvals_approved" in str(plan)
    finally:
        await store.close()


async def test_a_database_of_a_newer_library_is_refused_by_a_set_up_and_by_a_read(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    store = open_store(url)
    await store.setup()
    newer = SCHEMA_VERSION + 1
    await store.transaction(
        lambda conn: conn.execute(
            meta_table.update().where(meta_table.c.key == "schema_version").values(value=str(newer))
        )
    )
    await store.close()
    said = f"has schema version {newer}, newer than this library's ({SCHEMA_VERSION})"
    for read_only in (False, True):
        store = open_store(url, read_only=read_only)
        try:
            with pytest.raises(StoreError, match=re.escape(said)):
                await (store.check_schema() if read_only else store.setup())
        finally:
            await store.close()
    assert await _version(url) == newer  # neither wrote it back


async def _version(url: str) -> int:
    store = open_store(url, read_only=True)
    try:
        return int(
            await store.transaction(
                lambda conn: conn.scalar(
                    text("SELECT value FROM lgs_meta WHERE key = 'schema_version'")
                )
            )
        )
    finally:
        await store.close()
