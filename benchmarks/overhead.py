"""Figure 1: a lone scheduled turn end to end against a direct ``graph.ainvoke``, and the
statements and commits a fire adds to its turn, store and checkpointer (memory, SQLite
file, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import re
import sqlite3
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from sqlalchemy import event, select
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from langgraph_scheduler import Once, SchedulerRuntime, TaskRunRecord
from langgraph_scheduler.store import Store, runs_table

from .common import (
    Figure,
    RecordWaiter,
    Row,
    TurnStarts,
    check_each_once,
    check_settled,
    check_turns_ran,
    direct_input,
    far_future,
    interleave,
    median,
    reachable_postgres,
    records_per_task,
    round_ratios,
    scratch_database,
    spread,
    trivial_graph,
    utcnow,
)

GOAL = 1.25
LATE_GOAL_MS = 2.0
"""Figure 3's p50 lateness goal: what the due → record line may add to ``GOAL``."""
STATEMENTS_GOAL = 3
COMMITS_GOAL = 2
LEAD = timedelta(milliseconds=150)
"""How far ahead each measured fire is scheduled (``create_task`` must be done by then)."""
FIRE_GUARD_SECS = 10.0
FIRE_GUARD_FACTOR = 100.0
"""A fire's record may take at least ``FIRE_GUARD_SECS`` past its due time, and
``FIRE_GUARD_FACTOR`` times the slowest warm-up ``run_now``, before the fire counts as
lost (see :func:`fire_guard`)."""
QUIET = timedelta(milliseconds=75)
"""The statement count starts this long before the fire's due time: before the runtime
may claim it (its timer wakes a few tens of ms ahead of the instant)."""
DEFINITION = (
    "Baselines: `graph.ainvoke` of the runtime's own compiled graph (same checkpointer), "
    "fresh thread per call, one call at a time, made two ways. *Lone direct ainvoke* (the "
    "baseline of the lone fire and due → record lines): each call made the way a fire "
    "comes, after a 150 ms idle (a sleep as long as a fire's lead), so it finds the CPU "
    "caches as cold as a lone fire does; as many calls per round as fires. *Direct "
    "ainvoke, back-to-back* (the baseline of `run_now`, whose calls also come one after "
    "another): calls in a loop. The notes give both per backend. Lone scheduled fire (the "
    "goal line): "
    "from the record's `started_at` (when its turn began: a turn slot taken and its instant "
    "come; the runtime may claim the fire a few tens of ms before the instant, and that "
    "claim is then outside this line) until the `on_run` listener sees the committed "
    "record, one fire at a time (a `Once` task 150 ms ahead, created with `create_task`, "
    "then waited for). Due → record: from the task's `scheduled_for` instead, i.e. with "
    "the timer's lateness and whatever of the claim falls after the instant, so its goal "
    f"adds figure 3's p50 lateness goal ({LATE_GOAL_MS:g} ms) to the {GOAL:g}× allowance. "
    "`run_now`: from the "
    "`run_now(task_id)` call until it returns the finished record (claim, a free turn slot, "
    "turn, the finish committed). Default settings; isolated tasks, so every turn starts a "
    "fresh thread like the baseline; in memory (`sqlite://`), on a SQLite file (the default "
    "database) and on PostgreSQL (a scratch database). Five rounds of 200 direct and "
    "`run_now` calls and 40 fires each (a smoke run: two rounds of 30 calls and 5 fires), "
    "after a warm-up round of direct calls, `run_now` calls and fires. Per round: the "
    "median of each contender's calls; rounds interleaved; the value is the median over "
    "rounds and the "
    "ratio the median of the per-round ratios (min–median–max shown). "
    "Checked: every fire and `run_now` call recorded one `success` whose turn ran the "
    "graph's node once, and nothing left running or waiting for a retry. "
    "Statements and commits a fire adds: what a fire sends to the database, on the "
    "store's connections and on the checkpointer's, less what the checkpointer sends for "
    "a direct turn (the baseline column: all a direct turn sends), i.e. "
    "exactly what a fire adds to the turn itself (an extra checkpoint read on the fire "
    "path would count). Counted at the driver: under the runtime's store engine (every "
    "pooled connection), so a statement the store hands straight to the DBAPI connection "
    "counts like one it executes through SQLAlchemy, and on the checkpointer's "
    "connection(s): on SQLite the runtime's `AsyncSqliteSaver` on the same file (its "
    "`aiosqlite` connection, whose trace callback is set in aiosqlite's own thread), on "
    "PostgreSQL its `AsyncPostgresSaver`'s pool (each connection hooked when first lent); "
    "in memory the `InMemorySaver` sends no statements, for the fire's turn as for the "
    "direct one. A fire is counted from 75 ms before its due time (after `create_task` "
    "returned, so its own statements and the change notice it causes are left out, and "
    "before the runtime may claim the fire) until the runtime is idle again after the "
    "record. SQLite: every statement a `sqlite3` connection runs (its trace callback), "
    "the store's `BEGIN IMMEDIATE` and the checkpointer's implicit `BEGIN` included; a "
    "`COMMIT` is counted as a commit, not a statement, and so is a write sent outside a "
    "transaction (it commits by itself); an insert into one of the store's views "
    "(`lgs_claim`, `lgs_settle`) counts once, though the trace reports it again for each "
    "program of the trigger it fires (the trigger's statements run inside it). "
    "PostgreSQL: every statement sent through a psycopg cursor (a counting "
    "`cursor_factory`; `Connection.execute` makes its cursor there too) but an empty one "
    "(the pool's check of a connection it lends, on both sides alike), the `BEGIN` "
    "psycopg sends by itself ahead of a transaction's first statement (none in "
    "autocommit), and what the store sends on the replica's own session (its own "
    "connection, in autocommit): the fire path's statements sent alone, a thread taken or "
    "freed (none here: the measured tasks run in fresh threads), a lone settled finish or "
    "a manual claim (each a statement and a commit: the server commits each by itself); "
    "commits = the `COMMIT`s its `commit()` sends, plus one per write sent in "
    "autocommit (not a plain `SELECT`, whose transaction writes nothing; the "
    "checkpointer's connections are in autocommit), but one per `pipeline()` block that "
    "wrote, whose writes the server commits together at its sync (the checkpointer's "
    "puts), and one per `executemany` outside one (psycopg sends it in a pipeline of its "
    "own), plus "
    "those of the session. An `executemany` counts a statement per parameter set. Median "
    "over the measured fires (a background change poll or lease sweep falling into a "
    "window is thus left out; the "
    "mean and what a median fire sent, store and checkpointer, are in the notes). The "
    "baseline is the checkpointer's count per back-to-back direct turn (fresh threads). "
    "The same two counts are given for fires of tasks that continue one conversation "
    '(`thread_id` given: the tools\' default, `thread="continue"`), with the same goals, '
    "against direct turns that continue one thread (counted after a call that starts "
    "it): such a fire also holds its thread, which on SQLite is a lock in the process and "
    "on PostgreSQL a leased row, taken by the claim's statement when the thread is free "
    "and freed by the finish's (a thread another holds is taken on the replica's session, "
    "a statement and a commit each), and reads the thread's last checkpoint first (is it "
    "waiting for an answer to an `interrupt()`?), the read its turn then begins from "
    "instead of LangGraph reading it again; these fires are counted, not timed (each "
    "turn reads a longer thread than the fresh-thread baseline)."
)
BASELINE_LABELS = {
    "direct": "direct ainvoke, back-to-back",
    "lone": "lone direct ainvoke",
}
"""The two baselines: calls one after another (as ``run_now`` calls come), and each call
alone after the idle a fire comes after (as a lone scheduled fire comes)."""
_TABLE = re.compile(r"\b(lgs_\w+)")
_CHECKPOINT_TABLES = re.compile(
    r"\b(?:FROM|INTO|UPDATE)\s+(checkpoint_blobs|checkpoint_writes|checkpoints|writes)\b", re.I
)
"""The checkpointers' tables (SQLite's ``checkpoints`` and ``writes``, PostgreSQL's
``checkpoints``, ``checkpoint_blobs`` and ``checkpoint_writes``)."""
_TRIGGERED = re.compile(r"\s*INSERT\s+INTO\s+(lgs_claim|lgs_settle)\b", re.IGNORECASE)
"""A statement into one of the SQLite store's views, whose trigger the trace reports as
the statement again."""
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_READ_ONLY = re.compile(r"\s*SELECT\b(?!.*\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b)", re.I | re.S)
"""A plain query: sent alone (autocommit), its transaction writes nothing to commit."""
_COUNTED = "lgs_bench_counted"
"""Key in a pooled connection's ``info``: the counting hook is on its driver connection."""


