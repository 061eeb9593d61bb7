"""Figure 6: 1 and 3 replica processes on one PostgreSQL database; duplicates and claims."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import extract, func, select
from sqlalchemy.engine import Connection

from langgraph_scheduler import Once, SchedulerRuntime
from langgraph_scheduler.store import open_store, runs_table

from .common import (
    EARLY_WAKE,
    Figure,
    Row,
    check_settled,
    interleave,
    median,
    reachable_postgres,
    scratch_database,
    utcnow,
)

STARTUP_TIMEOUT = {"quick": 120.0, "full": 180.0}
"""Seconds the replicas may take to come up before the start counts as hung: a guard
against a hang, not a timing. Each replica spends about 3 s of CPU importing and
starting, three need about twice that on two shared cores, and a loaded CI machine
several times more; the figure's process has 10 minutes (a smoke run) for two rounds."""
STALL_SECS = 60.0
"""Seconds without a new record, once the fires are due, after which the wait for them
ends (the missing ones are then failed checks); a slow but progressing round is waited
for."""
ROWS_GOAL = 1.1
CLAIMS_GOAL = 1.1
"""Claim transactions per fire: one per fire, and a tenth more for passes that found
nothing (another replica was faster) or fewer fires than free slots."""
DEFINITION = (
    "A fresh PostgreSQL database per round. A task-managing runtime "
    "(`SchedulerRuntime(None, …)`, which claims nothing) creates N isolated `Once` tasks all "
    "due at the same instant T through `create_task`; then 1 or 3 replica processes "
    "(`python -m benchmarks.replica`, each a `SchedulerRuntime` with default settings, "
    "`max_concurrency=4`, and the default `AsyncPostgresSaver`) start and load their "
    "windows from the task table; T is set late enough for all of them to be up. "
    "Throughput = fires recorded / (last `finished_at` − T); the goal is that 3 replicas "
    "beat 1 (on this 2-core machine the replicas and PostgreSQL share the cores). "
    "Duplicates = `lgs_runs` rows beyond the first per `(task_id, scheduled_for, attempt)`; "
    "lost = tasks without exactly one successful record; a fire claimed to run more than "
    "once (the runs the replicas' claims returned, summed, beyond N) fails as well, even "
    "with one record kept, and so does a fire whose graph never ran (each replica counts "
    "its node starts), one started over 50 ms before T or left "
    "running or waiting for a retry at the end. N = 1,000 fires, two rounds of each (a "
    "smoke run: 60, one). "
    "Claims: each replica wraps "
    "`Store.claim_due` (the one call through which a runtime claims due fires) and counts "
    "its transactions and the rows they returned; per fire = summed over the replicas / N. "
    "Goals: rows claimed and claim transactions per fire ≤ 1.1 each (one per fire, a "
    "tenth more for passes another replica beat). "
    "Rounds interleaved (1, 3, 3, 1 …); medians, and the ratio as min–median–max of the "
    "per-round ratios (each 3-replica round against the 1-replica round beside it). The "
    "1-replica run is the baseline."
)


async def _activity(admin: str, database: str) -> list[str]:
    """What the sessions on ``database`` are doing (to explain a hang)."""
    import psycopg

    name = database.rpartition("/")[2]
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT state, wait_event_type, wait_event, left(query, 70) FROM pg_stat_activity "
            "WHERE datname = %s ORDER BY pid",
            (name,),
        ).fetchall()
    return [" / ".join(str(c) for c in row) for row in rows]


@dataclass
class Tally:
    """The run records of one round, read back from the database."""

    finished: int = 0
    successes: int = 0
    duplicates: int = 0
    tasks_with_one: int = 0
    early: int = 0
    holders: dict[str, int] = field(default_factory=dict)
    last: datetime | None = None


async def _count(database: str) -> Tally:
    store = open_store(database)
    try:

        def read(conn: Connection) -> Tally:
            fires = select(
                runs_table.c.task_id,
                runs_table.c.scheduled_for,
                runs_table.c.attempt,
                func.count().label("n"),
            ).group_by(runs_table.c.task_id, runs_table.c.scheduled_for, runs_table.c.attempt)
            per_task = (
                select(runs_table.c.task_id)
                .group_by(runs_table.c.task_id)
                .having(func.count() == 1)
                .subquery()
            )
            # A turn may begin up to EARLY_WAKE ahead of its instant, no more.
            ahead = extract("epoch", runs_table.c.scheduled_for - runs_table.c.started_at)
            early = ahead > EARLY_WAKE.total_seconds()
            per_holder = select(runs_table.c.holder, func.count()).group_by(runs_table.c.holder)
            return Tally(
                finished=int(
                    conn.scalar(select(func.count()).where(runs_table.c.outcome.is_not(None))) or 0
                ),
                successes=int(
                    conn.scalar(select(func.count()).where(runs_table.c.outcome == "success")) or 0
                ),
                duplicates=sum(g.n - 1 for g in conn.execute(fires).all()),
                tasks_with_one=int(conn.scalar(select(func.count()).select_from(per_task)) or 0),
                early=int(conn.scalar(select(func.count()).where(early)) or 0),
                holders={str(h): int(n) for h, n in conn.execute(per_holder).all()},
                last=conn.scalar(select(func.max(runs_table.c.finished_at))),
            )

        return await store.transaction(read)
    finally:
        await store.close()


