"""The SQLite twin of the store: a file (the default) or memory, with its checkpointer.

Transactions run on the standard library's ``sqlite3`` through SQLAlchemy (the fire
path's statements straight on the driver connection, compiled once): inline on the event
loop in memory, on its one connection kept open (a statement takes microseconds, and a
transaction that never awaits cannot interleave with another; a lone settled finish is
begun and committed on the driver itself), and in a small thread pool for a file, one
thread hop per transaction. Every transaction starts with ``BEGIN IMMEDIATE``: SQLite has one
writer, and taking the write lock up front means a claim's read and write see the same
rows. Task changes made by other processes are found by polling ``updated_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool, StaticPool

from .store import Store, ThreadLocks

__all__ = ["SqliteStore"]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

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
    """

    dialect = "sqlite"

    def __init__(self, url: URL, *, pool_size: int = 4) -> None:
        super().__init__(url)
        self.in_memory = url.database in (None, "", ":memory:")
        threads = max(1, min(pool_size, 4))
        self.sync_engine = _engine(url, in_memory=self.in_memory, pool=threads)
        self._executor = (
            None if self.in_memory else ThreadPoolExecutor(threads, thread_name_prefix="lgs-sqlite")
        )
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

    async def _run_single(self, work: Callable[[Connection], _T]) -> _T:
        if not self.in_memory:
            return await self._run(work)
        # In memory the transaction is begun and ended on the driver connection itself:
        # the work's statements go there too (see Store._run_single), and SQLAlchemy's
        # transaction bookkeeping would cost more than they do.
        conn = self._kept_connection()
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        _begin_immediate(driver)
        try:
            result = work(conn)
        except BaseException:
            driver.execute("ROLLBACK")
            raise
        driver.execute("COMMIT")
        return result

    def _kept_connection(self) -> Connection:
        conn = self._kept
        if conn is None or conn.closed:
            conn = self._kept = self.sync_engine.connect()
        return conn

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._kept is not None:
            self._kept.close()
        self.sync_engine.dispose()

    @contextlib.asynccontextmanager
    async def _hold(self, thread_id: str, timeout: float | None) -> AsyncIterator[None]:
        async with self._locks.hold(thread_id, timeout=timeout):
            yield

    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._hold(thread_id, timeout)

    async def open_checkpointer(
        self, stack: contextlib.AsyncExitStack, *, max_connections: int
    ) -> Any:
        """``AsyncSqliteSaver`` on the same file; ``InMemorySaver`` for memory."""
        if self.in_memory:
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        conn = await aiosqlite.connect(str(self.url.database), timeout=30)
        stack.push_async_callback(conn.close)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return saver


def _engine(url: URL, *, in_memory: bool, pool: int) -> Engine:
    if in_memory:
        # One connection, used by one transaction at a time: transactions run inline on
        # the event loop and never await, so they cannot interleave.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool,
            max_overflow=0,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling off: we begin (IMMEDIATE) ourselves.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")  # for the PRAGMAs below
        if not in_memory:
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
        _begin_immediate(conn.connection.driver_connection)  # type: ignore[arg-type]

    return engine


def _begin_immediate(connection: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, waiting for it up to
    :data:`BUSY_TIMEOUT_SECS` in steps of 0.5 ms doubling to 4 ms (then "database is
    locked", which the store maps to :class:`~.errors.StoreUnavailable`)."""
    deadline = 0.0
    pause = 0.0005
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            now = time.monotonic()
            deadline = deadline or now + BUSY_TIMEOUT_SECS
            if now >= deadline:  # raised from an engine event: mapped here, not by it
                raise DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc
        time.sleep(pause)
        pause = min(pause * 2, 0.004)