class _Tally:
    """Statements and commits counted on one side (the store's connections, or the
    checkpointer's) since the last :meth:`reset`, with a short name of each in ``log``
    (for the notes). See :data:`DEFINITION` for what counts. Thread-safe: a trace
    callback runs in whichever thread executes (aiosqlite's own, the store's workers)."""

    def __init__(self, name_of: Callable[[str], str | None]) -> None:
        self.statements = 0
        self.commits = 0
        self.log: list[str] = []
        self._name_of = name_of
        self._lock = threading.Lock()
        self._last_sqlite: dict[int, str] = {}
        """The last statement each SQLite connection began (by ``id``)."""

    def sent(self, statement: str, times: int = 1) -> None:
        """One statement the driver sends (``times`` for an ``executemany``)."""
        words = statement.split(None, 1)
        if not words:
            return  # an empty query (psycopg_pool's check of a connection it lends)
        verb = words[0].upper()
        with self._lock:
            if verb in ("COMMIT", "END"):
                self.commits += times
                self.log += ["COMMIT"] * times
            elif verb == "ROLLBACK":
                self.log.append(verb)  # neither: a failed transaction's end
            else:
                table = self._name_of(statement) if verb != "BEGIN" else None
                self.statements += times
                self.log += [f"{verb} {table}" if table else verb] * times

    def commit(self) -> None:
        with self._lock:
            self.commits += 1
            self.log.append("COMMIT")

    def sqlite_sent(self, driver: Any, statement: str) -> None:
        """A statement SQLite begins on ``driver`` (its trace callback): a ``sqlite3``
        or an ``aiosqlite`` connection, both of which tell ``in_transaction``."""
        last = self._last_sqlite.get(id(driver))
        if statement == last and _TRIGGERED.match(statement):
            return  # the same statement again, entering a program of its trigger
        self._last_sqlite[id(driver)] = statement
        self.sent(statement)
        words = statement.split(None, 1)
        if not driver.in_transaction and words and words[0].upper() in _WRITES:
            self.commit()  # sent outside a transaction: it commits by itself

    def reset(self) -> None:
        with self._lock:
            self.statements = self.commits = 0
            self.log = []


