"""Figure 1: a lone scheduled turn end to end against a direct ``graph.ainvoke``, and the
store statements and commits a fire adds (memory, SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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
    "Statements and commits per fire: counted at the driver under the runtime's store "
    "engine (every pooled connection), so a statement the store hands straight to the "
    "DBAPI connection counts like one it executes through SQLAlchemy, from 75 ms before "
    "each measured fire's due time (after "
    "`create_task` returned, so its own statements and the change notice it causes are "
    "left out, and before the runtime may claim the fire) until the runtime is idle again "
    "after the record. SQLite: every statement the `sqlite3` connection runs (its trace "
    "callback), the store's `BEGIN IMMEDIATE` included; a `COMMIT` is counted as a commit, "
    "not a statement, and so is a write sent outside a transaction (it commits by itself); "
    "an insert into one of the store's views (`lgs_claim`, `lgs_settle`) counts once, "
    "though the trace reports it again for each program of the trigger it fires (the "
    "trigger's statements run inside it). PostgreSQL: every statement sent through a "
    "psycopg cursor (a counting "
    "`cursor_factory`; `Connection.execute` makes its cursor there too), the `BEGIN` "
    "psycopg sends by itself ahead of a transaction's first statement (none in autocommit), "
    "and what the store sends on the replica's own session (its own connection, in "
    "autocommit): the fire path's statements sent alone, a thread taken or freed (none "
    "here: the measured tasks run in fresh threads), a lone settled finish or a manual "
    "claim (each a statement and a commit: the server commits each by itself); commits = "
    "the `COMMIT`s "
    "its `commit()` sends, plus one per statement the store's engine sends in autocommit "
    "(but a plain `SELECT`, whose transaction writes nothing), plus those of the session. An "
    "`executemany` counts once per parameter set. The "
    "checkpointer's statements are not counted (another connection: the direct turn makes "
    "them too). Median over the measured "
    "fires (a background change poll or lease sweep falling into a window is thus left "
    "out; the mean is in the notes). The baseline is the same count per back-to-back "
    "direct turn. The same two counts are given for fires of tasks that continue one "
    'conversation (`thread_id` given: the tools\' default, `thread="continue"`), with '
    "the same goals: such a fire also holds its thread, which on SQLite is a lock in the "
    "process and on PostgreSQL a leased row taken and freed on the replica's session (a "
    "statement and a commit each); these fires are counted, not timed (each turn reads a "
    "longer thread than the fresh-thread baseline)."
)
BASELINE_LABELS = {
    "direct": "direct ainvoke, back-to-back",
    "lone": "lone direct ainvoke",
}
"""The two baselines: calls one after another (as ``run_now`` calls come), and each call
alone after the idle a fire comes after (as a lone scheduled fire comes)."""
_TABLE = re.compile(r"\b(lgs_\w+)")
_TRIGGERED = re.compile(r"\s*INSERT\s+INTO\s+(lgs_claim|lgs_settle)\b", re.IGNORECASE)
"""A statement into one of the SQLite store's views, whose trigger the trace reports as
the statement again."""
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_READ_ONLY = re.compile(r"\s*SELECT\b(?!.*\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY)\b)", re.I | re.S)
"""A plain query: sent alone (autocommit), its transaction writes nothing to commit."""
_COUNTED = "lgs_bench_counted"
"""Key in a pooled connection's ``info``: the counting hook is on its driver connection."""


