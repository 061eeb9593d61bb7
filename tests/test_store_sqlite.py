"""The SQLite twin's own fire path: a usual claim outside a transaction, the views its
two-table writes go through, and statements sent alone while another connection holds
the write lock. Real SQLite files, a second store or driver connection on the same file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from langgraph_scheduler import Interval
from langgraph_scheduler._service import TaskService
from langgraph_scheduler.store import Finish, Store, open_store
from langgraph_scheduler.store_sqlite import SqliteStore
from langgraph_scheduler.testing import FakeClock

from .helpers import HOLDER, T0, at, claim, claim_one, every_minute

_VIEWS = {
    ("view", "lgs_claim"),
    ("view", "lgs_settle"),
    ("trigger", "lgs_claim_insert"),
    ("trigger", "lgs_settle_insert"),
}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{path}")
    await opened.setup()
    yield opened
    await opened.close()


@pytest.fixture
def service(store: Store) -> TaskService:
    return TaskService(store, clock=FakeClock(T0))


def _schema(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name LIKE 'lgs_%'")
        return {(kind, name) for kind, name in rows if kind in ("view", "trigger")}


class _WriteLock:
    """Another connection's write lock on the file: taken by :meth:`take` (in a thread of
    its own), held until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.taken = False
        self._held = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        self._held.set()
        self._release.wait(30)
        conn.execute("COMMIT")
        conn.close()

    def take(self) -> None:
        self.taken = True
        self._thread.start()
        assert self._held.wait(30)

    def release(self) -> None:
        self._release.set()
        if self.taken:
            self._thread.join(30)


def _after_due_read(store: Store, change: Any) -> None:
    """Make ``change()`` happen, on another connection, right after the store's next
    read of its due tasks (between a usual claim's read and its writes)."""
    due_seen = store._fire.due_seen
    read = store._read

    def hooked(conn: Any, statement: Any, params: dict[str, Any]) -> Any:
        rows = read(conn, statement, params)
        if statement is due_seen:
            store._read = read  # type: ignore[method-assign]
            change()
        return rows

    store._read = hooked  # type: ignore[method-assign]


async def test_a_task_paused_between_a_claims_read_and_its_write_does_not_fire(
    store: Store, service: TaskService, path: Path
) -> None:
    task = await every_minute(service)
    other = open_store(f"sqlite:///{path}")
    loop = asyncio.get_running_loop()
    await other.setup()
    try:
        others = TaskService(other, clock=FakeClock(T0))

        def pause() -> None:  # another runtime's service, through its own connection
            asyncio.run_coroutine_threadsafe(others.pause(task.id), loop).result()

        _after_due_read(store, pause)
        claimed = await asyncio.wait_for(claim(store, at(60)), 30)
    finally:
        await other.close()

    assert claimed == []  # read as due, changed before its write: nothing written
    assert await store.history(task.id) == []
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.state, stored.run_count, stored.version) == ("paused", 0, 1)
    assert await claim(store, at(60)) == []


async def test_setup_brings_back_the_fire_paths_views_and_triggers(
    store: Store, service: TaskService, path: Path
) -> None:
    assert _schema(path) == _VIEWS
    with sqlite3.connect(path, isolation_level=None) as conn:  # as an older release left it
        conn.execute("DROP VIEW lgs_claim")
        conn.execute("DROP TRIGGER lgs_settle_insert")
    assert _schema(path) == {("view", "lgs_settle")}

    reopened = open_store(f"sqlite:///{path}")
    try:
        await reopened.setup()
        assert _schema(path) == _VIEWS
        task = await every_minute(TaskService(reopened, clock=FakeClock(T0)))
        run = await claim_one(reopened, at(60))
        (done,) = await reopened.finish_runs([Finish(run, "success")], now=at(61))
    finally:
        await reopened.close()

    assert done is not None and done.record.outcome == "success"
    stored = await store.get_task(task.id)
    assert stored is not None
    assert (stored.last_outcome, stored.run_count, stored.next_run_at) == ("success", 1, at(120))


async def test_statements_sent_alone_wait_for_another_connections_write_lock(
    store: Store, service: TaskService, path: Path
) -> None:
    # The usual claim's write and a lone settled finish run outside a transaction: each
    # waits for the lock another connection holds (the checkpointer's, another process's)
    # instead of failing at once with "database is locked".
    assert isinstance(store, SqliteStore)
    task = await service.create(name="t", schedule=Interval(seconds=60), trigger="tick")

    async def locked(call: Any) -> Any:
        lock = _WriteLock(path)
        lock.take()
        pending = asyncio.ensure_future(call)
        await asyncio.sleep(0.2)  # the statement meets the lock, and waits
        assert not pending.done()
        lock.release()
        return await asyncio.wait_for(pending, 30)

    run = await locked(claim_one(store, at(60)))
    (done,) = await locked(store.finish_runs([Finish(run, "success")], now=at(61)))

    assert run.task_id == task.id and done is not None
    (stored_run,) = await store.history(task.id)
    assert (stored_run.run_id, stored_run.outcome) == (run.run_id, "success")
    stored = await store.get_task(task.id)
    assert stored is not None and stored.last_outcome == "success"


async def test_a_usual_claim_cut_short_returns_the_fires_it_committed(
    store: Store, service: TaskService, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its fires are written one by one: when a later write fails (here the write lock
    # stays taken past the wait), the fires already committed are still handed to the
    # runtime, and the others stay due. None is left running unknown to its runtime.
    monkeypatch.setattr("langgraph_scheduler.store_sqlite.BUSY_TIMEOUT_SECS", 0.3)
    first = await every_minute(service, name="first")
    second = await every_minute(service, name="second")
    lock = _WriteLock(path)
    start_run = store._start_run

    def first_then_locked(*args: Any) -> Any:
        started = start_run(*args)
        if not lock.taken:
            lock.take()
        return started

    store._start_run = first_then_locked  # type: ignore[method-assign]
    try:
        claimed = await claim(store, at(60))
    finally:
        lock.release()
    store._start_run = start_run  # type: ignore[method-assign]

    (one,) = claimed
    assert one.run is not None
    assert await store.running_holders() == [HOLDER]
    (later,) = await claim(store, at(61))
    assert later.run is not None and later.task.id != one.task.id
    assert {one.task.id, later.task.id} == {first.id, second.id}
    for task in (first, second):
        (run,) = await store.history(task.id)
        assert run.outcome is None and run.scheduled_for == at(60)