class FireCounts:
    """Statements and commits sent at the driver: the store's (``store``: every
    connection of its engine and its own session) and the checkpointer's
    (``checkpointer``, once :meth:`watch_checkpointer` hooked it).

    At the driver, not from SQLAlchemy's execution events, so that a statement the store
    hands straight to the DBAPI connection is counted like one it executes through
    SQLAlchemy; and on the checkpointer's connection too, so that a read the fire path
    adds there (a checkpoint read back) is counted. See :data:`DEFINITION`.
    """

    def __init__(self, store: Store) -> None:
        self.store = _Tally(_store_table)
        self.checkpointer = _Tally(_checkpoint_table)
        engine = store.sync_engine  # type: ignore[attr-defined]
        # New connections when opened (after the store's own connect hook, so its
        # PRAGMAs are left out as before); pooled ones at their next checkout.
        event.listen(engine, "connect", lambda _dbapi, entry: self._attach(entry))
        event.listen(engine, "checkout", lambda _dbapi, entry, _proxy: self._attach(entry))
        kept = getattr(store, "_kept", None)
        if kept is not None and not kept.closed:  # in memory: checked out for good
            self._attach(kept.connection)
        session = getattr(store, "_session", None)
        if session is None and store.dialect == "postgresql":  # renamed: would go uncounted
            raise RuntimeError("the PostgreSQL store's own session is not where it was")
        if session is not None:  # its own psycopg connection, outside the engine's pool
            self._wrap_alone(session, "fetch_one")

    async def watch_checkpointer(self, saver: BaseCheckpointSaver[Any] | None) -> bool:
        """Count the statements of ``saver`` (the runtime's checkpointer) from now on, on
        its own connection(s); False for one that sends none (``InMemorySaver``).

        Raises:
            RuntimeError: a checkpointer whose connection is of no known driver: its
                statements would go uncounted.
        """
        if saver is None or isinstance(saver, InMemorySaver):
            return False  # in memory: no statements, for the fire's turn as for the direct
        conn = getattr(saver, "conn", None)
        if isinstance(conn, aiosqlite.Connection):
            # aiosqlite runs its sqlite3 connection in a thread of its own: its public
            # set_trace_callback sets the callback there, where the statements run.
            await conn.set_trace_callback(functools.partial(self.checkpointer.sqlite_sent, conn))
            return True
        import psycopg  # any other checkpointer the runtime opens is PostgreSQL's
        from psycopg_pool import AsyncConnectionPool

        if isinstance(conn, AsyncConnectionPool):
            _hook_lent(conn, self.checkpointer.sent, self.checkpointer.commit)
        elif isinstance(conn, psycopg.AsyncConnection):
            _hook_psycopg(conn, self.checkpointer.sent, self.checkpointer.commit)
        else:
            raise RuntimeError(
                f"the statements of the checkpointer {type(saver).__name__} on "
                f"{type(conn).__name__} cannot be counted"
            )
        return True

    def _attach(self, entry: ConnectionPoolEntry | PoolProxiedConnection) -> None:
        """Hook the driver connection under a pooled connection, once."""
        if entry.info.get(_COUNTED):
            return
        driver = entry.driver_connection
        if isinstance(driver, sqlite3.Connection):
            # Every statement SQLite runs on it, however sent: BEGIN IMMEDIATE, COMMIT too.
            driver.set_trace_callback(functools.partial(self.store.sqlite_sent, driver))
        elif driver is not None:  # psycopg, sync or async
            _hook_psycopg(driver, self.store.sent, self.store.commit)
        entry.info[_COUNTED] = True

    def _wrap_alone(self, target: Any, name: str) -> None:
        """Count the fire path's statements sent alone on the session: each a statement
        and, in autocommit, a commit the server makes by itself (every one of them
        writes: a settled finish, a manual claim, a thread taken or freed)."""
        call = getattr(target, name)

        async def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
            self.store.sent(sql)
            self.store.commit()
            return await call(sql, *args, **kwargs)

        setattr(target, name, counted)

    def reset(self) -> None:
        self.store.reset()
        self.checkpointer.reset()


