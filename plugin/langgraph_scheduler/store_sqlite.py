"""The SQLite twin of the store: a file (the default) or memory, with its checkpointer.

Transactions run on the standard library's ``sqlite3`` through SQLAlchemy: inline on the
event loop in memory (a statement takes microseconds, and a transaction that never awaits
cannot interleave with another), and in a small thread pool for a file, one thread hop
per transaction. Every transaction starts with ``BEGIN IMMEDIATE``: SQLite has one
writer, and taking the write lock up front means a claim's read and write see the same
rows. Task changes made by other processes are found by polling ``updated_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import QueuePool, StaticPool

from .store import Store, ThreadLocks

__all__ = ["SqliteStore"]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

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

    async def _run(self, work: Callable[[Connection], _T]) -> _T:
        if self._executor is None:
            return self._run_here(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_here, work)

    def _run_here(self, work: Callable[[Connection], _T]) -> _T:
        with self.sync_engine.begin() as conn:
            return work(conn)

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
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
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Straight to the driver: nothing to compile, bind or read back.
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]

    return engine
