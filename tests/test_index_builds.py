"""PostgreSQL: an index added to an existing, maybe large table (``lgs_runs_finished``
on the runs of an earlier build) is built without blocking the replicas' writes.

A build is made to last by a transaction that wrote to ``lgs_runs`` and stays open
(``blocker``): a plain ``CREATE INDEX`` waits for it, and every write queued behind
that build waits too; ``CREATE INDEX CONCURRENTLY`` waits for it without holding writes
up. So the tests observe the locks themselves (``pg_stat_activity``, ``pg_blocking_pids``),
not durations, on a small table; one slow test builds on a million runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.store import open_store

from .helpers import build_graph
from .test_postgres_ops import pgbouncer  # noqa: F401 (a fixture)

_T = TypeVar("_T")

INDEX = "lgs_runs_finished"

FILL = """
INSERT INTO lgs_runs (run_id, task_id, attempt, trigger, scheduled_for, started_at,
                      finished_at, outcome)
SELECT 'r' || g, 't' || (g %% 1000), 1, 'schedule', now() - g * interval '1 second',
       now() - g * interval '1 second', now() - g * interval '1 second' + interval '2 s',
       'success'
FROM generate_series(1, %s) g
"""

WRITE = (
    "INSERT INTO lgs_runs (run_id, task_id, attempt, trigger, scheduled_for, started_at) "
    "VALUES (%s, 'writer', 1, 'manual', now(), now())"
)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


async def _until(check: Callable[[], Awaitable[_T | None]], what: str, secs: float = 25) -> _T:
    """Poll ``check`` until it returns something (not None), failing after ``secs``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + secs
    while True:
        found = await check()
        if found is not None:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool | None:
    return True if text in caplog.text else None


async def _started(start: asyncio.Future[Any]) -> None:
    """Wait for runtimes' start, which must not wait for the index build (the fire path
    does not need it)."""
    done, _ = await asyncio.wait([start], timeout=20)
    assert done, "the start waits for the index build"
    start.result()