def _store_table(statement: str) -> str | None:
    """The store's table or view a statement names first."""
    table = _TABLE.search(statement)
    return table.group(1) if table else None


def _checkpoint_table(statement: str) -> str | None:
    """The checkpointer's table a statement reads or writes: the last one it names
    (PostgreSQL's checkpoint read names its blobs and writes in subqueries first)."""
    tables = _CHECKPOINT_TABLES.findall(statement)
    return tables[-1] if tables else None


def _hook_lent(pool: Any, sent: Callable[[str, int], None], commit: Callable[[], None]) -> None:
    """Count what each connection ``pool`` (a psycopg_pool ``AsyncConnectionPool``)
    lends sends, hooked once when first lent (its public ``getconn``, which
    ``connection()`` calls). Only the pool's check of a connection lent for the first
    time runs before the hook, and an empty query counts as no statement anyway."""
    lend = pool.getconn
    hooked: weakref.WeakSet[Any] = weakref.WeakSet()

    async def counted(timeout: float | None = None) -> Any:
        conn = await lend(timeout)
        if conn not in hooked:
            _hook_psycopg(conn, sent, commit)
            hooked.add(conn)
        return conn

    pool.getconn = counted


def _hook_psycopg(
    driver: Any, sent: Callable[[str, int], None], commit: Callable[[], None]
) -> None:
    """Count what a psycopg connection sends: each statement through a cursor (its
    ``cursor_factory``; ``Connection.execute`` makes its cursor there too), the ``BEGIN``
    psycopg sends by itself ahead of a transaction's first statement, ``COMMIT``, and in
    autocommit the commit of each ``pipeline()`` block's writes at its sync."""
    from psycopg.pq import TransactionStatus

    wrote = [False]  # a write sent in a pipeline since its last sync

    def pipelined() -> None:
        wrote[0] = True

    def synced() -> None:
        if wrote[0]:  # the writes sent up to a sync commit together (autocommit)
            wrote[0] = False
            commit()

    done = driver.commit
    asynchronous = inspect.iscoroutinefunction(done)
    driver.cursor_factory = _counting_cursor(driver.cursor_factory, sent, pipelined)
    driver.pipeline = _counting_pipeline(driver.pipeline, synced, asynchronous=asynchronous)

    def opened() -> bool:  # commit() sends COMMIT only inside a transaction
        return bool(driver.info.transaction_status != TransactionStatus.IDLE)

    if asynchronous:

        async def counted() -> None:
            if opened():
                commit()
            await done()

    else:

        def counted() -> None:  # type: ignore[misc]
            if opened():
                commit()
            done()

    driver.commit = counted


