"""The SQLite twin of the store: a file (the default) or memory, with its checkpointer.

Transactions run on the standard library's ``sqlite3`` through SQLAlchemy (the fire
path's statements straight on the driver connection, compiled once): inline on the event
loop in memory, on its one connection kept open (a statement takes microseconds, and a
transaction that never awaits cannot interleave with another), and in a small thread pool
for a file, one thread hop per transaction. Every transaction starts with
``BEGIN IMMEDIATE``: SQLite has one writer, and taking the write lock up front means a
claim's read and write see the same rows. Task changes made by other processes are found
by polling ``updated_at``.

The fire path's two writes that touch two tables each are single statements: an insert
into a view whose ``INSTEAD OF`` trigger does the work (``lgs_claim``: a fire's running
record inserted and its task moved on, if the task still has the version it was read at;
``lgs_settle``: a settled outcome on the run and its task), SQLite's counterpart of the
PostgreSQL twin's data-modifying CTEs. A usual claim (every due fire runs on time, no
retry due) is then a read and one such insert per fire, outside any transaction; a
lone settled finish is one insert (see ``Store._claim``). Sent alone, a statement waiting
for another connection's write lock is sent again, as ``BEGIN IMMEDIATE`` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    or_,
    type_coerce,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.sql import ColumnElement

from .errors import StoreError, StoreUnavailable
from .models import TaskRunRecord
from .store import (
    _RUN_FINISH,
    LOCK_LOG_SECS,
    QUIET_LOCK_SECS,
    Finished,
    Store,
    ThreadLocks,
    _bind,
    _finish_params,
    _settling,
    _started_binds,
    _started_params,
    is_in_memory,
    runs_table,
    tasks_table,
)

__all__ = ["SqliteStore"]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

_STORED_FORM = (
    "-".join(["[0-9]" * 4, "[0-9]" * 2, "[0-9]" * 2])
    + " "
    + (":".join(["[0-9]" * 2] * 3) + "." + "[0-9]" * 6)
)
"""A GLOB of the form the store writes a time in (``2026-01-01 09:00:00.000000``, UTC)."""

BUSY_TIMEOUT_SECS = 30.0
"""How long a transaction waits for another connection's write lock on the file."""

SYNCHRONOUS = "NORMAL"
"""SQLite's durability setting, the same for run records and checkpoints (they share the
file): in WAL mode, ``NORMAL`` survives a crash of the process without loss; a power cut
or an OS crash may lose the last commits of both, never corrupt the file. A fire whose
records were lost that way is claimed again (or, if its claim survived and its finish did
not, recorded ``interrupted`` when its lease runs out)."""