@dataclass
class Result:
    """One round: throughput, duplicates and the replicas' claim counts."""

    rate: float = math.nan
    duplicates: int | None = None
    claims: dict[str, float] = field(default_factory=dict)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


async def _round(
    fig: Figure, admin: str, replicas: int, n: int, *, startup_timeout: float, workdir: Path
) -> Result:
    """One run with ``replicas`` processes."""
    label = f"{replicas} replica(s)"
    with scratch_database(admin) as database:
        async with SchedulerRuntime(None, database=database) as manager:
            # Creating N tasks takes a few ms each; each replica spends ~3 s of CPU
            # importing and starting, and on 2 shared cores three need about twice that.
            due = utcnow() + timedelta(seconds=n * 0.006 + 4 + replicas * 2)
            for i in range(n):
                await manager.create_task(name=f"rep-{i}", schedule=Once(at=due), trigger="go")
            logs = [workdir / f"replica-{uuid.uuid4().hex[:8]}.err" for _ in range(replicas)]
            procs = []
            for log in logs:
                with log.open("w") as stderr:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "benchmarks.replica", database],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            stderr=stderr,
                            text=True,
                        )
                    )
            outputs: list[str] = []
            try:
                loop = asyncio.get_running_loop()
                readiness = asyncio.gather(
                    *(loop.run_in_executor(None, p.stdout.readline) for p in procs)  # type: ignore[union-attr]
                )
                try:
                    ready = await asyncio.wait_for(readiness, startup_timeout)
                except asyncio.TimeoutError:
                    stuck = await _activity(admin, database)
                    fig.check(False, f"{label}: replicas not up after {startup_timeout:g} s")
                    fig.notes.append(f"{label}: start-up hung; sessions on the database: {stuck}")
                    for p in procs:
                        p.kill()
                    return Result()
                for r, log in zip(ready, logs, strict=True):
                    fig.check(r.startswith("READY"), f"{label}: a replica failed: {_tail(log)}")
                if utcnow() >= due:  # a late start (a slow machine), not a wrong result
                    fig.notes.append(f"{label}: replicas were up only after the fires were due")
                await wait_finished(lambda: _count(database), n, due, stall=STALL_SECS)
                await asyncio.sleep(1.0)  # a late duplicate would land now
            finally:
                for p in procs:
                    try:
                        p.stdin.write("stop\n")  # type: ignore[union-attr]
                        p.stdin.flush()  # type: ignore[union-attr]
                    except (BrokenPipeError, OSError):
                        pass
                for p in procs:
                    try:
                        out, _ = p.communicate(timeout=40)
                        outputs += [line for line in out.splitlines() if line.startswith("STOPPED")]
                    except subprocess.TimeoutExpired:
                        p.kill()
                        fig.check(False, f"{label}: a replica did not stop within 40 s")
            tally = await _count(database)
            await check_settled(fig, label, manager.store)
            fig.check(
                manager.holder not in tally.holders, f"{label}: the managing runtime ran a fire"
            )
    totals: dict[str, float] = {}
    cpu: list[float] = []
    for line in outputs:
        for word in line.split()[1:]:
            key, _, value = word.partition("=")
            if key == "cpu":
                cpu.append(float(value))
            else:
                totals[key] = totals.get(key, 0.0) + float(value)
    fig.check(len(outputs) == replicas, f"{label}: {len(outputs)} of {replicas} replicas reported")
    _check_round(fig, label, tally, totals, n, reported=len(outputs) == replicas)
    if replicas > 1 and len(tally.holders) <= 1:  # no split: slow, not wrong
        fig.notes.append(f"{label}: all runs on one replica")
    fig.notes.append(
        f"{label}: {tally.finished} records for {n} fires, {tally.duplicates} duplicates, "
        f"runs per replica {sorted(tally.holders.values(), reverse=True)}, CPU seconds per "
        f"replica {[round(c, 1) for c in cpu]}, claim transactions "
        f"{totals.get('claims', 0):.0f} ({totals.get('empty', 0):.0f} found nothing), rows "
        f"claimed {totals.get('rows', 0):.0f} ({totals.get('runs', 0):.0f} runs), "
        f"{totals.get('failed', 0):.0f} raised, "
        f"{totals.get('claim_secs', 0):.1f} s in claims."
    )
    span = (tally.last - due).total_seconds() if tally.last else math.nan
    return Result(tally.finished / span, tally.duplicates, totals)