@pytest.fixture
async def earlier(postgres_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The database of an earlier build: the current tables with runs, but no
    ``lgs_runs_finished``. Yields a session (autocommit) to watch it with."""
    store = open_store(postgres_url)
    try:
        await store.setup()
    finally:
        await store.close()
    conn = await psycopg.AsyncConnection.connect(_plain(postgres_url), autocommit=True)
    await conn.execute(f"DROP INDEX {INDEX}")
    await conn.execute(FILL, (1000,))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def new_runtime(
    postgres_url: str,
    runtime_factory: Callable[..., SchedulerRuntime],
    make_graph: Callable[..., Any],
) -> Callable[[], SchedulerRuntime]:
    """A runtime that runs turns (and so builds the indexes) on the test's database."""
    return lambda: runtime_factory(make_graph(), database=postgres_url)


@pytest.fixture
async def blocker(postgres_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A transaction that wrote a run and stays open until the returned call ends it."""
    conn = await psycopg.AsyncConnection.connect(_plain(postgres_url))
    await conn.execute(WRITE, ("blocker",))

    async def release() -> None:
        if not conn.closed:
            await conn.rollback()
            await conn.close()

    try:
        yield release
    finally:
        await release()


async def _builder(watch: psycopg.AsyncConnection[Any]) -> int | None:
    """The pid of the session building the index in this database, if one is."""
    cursor = await watch.execute(
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
        "AND datname = current_database() "  # tests run beside others, each on its own
        "AND query ILIKE 'CREATE%%INDEX%%' || %s || '%%' AND pid <> pg_backend_pid()",
        (INDEX,),
    )
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def _no_builder(watch: psycopg.AsyncConnection[Any]) -> bool | None:
    return True if await _builder(watch) is None else None


async def _invalid(watch: psycopg.AsyncConnection[Any]) -> bool | None:
    return True if await _validity(watch) is False else None


async def _validity(watch: psycopg.AsyncConnection[Any]) -> bool | None:
    """``pg_index.indisvalid`` of the index (None: there is none)."""
    cursor = await watch.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (INDEX,)
    )
    row = await cursor.fetchone()
    return None if row is None else bool(row[0])


async def _valid(watch: psycopg.AsyncConnection[Any]) -> bool | None:
    return True if await _validity(watch) else None


async def _write_beside(
    postgres_url: str, watch: psycopg.AsyncConnection[Any], builder: int, run_id: str
) -> bool:
    """Write a run while ``builder`` builds the index: the write must never wait for a
    lock that session holds. Returns whether the build still ran when the write ended."""
    async with await psycopg.AsyncConnection.connect(
        _plain(postgres_url), autocommit=True
    ) as writer:
        pid = writer.info.backend_pid
        write = asyncio.ensure_future(writer.execute(WRITE, (run_id,)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        try:
            while not write.done():
                cursor = await watch.execute(
                    "SELECT wait_event_type, pg_blocking_pids(pid) FROM pg_stat_activity "
                    "WHERE pid = %s",
                    (pid,),
                )
                row = await cursor.fetchone()
                if row is not None and row[0] == "Lock":
                    assert builder not in row[1], "the write waits for the index build's lock"
                assert loop.time() < deadline, "the write did not end"
                await asyncio.sleep(0.02)
        finally:
            if not write.done():
                await writer.cancel_safe()
            await asyncio.gather(write, return_exceptions=True)
        await write
    return await _builder(watch) == builder


async def test_writes_to_the_runs_go_on_while_the_index_is_built(
    postgres_url: str,
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    new_runtime: Callable[[], SchedulerRuntime],
) -> None:
    rt = new_runtime()
    start = asyncio.ensure_future(rt.start())
    try:
        builder = await _until(lambda: _builder(earlier), "the index build")
        assert await _write_beside(postgres_url, earlier, builder, "beside-the-build")
        await _started(start)
        assert rt.running and await _validity(earlier) is False  # still being built
    finally:
        await blocker()
        await asyncio.gather(start, return_exceptions=True)
    assert await _until(lambda: _valid(earlier), "a valid index")


async def test_an_index_left_invalid_by_an_interrupted_build_is_built_again(
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    new_runtime: Callable[[], SchedulerRuntime],
) -> None:
    first = new_runtime()
    start = asyncio.ensure_future(first.start())
    try:
        await _until(lambda: _builder(earlier), "the index build")
        # Past its first phase: the index is in the catalog, invalid until built.
        await _until(lambda: _invalid(earlier), "the build's invalid index")
        await _started(start)
        await first.stop()  # cuts the build short, as a killed replica would
    finally:
        if not start.done():  # a start that waits for the build (it must not)
            await blocker()
        await asyncio.gather(start, return_exceptions=True)
    # The build's session ends on the server once it has the cancel (a moment after the
    # stop closed its connection).
    await _until(lambda: _no_builder(earlier), "the cut-short build's session to end")
    assert await _validity(earlier) is False  # what a build cut short leaves
    await blocker()

    async with new_runtime():
        assert await _until(lambda: _valid(earlier), "a valid index")
    cursor = await earlier.execute("SELECT pg_get_indexdef(to_regclass(%s))", (INDEX,))
    row = await cursor.fetchone()
    assert row is not None and row[0].endswith("USING btree (finished_at, run_id)")


async def test_two_runtimes_starting_at_once_build_the_index_once(
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    new_runtime: Callable[[], SchedulerRuntime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    runtimes = [new_runtime() for _ in range(2)]
    starts = asyncio.ensure_future(asyncio.gather(*(rt.start() for rt in runtimes)))
    try:
        await _until(lambda: _builder(earlier), "the index build")
        await _started(starts)
        await _until(
            lambda: _logged(caplog, "another replica builds"),
            "the second runtime to leave the build to the first",
        )
    finally:
        await blocker()
        await asyncio.gather(starts, return_exceptions=True)
    assert await _until(lambda: _valid(earlier), "a valid index")
    builds = [r for r in caplog.records if r.getMessage().startswith(f"building index {INDEX}")]
    assert len(builds) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.slow
async def test_a_million_runs_are_indexed_while_a_replica_writes(
    postgres_url: str,
    earlier: psycopg.AsyncConnection[Any],
    new_runtime: Callable[[], SchedulerRuntime],
) -> None:
    await earlier.execute("TRUNCATE lgs_runs")
    await earlier.execute(FILL, (1_000_000,))
    old = await psycopg.AsyncConnection.connect(_plain(postgres_url))
    await old.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
    # A write left open: the build waits for it before it reads the table, so the
    # snapshot below is taken before the build's own, however slow this process is.
    held = await psycopg.AsyncConnection.connect(_plain(postgres_url))
    await held.execute(WRITE, ("held",))
    rt = new_runtime()
    start = asyncio.ensure_future(rt.start())
    beside = 0
    try:
        builder = await _until(lambda: _builder(earlier), "the index build", secs=60)
        # The build waits for the open write before it reads the table: writes made now
        # are beside it however slow this process is (each checks it never waits for
        # the build's lock, and that the build still ran when it ended).
        await old.execute("SELECT 1")  # a snapshot older than the build's (see below)
        while beside < 3:
            assert await _write_beside(postgres_url, earlier, builder, f"waiting-{beside}")
            beside += 1
        await held.rollback()  # the build goes on to read the table
        # Beside it as it reads and validates: it waits for the older snapshot before it
        # ends, so these come while it runs, as many as its length allows.
        while await _builder(earlier) == builder:
            beside += await _write_beside(postgres_url, earlier, builder, f"beside-{beside}")
            if beside >= 6 and not old.closed:
                await old.close()  # the snapshot ends: the build may end too
    finally:
        await held.close()
        await old.close()
        await asyncio.gather(start, return_exceptions=True)
    assert await _until(lambda: _valid(earlier), "a valid index", secs=60)


@pytest.mark.slow  # a pooler process
async def test_one_replica_builds_behind_transaction_pooling(
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    pgbouncer: Callable[[str], str],  # noqa: F811 (the fixture imported above)
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The lock is a transaction's: one of a session would be taken on whichever server
    # connection the pooler lent for that statement, and granted to the next try there.
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    url = pgbouncer("transaction")
    stores = [open_store(url), open_store(url)]
    builds = asyncio.ensure_future(asyncio.gather(*(s.build_indexes() for s in stores)))
    try:
        await _until(lambda: _builder(earlier), "the index build")
        await _until(
            lambda: _logged(caplog, "another replica builds"),
            "one store to leave the build to the other",
        )
    finally:
        await blocker()
        await asyncio.gather(builds, return_exceptions=True)
        for store in stores:
            await store.close()
    builds.result()
    assert await _until(lambda: _valid(earlier), "a valid index")
    assert caplog.text.count(f"building index {INDEX}") == 1


async def test_a_running_runtime_builds_again_an_index_another_left_invalid(
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    new_runtime: Callable[[], SchedulerRuntime],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A replica killed mid-build left the index invalid until some runtime started
    # again: the replicas that kept running had left the build to it, and never looked
    # again. Their upkeep checks the indexes every few minutes (here, a moment).
    from langgraph_scheduler import _upkeep

    monkeypatch.setattr(_upkeep, "_INDEXES_EVERY_SECS", 0.2)
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    builder, survivor = new_runtime(), new_runtime()
    start = asyncio.ensure_future(builder.start())
    try:
        await _until(lambda: _builder(earlier), "the index build")
        await _until(lambda: _invalid(earlier), "the build's invalid index")
        await _started(start)
        await survivor.start()
        await _until(lambda: _logged(caplog, "another replica builds"), "the survivor to defer")
        await builder.stop()  # cuts the build short, as a killed replica would
    finally:
        if not start.done():
            await blocker()
        await asyncio.gather(start, return_exceptions=True)
    await blocker()
    assert survivor.running
    assert await _until(lambda: _valid(earlier), "the survivor to build the index again")
    assert "left invalid by an interrupted build; building it again" in caplog.text


async def _builder_for_over(watch: psycopg.AsyncConnection[Any], secs: float) -> bool | None:
    """True once a session has built the index for over ``secs`` seconds."""
    cursor = await watch.execute(
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' "
        "AND datname = current_database() AND query ILIKE 'CREATE%%INDEX%%' || %s || '%%' "
        "AND clock_timestamp() - query_start > make_interval(secs => %s)",
        (INDEX, secs),
    )
    return True if await cursor.fetchone() is not None else None


async def test_a_build_outlives_the_statement_timeout_and_lock_timeout_of_its_role(
    postgres_url: str,
    earlier: psycopg.AsyncConnection[Any],
    blocker: Callable[[], Awaitable[None]],
    new_runtime: Callable[[], SchedulerRuntime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A DBA's statement_timeout (or lock_timeout: the build waits for older
    # transactions) shorter than the build cancelled it every time, leaving an invalid
    # index to be dropped and built again, and cancelled again. The build's own session
    # turns them off for itself.
    name = postgres_url.rpartition("/")[2]
    await earlier.execute(f"ALTER DATABASE \"{name}\" SET statement_timeout = '300ms'")
    await earlier.execute(f"ALTER DATABASE \"{name}\" SET lock_timeout = '300ms'")
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")

    async def cancelled_or_waiting() -> str | None:
        if await _logged(caplog, "could not be built"):
            return "cancelled"
        return "waits" if await _builder_for_over(earlier, 1.0) else None

    try:
        await new_runtime().start()
        await _until(lambda: _builder(earlier), "the index build")
        assert await _until(cancelled_or_waiting, "the build past the timeouts") == "waits"
    finally:
        await blocker()
    assert await _until(lambda: _valid(earlier), "a valid index")
    assert "could not be built" not in caplog.text


async def test_a_checkpointer_index_a_cut_short_start_left_invalid_is_built_again(
    postgres_url: str,
) -> None:
    # A start whose session was lost while LangGraph's migration built an index of the
    # checkpoints concurrently leaves it invalid, its migration unrecorded. The next
    # start ran the migration again, CREATE INDEX CONCURRENTLY IF NOT EXISTS, which
    # kept the invalid index: unused by every read, still kept up by every write, for
    # good. Such a left-over build fails the same way as a unique one on shared values.
    name = "checkpoints_thread_id_idx"
    async with SchedulerRuntime(None, database=postgres_url) as rt:
        async with contextlib.AsyncExitStack() as stack:
            await rt.store.open_checkpointer(stack, max_connections=1)
    async with await psycopg.AsyncConnection.connect(_plain(postgres_url), autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint) "
            "VALUES ('t', 'a', '{}'), ('t', 'b', '{}')"
        )
        await conn.execute(f"DROP INDEX {name}")
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON checkpoints(thread_id)")
        await conn.execute("DELETE FROM checkpoint_migrations WHERE v >= 6")

        async def validity() -> bool | None:
            cursor = await conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
            )
            row = await cursor.fetchone()
            return None if row is None else bool(row[0])

        assert await validity() is False
        graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
        async with SchedulerRuntime(graph, database=postgres_url):
            assert await validity() is True
        cursor = await conn.execute("SELECT pg_get_indexdef(to_regclass(%s))", (name,))
        row = await cursor.fetchone()
        assert row is not None and row[0] == (
            f"CREATE INDEX {name} ON public.checkpoints USING btree (thread_id)"
        )