class SqliteStore(Store):
    """Tasks and runs in a SQLite file, or in memory for ``sqlite://``.

    Note:
        Several processes may share a file (the CLI beside a running runtime), but only
        on one machine; use PostgreSQL for replicas.

    ``read_only``: every connection opens the file for reading only (see
    :func:`_read_only_uri`), so a file this process may not write can be read.
    """

    dialect = "sqlite"

    def __init__(self, url: URL, *, pool_size: int = 4, read_only: bool = False) -> None:
        super().__init__(url)
        self.in_memory = is_in_memory(url)
        threads = max(1, min(pool_size, 4))
        self._opened = threading.Event()
        """Set once a connection opened the file: from then on none creates it."""
        self._read_only = (
            _read_only_uri(str(url.database)) if read_only and not self.in_memory else None
        )
        """The URI every connection opens the file by, when it opens it for reading only."""
        self.sync_engine = _engine(
            url, in_memory=self.in_memory, pool=threads, opened=self._opened, uri=self._read_only
        )
        self._executor = (
            None if self.in_memory else ThreadPoolExecutor(threads, thread_name_prefix="lgs-sqlite")
        )
        self._driver_errors = (sqlite3.Error,)
        self._locks = ThreadLocks()
        self._kept: Connection | None = None
        """In memory: the one connection, kept for the store's life (transactions run
        inline and never interleave), which spares each transaction a checkout."""

    async def _run(self, work: Callable[[Connection], _T]) -> _T:
        if self._executor is None:
            return self._run_here(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_here, work)

    def _run_here(self, work: Callable[[Connection], _T]) -> _T:
        if self.in_memory:
            conn = self._kept_connection()
            with conn.begin():
                return work(conn)
        with self.sync_engine.begin() as conn:
            return work(conn)

    async def _run_alone(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` outside a transaction: each of its statements commits by itself
        (and is sent again while another connection holds the write lock)."""
        if self._executor is None:
            return work(self._kept_connection())
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._alone_here, work)

    def _alone_here(self, work: Callable[[Connection], _T]) -> _T:
        with self.sync_engine.connect() as conn:
            return work(conn)

    def _write(self, conn: Connection, statement: Any, params: dict[str, Any]) -> tuple[int, Any]:
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        write = functools.partial(super()._write, conn, statement, params)
        if driver.in_transaction:  # BEGIN IMMEDIATE took the write lock
            return write()
        return _when_unlocked(write)

    def _changes(self, conn: Connection, statement: Any, params: dict[str, Any]) -> int:
        """Rows ``statement`` changed, those of the triggers it fired included."""
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        before = driver.total_changes
        self._write(conn, statement, params)
        return driver.total_changes - before

    # -- the fire path ------------------------------------------------------------

    def _start_run(
        self,
        conn: Connection,
        run: TaskRunRecord,
        holder: str,
        lease_until: datetime,
        move: dict[str, Any],
    ) -> bool | None:
        params = _started_params(run, holder, lease_until) | move
        changed = self._changes(conn, _CLAIM, params)
        # Two rows: the run inserted and the task moved; one: the task moved, the fire
        # had been claimed before; none: the task's version is not the one read.
        return None if changed == 0 else changed == 2

    def _finish_settled(
        self, conn: Connection, record: TaskRunRecord, finished: dict[str, Any], holder: str | None
    ) -> Finished | None:
        written, params = _settling(record)
        changed = self._changes(conn, _SETTLE, params | _finish_params(record, finished, holder))
        if changed == 0:  # finished before (a lease sweep, say), or taken over
            return None
        if changed == 1:  # the run's task is gone
            return self._settled(record, written, None)
        if params["b_reset"]:
            return self._settled(record, written, 0)
        # A manual run leaves the streak as it is (the kept task's, if it is kept).
        known = self._tasks.get(record.task_id)
        return self._settled(record, written, known[1].failure_streak if known else 0)

    def _map_error(self, exc: BaseException) -> StoreError:
        """A file this process may not open or write, or a failed disk, is no passing
        state (as a lock is): a :class:`~.errors.StoreError` that says what to fix, not a
        ``StoreUnavailable`` the engine would retry for ``store_retry_secs`` at each
        step. Such an error of the file itself (:data:`_FILE_ERRORS`) also drops the
        pooled connections, so the store goes on by itself once the file is mended."""
        orig = getattr(exc, "orig", None) or exc
        if not isinstance(orig, sqlite3.Error):
            return super()._map_error(exc)
        path = Path(str(self.url.database))
        said = str(orig).strip()
        if not self.in_memory and any(words in said for words in _FILE_ERRORS):
            # A pooled connection keeps what it found (a header that was no database,
            # a file it could only open read-only, a file since deleted): dropped, so
            # the next call opens the file afresh and works once the file is good again.
            self.sync_engine.dispose()
        if "readonly database" in said:  # SQLITE_READONLY and its extended codes
            return StoreError(
                f"the SQLite file {path} is read-only ({said}): the user this process "
                f"runs as must be able to write it and its folder {path.parent} (SQLite "
                f"writes {path.name}-wal and {path.name}-shm beside it), on a file system "
                "mounted read-write; fix the permissions or point the URL at another file"
            )
        if "disk I/O error" in said:  # SQLITE_IOERR: what a write to a file made read-only
            # under an open connection gets (or to a file system remounted read-only)
            return StoreError(
                f"the SQLite file {path} could not be read or written ({said}): the "
                f"file, {path.name}-wal or {path.name}-shm beside it, or their file system "
                "became read-only, or the disk failed; once that is fixed, the runtime "
                "goes on by itself"
            )
        gone = self._opened.is_set() and not path.exists()
        if "unable to open database file" in said and gone:
            # The store opens a file it has seen without creating it (_follow_the_file): one
            # made anew would be an empty database, and the file put back beside its
            # connections would be read with that one's log.
            return StoreError(
                f"the SQLite file {path} is gone ({said}): it was deleted or moved while "
                "the store had it open; put it back (a backup copy, with no "
                f"{path.name}-wal or {path.name}-shm of another file beside it) and the "
                "runtime goes on by itself"
            )
        if "unable to open database file" in said:  # SQLITE_CANTOPEN
            return StoreError(
                f"the SQLite file {path} cannot be opened ({said}): the user this process "
                f"runs as must be able to write its folder {path.parent} (SQLite creates "
                f"the file, {path.name}-wal and {path.name}-shm there) and the file itself; "
                "fix the permissions or point the URL at another file"
            )
        return super()._map_error(exc)

    def _after_setup(self, conn: Connection) -> None:
        for statement in _VIEWS_DDL:
            conn.exec_driver_sql(statement)

    def _kept_connection(self) -> Connection:
        conn = self._kept
        if conn is None or conn.closed:
            conn = self._kept = self.sync_engine.connect()
        return conn

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    def _readable(self) -> list[ColumnElement[bool]]:
        # SQLite keeps any value in any column: a number or a blob where text is due
        # (or text where a number is), a time that is no date (February 30th).
        t = tasks_table.c
        checks = super()._readable()
        checks += [func.typeof(c) == "integer" for c in (t.version, t.run_count, t.failure_streak)]
        checks += [func.typeof(c) == "text" for c in (t.name, t.owner)]
        for nullable, kind in ((t.max_runs, "integer"), (t.thread_id, "text")):
            checks.append(or_(nullable.is_(None), func.typeof(nullable) == kind))
        return checks

    def _as_held(self, held: ColumnElement[Any]) -> ColumnElement[Any]:
        # Times are text here, in the store's form or, written by hand, in another one
        # that reads as the same time ("T", an offset): the text itself tells the row.
        return type_coerce(held, String())

    def _readable_time(self, held: ColumnElement[Any]) -> ColumnElement[bool]:
        # Text between the bounds may still be no time (February 30th). A modifier
        # makes date() carry a day past the month's end into the next; datetime() is
        # NULL for a time of day that is none (25:00) or trailing text.
        # Text in another form than the store writes ("T", an offset, by hand) compares
        # wrongly with its times (as text): unreadable too.
        day = func.substr(held, 1, 10)
        read = and_(func.date(day, "+0 days") == day, func.datetime(held).is_not(None))
        return and_(super()._readable_time(held), func.glob(_STORED_FORM, held) == 1, read)

    async def close(self) -> None:
        if self._executor is not None:
            # A call whose caller was cancelled still runs on its thread: it ends before
            # the store closes, so nothing is written once close returns.
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        if self._kept is not None:
            self._kept.close()
        self.sync_engine.dispose()

    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None, run_id: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locks.hold(thread_id, timeout=timeout)

    @contextlib.asynccontextmanager
    async def _setup_lock(self, patience: float) -> AsyncIterator[None]:
        """Wait up to ``patience`` seconds for the file's write lock, held by another
        process (a transaction left open: a ``sqlite3`` shell, a backup, a process
        stopped mid-write), saying so every :data:`LOCK_LOG_SECS`; a start-up sent into
        that lock would give up after one busy wait, with a trace naming no culprit.
        The lock is not kept: the start-up's own transactions take it in turn."""
        path = str(self.url.database)
        loop = asyncio.get_running_loop()
        began = loop.time()
        # A first wait in silence: another runtime on the file holds the lock for a
        # moment at a time (a start beside a running one would warn for nothing).
        wait = min(QUIET_LOCK_SECS, patience)
        while not await asyncio.to_thread(_write_lock_free, path, wait):
            waited = loop.time() - began
            if waited >= patience:
                raise StoreUnavailable(
                    f"database {self.safe_url} is locked: another process has held its "
                    f"write lock for {waited:.0f}s (a transaction left open: a sqlite3 "
                    f"shell, a backup, a process stopped mid-write; `fuser {path}` names "
                    f"it); the start gave up after store_retry_secs={patience:g}"
                )
            logger.warning(
                "database %s is locked by another process (held for %.0fs): the start "
                "waits for its write lock, up to %gs (store_retry_secs)",
                self.safe_url,
                waited,
                patience,
            )
            wait = min(LOCK_LOG_SECS, patience - waited)
        yield

    def setup_lock(
        self, *, patience: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        if self.in_memory or patience is None:
            return contextlib.nullcontext()
        return self._setup_lock(patience)

    async def open_checkpointer(
        self, stack: contextlib.AsyncExitStack, *, max_connections: int
    ) -> Any:
        """``AsyncSqliteSaver`` on the same file; ``InMemorySaver`` for memory."""
        if self.in_memory:
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        if self._read_only is not None:
            return await self._read_only_checkpointer(stack)
        conn = await aiosqlite.connect(str(self.url.database), timeout=30)
        stack.push_async_callback(conn.close)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return saver

    async def _read_only_checkpointer(self, stack: contextlib.AsyncExitStack) -> Any:
        """The checkpoints of a file opened for reading only, never set up (that would
        write); a file without their tables holds no conversation, so it reads as an
        empty ``InMemorySaver``."""
        import aiosqlite
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        assert self._read_only is not None
        conn = await aiosqlite.connect(self._read_only, uri=True, timeout=30)
        stack.push_async_callback(conn.close)
        query = "SELECT count(*) FROM sqlite_master WHERE name IN ('checkpoints', 'writes')"
        async with conn.execute(query) as cursor:
            found = await cursor.fetchone()
        if found is None or found[0] < 2:
            return InMemorySaver()
        saver = AsyncSqliteSaver(conn)
        saver.is_setup = True  # its tables are there, and it may not write them
        return saver


def _read_only_uri(path: str) -> str:
    """The URI that opens the SQLite file at ``path`` for reading only: ``mode=ro``, or
    ``immutable=1`` when SQLite cannot read it so (a file in WAL mode needs its ``-shm``
    beside it, which it cannot create in a folder this process may not write; with no
    ``-shm``, no connection has the file open for writing, so it cannot change under
    this one). The probe's failure, if any, is left to the first statement to report."""
    base = Path(path).absolute().as_uri()  # "?", "#" and "%" escaped
    read_only = f"{base}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.OperationalError as exc:
        if "unable to open database file" in str(exc) and os.access(path, os.R_OK):
            return f"{base}?immutable=1"
    except sqlite3.Error:
        pass
    return read_only


def _write_lock_free(path: str, wait: float) -> bool:
    """Whether the write lock on the file at ``path`` could be taken within ``wait``
    seconds (taken and given back at once). Any failure but the lock's says True: the
    start-up that follows meets it, and reports it as every store call does."""
    try:
        conn = sqlite3.connect(path, timeout=wait, isolation_level=None)
    except sqlite3.Error:
        return True
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # "file is not a database" too: the start-up says it
        return not (isinstance(exc, sqlite3.OperationalError) and _refused_for_lock(exc))
    finally:
        conn.close()
    return True


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _engine(
    url: URL, *, in_memory: bool, pool: int, opened: threading.Event, uri: str | None = None
) -> Engine:
    """The engine of the store's connections; ``uri``: the URI they open the file by,
    for reading only (see :func:`_read_only_uri`)."""
    if in_memory:
        # One connection, used by one transaction at a time: transactions run inline on
        # the event loop and never await, so they cannot interleave.
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            hide_parameters=True,  # see Store._map_error
        )
    else:
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool,
            max_overflow=0,
            connect_args={"timeout": 30, "check_same_thread": False},
            hide_parameters=True,  # see Store._map_error
        )
        if uri is None:
            _follow_the_file(engine, str(Path(str(url.database)).absolute()), opened)
        else:
            _open_by(engine, uri)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling off: we begin (IMMEDIATE) ourselves.
        dbapi_conn.isolation_level = None
        # Text that is no UTF-8 (a row written by hand) read with U+FFFD in its place:
        # it would fail the fetch of the whole result, and one row stop the claim of
        # every due task (task_from_row reports what it cannot read).
        dbapi_conn.text_factory = _lenient_text
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")  # for the PRAGMAs below
        if not in_memory and uri is None:  # a read-only connection reads it as it is
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        # Waiting for the write lock is done by _begin, in finer steps than SQLite's own
        # busy handler (1, 2, 5, 10 ms… sleeps, while the checkpointer's connection
        # holds the lock for a fraction of a millisecond at a time).
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Straight to the driver: nothing to compile, bind or read back.
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        if uri is None:
            _begin_immediate(driver)
        else:  # reads only: no write lock to take (an immutable file has none)
            driver.execute("BEGIN")

    return engine


_FILE_ERRORS = (
    "file is not a database",  # SQLITE_NOTADB
    "readonly database",  # SQLITE_READONLY and its extended codes
    "disk I/O error",  # SQLITE_IOERR
    "unable to open database file",  # SQLITE_CANTOPEN
    "database disk image is malformed",  # SQLITE_CORRUPT
)
"""What SQLite says of the file itself rather than of a statement: a connection that
met one keeps meeting it (its cached header, its read-only open, its deleted file)
after the file is mended, so the store drops its connections (see
``SqliteStore._map_error``)."""


def _file_id(path: str) -> tuple[int, int] | None:
    """The device and inode of the file at ``path`` (None: there is none)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _follow_the_file(engine: Engine, path: str, opened: threading.Event) -> None:
    """Keep the engine's connections on the file now at ``path``: a pooled connection
    whose file was deleted or replaced (a backup copied back) would go on reading and
    writing the old one, unseen, and one SQLite opened read-only (the file was, then)
    would refuse every write; either is opened again at its next checkout once that
    changed. Once a connection has opened the file (``opened`` set), new ones never
    create it: a file deleted under the store is an error ("unable to open database
    file") until it is put back, not a new empty database."""

    @event.listens_for(engine, "do_connect")
    def _no_new_file(_dialect: Any, _rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        if opened.is_set():
            cargs[0] = f"{Path(path).as_uri()}?mode=rw"
            cparams["uri"] = True

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_conn: Any, record: Any) -> None:
        opened.set()
        record.info["lgs_file"] = _file_id(path)
        record.info["lgs_read_only"] = not os.access(path, os.W_OK)

    @event.listens_for(engine, "checkout")
    def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("lgs_file") != _file_id(path):
            raise DisconnectionError(f"the SQLite file {path} was deleted or replaced")
        if record.info.get("lgs_read_only") and os.access(path, os.W_OK):
            raise DisconnectionError(f"the SQLite file {path} is writable again")


def _open_by(engine: Engine, uri: str) -> None:
    """Open every connection of ``engine`` by ``uri`` (a read-only store's)."""

    @event.listens_for(engine, "do_connect")
    def _by_uri(_dialect: Any, _rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
        cargs[0] = uri
        cparams["uri"] = True


def _refused_for_lock(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says another connection holds the lock the statement needs
    ("database is locked", "database table is locked", SQLITE_BUSY)."""
    return "locked" in str(exc) or "busy" in str(exc)


def _begin_immediate(connection: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, waiting for it (see
    :func:`_when_unlocked`)."""
    _when_unlocked(lambda: connection.execute("BEGIN IMMEDIATE"), "BEGIN IMMEDIATE")


def _when_unlocked(call: Callable[[], _T], what: str | None = None) -> _T:
    """``call()``, a statement needing the write lock, sent again while another
    connection holds it, up to :data:`BUSY_TIMEOUT_SECS` in steps of 0.5 ms doubling to
    4 ms (then "database is locked", which the store maps to
    :class:`~.errors.StoreUnavailable`). A statement refused for that has changed
    nothing. ``what``: the statement, for an error raised by the driver itself (any,
    wrapped here as SQLAlchemy would, since the caller is an engine event, which
    SQLAlchemy does not wrap: a file made read-only, or no database any more)."""
    deadline = 0.0
    pause = 0.0005
    while True:
        try:
            return call()
        except (sqlite3.Error, DBAPIError) as exc:
            orig = exc.orig if isinstance(exc, DBAPIError) else exc
            if not isinstance(orig, sqlite3.OperationalError) or not _refused_for_lock(orig):
                if what is None or isinstance(exc, DBAPIError):
                    raise
                # Raised in an engine event, where SQLAlchemy does not wrap it.
                raise DBAPIError.instance(what, None, exc, sqlite3.Error) from exc
            now = time.monotonic()
            deadline = deadline or now + BUSY_TIMEOUT_SECS
            if now >= deadline:
                if isinstance(exc, DBAPIError):
                    raise
                raise DBAPIError.instance(what, None, exc, sqlite3.Error) from exc
        time.sleep(pause)
        pause = min(pause * 2, 0.004)


# -- the fire path's two-table writes ----------------------------------------------

_RUN_NAMES = tuple(runs_table.c.keys())

_SETTLED = ("run_id", "task_id", "holder", *_RUN_FINISH)
"""The columns of ``lgs_settle``: the run, while ``holder`` holds its claim, and what
its finish writes."""

_views = MetaData()
"""Views with ``INSTEAD OF`` triggers: not tables, so outside the store's metadata."""

_claim_view = Table(
    "lgs_claim",
    _views,
    *[Column(column.name, column.type) for column in runs_table.c],
    Column("task_version", Integer),
    Column("next_run_at", tasks_table.c.next_run_at.type),
    Column("task_state", String),
)

_settle_view = Table(
    "lgs_settle",
    _views,
    *[Column(name, runs_table.c[name].type) for name in _SETTLED],
    Column("reset", Boolean),
)

_CLAIM = insert(_claim_view).values(
    _started_binds()
    | {
        "task_version": bindparam("b_version", type_=Integer()),
        "next_run_at": _bind(tasks_table.c.next_run_at),
        "task_state": _bind(tasks_table.c.state),
    }
)
"""A claimed fire (the parameters of ``_FireStatements.move_task`` and ``r_<column>``
for its run): see :data:`_VIEWS_DDL`."""

_SETTLE = insert(_settle_view).values(
    {name: _bind(runs_table.c[name]) for name in _RUN_FINISH}
    | {
        "run_id": bindparam("b_run", type_=String()),
        "task_id": bindparam("b_id", type_=String()),
        "holder": bindparam("b_holder", type_=String()),
        "reset": bindparam("b_reset", type_=Boolean()),
    }
)
"""A settled finish (the parameters of ``_FireStatements.task_settled`` and
``b_<column>`` of what it writes to its run): see :data:`_VIEWS_DDL`."""


def _quoted(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{name}"' for name in names)


_VIEWS_DDL = (
    "DROP VIEW IF EXISTS lgs_claim",
    f"CREATE VIEW lgs_claim AS SELECT {_quoted(_RUN_NAMES)}, NULL AS task_version, "
    "NULL AS next_run_at, NULL AS task_state FROM lgs_runs WHERE 0",
    # The run is inserted only while the task has the version its fire was planned
    # from (a fire already claimed is not inserted twice), and the task moved on from
    # that version, counting the run if it is now stored.
    f"""CREATE TRIGGER lgs_claim_insert INSTEAD OF INSERT ON lgs_claim BEGIN
    INSERT INTO lgs_runs ({_quoted(_RUN_NAMES)}) SELECT {_quoted(_RUN_NAMES, "NEW.")}
        WHERE EXISTS (
            SELECT 1 FROM lgs_tasks WHERE id = NEW.task_id AND version = NEW.task_version
        )
        ON CONFLICT DO NOTHING;
    UPDATE lgs_tasks SET
        next_run_at = NEW.next_run_at,
        state = NEW.task_state,
        run_count = run_count + EXISTS (SELECT 1 FROM lgs_runs WHERE run_id = NEW.run_id),
        version = version + 1
        WHERE id = NEW.task_id AND version = NEW.task_version;
END""",
    "DROP VIEW IF EXISTS lgs_settle",
    f"CREATE VIEW lgs_settle AS SELECT {_quoted(_SETTLED)}, NULL AS reset FROM lgs_runs WHERE 0",
    # The task's last outcome (a scheduled success resets its streak), then the run's,
    # both only while the run is still running and its claim is the finisher's.
    f"""CREATE TRIGGER lgs_settle_insert INSTEAD OF INSERT ON lgs_settle BEGIN
    UPDATE lgs_tasks SET
        last_outcome = NEW.outcome,
        last_run_at = NEW.started_at,
        failure_streak = CASE WHEN NEW.reset THEN 0 ELSE failure_streak END
        WHERE id = NEW.task_id AND EXISTS (
            SELECT 1 FROM lgs_runs
            WHERE run_id = NEW.run_id AND outcome IS NULL AND holder IS coalesce(NEW.holder, holder)
        );
    UPDATE lgs_runs SET
        {", ".join(f'"{name}" = NEW."{name}"' for name in _RUN_FINISH)},
        lease_expires_at = NULL
        WHERE run_id = NEW.run_id AND outcome IS NULL AND holder IS coalesce(NEW.holder, holder);
END""",
)
"""The views the fire path writes through, and their triggers: created (again) by every
setup, so their definitions follow the library's; a database without them still opens
with an earlier version, which does not use them."""