def _counting_pipeline(
    pipeline: Callable[[], Any], synced: Callable[[], None], *, asynchronous: bool
) -> Any:
    """A twin of a psycopg connection's ``pipeline()`` (``asynchronous`` or not) that
    calls ``synced`` when a block ends without an error: its exit sends a Sync, which
    commits the writes sent in it in autocommit."""
    if asynchronous:

        @contextlib.asynccontextmanager
        async def counted_async() -> AsyncIterator[Any]:
            async with pipeline() as block:
                yield block
            synced()

        return counted_async

    @contextlib.contextmanager
    def counted() -> Iterator[Any]:
        with pipeline() as block:
            yield block
        synced()

    return counted


def _counting_cursor(
    base: type[Any], sent: Callable[[str, int], None], pipelined: Callable[[], None]
) -> type[Any]:
    """A subclass of the psycopg cursor class ``base`` (sync or async) that reports each
    statement to ``sent`` before sending it, with the implicit ``BEGIN`` ahead of it if
    psycopg sends one (``executemany``: once per parameter set, as SQLite's trace sees
    it), and in autocommit the commit the server makes of a write: by itself, or in a
    pipeline at its sync (``pipelined``: counted when the block ends)."""
    import psycopg
    from psycopg.pq import PipelineStatus, TransactionStatus

    def report(cursor: Any, query: Any, times: int, *, many: bool = False) -> None:
        text = _query_text(query)
        if not text.strip():
            return  # an empty query (psycopg_pool's check of a connection it lends)
        conn = cursor.connection
        if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            sent("BEGIN", 1)  # psycopg opens a transaction first (not through a cursor)
        sent(text, times)
        if not conn.autocommit or _READ_ONLY.match(text):
            return
        if conn.info.pipeline_status != PipelineStatus.OFF:
            pipelined()  # the server commits it with the block's other writes, at its sync
        elif many and psycopg.Pipeline.is_supported():
            sent("COMMIT", 1)  # psycopg sends the parameter sets in a pipeline of its own
        else:
            sent("COMMIT", times)  # the server commits each such statement by itself

    if issubclass(base, psycopg.AsyncCursor):

        class CountingAsyncCursor(base):  # type: ignore[misc]
            __slots__ = ()

            async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                report(self, query, 1)
                return await super().execute(query, params, **kwargs)

            async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
                params_seq = list(params_seq)
                report(self, query, len(params_seq), many=True)
                return await super().executemany(query, params_seq, **kwargs)

        return CountingAsyncCursor

    class CountingCursor(base):  # type: ignore[misc]
        __slots__ = ()

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            report(self, query, 1)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            report(self, query, len(params_seq), many=True)
            return super().executemany(query, params_seq, **kwargs)

    return CountingCursor


def _query_text(query: Any) -> str:
    """The SQL of a psycopg query: text, bytes or a composed ``psycopg.sql`` object."""
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    return query if isinstance(query, str) else repr(query)


