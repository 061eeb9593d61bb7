"""Figure 1: a lone scheduled turn end to end against a direct ``graph.ainvoke``, and the
store statements and commits a fire adds (memory, SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from langgraph_scheduler import Once, SchedulerRuntime
from langgraph_scheduler.store import Store

from .common import (
    Figure,
    RecordWaiter,
    Row,
    admin_url,
    direct_input,
    far_future,
    interleave,
    median,
    postgres_unreachable,
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
QUIET = timedelta(milliseconds=75)
"""The statement count starts this long before the fire's due time: before the runtime
may claim it (its timer wakes a few tens of ms ahead of the instant)."""
DEFINITION = (
    "Baseline: `graph.ainvoke` of the runtime's own compiled graph (same checkpointer), "
    "fresh thread per call, one call at a time. Lone scheduled fire (the goal line): "
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
    "database) and on PostgreSQL (a scratch database). Per round: the median of each "
    "contender's calls; rounds interleaved; the value is the median over rounds and the "
    "ratio the median of the per-round ratios (min–median–max shown). "
    "Statements and commits per fire: counted on the runtime's store engine with "
    "SQLAlchemy events, from 75 ms before each measured fire's due time (after "
    "`create_task` returned, so its own statements and the change notice it causes are "
    "left out, and before the runtime may claim the fire) until the runtime is idle again "
    "after the record: every statement the store sends through a cursor "
    "(`before_cursor_execute`), one `BEGIN` per transaction (SQLAlchemy `begin` event: on "
    "SQLite the store's own `BEGIN IMMEDIATE`, which it hands straight to the driver; on "
    "PostgreSQL the `BEGIN` psycopg sends ahead of the first statement), on PostgreSQL "
    "also the pool's pre-ping on checkout (`pool_pre_ping=True`) and the thread lock's "
    "advisory-lock calls on the replica's lock session (autocommit statements, not "
    "commits); commits = the `commit` event (`COMMIT` is not counted as a statement). The "
    "checkpointer's statements are not counted (the direct turn makes them too). Median "
    "over the measured "
    "fires (a background change poll or lease sweep falling into a window is thus left "
    "out; the mean is in the notes). The baseline is the same count per direct turn."
)
_TABLE = re.compile(r"\b(lgs_\w+)")


class StoreCounts:
    """Statements and commits a store sends, counted from SQLAlchemy events and hooks.

    See :data:`DEFINITION` for what counts. ``log`` keeps a short name of each statement
    since the last :meth:`reset` (for the notes).
    """

    def __init__(self, store: Store) -> None:
        self.statements = 0
        self.commits = 0
        self.log: list[str] = []
        engine = store.sync_engine  # type: ignore[attr-defined]
        event.listen(engine, "before_cursor_execute", self._cursor)
        event.listen(engine, "commit", self._commit)
        # One BEGIN per transaction, however it is sent (SQLite: the store's own BEGIN
        # IMMEDIATE, straight to the driver; PostgreSQL: psycopg's implicit BEGIN).
        event.listen(engine, "begin", lambda *_: self._count("BEGIN"))
        if engine.dialect.name == "postgresql":
            ping = engine.dialect.do_ping

            def counted_ping(dbapi_connection: Any) -> bool:
                self._count("pre-ping")
                return bool(ping(dbapi_connection))

            engine.dialect.do_ping = counted_ping
        locks = getattr(store, "_lock_session", None)
        if locks is not None:
            self._wrap(locks, "try_lock", "pg_try_advisory_lock")
            self._wrap(locks, "unlock", "pg_advisory_unlock")

    def _wrap(self, target: Any, name: str, what: str) -> None:
        call = getattr(target, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._count(what)
            return await call(*args, **kwargs)

        setattr(target, name, counted)

    def _count(self, what: str) -> None:
        self.statements += 1
        self.log.append(what)

    def _cursor(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        verb = words[0].upper() if words else "?"
        if verb == "BEGIN":
            return  # counted by the ``begin`` event
        table = _TABLE.search(statement)
        self._count(f"{verb} {table.group(1)}" if table else verb)

    def _commit(self, *_: Any) -> None:
        self.commits += 1
        self.log.append("COMMIT")

    def reset(self) -> None:
        self.statements = self.commits = 0
        self.log = []


async def _backend(fig: Figure, label: str, database: str, *, quick: bool) -> None:
    rounds, calls, fires = (2, 30, 5) if quick else (5, 200, 40)
    waiter = RecordWaiter()
    per_fire: list[tuple[int, int]] = []
    per_direct: list[tuple[float, float]] = []
    logs: list[list[str]] = []
    uncounted: list[str] = []
    async with SchedulerRuntime(trivial_graph(), database=database, on_run=waiter) as rt:
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

        async def run_now() -> float:
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                record = await rt.run_now(manual.id)
                samples.append(time.perf_counter() - start)
                fig.check(record.outcome == "success", f"{label}: run_now {record.outcome}")
            return median(samples)

        due_samples: list[float] = []

        async def scheduled() -> float:
            samples, due = [], []
            for _ in range(fires):
                waiter.clear()
                at = utcnow() + LEAD
                task = await rt.create_task(
                    name="overhead-fire", schedule=Once(at=at), trigger="benchmark"
                )
                quiet = (at - QUIET - utcnow()).total_seconds()
                await asyncio.sleep(max(quiet, 0))
                counts.reset()
                ok = await waiter.wait_for(1, timeout=5, stall=5)
                fig.check(ok, f"{label}: scheduled fire of {task.id} not recorded in 5 s")
                if not ok:
                    continue
                await rt.wait_idle()
                if quiet > 0:  # create_task was done before the window opened
                    per_fire.append((counts.statements, counts.commits))
                    logs.append(list(counts.log))  # the log goes on filling
                else:
                    uncounted.append(task.id)
                record, committed = waiter.records[0]
                fig.check(record.outcome == "success", f"{label}: fire {record.outcome}")
                samples.append((committed - record.started_at).total_seconds())
                due.append((committed - record.scheduled_for).total_seconds())
            due_samples.append(median(due))
            return median(samples)

        await direct()
        await run_now()  # warm up both paths (imports, first checkpoint, SQLite pages)
        await scheduled()
        per_fire.clear()
        logs.clear()
        uncounted.clear()
        due_samples.clear()
        values = await interleave(
            rounds, {"direct": direct, "run_now": run_now, "scheduled": scheduled}
        )
    direct_ms = [v * 1e3 for v in values["direct"]]
    base = median(direct_ms)
    values["due"] = due_samples
    lines = (
        ("scheduled", "lone scheduled fire → record", GOAL, 0.0),
        ("due", "due → record", GOAL, LATE_GOAL_MS),
        ("run_now", "run_now → record", GOAL, 0.0),
    )
    for name, what, goal, plus_ms in lines:
        each = [v * 1e3 for v in values[name]]
        measured = median(each)
        ratios = spread(round_ratios(each, direct_ms))
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} ({label})",
                unit="ms",
                baseline=base,
                baseline_label="direct ainvoke",
                measured=measured,
                goal=f"≤ {goal:g}× direct" + (f" + {plus_ms:g} ms" if plus_ms else ""),
                met=measured <= goal * base + plus_ms if plus_ms else ratios["ratio"] <= goal,
                **ratios,
            )
        )
    _count_rows(fig, label, per_fire, per_direct, logs)
    if uncounted:
        fig.notes.append(
            f"{label}: {len(uncounted)} fire(s) not counted: `create_task` returned less than "
            f"{QUIET.total_seconds() * 1e3:.0f} ms before the fire was due."
        )


def _count_rows(
    fig: Figure,
    label: str,
    per_fire: list[tuple[int, int]],
    per_direct: list[tuple[float, float]],
    logs: list[list[str]],
) -> None:
    for i, (what, goal) in enumerate(
        (("store statements", STATEMENTS_GOAL), ("store commits", COMMITS_GOAL))
    ):
        counted = [float(c[i]) for c in per_fire]
        measured = median(counted)
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} per fire ({label})",
                unit="",
                baseline=median([d[i] for d in per_direct]),
                baseline_label="per direct ainvoke",
                measured=measured,
                ratio=math.nan,
                goal=f"≤ {goal}",
                met=measured <= goal,
            )
        )
    if per_fire:
        statements = [float(s) for s, _ in per_fire]
        commits = [float(c) for _, c in per_fire]
        typical = next(
            (log for log, c in zip(logs, per_fire, strict=True) if c[0] == median(statements)),
            logs[-1],
        )
        fig.notes.append(
            f"{label}: {len(per_fire)} fires counted; statements per fire mean "
            f"{sum(statements) / len(statements):.2f} (min {min(statements):.0f}, max "
            f"{max(statements):.0f}), commits mean {sum(commits) / len(commits):.2f}; a "
            f"median fire sent: {', '.join(typical)}."
        )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("overhead", "1. Overhead per turn", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", "sqlite://", quick=quick))
    sqlite_file = f"sqlite:///{workdir / 'overhead.db'}"
    await fig.part("SQLite", _backend(fig, "SQLite", sqlite_file, quick=quick))
    admin = admin_url()
    why = postgres_unreachable(admin)
    if why is not None:
        fig.notes.append(f"PostgreSQL skipped: {admin} is unreachable ({why}).")
        return fig
    with scratch_database(admin) as database:
        await fig.part("PostgreSQL", _backend(fig, "PostgreSQL", database, quick=quick))
    return fig
