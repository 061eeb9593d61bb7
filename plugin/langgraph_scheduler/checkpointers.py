"""The default LangGraph checkpointer for a database URL: same file, same server."""

from __future__ import annotations

import contextlib
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy.engine import make_url

from .errors import SchedulerError
from .store import normalize_database_url

__all__ = ["open_checkpointer"]


async def open_checkpointer(
    database: str, stack: contextlib.AsyncExitStack, *, max_connections: int = 10
) -> BaseCheckpointSaver[Any]:
    """Open the checkpointer that lives beside the task store; ``stack`` closes it.

    SQLite file → ``AsyncSqliteSaver`` on the same file; in-memory SQLite →
    ``InMemorySaver``; PostgreSQL → ``AsyncPostgresSaver`` on the same database.
    """
    url = make_url(normalize_database_url(database))
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return InMemorySaver()
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        conn = await aiosqlite.connect(url.database, timeout=30)
        stack.push_async_callback(conn.close)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        return saver
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError:
        raise SchedulerError(
            "PostgreSQL checkpoints need the postgres extra: "
            'pip install "langgraph-scheduler[postgres]"'
        ) from None
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    # A pool, not one connection: a dropped connection is replaced instead of failing
    # every later turn.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_connections,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        check=AsyncConnectionPool.check_connection,
        open=False,
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    saver_pg = AsyncPostgresSaver(pool)
    await saver_pg.setup()
    return saver_pg