async def _backend(fig: Figure, label: str, database: str, *, quick: bool) -> None:
    rounds, calls, fires = (2, 30, 5) if quick else (5, 200, 40)
    waiter = RecordWaiter()
    per_fire: list[_Sent] = []
    per_direct: list[_Sent] = []
    uncounted: list[str] = []
    starts = TurnStarts()
    fired: set[str] = set()  # the run ids of the scheduled fires
    async with SchedulerRuntime(
        trivial_graph(on_start=starts), database=database, on_run=waiter
    ) as rt:
        graph = rt.graph
        counts = FireCounts(rt.store)
        watched = await counts.watch_checkpointer(rt.checkpointer)
        manual = await rt.create_task(
            name="overhead", schedule=Once(at=far_future()), trigger="benchmark"
        )

        async def direct() -> float:
            samples = []
            counts.reset()
            one: list[str] = []  # the checkpointer's statements of one turn, for the notes
            for i in range(calls):
                payload, config = direct_input()
                start = time.perf_counter()
                await graph.ainvoke(payload, config)
                samples.append(time.perf_counter() - start)
                one = list(counts.checkpointer.log) if i == 0 else one
            per_direct.append(_Sent.of(counts, calls, checkpointer_log=one))
            return median(samples)

        async def lone() -> float:
            samples = []
            for _ in range(fires):
                payload, config = direct_input()
                # Idle as long as a fire's runtime does between create_task and the
                # instant: the call then finds the CPU caches as cold as a fire does.
                await asyncio.sleep(LEAD.total_seconds())
                start = time.perf_counter()
                await graph.ainvoke(payload, config)
                samples.append(time.perf_counter() - start)
            return median(samples)

        made: set[str] = set()  # the run ids run_now returned
        slowest: list[float] = []  # the slowest run_now of each round (first: the warm-up)

        async def run_now() -> float:
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                record = await rt.run_now(manual.id)
                samples.append(time.perf_counter() - start)
                fig.check(record.outcome == "success", f"{label}: run_now {record.outcome}")
                made.add(record.run_id)
            slowest.append(max(samples))
            return median(samples)

        due_samples: list[float] = []
        continued: list[_Sent] = []
        continued_direct: list[_Sent] = []

        async def fire(
            counted: list[_Sent], thread_id: str | None = None
        ) -> tuple[TaskRunRecord, datetime] | None:
            """One `Once` fire, ``LEAD`` ahead, its statements and commits counted."""
            waiter.clear()
            at = utcnow() + LEAD
            task = await rt.create_task(
                name="overhead-fire", schedule=Once(at=at), trigger="benchmark", thread_id=thread_id
            )
            quiet = (at - QUIET - utcnow()).total_seconds()
            await asyncio.sleep(max(quiet, 0))
            counts.reset()
            guard = fire_guard(slowest[0]) + QUIET.total_seconds()
            ok = await waiter.wait_for(1, timeout=guard, stall=guard)
            fig.check(ok, f"{label}: scheduled fire of {task.id} not recorded in {guard:.0f} s")
            if not ok:
                return None
            await rt.wait_idle()
            check_each_once(fig, label, (r for r, _ in waiter.records), {task.id})
            if quiet > 0:  # create_task was done before the window opened
                counted.append(_Sent.of(counts))  # the log goes on filling: copied
            else:
                uncounted.append(task.id)
            # The store too: a second record the listener never reported is a fault.
            per_task, outcomes = await records_per_task(rt.store, task.id)
            fig.check(
                per_task == Counter({1: 1}),
                f"{label}: {task.id} has {sum(outcomes.values())} records in the store",
            )
            await check_settled(fig, f"{label}: fire of {task.id}", rt.store, task.id)
            record, committed = waiter.records[0]
            fig.check(record.outcome == "success", f"{label}: fire {record.outcome}")
            fired.add(record.run_id)
            return record, committed

        async def scheduled() -> float:
            samples, due = [], []
            for _ in range(fires):
                fired = await fire(per_fire)
                if fired is None:
                    continue
                record, committed = fired
                samples.append((committed - record.started_at).total_seconds())
                due.append((committed - record.scheduled_for).total_seconds())
            due_samples.append(median(due))
            return median(samples)

        async def continuing() -> None:
            """Fires that add their turns to one conversation (the tools' default,
            ``thread="continue"``): counted only, their turns grow with the thread."""
            for _ in range(fires):
                await fire(continued, thread_id=f"overhead-{label}")

        async def direct_continuing() -> None:
            """The baseline of those fires: direct calls that continue one thread (after
            a call that starts it), back-to-back, counted only."""
            config = direct_input()[1]
            await graph.ainvoke(direct_input()[0], config)
            counts.reset()
            one: list[str] = []
            for i in range(fires):
                await graph.ainvoke(direct_input()[0], config)
                one = list(counts.checkpointer.log) if i == 0 else one
            continued_direct.append(_Sent.of(counts, fires, checkpointer_log=one))

        await direct()  # warms the lone calls' path too
        await run_now()  # warm up both paths (imports, first checkpoint, SQLite pages)
        await scheduled()
        per_fire.clear()
        per_direct.clear()
        uncounted.clear()
        due_samples.clear()
        values = await interleave(
            rounds, {"direct": direct, "lone": lone, "run_now": run_now, "scheduled": scheduled}
        )
        await continuing()
        await direct_continuing()
        await rt.wait_idle()
        # One record per run_now call (the warm-up's and each round's), none beside them:
        # every record in the store is one a call returned, and (the upkeep trims a task's
        # history to ``history_limit`` records, at its own pace) none of the newest is gone.
        stored = await rt.store.transaction(
            lambda conn: set(
                conn.scalars(select(runs_table.c.run_id).where(runs_table.c.task_id == manual.id))
            )
        )
        kept = min(len(made), rt.history_limit or len(made))
        fig.check(
            stored <= made and len(stored) >= kept,
            f"{label}: {len(stored - made)} records in the store that no run_now call "
            f"returned, {len(stored & made)} of {len(made)} calls' (at least {kept} kept)",
        )
        # The run_now task stays active (its one fire is a year ahead); nothing else left.
        await check_settled(fig, f"{label}: run_now", rt.store, manual.id, active=1)
    check_turns_ran(fig, label, starts, made | fired)
    values["due"] = due_samples
    baselines = {name: [v * 1e3 for v in values[name]] for name in ("direct", "lone")}
    lines = (
        ("scheduled", "lone scheduled fire → record", GOAL, 0.0, "lone"),
        ("due", "due → record", GOAL, LATE_GOAL_MS, "lone"),
        ("run_now", "run_now → record", GOAL, 0.0, "direct"),
    )
    for name, what, goal, plus_ms, against in lines:
        each = [v * 1e3 for v in values[name]]
        measured = median(each)
        base = median(baselines[against])
        # The due line is judged on its time (the ratio allows for nothing added), and its
        # baseline is the lone fire's, whose line checks it.
        ratios = (
            spread(round_ratios(each, baselines[against]))
            if plus_ms
            else fig.ratios(f"{what} ({label})", each, baselines[against])
        )
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} ({label})",
                unit="ms",
                baseline=base,
                baseline_label=BASELINE_LABELS[against],
                measured=measured,
                goal=f"≤ {goal:g}× direct" + (f" + {plus_ms:g} ms" if plus_ms else ""),
                op="<=",
                limit=goal * base + plus_ms if plus_ms else None,
                ratio_limit=None if plus_ms else goal,
                **ratios,
            )
        )
    hot, cold = (median(baselines[name]) for name in ("direct", "lone"))
    fig.notes.append(
        f"{label}: direct `ainvoke` {hot:.2f} ms back-to-back (the `run_now` baseline), "
        f"{cold:.2f} ms lone, each after a {LEAD.total_seconds() * 1e3:.0f} ms idle like a "
        f"fire (the baseline of the lone fire and due → record): {cold - hot:+.2f} ms "
        "(medians over rounds)."
    )
    _count_rows(fig, label, per_fire, per_direct, watched=watched)
    _count_rows(fig, label, continued, continued_direct, watched=watched, continuing=True)
    if uncounted:
        fig.notes.append(
            f"{label}: {len(uncounted)} fire(s) not counted: `create_task` returned less than "
            f"{QUIET.total_seconds() * 1e3:.0f} ms before the fire was due."
        )


