"""The PostgreSQL twin of the store: several replicas on one database.

Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED``, so replicas split a burst
instead of racing it; every task change is announced with ``NOTIFY`` and followed with
``LISTEN`` (with polling as the safety net); one turn per conversation thread across
replicas through session advisory locks; checkpoints in ``AsyncPostgresSaver``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import Select

from .errors import ThreadBusy
from .store import Store, TaskChange, ThreadLocks, tasks_table

__all__ = ["PostgresStore"]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

TASK_CHANGES_CHANNEL = "lgs_task_changes"
"""NOTIFY channel carrying the id of every created, changed or deleted task."""

# Advisory lock keys: our schema, a replica's whole start-up, quota checks, threads.
_SCHEMA_LOCK = 0x4C47_5343_4845_4455  # "LGSCHEDU"
_SETUP_LOCK = _SCHEMA_LOCK + 1
_QUOTA_LOCK_CLASS = 0x4C51  # "LQ"
_THREAD_LOCK_CLASS = 0x4C47  # "LG"


class PostgresStore(Store):
    """Tasks and runs in PostgreSQL (``postgresql://…``, extra ``postgres``).

    Args:
        url: a ``postgresql+psycopg`` URL.
        pool_size: connections kept open for transactions and thread locks.
    """

    dialect = "postgresql"

    def __init__(self, url: URL, *, pool_size: int = 10) -> None:
        super().__init__(url)
        self.async_engine: AsyncEngine = create_async_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size // 2
        )
        self.sync_engine = self.async_engine.sync_engine
        self._locks = ThreadLocks()

    @property
    def conninfo(self) -> str:
        """The libpq connection string (for psycopg connections of our own)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _run(self, work: Callable[[Connection], _T]) -> _T:
        async with self.async_engine.begin() as conn:
            return await conn.run_sync(work)

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(conflict) or None
        )

    def _lock_due(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def _lock_row(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update()

    def _serialize_owner(self, conn: Connection, owner: str) -> None:
        # READ COMMITTED would let two concurrent writes both see room for one.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:c, hashtext(:o))"),
            {"c": _QUOTA_LOCK_CLASS, "o": owner},
        )

    def _notify(self, conn: Connection, task_id: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:channel, :task_id)"),
            {"channel": TASK_CHANGES_CHANNEL, "task_id": task_id},
        )

    def _before_setup(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})

    async def close(self) -> None:
        await self.async_engine.dispose()

    @contextlib.asynccontextmanager
    async def _setup_lock(self) -> AsyncIterator[None]:
        async with self.async_engine.connect() as conn:
            # Autocommit and try-lock polling: a waiter must hold no snapshot, or the
            # holder's CREATE INDEX CONCURRENTLY (checkpointer setup) would wait for it.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock = text("SELECT pg_try_advisory_lock(:k)")
            while not await conn.scalar(lock, {"k": _SETUP_LOCK}):
                await asyncio.sleep(0.1)
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SETUP_LOCK})

    def setup_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._setup_lock()

    async def follow_changes(
        self,
        on_change: Callable[[TaskChange], Awaitable[None]],
        *,
        since: datetime,
        poll_secs: float,
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], datetime],
    ) -> None:
        """LISTEN for changes (within a moment), and poll as the safety net for
        notifications lost while the listening connection was down."""
        listener = asyncio.ensure_future(self._listen(on_change))
        try:
            await self._poll_changes(
                on_change,
                since=since,
                poll_secs=max(poll_secs, 5.0),
                sleep=sleep,
                now=now,
            )
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(self, on_change: Callable[[TaskChange], Awaitable[None]]) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {TASK_CHANGES_CHANNEL}")
                    async for note in conn.notifies():
                        try:
                            await on_change(await self._change_of(note.payload))
                        except Exception:
                            logger.exception("applying change of task %s failed", note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("task change listener lost its connection (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _change_of(self, task_id: str) -> TaskChange:
        from sqlalchemy import select

        query = select(tasks_table.c.state, tasks_table.c.next_run_at).where(
            tasks_table.c.id == task_id
        )
        row = await self.transaction(lambda conn: conn.execute(query).first())
        if row is None:
            return TaskChange(task_id, None, None)
        return TaskChange(task_id, row[0], row[1])

    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._hold(thread_id, timeout)

    @contextlib.asynccontextmanager
    async def _hold(self, thread_id: str, timeout: float | None) -> AsyncIterator[None]:
        """In this process first, then a session advisory lock on a pooled connection
        held for the turn (a crashed process's locks go with its connections)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self._locks.hold(thread_id, timeout=timeout):
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            async with self._advisory(thread_id, remaining):
                yield

    @contextlib.asynccontextmanager
    async def _advisory(self, thread_id: str, timeout: float | None) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        key = {"c": _THREAD_LOCK_CLASS, "t": thread_id}
        async with self.async_engine.connect() as conn:
            delay = 0.05
            while True:
                got = await conn.scalar(text("SELECT pg_try_advisory_lock(:c, hashtext(:t))"), key)
                await conn.commit()
                if got:
                    break
                if deadline is not None and loop.time() >= deadline:
                    raise ThreadBusy(thread_id)
                pause = delay if deadline is None else min(delay, max(deadline - loop.time(), 0))
                await asyncio.sleep(pause)
                delay = min(delay * 2, 1.0)
            try:
                yield
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(:t))"), key)
                    await conn.commit()
                except BaseException:
                    # Never return a connection still holding the lock to the pool.
                    await conn.invalidate()
                    raise

    async def open_checkpointer(
        self, stack: contextlib.AsyncExitStack, *, max_connections: int
    ) -> Any:
        """``AsyncPostgresSaver`` on the same database, over a small pool."""
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # A pool, not one connection: a dropped connection is replaced instead of failing
        # every later turn.
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            check=AsyncConnectionPool.check_connection,
            open=False,
        )
        await pool.open()
        stack.push_async_callback(pool.close)
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        return saver
