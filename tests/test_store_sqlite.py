"""The SQLite twin's own fire path: a usual claim outside a transaction, the views its
two-table writes go through, and statements sent alone while another connection holds
the write lock. Real SQLite files, a second store or driver connection on the same file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from langgraph_scheduler import Interval, SchedulerRuntime, StoreError, StoreUnavailable
from langgraph_scheduler._service import TaskService
from langgraph_scheduler.models import TaskRunRecord
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import Finish, Store, open_store
from langgraph_scheduler.store_sqlite import SqliteStore
from langgraph_scheduler.testing import FakeClock

from .helpers import (
    FAKE_START,
    HOLDER,
    T0,
    LoopClock,
    assert_paused_unfired,
    at,
    build_graph,
    claim,
    claim_one,
    every_minute,
    record_count,
    step,
    until_start_warns,
    warnings_said,
)

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
    await assert_paused_unfired(store, task.id)


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
        (done,) = await reopened.finish_runs([Finish(run, "success")], now=at(61), holder=HOLDER)
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
    (done,) = await locked(store.finish_runs([Finish(run, "success")], now=at(61), holder=HOLDER))

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

    store._start_run = first_then_locked  # type: ignore[method-assign,assignment]
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


async def test_datetimes_keep_sqlalchemys_text_form_and_read_back_as_utc(
    store: Store, service: TaskService, path: Path
) -> None:
    # The fire path writes datetimes itself (not through SQLAlchemy's processor): the
    # text must stay the form older releases wrote and compare against, to the
    # microsecond, and what they wrote must read back as the same instant.
    task = await every_minute(service)
    run = await claim_one(store, at(60) + timedelta(microseconds=7))
    with sqlite3.connect(path) as conn:
        (next_run_at,) = conn.execute(
            "SELECT next_run_at FROM lgs_tasks WHERE id = ?", (task.id,)
        ).fetchone()
        (started_at,) = conn.execute(
            "SELECT started_at FROM lgs_runs WHERE run_id = ?", (run.run_id,)
        ).fetchone()
    ours = DateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert ours is not None
    assert next_run_at == ours(at(120).replace(tzinfo=None)) == "2027-03-01 12:02:00.000000"
    assert started_at == "2027-03-01 12:01:00.000007"

    # Hand-written forms: SQLAlchemy's, and ISO 8601 with an offset (another zone).
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE lgs_tasks SET next_run_at = '2027-03-01 12:05:00.000000' WHERE id = ?",
            (task.id,),
        )
        conn.execute(
            "UPDATE lgs_runs SET started_at = '2027-03-01T14:01:00+02:00' WHERE run_id = ?",
            (run.run_id,),
        )
    stored = await store.get_task(task.id)
    assert stored is not None and stored.next_run_at == at(300)
    assert stored.next_run_at.tzinfo is not None
    (record,) = await store.history(task.id)
    assert record.started_at == at(60)

    # A naive datetime is refused before anything is written.
    with pytest.raises(ValueError, match="naive datetime"):
        await claim(store, datetime(2027, 3, 1, 12, 5))
    assert len(await store.history(task.id)) == 1

    # An instant given in another zone is written as its UTC text.
    run = await claim_one(store, at(300).astimezone(timezone(timedelta(hours=2))))
    with sqlite3.connect(path) as conn:
        (started_at,) = conn.execute(
            "SELECT started_at FROM lgs_runs WHERE run_id = ?", (run.run_id,)
        ).fetchone()
    assert started_at == "2027-03-01 12:05:00.000000"


# -- a start while another process holds the file's write lock -------------------------

_HOLD_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()  # until told
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def _write_lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the file's write lock (``BEGIN IMMEDIATE``, as a
    ``sqlite3`` shell in a transaction does) until a line is written to its stdin."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WRITE_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        yield child
    finally:
        child.kill()
        child.wait(timeout=10)


@pytest.fixture
async def made(path: Path, caplog: pytest.LogCaptureFixture) -> str:
    """The URL of a scheduler's file, its tables made; warnings captured from now on."""
    database = f"sqlite:///{path}"
    async with SchedulerRuntime(None, database=database):
        pass
    caplog.set_level(logging.WARNING, logger="langgraph_scheduler")
    return database