def fire_guard(slowest_run_now: float) -> float:
    """Seconds a scheduled fire may take from its due time to its record before it counts
    as lost: a guard against a hang, not a timing. Scaled from the slowest ``run_now`` of
    the warm-up (a whole manual fire, claim to finish, timed in the same run on the same
    machine), so that a slow or loaded machine does not trip it; never below
    ``FIRE_GUARD_SECS``."""
    return max(FIRE_GUARD_SECS, FIRE_GUARD_FACTOR * slowest_run_now)


@dataclass
class _Sent:
    """What a fire, or a direct turn (the mean of a round's), sent: (statements, commits)
    of the store and of the checkpointer, and the names of what each sent."""

    store: tuple[float, float]
    checkpointer: tuple[float, float]
    store_log: list[str]
    checkpointer_log: list[str]

    @classmethod
    def of(
        cls, counts: FireCounts, turns: int = 1, *, checkpointer_log: list[str] | None = None
    ) -> _Sent:
        """What ``counts`` holds, per turn of ``turns``."""
        store, saver = counts.store, counts.checkpointer
        return cls(
            (store.statements / turns, store.commits / turns),
            (saver.statements / turns, saver.commits / turns),
            list(store.log),
            list(saver.log) if checkpointer_log is None else checkpointer_log,
        )

    def total(self, i: int) -> float:
        """Statements (``i`` 0) or commits (1) of the store and the checkpointer."""
        return self.store[i] + self.checkpointer[i]


