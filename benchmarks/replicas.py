"""Figure 6: 1 and 3 replica processes on one PostgreSQL database; duplicates found."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from langgraph_scheduler.store import Store, runs_table

from .common import Figure, Row, interleave, median, task_rows, utcnow, write_tasks

URL_ENV = ("LANGGRAPH_SCHEDULER_BENCH_POSTGRES_URL", "LANGGRAPH_SCHEDULER_TEST_POSTGRES_URL")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
STARTUP_TIMEOUT = {"quick": 15.0, "full": 45.0}
DEFINITION = (
    "N isolated `Once` tasks all due at the same instant T are written to a fresh "
    "PostgreSQL database; then 1 or 3 replica processes (`python -m benchmarks.replica`, "
    "each a `SchedulerRuntime` with default settings on that database and the default "
    "`AsyncPostgresSaver`) start and build their jobs from the store; T is set late enough "
    "for all of them to be up. Throughput = fires recorded / (last `finished_at` − T). "
    "Duplicates = `lgs_runs` rows beyond the first per `(task_id, scheduled_for, attempt)`; "
    "lost = fires without a successful record. Rounds interleaved (1, 3, 3, 1 …); medians. "
    "The 1-replica run is the baseline."
)


def _admin_url() -> str:
    for name in URL_ENV:
        if os.environ.get(name):
            return os.environ[name].replace("postgresql+psycopg://", "postgresql://")
    return DEFAULT_URL


@contextmanager
def _scratch_database(admin: str) -> Iterator[str]:
    import psycopg

    name = f"lgs_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


async def _count(database: str) -> tuple[int, int, dict[str, int], datetime | None, int]:
    """(finished fires, duplicate rows, rows per holder, last finished_at, successes)."""
    store = Store(database)
    try:

        def read(conn: Connection) -> tuple[int, int, dict[str, int], datetime | None, int]:
            fires = select(
                runs_table.c.task_id,
                runs_table.c.scheduled_for,
                runs_table.c.attempt,
                func.count().label("n"),
            ).group_by(runs_table.c.task_id, runs_table.c.scheduled_for, runs_table.c.attempt)
            duplicates = sum(g.n - 1 for g in conn.execute(fires).all())
            finished = conn.scalar(select(func.count()).where(runs_table.c.outcome.is_not(None)))
            successes = conn.scalar(select(func.count()).where(runs_table.c.outcome == "success"))
            last = conn.scalar(select(func.max(runs_table.c.finished_at)))
            per_holder = select(runs_table.c.holder, func.count()).group_by(runs_table.c.holder)
            holders: dict[str, int] = {h: int(n) for h, n in conn.execute(per_holder).all()}
            return int(finished or 0), duplicates, holders, last, int(successes or 0)

        return await store.transaction(read)
    finally:
        await store.close()


async def _round(
    fig: Figure, admin: str, replicas: int, n: int, *, startup_timeout: float
) -> tuple[float, int | None]:
    """One run with ``replicas`` processes: (fires/s, duplicates); None if it never ran."""
    label = f"{replicas} replica(s)"
    with _scratch_database(admin) as database:
        store = Store(database)
        await store.setup()
        await store.close()
        # Each replica spends ~3 s of CPU importing and starting; on 2 shared cores three
        # of them need about twice that before they are all up.
        margin = timedelta(seconds=4 + replicas * 2 if n < 100 else 6 + replicas * 2)
        due = utcnow() + margin
        await write_tasks(database, task_rows([due] * n, prefix="rep"))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.replica", database],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(replicas)
        ]
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
                return float("nan"), None
            fig.check(
                all(r.startswith("READY") for r in ready), f"{label}: not all replicas started"
            )
            fig.check(utcnow() < due, f"{label}: replicas were up only after the fires were due")
            deadline = time.monotonic() + 30 + n * 0.1
            finished = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                finished = (await _count(database))[0]
                if finished >= n:
                    break
            await asyncio.sleep(1.0)  # a late duplicate would land now
        finally:
            for p in procs:
                try:
                    p.stdin.write("stop\n")  # type: ignore[union-attr]
                    p.stdin.flush()  # type: ignore[union-attr]
                except (BrokenPipeError, OSError):
                    pass
            cpu = []
            for p in procs:
                try:
                    out, _ = p.communicate(timeout=30)
                    cpu += [float(w[4:]) for w in out.split() if w.startswith("cpu=")]
                except subprocess.TimeoutExpired:
                    p.kill()
                    fig.check(False, f"{label}: a replica did not stop within 30 s")
        finished, duplicates, holders, last, successes = await _count(database)
        if not cpu:
            cpu = [float("nan")]
    fig.check(finished >= n, f"{label}: only {finished} of {n} fires recorded")
    fig.check(successes == n, f"{label}: {successes} of {n} fires succeeded")
    fig.check(duplicates == 0, f"{label}: {duplicates} duplicate run records")
    if replicas > 1:
        fig.check(len(holders) > 1, f"{label}: all runs on one replica ({len(holders)} holder)")
    fig.notes.append(
        f"{label}: {finished} records for {n} fires, {duplicates} duplicates, runs per "
        f"replica {sorted(holders.values(), reverse=True)}, CPU seconds per replica "
        f"{[round(c, 1) for c in cpu]}."
    )
    span = (last - due).total_seconds() if last else float("nan")
    return finished / span, duplicates


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("replicas", "6. Replicas on PostgreSQL", DEFINITION)
    admin = _admin_url()
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        fig.notes.append(f"Skipped: PostgreSQL at {admin} is unreachable ({exc}).")
        return fig
    n, rounds = (60, 1) if quick else (1000, 2)
    timeout = STARTUP_TIMEOUT["quick" if quick else "full"]
    dups: dict[str, list[int | None]] = {"one": [], "three": []}

    async def one() -> float:
        rate, d = await _round(fig, admin, 1, n, startup_timeout=timeout)
        dups["one"].append(d)
        return rate

    async def three() -> float:
        rate, d = await _round(fig, admin, 3, n, startup_timeout=timeout)
        dups["three"].append(d)
        return rate

    values = await interleave(rounds, {"one": one, "three": three})
    fig.rows.append(
        Row(
            figure="replicas",
            label=f"{n} fires, 3 replicas: fires/s",
            unit="/s",
            baseline=median(values["one"]),
            baseline_label="1 replica",
            measured=median(values["three"]),
        )
    )
    ran = [d for d in dups["three"] if d is not None]
    total = sum(ran)
    fig.rows.append(
        Row(
            figure="replicas",
            label=f"duplicate runs, 3 replicas ({len(ran)} × {n} fires)",
            unit="",
            baseline=float(sum(d for d in dups["one"] if d is not None)),
            baseline_label="1 replica",
            measured=float(total) if ran else float("nan"),
            ratio=None,
            goal="0",
            met=total == 0 if ran else None,
        )
    )
    return fig