class StoreCounts:
    """Statements and commits a store sends, counted at the driver (one per store engine).

    At the driver, not from SQLAlchemy's execution events, so that a statement the store
    hands straight to the DBAPI connection is counted like one it executes through
    SQLAlchemy. See :data:`DEFINITION` for what counts. ``log`` keeps a short name of
    each statement since the last :meth:`reset` (for the notes).
    """

    def __init__(self, store: Store) -> None:
        self.statements = 0
        self.commits = 0
        self._last_sqlite = ""
        self.log: list[str] = []
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

    def _attach(self, entry: ConnectionPoolEntry | PoolProxiedConnection) -> None:
        """Hook the driver connection under a pooled connection, once."""
        if entry.info.get(_COUNTED):
            return
        driver = entry.driver_connection
        if isinstance(driver, sqlite3.Connection):
            # Every statement SQLite runs on it, however sent: BEGIN IMMEDIATE, COMMIT too.
            driver.set_trace_callback(functools.partial(self._sqlite_sent, driver))
        elif driver is not None:  # psycopg, sync or async
            _hook_psycopg(driver, self._sent, self._commit)
        entry.info[_COUNTED] = True

    def _wrap_alone(self, target: Any, name: str) -> None:
        """Count the fire path's statements sent alone on the session: each a statement
        and, in autocommit, a commit the server makes by itself (every one of them
        writes: a settled finish, a manual claim, a thread taken or freed)."""
        call = getattr(target, name)

        async def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
            self._sent(sql)
            self._commit()
            return await call(sql, *args, **kwargs)

        setattr(target, name, counted)

    def _count(self, what: str) -> None:
        self.statements += 1
        self.log.append(what)

    def _sent(self, statement: str, times: int = 1) -> None:
        """One statement the driver sends (``times`` for an ``executemany``)."""
        words = statement.split(None, 1)
        verb = words[0].upper() if words else "?"
        if verb in ("COMMIT", "END"):
            for _ in range(times):
                self._commit()
        elif verb == "ROLLBACK":
            self.log.append(verb)  # neither: a failed transaction's end
        else:
            table = _TABLE.search(statement) if verb != "BEGIN" else None
            for _ in range(times):
                self._count(f"{verb} {table.group(1)}" if table else verb)

    def _sqlite_sent(self, driver: sqlite3.Connection, statement: str) -> None:
        """A statement SQLite begins on ``driver`` (its trace callback)."""
        if statement == self._last_sqlite and _TRIGGERED.match(statement):
            return  # the same statement again, entering a program of its trigger
        self._last_sqlite = statement
        self._sent(statement)
        words = statement.split(None, 1)
        if not driver.in_transaction and words and words[0].upper() in _WRITES:
            self._commit()  # sent outside a transaction: it commits by itself

    def _commit(self) -> None:
        self.commits += 1
        self.log.append("COMMIT")

    def reset(self) -> None:
        self.statements = self.commits = 0
        self.log = []


def _hook_psycopg(
    driver: Any, sent: Callable[[str, int], None], commit: Callable[[], None]
) -> None:
    """Count what a psycopg connection sends: each statement through a cursor (its
    ``cursor_factory``; ``Connection.execute`` makes its cursor there too), the ``BEGIN``
    psycopg sends by itself ahead of a transaction's first statement, and ``COMMIT``."""
    from psycopg.pq import TransactionStatus

    driver.cursor_factory = _counting_cursor(driver.cursor_factory, sent)
    done = driver.commit

    def opened() -> bool:  # commit() sends COMMIT only inside a transaction
        return bool(driver.info.transaction_status != TransactionStatus.IDLE)

    if inspect.iscoroutinefunction(done):

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