async def wait_finished(
    count: Callable[[], Awaitable[Tally]],
    n: int,
    due: datetime,
    *,
    stall: float,
    every: float = 0.5,
) -> int:
    """Wait until ``count`` reads ``n`` finished records, or until none was added for
    ``stall`` seconds after ``due`` (a hang); the last count read."""
    seen, progress = -1, time.monotonic()
    while True:
        await asyncio.sleep(every)
        finished = (await count()).finished
        if finished >= n:
            return finished
        if finished > seen or utcnow() < due:
            seen, progress = finished, time.monotonic()
        elif time.monotonic() - progress > stall:
            return finished


def _check_round(
    fig: Figure, label: str, tally: Tally, totals: dict[str, float], n: int, *, reported: bool
) -> None:
    """Check one round of ``n`` fires: each recorded once, a success, none started early
    (a round run ahead of its due time would earn the rate goal), and (when every
    replica ``reported`` its claims) claimed to run once: a fire two replicas both ran is
    a duplicate even where only one record of it was kept."""
    fig.check(tally.finished >= n, f"{label}: only {tally.finished} of {n} fires recorded")
    fig.check(tally.successes == n, f"{label}: {tally.successes} of {n} fires succeeded")
    fig.check(
        tally.tasks_with_one == n, f"{label}: {tally.tasks_with_one} of {n} tasks have one record"
    )
    fig.check(tally.duplicates == 0, f"{label}: {tally.duplicates} duplicate run records")
    fig.check(
        tally.early == 0,
        f"{label}: {tally.early} fire(s) started over "
        f"{EARLY_WAKE.total_seconds() * 1e3:.0f} ms before their due time",
    )
    if reported:
        runs = totals.get("runs", 0.0)
        fig.check(runs == n, f"{label}: {runs:.0f} runs claimed for {n} fires")
        turns = totals.get("turns", 0.0)  # a success recorded without its turn is fast
        fig.check(turns == n, f"{label}: the graph started {turns:.0f} times for {n} fires")


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("replicas", "6. Replicas on PostgreSQL", DEFINITION)
    admin = reachable_postgres(fig, "the figure")
    if admin is None:
        return fig
    n, rounds = (60, 1) if quick else (1000, 2)
    timeout = STARTUP_TIMEOUT["quick" if quick else "full"]
    results: dict[str, list[Result]] = {"one": [], "three": []}

    async def one() -> float:
        results["one"].append(
            await _round(fig, admin, 1, n, startup_timeout=timeout, workdir=workdir)
        )
        return results["one"][-1].rate

    async def three() -> float:
        results["three"].append(
            await _round(fig, admin, 3, n, startup_timeout=timeout, workdir=workdir)
        )
        return results["three"][-1].rate

    values = await interleave(rounds, {"one": one, "three": three})
    ratios = fig.ratios("3 replicas against 1", values["three"], values["one"])
    fig.rows.append(
        Row(
            figure="replicas",
            label=f"{n} fires, 3 replicas: fires/s",
            unit="/s",
            baseline=median(values["one"]),
            baseline_label="1 replica",
            measured=median(values["three"]),
            goal="> 1× one replica",
            op=">",
            ratio_limit=1.0,
            **ratios,
        )
    )
    ran = [r.duplicates for r in results["three"] if r.duplicates is not None]
    total = sum(ran)
    fig.rows.append(
        Row(
            figure="replicas",
            label=f"duplicate runs, 3 replicas ({len(ran)} × {n} fires)",
            unit="",
            baseline=float(sum(r.duplicates or 0 for r in results["one"])),
            baseline_label="1 replica",
            measured=float(total) if ran else math.nan,
            ratio=math.nan,
            goal="0",
            op="<=",  # no round that ran proves nothing: no value, never met
            limit=0.0,
        )
    )

    def per_fire(group: str, key: str) -> float:
        return median([r.claims[key] / n for r in results[group] if key in r.claims])

    for key, what, goal in (
        ("rows", "rows claimed", ROWS_GOAL),
        ("claims", "claim transactions", CLAIMS_GOAL),
    ):
        measured = per_fire("three", key)
        fig.rows.append(
            Row(
                figure="replicas",
                label=f"{what} per fire, 3 replicas",
                unit="",
                baseline=per_fire("one", key),
                baseline_label="1 replica",
                measured=measured,
                ratio=math.nan,
                goal=f"≤ {goal:g}",
                op="<=",
                limit=goal,
            )
        )
    return fig