def _count_rows(
    fig: Figure,
    label: str,
    per_fire: list[_Sent],
    per_direct: list[_Sent],
    *,
    watched: bool,
    continuing: bool = False,
) -> None:
    """The statement and commit rows of fires of fresh threads, or of fires that continue
    one thread (``continuing``): what a fire sent, store and checkpointer, less what the
    checkpointer sent for a direct turn (``per_direct``, one per round). ``watched``:
    the checkpointer's statements were counted (not in memory, where it sends none)."""
    kind = ", continuing a thread" if continuing else ""
    against = "continuing a thread" if continuing else "back-to-back"
    for i, (what, goal) in enumerate((("statements", STATEMENTS_GOAL), ("commits", COMMITS_GOAL))):
        base = median([d.checkpointer[i] for d in per_direct])
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} added per fire{kind} ({label})",
                unit="",
                baseline=base,
                baseline_label=f"the checkpointer's per direct ainvoke, {against}",
                measured=median([f.total(i) for f in per_fire]) - base,
                ratio=math.nan,
                goal=f"≤ {goal}",
                op="<=",
                limit=goal,
            )
        )
    if not per_fire:
        return
    statements = [f.total(0) for f in per_fire]
    commits = [f.total(1) for f in per_fire]
    # A fire writes its claim and its outcome, and its turn its checkpoints: a count of
    # none means a hook missed a connection, and the rows above would flatter.
    fig.check(
        min(f.store[1] for f in per_fire) >= 1, f"{label}: a fire with no store commit counted"
    )
    if watched:
        missed = min(f.checkpointer[0] for f in per_fire) < 1 or any(
            d.checkpointer[0] <= 0 for d in per_direct
        )
        fig.check(
            not missed,
            f"{label}: a fire{kind} or a direct turn with no checkpointer statement counted",
        )
    typical = next((f for f in per_fire if f.total(0) == median(statements)), per_fire[-1])
    direct_log = per_direct[-1].checkpointer_log if per_direct else []
    saver = (
        f"; its turn's checkpointer: {', '.join(typical.checkpointer_log)}; a direct "
        f"turn's checkpointer ({against}): {', '.join(direct_log)}"
        if watched
        else "; the checkpointer (in memory) sends none"
    )
    fig.notes.append(
        f"{label}: {len(per_fire)} fires{kind} counted; statements per fire (store and "
        f"checkpointer) mean {sum(statements) / len(statements):.2f} (min "
        f"{min(statements):.0f}, max {max(statements):.0f}), commits mean "
        f"{sum(commits) / len(commits):.2f}; a median fire sent: "
        f"{', '.join(typical.store_log)}{saver}."
    )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("overhead", "1. Overhead per turn", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", "sqlite://", quick=quick))
    sqlite_file = f"sqlite:///{workdir / 'overhead.db'}"
    await fig.part("SQLite", _backend(fig, "SQLite", sqlite_file, quick=quick))
    admin = reachable_postgres(fig, "PostgreSQL")
    if admin is None:
        return fig
    with scratch_database(admin) as database:
        await fig.part("PostgreSQL", _backend(fig, "PostgreSQL", database, quick=quick))
    return fig