def _counting_cursor(base: type[Any], sent: Callable[[str, int], None]) -> type[Any]:
    """A subclass of the psycopg cursor class ``base`` (sync or async) that reports each
    statement to ``sent`` before sending it, with the implicit ``BEGIN`` ahead of it if
    psycopg sends one (``executemany``: once per parameter set, as SQLite's trace sees
    it)."""
    import psycopg
    from psycopg.pq import TransactionStatus

    def report(cursor: Any, query: Any, times: int) -> None:
        conn = cursor.connection
        if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            sent("BEGIN", 1)  # psycopg opens a transaction first (not through a cursor)
        text = _query_text(query)
        sent(text, times)
        if conn.autocommit and not _READ_ONLY.match(text):
            sent("COMMIT", times)  # the server commits each such statement by itself

    if issubclass(base, psycopg.AsyncCursor):

        class CountingAsyncCursor(base):  # type: ignore[misc]
            __slots__ = ()

            async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                report(self, query, 1)
                return await super().execute(query, params, **kwargs)

            async def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
                params_seq = list(params_seq)
                report(self, query, len(params_seq))
                return await super().executemany(query, params_seq, **kwargs)

        return CountingAsyncCursor

    class CountingCursor(base):  # type: ignore[misc]
        __slots__ = ()

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            report(self, query, 1)
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            report(self, query, len(params_seq))
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
    per_fire: list[tuple[int, int]] = []
    per_direct: list[tuple[float, float]] = []
    logs: list[list[str]] = []
    uncounted: list[str] = []
    starts = TurnStarts()
    fired: set[str] = set()  # the run ids of the scheduled fires
    async with SchedulerRuntime(
        trivial_graph(on_start=starts), database=database, on_run=waiter
    ) as rt:
        graph = rt.graph
        counts = StoreCounts(rt.store)
        manual = await rt.create_task(
            name="overhead", schedule=Once(at=far_future()), trigger="benchmark"
        )

        async def direct() -> float:
            samples = []
            counts.reset()
            for _ in range(calls):
                payload, config = direct_input()
                start = time.perf_counter()
                await graph.ainvoke(payload, config)
                samples.append(time.perf_counter() - start)
            per_direct.append((counts.statements / calls, counts.commits / calls))
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
        continued: list[tuple[int, int]] = []
        continued_logs: list[list[str]] = []

        async def fire(
            counted: list[tuple[int, int]], kept: list[list[str]], thread_id: str | None = None
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
                counted.append((counts.statements, counts.commits))
                kept.append(list(counts.log))  # the log goes on filling
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
                fired = await fire(per_fire, logs)
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
                await fire(continued, continued_logs, thread_id=f"overhead-{label}")

        await direct()  # warms the lone calls' path too
        await run_now()  # warm up both paths (imports, first checkpoint, SQLite pages)
        await scheduled()
        per_fire.clear()
        logs.clear()
        uncounted.clear()
        due_samples.clear()
        values = await interleave(
            rounds, {"direct": direct, "lone": lone, "run_now": run_now, "scheduled": scheduled}
        )
        await continuing()
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
    _count_rows(fig, label, per_fire, per_direct, logs)
    _count_rows(fig, label, continued, per_direct, continued_logs, continuing=True)
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


def _count_rows(
    fig: Figure,
    label: str,
    per_fire: list[tuple[int, int]],
    per_direct: list[tuple[float, float]],
    logs: list[list[str]],
    *,
    continuing: bool = False,
) -> None:
    """The statement and commit rows of fires of fresh threads, or of fires that continue
    one thread (``continuing``)."""
    kind = ", continuing a thread" if continuing else ""
    for i, (what, goal) in enumerate(
        (("store statements", STATEMENTS_GOAL), ("store commits", COMMITS_GOAL))
    ):
        counted = [float(c[i]) for c in per_fire]
        measured = median(counted)
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} per fire{kind} ({label})",
                unit="",
                baseline=median([d[i] for d in per_direct]),
                baseline_label="per direct ainvoke, back-to-back",
                measured=measured,
                ratio=math.nan,
                goal=f"≤ {goal}",
                op="<=",
                limit=goal,
            )
        )
    if per_fire:
        statements = [float(s) for s, _ in per_fire]
        commits = [float(c) for _, c in per_fire]
        # A fire writes its claim and its outcome: a count of none means the hook missed
        # the store's connection, and the rows above would flatter.
        fig.check(min(commits) >= 1, f"{label}: a fire with no store commit counted")
        typical = next(
            (log for log, c in zip(logs, per_fire, strict=True) if c[0] == median(statements)),
            logs[-1],
        )
        fig.notes.append(
            f"{label}: {len(per_fire)} fires{kind} counted; statements per fire mean "
            f"{sum(statements) / len(statements):.2f} (min {min(statements):.0f}, max "
            f"{max(statements):.0f}), commits mean {sum(commits) / len(commits):.2f}; a "
            f"median fire sent: {', '.join(typical)}."
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