async def test_a_start_waits_for_the_write_lock_another_process_holds(
    path: Path, made: str, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to give up after one busy wait (30 s): StoreUnavailable with a long trace,
    # which under `langgraph dev` stops the server.
    database = made
    with _write_lock_held(path) as holder:
        rt = SchedulerRuntime(None, database=database)
        starting = asyncio.ensure_future(rt.start())
        await until_start_warns(caplog, starting)
        assert not starting.done()
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.close()
        await asyncio.wait_for(starting, 30)
    try:
        assert rt.running
        await rt.create_task(name="after the wait", schedule=Interval(hours=1), trigger="go")
    finally:
        await rt.stop()
    said = warnings_said(caplog)[0]
    assert said.startswith(f"database {database} is locked by another process")
    assert "the start waits for its write lock, up to 60s (store_retry_secs)" in said


async def test_a_start_beside_a_runtime_writing_a_moment_says_nothing(
    path: Path, made: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Another runtime on the file holds its write lock for a moment at a time: a start
    # that met one such moment warned that the file was locked by another process.
    holder = sqlite3.connect(str(path), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.2, holder.execute, "COMMIT")
        async with SchedulerRuntime(None, database=made) as rt:
            assert rt.running
    finally:
        holder.close()
    assert warnings_said(caplog) == []


async def test_a_start_gives_up_on_a_write_lock_held_past_store_retry_secs_in_one_line(
    path: Path, made: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = made
    with _write_lock_held(path), pytest.raises(StoreUnavailable) as raised:
        await SchedulerRuntime(None, database=database, store_retry_secs=0.2).start()
    message = str(raised.value)
    assert message.startswith(f"database {database} is locked: another process has held")
    assert f"`fuser {path}` names it); the start gave up after store_retry_secs=0.2" in message
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert warnings_said(caplog) == []  # given up within its first, silent wait: one line in all
    async with SchedulerRuntime(None, database=database) as rt:  # once it is released
        assert rt.running


async def test_a_start_on_a_file_that_is_no_sqlite_database_raises_a_store_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are someone's notes, not a database\n" * 100)
    runtime = SchedulerRuntime(None, database=f"sqlite:///{path}", store_retry_secs=1)
    with pytest.raises(StoreError, match=r"file is not a database"):
        await runtime.start()
    assert not runtime.running
    assert path.read_bytes().startswith(b"these are someone's notes")  # left as it was


# -- a file this process may not write ------------------------------------------------


@contextlib.contextmanager
def _immutable(*paths: Path) -> Iterator[None]:
    """``paths`` made immutable (``chattr +i``): read-only even to root, whom a chmod does
    not stop (the tests may run as root). Skips where chattr cannot do it."""
    made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    try:
        if made.returncode != 0:
            pytest.skip(f"no read-only file without chattr +i: {made.stderr.strip()}")
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)


def _chattr() -> None:
    import shutil

    if shutil.which("chattr") is None:
        pytest.skip("no chattr: a read-only file needs chattr +i (a chmod does not stop root)")


async def test_a_start_on_a_read_only_file_fails_at_once_saying_so(path: Path, made: str) -> None:
    # It was a StoreUnavailable ("can be retried once it is reachable"), which the
    # engine retries for store_retry_secs at each step, as if the file were locked.
    _chattr()
    runtime = SchedulerRuntime(None, database=made, store_retry_secs=3600)
    with _immutable(path), pytest.raises(StoreError) as raised:
        await runtime.start()
    assert not isinstance(raised.value, StoreUnavailable)
    assert str(raised.value).startswith(
        f"the SQLite file {path} is read-only (attempt to write a readonly database): the "
        f"user this process runs as must be able to write it and its folder {path.parent}"
    )
    assert not runtime.running


@pytest.mark.parametrize("query", ["mode=ro", "uri=true&mode=ro", "timeout=1", "bogus=1"])
async def test_a_query_option_the_store_does_not_honour_is_refused_before_the_file_is_opened(
    path: Path, made: str, query: str
) -> None:
    # SQLAlchemy warned and ignored it (``uri=true`` opened a file named after the whole
    # query): a runtime started "read-only" on ?mode=ro wrote the file all the same.
    before = path.read_bytes()
    runtime = SchedulerRuntime(None, database=f"{made}?{query}")
    with pytest.raises(StoreError, match=r"has query options the SQLite store does not support"):
        await runtime.start()
    assert not runtime.running
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


async def test_the_query_option_the_store_passes_on_is_still_accepted(path: Path) -> None:
    async with SchedulerRuntime(None, database=f"sqlite:///{path}?cached_statements=8") as rt:
        task = await rt.create_task(name="t", schedule=Interval(minutes=1), trigger="x")
        assert [t.id for t in await rt.list_tasks()] == [task.id]


async def test_a_start_in_a_read_only_folder_says_the_folder_must_be_writable(
    tmp_path: Path,
) -> None:
    _chattr()
    folder = tmp_path / "locked-down"
    folder.mkdir()
    path = folder / "new.db"
    with _immutable(folder), pytest.raises(StoreError) as raised:
        await SchedulerRuntime(None, database=f"sqlite:///{path}", store_retry_secs=3600).start()
    assert not isinstance(raised.value, StoreUnavailable)
    assert str(raised.value).startswith(
        f"the SQLite file {path} cannot be opened (unable to open database file): the user "
        f"this process runs as must be able to write its folder {folder}"
    )
    assert not path.exists()


async def test_a_runtime_whose_file_turns_read_only_says_so_once_a_minute(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Claims on a file made read-only under the runtime were retried as StoreUnavailable
    # for store_retry_secs at each claim pass (a warning each try), then given up, again
    # and again; now each pass fails at once, and the claim loop logs each error once a
    # minute, without a trace, until the file is writable again.
    _chattr()
    clock = FakeClock(FAKE_START)
    rt = await _running_on(path, clock, store_retry_secs=0.5)
    try:
        await rt.create_task(name="minutely", schedule=Interval(minutes=1), trigger="go")
        assert await step(rt, clock, 61) == 1
        caplog.set_level(logging.WARNING, logger="langgraph_scheduler")
        # Not the -shm file: SQLite maps it in memory, and a write to it would kill the
        # process (SIGBUS), which no read-only file does.
        with _immutable(path.parent, path, path.with_name(f"{path.name}-wal")):
            await clock.advance(60)
            with pytest.raises(StoreError) as raised:
                await rt.run_due()
            assert not isinstance(raised.value, StoreUnavailable)
            assert f"the SQLite file {path} " in str(raised.value)
            for _ in range(5):  # the claim loop's own passes, one per poll
                await clock.advance(rt.sync_interval_secs)
                await _until_logged(caplog, "claiming due fires failed (the SQLite file")
        start = "claiming due fires failed (the SQLite file"
        failed = [r for r in caplog.records if r.getMessage().startswith(start)]
        assert all(r.exc_info is None and r.levelno == logging.ERROR for r in failed)
        said = [r.getMessage() for r in failed]
        assert len(said) == len(set(said)) <= 2  # read-only, or disk I/O error: each once
        assert not any("retrying to claim" in r.getMessage() for r in caplog.records)
        assert rt.running
    finally:
        await rt.stop()


async def _running_on(path: Path, clock: FakeClock, **options: Any) -> SchedulerRuntime:
    """A started runtime on the file at ``path`` and ``clock``, whose turns say "ran"."""
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    rt = SchedulerRuntime(graph, database=f"sqlite:///{path}", clock=clock, **options)
    await rt.start()
    return rt


async def _until_logged(caplog: pytest.LogCaptureFixture, start: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while not any(r.getMessage().startswith(start) for r in caplog.records):
        assert asyncio.get_running_loop().time() < deadline, f"nothing logged as {start!r}"
        await asyncio.sleep(0.05)


# -- a file that stops being usable under a store ---------------------------------------


def _no_database_any_more(path: Path) -> None:
    """Overwrite the file's header (as a restore of the wrong file would), its pages
    first checkpointed out of the WAL, so every connection finds no database."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    with path.open("r+b") as file:
        file.write(b"these are someone's notes, not a database".ljust(100, b"."))


_LATER = T0 + timedelta(hours=1)
_ENTRY_POINTS: dict[str, Any] = {
    # The locked claim (nothing due for the usual one), as a burst or a due retry takes.
    "claim_due": lambda s: s.claim_due(
        as_of=_LATER, limit=5, holder=HOLDER, lease_until=_LATER, started_at=_LATER
    ),
    "changed_since": lambda s: s.changed_since(T0),
    "due_times": lambda s: s.due_times(until=_LATER),
    "renew_leases": lambda s: s.renew_leases(["r1"], holder=HOLDER, until=_LATER),
    "interrupt_expired": lambda s: s.interrupt_expired(now=_LATER, reason="gone"),
    "expired_server_runs": lambda s: s.expired_server_runs(now=_LATER),
    "running_holders": lambda s: s.running_holders(),
    "free_thread_locks": lambda s: s.free_thread_locks(["dead-holder"]),
    "trim_history": lambda s: s.trim_history(["t1"], keep=1),
    "purge_history": lambda s: s.purge_history(finished_before=_LATER),
}


@pytest.mark.parametrize("how", ["overwritten", "immutable"])
@pytest.mark.parametrize("entry_point", sorted(_ENTRY_POINTS))
async def test_engine_entry_points_map_a_file_gone_bad_to_store_errors(
    store: Store, path: Path, entry_point: str, how: str
) -> None:
    # BEGIN IMMEDIATE is sent from an engine event, where SQLAlchemy does not wrap the
    # driver's errors: one that was no lock (file is not a database, a read-only file)
    # escaped the store as a raw sqlite3 error, logged with a traceback by every loop.
    await store.changed_since(T0)  # its pooled connection open before the file changed
    call = _ENTRY_POINTS[entry_point]
    if how == "overwritten":
        _no_database_any_more(path)
        with pytest.raises(StoreError) as raised:
            await call(store)
        assert not isinstance(raised.value, StoreUnavailable)
        assert str(raised.value) == f"database sqlite:///{path} failed: file is not a database"
        return
    _chattr()
    with _immutable(path):
        # A fresh store: its connections open the file read-only now.
        fresh = open_store(f"sqlite:///{path}")
        try:
            await call(fresh)  # reads pass; a write fails, mapped
        except Exception as exc:
            assert isinstance(exc, StoreError), repr(exc)
            assert f"the SQLite file {path} is read-only" in str(exc)
        finally:
            await fresh.close()


async def test_the_change_poll_and_the_upkeep_say_a_lasting_failure_once_a_minute(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The change poll and the lease upkeep warned at every failed pass: every poll
    # (2 s) and every lease_secs / 3 for as long as the file stayed bad. Now as the
    # claim loop does: the first failure, then the same one once a minute.
    clock = LoopClock(FAKE_START)
    rt = await _running_on(path, clock, sync_interval_secs=1, lease_secs=3)
    try:
        caplog.set_level(logging.WARNING, logger="langgraph_scheduler")
        _no_database_any_more(path)
        loops = ("polling task changes failed", "lease upkeep failed")
        await clock.passes(1, 40)  # each loop failed 40 times
        mapped = f"(database sqlite:///{path} failed: file is not a database); retrying"
        for loop in loops:
            assert _said(caplog, loop) == [f"{loop} {mapped} every 1s"]
        await clock.passes(1, 30)  # a minute after the first
        for loop in loops:
            assert len(_said(caplog, loop)) == 2, caplog.text
        assert rt.running
    finally:
        await rt.stop()


def _said(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


@pytest.mark.parametrize("how", ["overwritten", "immutable"])
async def test_a_runtime_whose_file_goes_bad_logs_only_mapped_errors(
    path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # The claim pass, the change poll and the lease upkeep logged the raw sqlite3 error
    # ("claiming due fires failed; trying again" with its traceback, each pass).
    if how == "immutable":
        _chattr()
    clock = FakeClock(FAKE_START)
    rt = await _running_on(path, clock, store_retry_secs=0.5, lease_secs=3)
    try:
        for n in range(3):
            await rt.create_task(name=f"minutely {n}", schedule=Interval(minutes=1), trigger="go")
        assert await step(rt, clock, 61) == 3
        caplog.set_level(logging.WARNING)
        bad: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if how == "overwritten":
            _no_database_any_more(path)
        else:
            bad = _immutable(path.parent, path, path.with_name(f"{path.name}-wal"))
        with bad:
            await clock.advance(60)  # the tasks due again
            # Claim passes, change polls and upkeep rounds, each loop on its own timer.
            for _ in range(6):
                await clock.advance(max(rt.sync_interval_secs, 1.0))
                await _until_logged(caplog, "claiming due fires failed (")
            if how == "overwritten":
                for said in ("polling task changes failed (", "lease upkeep failed ("):
                    await _until_logged(caplog, said)
        mapped = f"database sqlite:///{path} failed: file is not a database"
        if how == "immutable":
            mapped = f"the SQLite file {path} "
        raw = [
            r
            for r in caplog.records
            if (r.exc_info and not isinstance(r.exc_info[1], StoreError))
            or "sqlite3." in r.getMessage()
            or r.getMessage().startswith("claiming due fires failed; trying again")
        ]
        assert not raw, [(r.getMessage(), r.exc_info) for r in raw]
        for loop in ("claiming due fires", "polling task changes", "lease upkeep"):
            failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith(loop)]
            assert all(mapped in said for said in failed), failed
            assert failed or (how == "immutable" and loop != "claiming due fires")
        assert rt.running
    finally:
        await rt.stop()


@pytest.mark.parametrize("how", ["overwritten", "immutable", "deleted"])
async def test_a_runtime_whose_file_goes_bad_resumes_once_it_is_good_again(
    path: Path, how: str
) -> None:
    # Its pooled connections kept what they had found: "file is not a database" after
    # the good file was back, a read-only open after the file was writable again, and a
    # file deleted and restored from a backup was not even noticed (its connections
    # went on with the deleted file, so fires told and written there were lost, and ran
    # again from the restored one). Every store call failed until a restart.
    from langgraph.checkpoint.memory import InMemorySaver

    if how == "immutable":
        _chattr()
    told: list[TaskRunRecord] = []

    async def on_run(record: TaskRunRecord) -> None:
        told.append(record)

    clock = FakeClock(FAKE_START)
    # The checkpointer's own connection to the file is the checkpointer's (see the
    # README): turns keep their checkpoints in memory here.
    rt = await _running_on(
        path, clock, store_retry_secs=0.5, checkpointer=InMemorySaver(), on_run=on_run
    )
    backup = path.with_name("backup.db")
    bad = contextlib.ExitStack()
    try:
        for n in range(2):
            await rt.create_task(name=f"minutely {n}", schedule=Interval(minutes=1), trigger="go")
        assert await step(rt, clock, 61) == 2
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with (
            contextlib.closing(sqlite3.connect(path)) as conn,
            contextlib.closing(sqlite3.connect(backup)) as copy,
        ):
            conn.backup(copy)
        good = path.read_bytes()
        restore: Callable[[], object]
        if how == "overwritten":
            _no_database_any_more(path)
            restore = lambda: path.write_bytes(good)  # noqa: E731
        elif how == "immutable":
            immutable = _immutable(path.parent, path, path.with_name(f"{path.name}-wal"))
            bad.enter_context(immutable)
            restore = bad.close
            # A burst of calls: the store opens more connections, read-only (SQLite
            # opens a file it may not write so; reads pass).
            hold = lambda conn: time.sleep(0.05)  # noqa: E731
            calls = (rt.store.transaction(hold) for _ in range(6))
            await asyncio.gather(*calls, return_exceptions=True)
        else:
            path.unlink()
            restore = lambda: backup.replace(path)  # noqa: E731
        for _ in range(3):  # fires due while the file is bad, a new connection opened
            await clock.advance(60)
            with pytest.raises(StoreError) as raised:
                await rt.run_due()
            assert not isinstance(raised.value, StoreUnavailable)
        restore()
        await rt.run_due()
        await rt.wait_idle()
        assert await step(rt, clock, 60) == 2  # and on, as before
        assert rt.running
    finally:
        bad.close()
        await rt.stop()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        stored = conn.execute(
            "SELECT task_id, scheduled_for, attempt, outcome FROM lgs_runs ORDER BY scheduled_for"
        ).fetchall()
    fires = [(r.task_id, r.scheduled_for, r.attempt) for r in told]
    assert len(fires) == len(set(fires)) == len(stored)  # each told once, each stored
    # Per task: its first fire, the three due while the file was bad (the last one run,
    # those before it recorded missed in one record, per the catch_up policy), the next.
    by_task: dict[str, list[tuple[str, str]]] = {}
    for task_id, scheduled_for, _, outcome in stored:
        by_task.setdefault(task_id, []).append((scheduled_for[11:16], outcome))
    expected = [("08:01", "success"), ("08:02", "missed"), ("08:04", "success")]
    assert list(by_task.values()) == [[*expected, ("08:05", "success")]] * 2, stored


async def test_a_claim_retried_through_a_long_lock_says_so_once_a_minute(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim's retry warned at every backoff step (ten in its first two seconds, then
    # one each 5 s) for as long as another process held the file's write lock. Now the
    # first failure is said, the same one again once a minute on the runtime's clock
    # (which stands still here), the give-up once, and the first claim that works.
    monkeypatch.setattr("langgraph_scheduler.store_sqlite.BUSY_TIMEOUT_SECS", 0.02)
    clock = FakeClock(FAKE_START)
    rt = await _running_on(path, clock, store_retry_secs=1.5)
    try:
        await rt.create_task(name="minutely", schedule=Interval(minutes=1), trigger="go")
        caplog.set_level(logging.INFO, logger="langgraph_scheduler")
        with _write_lock_held(path):
            await clock.advance(61)
            assert await rt.run_due() == 0  # given up after store_retry_secs
        retried = _said(caplog, f"database {rt.store.safe_url} is unavailable")
        assert len(retried) == 1, retried
        assert retried[0].endswith(", retrying to claim due fires")
        assert len(_said(caplog, "gave up to claim due fires: database")) == 1
        await rt.run_due()  # or the claim loop's own pass, since the lock went
        await rt.wait_idle()
        assert await record_count(rt) == 1
        assert _said(caplog, "the database answers again") == [
            "the database answers again (claim due fires)"
        ]
    finally:
        await rt.stop()


async def test_connections_opened_while_the_file_was_read_only_write_once_it_is_not(
    store: Store, path: Path
) -> None:
    # SQLite opens a file it may not write read-only, and the reads pass: such pooled
    # connections refused writes after the file was writable again (no write had failed
    # meanwhile to drop them).
    _chattr()
    hold = lambda conn: time.sleep(0.05)  # noqa: E731
    write = lambda conn: conn.exec_driver_sql("UPDATE lgs_meta SET value = value")  # noqa: E731
    with _immutable(path.parent, path, path.with_name(f"{path.name}-wal")):
        # A burst of reads: the store opens more connections than it had.
        await asyncio.gather(*(store.transaction(hold) for _ in range(6)))
    for _ in range(3):
        await asyncio.gather(*(store.transaction(write) for _ in range(3)))
