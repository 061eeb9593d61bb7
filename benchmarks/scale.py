"""Figure 5: start-up with 1,000,000 tasks, task creation, and pages in a large store."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import random
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, create_engine, func, insert, select, update

from langgraph_scheduler import Cron, Once, SchedulerRuntime, Task
from langgraph_scheduler.store import (
    MAX_WINDOW_TIMES,
    _task_row,
    open_store,
    runs_table,
    task_from_row,
    tasks_table,
)

from .common import (
    Figure,
    Row,
    Spread,
    interleave,
    median,
    peak_rss_mib,
    reachable_postgres,
    round_ratios,
    rss_mib,
    scratch_database,
    spread,
    trivial_graph,
    utcnow,
)

START_GOAL_SECS = 2.0
MEMORY_GOAL = 1.5
PAGE_GOAL_MS = 10.0
SOON_FROM, SOON_SPAN = 10.0, 45.0
"""Due-soon fires fall between 10 and 55 s after the probe's start (window: 60 s)."""


@dataclass(frozen=True)
class Size:
    """One store: tasks round-robin over owners (100 tasks each), ``runs`` finished
    records, 1,000 per task, on the first ``runs // 1000`` tasks, and ``soon`` tasks (every
    ``stride``-th) that fall due within the runtime's window at each start."""

    tasks: int
    runs: int
    soon: int

    @property
    def stride(self) -> int:
        return max(self.tasks // self.soon, 1)

    def is_soon(self, i: int) -> bool:
        return i % self.stride == self.stride // 2

    @property
    def instants(self) -> int:
        """Distinct due instants within the window: the every-minute crons (a third of
        the due-soon tasks) share one, the others have their own."""
        crons = len(range(0, self.soon, 3))
        return self.soon - crons + (1 if crons else 0)

    @property
    def owners(self) -> int:
        return max(self.tasks // 100, 1)

    @property
    def with_history(self) -> int:
        return max(self.runs // 1000, 1)


SIZES = {
    # The small store is the same-run baseline: 2% (quick: 5%) of the large one's totals,
    # with the same sizes per owner and per task and the same tasks due within the window
    # (1% of the large store's), so only the totals differ.
    "quick": {"small": Size(1_000, 1_000, 200), "large": Size(20_000, 20_000, 200)},
    "full": {
        "small": Size(20_000, 20_000, 10_000),
        "large": Size(1_000_000, 1_000_000, 10_000),
    },
}
ZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Africa/Nairobi",
)
DEFINITION = (
    "Start-up: a store of 1,000,000 tasks (and 1,000,000 finished run records) written "
    "straight into the database before the runtime starts, against the same start on a "
    "store of 20,000 tasks (and 20,000 records) with the same 10,000 tasks due within the "
    "window, so that only the total differs (a smoke run: 20,000 against 1,000 tasks, 200 "
    "due within the window in each). Schedules are varied: of the tasks not "
    "due soon, 60% are cron lines drawn from 2,000 distinct lines (random minute and hour; "
    "daily, weekday, weekend, weekly and monthly; 10 zones; none due in the next 2 hours), "
    "20% intervals of 3 hours to 7 days, each with its own start, and 20% one-shots at their "
    "own instants up to a year ahead. The due-soon tasks (1% of the large store, evenly "
    "spread through it) fall due within the default 60-s window: a third are every-minute "
    "cron lines (one shared instant, the next minute, made 20–60 s ahead by waiting), a "
    "third intervals of 1–5 minutes and a third one-shots, each at its own instant 10–55 s "
    "ahead. Each start is the first in a fresh process (spawn) that has imported the "
    "modules a start loads (code is not start-up memory); time = `SchedulerRuntime(...)` + "
    "`await start()` with default settings (the store opened and checked, the checkpointer "
    "set up, crashed claims recovered, the window loaded); memory = peak RSS during the start "
    "(VmHWM reset first) minus RSS before it, and, in a separate process, the peak of Python "
    "allocations during the start (tracemalloc). Goals: start < 2 s; memory ≤ 1.5× the "
    "small store's (independent of the total). Due instants held = "
    "`runtime._timer.pending` after the start (the distinct instants the due-time timer "
    "holds); goal: no more than the distinct instants due within the window; a correctness "
    "check, every instant still more than 1 s ahead when they are counted is held (a start "
    "that loaded nothing would be fast). Three rounds of the four starts (a smoke run: one), "
    "on a SQLite file and on PostgreSQL. Creation: "
    "`create_task` with a cron schedule on a running runtime, against `add_job` of the same "
    "cron into APScheduler's own persistent `SQLAlchemyJobStore` on a SQLite file (batches "
    "interleaved, four batches of 500 each, a smoke run two of 50; rate, higher is better; "
    "goal ≥ 1×; checked: every task and job created is in its store). Pages (SQLite file "
    "only): `list_tasks(owner=…, "
    "limit=50)` for an "
    "owner of 100 tasks and `history(task_id, limit=20)` for a task with 1,000 records, "
    "through a task-managing runtime (`graph=None`), in the large store against the small "
    "one (calls interleaved, median); the same for the two queries every runtime repeats "
    "on its own, the lease sweep (`interrupt_expired`) and the change poll "
    "(`changed_since`); 200 calls per round, three rounds (a smoke run: 50, one); "
    "goal < 10 ms each. Ratios: min–median–max of the per-round ratios "
    "of interleaved rounds. Bulk rows are built by the store's own row mapping "
    "(`_task_row`) and written with SQLAlchemy core (SQLite) or `COPY` (PostgreSQL)."
)


def _sync_url(database: str) -> str:
    """The URL for a plain SQLAlchemy engine (psycopg 3 for PostgreSQL, as the store)."""
    return database.replace("postgresql://", "postgresql+psycopg://", 1)


def _iso(moment: datetime) -> str:
    """A UTC instant as the schedule models serialise it."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- the store's rows --------------------------------------------------------------------


def _cron_pool(rng: random.Random, base: datetime, count: int) -> list[tuple[Any, datetime]]:
    """``count`` distinct cron lines (with their zone), none due within 2 hours of
    ``base``, each with its next fire time after ``base``."""
    days = ("*", "1-5", "0,6", "1", "3", "5", "1,3,5", "2,4")
    pool: list[tuple[Any, datetime]] = []
    seen: set[tuple[str, str]] = set()
    while len(pool) < count:
        minute, hour = rng.randrange(60), rng.randrange(24)
        if rng.random() < 0.2:
            expr = f"{minute} {hour} {rng.choice(('1', '15', '1,15', '28'))} * *"
        else:
            expr = f"{minute} {hour} * * {rng.choice(days)}"
        zone = rng.choice(ZONES)
        if (expr, zone) in seen:
            continue
        schedule = Cron(expr, tz=zone)
        first = schedule.next_fire_times(1, after=base)[0].astimezone(timezone.utc)
        if first < base + timedelta(hours=2):
            continue
        seen.add((expr, zone))
        pool.append((schedule, first))
    return pool


def _task_rows(size: Size, base: datetime, seed: int = 5) -> Iterator[list[dict[str, Any]]]:
    """The store's task rows in chunks. Far tasks as the definition says; due-soon
    tasks (``size.is_soon``) get their schedule and due time in each start-up probe
    (:func:`_refresh_soon`), and are parked a year ahead until then."""
    rng = random.Random(seed)
    crons = _cron_pool(rng, base, 2_000)
    created = base - timedelta(days=400)
    parked = base + timedelta(days=365)
    template = _task_row(
        Task(
            id="template",
            name="template",
            owner="owner",
            schedule=Once(at=parked, tz="UTC"),
            payload={"prompt": "summarise my inbox"},
            thread_mode="continue",
            thread_id="thread",
            state="active",
            next_run_at=parked,
            created_at=created,
            updated_at=created,
        )
    )
    periods = [h * 3600 for h in (3, 6, 8, 12, 24, 48, 168)]
    chunk: list[dict[str, Any]] = []
    for i in range(size.tasks):
        row = dict(template)
        row["id"] = f"task{i:08d}"
        row["name"] = f"task {i}"
        row["owner"] = f"owner-{i % size.owners:05d}"
        row["thread_id"] = f"thread-{i}"
        row["created_at"] = row["updated_at"] = created + timedelta(microseconds=i)
        zone = ZONES[i % len(ZONES)]
        kind = i % 10
        if size.is_soon(i):
            row["schedule"] = {"kind": "once", "at": _iso(parked), "tz": zone}
            row["next_run_at"] = parked
        elif kind < 6:
            schedule, first = crons[rng.randrange(len(crons))]
            row["schedule"] = {
                "kind": "cron",
                "expr": schedule.expr,
                "tz": schedule.tz,
                "start": None,
                "end": None,
            }
            row["next_run_at"] = first
        elif kind < 8:
            period = rng.choice(periods)
            first = base + timedelta(seconds=7200 + rng.random() * (period - 7200))
            start = first - timedelta(seconds=period)
            row["schedule"] = {
                "kind": "interval",
                "seconds": period,
                "tz": zone,
                "start": _iso(start),
                "end": None,
            }
            row["next_run_at"] = first
        else:
            at = base + timedelta(hours=3) + timedelta(days=365 * rng.random())
            row["schedule"] = {"kind": "once", "at": _iso(at), "tz": zone}
            row["next_run_at"] = at
        chunk.append(row)
        if len(chunk) == 20_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run_rows(size: Size, base: datetime) -> Iterator[list[dict[str, Any]]]:
    per_task = 1000
    chunk: list[dict[str, Any]] = []
    for n in range(size.runs):
        task_no, k = divmod(n, per_task)
        at = base - timedelta(days=300) + timedelta(hours=k)
        chunk.append(
            {
                "run_id": str(uuid.UUID(int=n)),
                "task_id": f"task{task_no:08d}",
                "attempt": 1,
                "trigger": "schedule",
                "scheduled_for": at,
                "due_at": at,
                "started_at": at + timedelta(milliseconds=3),
                "finished_at": at + timedelta(milliseconds=900),
                "outcome": "success",
                "summary": "Inbox: 3 new messages, nothing urgent.",
                "thread_id": f"thread-{task_no}",
                "checkpoint_id": str(uuid.UUID(int=n + 1)),
            }
        )
        if len(chunk) == 20_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _schema(database: str) -> None:
    store = open_store(database)
    try:
        await store.setup()
    finally:
        await store.close()


def _build_sqlite(database: str, size: Size, base: datetime) -> None:
    asyncio.run(_schema(database))
    engine = create_engine(database)
    try:
        with engine.begin() as conn:
            for rows in _task_rows(size, base):
                conn.execute(insert(tasks_table), rows)
            for rows in _run_rows(size, base):
                conn.execute(insert(runs_table), rows)
    finally:
        engine.dispose()


def _build_postgres(database: str, size: Size, base: datetime) -> None:
    """The same rows through ``COPY`` (SQLAlchemy's executemany takes minutes here)."""
    import psycopg
    from psycopg.types.json import Jsonb

    asyncio.run(_schema(database))
    conninfo = database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        for table, chunks in (
            (tasks_table, _task_rows(size, base)),
            (runs_table, _run_rows(size, base)),
        ):
            columns = [c.name for c in table.columns]
            json_columns = {
                c.name for c in table.columns if c.name in ("schedule", "payload", "options")
            }
            names = ", ".join(f'"{c}"' for c in columns)
            with conn.cursor().copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for rows in chunks:
                    for row in rows:
                        copy.write_row(
                            [
                                Jsonb(row.get(c)) if c in json_columns else row.get(c)
                                for c in columns
                            ]
                        )
        conn.execute("ANALYZE lgs_tasks")
        conn.execute("ANALYZE lgs_runs")
        conn.commit()


async def _check_rows(fig: Figure, label: str, database: str, size: Size, base: datetime) -> None:
    """Check that the store holds ``size.tasks`` tasks, and read a sample of them back:
    each there, readable, its stored next fire time the schedule's own next fire after
    ``base`` (the rows are what the service would have written)."""
    rng = random.Random(11)
    ids = [f"task{rng.randrange(size.tasks):08d}" for _ in range(300)]
    store = open_store(database)
    try:
        query = select(tasks_table).where(tasks_table.c.id.in_(ids))
        rows = await store.transaction(lambda conn: conn.execute(query).mappings().all())
        total = await store.transaction(
            lambda conn: conn.scalar(select(func.count()).select_from(tasks_table))
        )
    finally:
        await store.close()
    fig.check(total == size.tasks, f"{label}: {total} tasks in the store, {size.tasks} written")
    missing = sorted(set(ids) - {row["id"] for row in rows})
    bad = [f"{task_id}: not in the store" for task_id in missing]
    for row in rows:
        task = task_from_row(row)
        if task.problem is not None or task.schedule is None:
            bad.append(f"{task.id}: {task.problem}")
            continue
        expected = task.schedule.next_fire_times(1, after=base)
        # Compared in UTC: an aware datetime in an ambiguous hour (a DST fold) never
        # equals one in another zone (PEP 495), even at the same instant.
        if (
            not expected
            or task.next_run_at is None
            or (expected[0].astimezone(timezone.utc) != task.next_run_at.astimezone(timezone.utc))
        ):
            bad.append(f"{task.id}: next_run_at {task.next_run_at} vs {expected[:1]}")
    fig.check(not bad, f"{label}: bulk rows do not read back as written: {bad[:3]}")


# -- start-up (fresh processes) ----------------------------------------------------------


def _soon_rows(size: Size, now: datetime, seed: int) -> list[dict[str, Any]]:
    """Schedules and due times of the due-soon tasks, relative to ``now``."""
    rng = random.Random(seed)
    out = []
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for n, i in enumerate(range(size.stride // 2, size.tasks, size.stride)):
        zone = ZONES[i % len(ZONES)]
        due = now + timedelta(seconds=SOON_FROM + rng.random() * SOON_SPAN)
        if n % 3 == 0:
            schedule: dict[str, Any] = {
                "kind": "cron",
                "expr": "* * * * *",
                "tz": zone,
                "start": None,
                "end": None,
            }
            due = minute
        elif n % 3 == 1:
            period = rng.choice((60, 90, 120, 300))
            start = due - timedelta(seconds=period * rng.randrange(1, 50))
            schedule = {
                "kind": "interval",
                "seconds": period,
                "tz": zone,
                "start": _iso(start),
                "end": None,
            }
        else:
            schedule = {"kind": "once", "at": _iso(due), "tz": zone}
        out.append({"b_id": f"task{i:08d}", "b_schedule": schedule, "b_next": due})
    return out


def _refresh_soon(database: str, size: Size) -> list[datetime]:
    """Make the due-soon tasks due 10–55 s from now (every-minute crons at the next minute,
    which is waited for to be at least 20 s away); returns their distinct due instants."""
    now = utcnow()
    if now.second >= 40:
        time.sleep(61 - now.second - now.microsecond / 1e6)
        now = utcnow()
    return _make_soon(database, size, now)


def _make_soon(database: str, size: Size, now: datetime) -> list[datetime]:
    """Write the due-soon tasks' schedules and due times relative to ``now``; returns
    their distinct due instants."""
    rows = _soon_rows(size, now, seed=now.microsecond)
    statement = (
        update(tasks_table)
        .where(tasks_table.c.id == bindparam("b_id"))
        .values(schedule=bindparam("b_schedule"), next_run_at=bindparam("b_next"))
    )
    engine = create_engine(_sync_url(database))
    try:
        with engine.begin() as conn:
            conn.execute(statement, rows)
    finally:
        engine.dispose()
    return sorted({row["b_next"] for row in rows})


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs``)."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


HELD_MARGIN = timedelta(seconds=1)
"""An instant this close to the moment the held ones are counted may already have been
handed to the bridge (its timer wakes a little ahead): it is not required to be held."""


def _startup_probe(database: str, size: Size, traced: bool) -> dict[str, float]:
    """In a fresh process: make the due-soon tasks due soon, then time one start and
    measure its memory."""
    return _probe(database, _refresh_soon(database, size), traced)


def _probe(database: str, instants: list[datetime], traced: bool) -> dict[str, float]:
    """Time one start on ``database``, whose tasks fall due at ``instants`` within the
    window, and measure its memory; ``ahead`` is how many of the instants were still
    ahead (by ``HELD_MARGIN``) when the instants held were counted."""
    # Modules a start imports lazily, loaded first: code is not start-up memory.
    import aiosqlite  # noqa: F401
    import langgraph.checkpoint.sqlite.aio  # noqa: F401

    if database.startswith("postgresql"):
        import langgraph.checkpoint.postgres.aio  # noqa: F401
        import psycopg_pool  # noqa: F401

    async def start() -> dict[str, float]:
        gc.collect()
        rss = rss_mib()
        reset = _reset_peak_rss()
        if traced:
            tracemalloc.start()
        began = time.perf_counter()
        rt = SchedulerRuntime(trivial_graph(), database=database)
        await rt.start()
        seconds = time.perf_counter() - began
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else math.nan
        tracemalloc.stop()
        peak = peak_rss_mib() - rss if reset else math.nan
        assert rt._timer is not None
        pending = rt._timer.pending
        ahead = sum(at > utcnow() + HELD_MARGIN for at in instants)
        await rt.stop()
        return {
            "seconds": seconds,
            "peak_rss": peak,
            "traced_peak": traced_peak,
            "pending": float(pending),
            "ahead": float(ahead),
        }

    return asyncio.run(start())


def _check_held(fig: Figure, label: str, result: dict[str, float]) -> None:
    """Check that a start loaded its window: every due instant still ahead is held, up to
    the ``MAX_WINDOW_TIMES`` one load reads (a start that loads nothing is fast and holds
    few instants, and would meet its goals)."""
    pending, ahead = result["pending"], result["ahead"]
    fig.check(
        pending >= min(ahead, MAX_WINDOW_TIMES),
        f"{label}: the runtime held {pending:.0f} due instants after start-up, "
        f"{ahead:.0f} were still ahead within its window",
    )


async def _startup(
    fig: Figure, label: str, stores: dict[str, tuple[str, Size]], *, quick: bool
) -> None:
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    plain: dict[str, list[dict[str, float]]] = {"small": [], "large": []}
    traced: dict[str, list[dict[str, float]]] = {"small": [], "large": []}

    def probe(name: str, *, with_trace: bool) -> Callable[[], Awaitable[float]]:
        database, size = stores[name]

        async def call() -> float:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                result = await loop.run_in_executor(
                    pool, _startup_probe, database, size, with_trace
                )
            (traced if with_trace else plain)[name].append(result)
            _check_held(fig, f"{label} {name}{' (traced)' if with_trace else ''}", result)
            return result["seconds"]

        return call

    await interleave(
        1 if quick else 3,
        {
            "small": probe("small", with_trace=False),
            "large": probe("large", with_trace=False),
            "small traced": probe("small", with_trace=True),
            "large traced": probe("large", with_trace=True),
        },
    )
    small_size, large_size = stores["small"][1], stores["large"][1]
    small, large = small_size.tasks, large_size.tasks

    def med(results: dict[str, list[dict[str, float]]], name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    def ratios(results: dict[str, list[dict[str, float]]], key: str) -> Spread:
        each = [r[key] for r in results["large"]]
        return spread(round_ratios(each, [r[key] for r in results["small"]]))

    seconds = med(plain, "large", "seconds")
    fig.rows.append(
        Row(
            figure="scale",
            label=f"start-up, {large:,} tasks, {large_size.soon:,} due within the window ({label})",
            unit="s",
            baseline=med(plain, "small", "seconds"),
            baseline_label=f"{small:,} tasks",
            measured=seconds,
            goal=f"< {START_GOAL_SECS:g} s",
            op="<",
            limit=START_GOAL_SECS,
            **ratios(plain, "seconds"),
        )
    )
    for key, what in (("peak_rss", "peak RSS growth"), ("traced_peak", "peak traced memory")):
        source = plain if key == "peak_rss" else traced
        each = [r[key] for r in source["large"]]
        spread_ = fig.ratios(f"{label} {what}", each, [r[key] for r in source["small"]])
        fig.rows.append(
            Row(
                figure="scale",
                label=f"{what} during start-up, {large:,} tasks ({label})",
                unit="MiB",
                baseline=med(source, "small", key),
                baseline_label=f"{small:,} tasks",
                measured=med(source, "large", key),
                goal=f"≤ {MEMORY_GOAL:g}× the {small:,}-task start",
                op="<=",
                ratio_limit=MEMORY_GOAL,
                **spread_,
            )
        )
    held = med(plain, "large", "pending")
    fig.rows.append(
        Row(
            figure="scale",
            label=f"due instants held after start-up, {large:,} tasks ({label})",
            unit="",
            baseline=med(plain, "small", "pending"),
            baseline_label=f"{small:,} tasks",
            measured=held,
            goal=f"≤ {large_size.instants:,} (distinct instants due in the window)",
            op="<=",
            limit=float(large_size.instants),
            **ratios(plain, "pending"),
        )
    )
    fig.notes.append(
        f"{label}: start-up seconds per round, {small:,} tasks "
        f"{[round(r['seconds'], 2) for r in plain['small']]}, {large:,} tasks "
        f"{[round(r['seconds'], 2) for r in plain['large']]}; due within the window: "
        f"{small_size.soon:,} and {large_size.soon:,} tasks; peak traced memory per round "
        f"{[round(r['traced_peak'], 1) for r in traced['small']]} and "
        f"{[round(r['traced_peak'], 1) for r in traced['large']]} MiB."
    )


# -- creation ---------------------------------------------------------------------------


async def _creation(fig: Figure, workdir: Path, *, quick: bool) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    rounds, batch = (2, 50) if quick else (4, 500)
    cron = Cron("0 9 * * 1-5", tz="Europe/Berlin")
    aps = AsyncIOScheduler(
        timezone=timezone.utc,
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{workdir / 'scale-aps.db'}")},
    )
    aps.start()
    database = f"sqlite:///{workdir / 'scale-create.db'}"
    async with SchedulerRuntime(trivial_graph(), database=database) as rt:

        async def bare() -> float:
            start = time.perf_counter()
            for _ in range(batch):
                aps.add_job("benchmarks.scale:noop", trigger=cron.trigger(), id=uuid.uuid4().hex)
            return batch / (time.perf_counter() - start)

        async def ours() -> float:
            start = time.perf_counter()
            for i in range(batch):
                await rt.create_task(name=f"standup {i}", schedule=cron, trigger="standup")
            return batch / (time.perf_counter() - start)

        values = await interleave(rounds, {"bare": bare, "ours": ours})
        created = await rt.store.transaction(
            lambda conn: conn.scalar(select(func.count()).select_from(tasks_table))
        )
    jobs = len(aps.get_jobs())
    aps.shutdown(wait=False)
    # Timed, so read back: a create_task (or add_job) that stored nothing would be fast.
    fig.check(
        created == rounds * batch,
        f"create_task: {created} of {rounds * batch} created tasks in the store",
    )
    fig.check(jobs == rounds * batch, f"add_job: {jobs} of {rounds * batch} jobs in its store")
    ratios = fig.ratios("create_task", values["ours"], values["bare"])
    fig.rows.append(
        Row(
            figure="scale",
            label="create_task (cron), SQLite",
            unit="/s",
            baseline=median(values["bare"]),
            baseline_label="APScheduler SQLAlchemyJobStore",
            measured=median(values["ours"]),
            goal="≥ 1× APScheduler's job store",
            op=">=",
            ratio_limit=1.0,
            **ratios,
        )
    )


def noop() -> None:
    """The job the bare APScheduler baseline schedules (never fires)."""


# -- pages -------------------------------------------------------------------------------


async def _pages(
    fig: Figure, small: str, large: str, sizes: dict[str, Size], *, quick: bool
) -> None:
    calls = 50 if quick else 200
    async with (
        SchedulerRuntime(None, database=small) as rt_small,
        SchedulerRuntime(None, database=large) as rt_large,
    ):
        owner, task_id = "owner-00001", "task00000000"
        for rt in (rt_small, rt_large):
            page = await rt.list_tasks(owner=owner, limit=50)
            history = await rt.history(task_id, limit=20)
            fig.check(len(page) == 50, f"list_tasks page has {len(page)} tasks, expected 50")
            fig.check(len(history) == 20, f"history page has {len(history)} runs, expected 20")

        def timed(
            call: Callable[[SchedulerRuntime], Awaitable[Any]], rt: SchedulerRuntime
        ) -> Callable[[], Awaitable[float]]:
            async def run() -> float:
                samples = []
                for _ in range(calls):
                    start = time.perf_counter()
                    await call(rt)
                    samples.append(time.perf_counter() - start)
                return median(samples) * 1e3

            return run

        probes: list[tuple[str, Callable[[SchedulerRuntime], Awaitable[Any]]]] = [
            ("list_tasks page (one owner)", lambda rt: rt.list_tasks(owner=owner, limit=50)),
            ("history page (one task)", lambda rt: rt.history(task_id, limit=20)),
            (
                "lease sweep (interrupt_expired)",
                lambda rt: rt.store.interrupt_expired(now=utcnow(), reason="benchmark"),
            ),
            (
                "change poll (changed_since 5 s)",
                lambda rt: rt.store.changed_since(utcnow() - timedelta(seconds=5)),
            ),
        ]
        size, base = sizes["large"], sizes["small"]
        for label, call in probes:
            values = await interleave(
                1 if quick else 3,
                {"small": timed(call, rt_small), "large": timed(call, rt_large)},
            )
            measured = median(values["large"])
            fig.rows.append(
                Row(
                    figure="scale",
                    label=f"{label}, {size.tasks:,} tasks / {size.runs:,} runs",
                    unit="ms",
                    baseline=median(values["small"]),
                    baseline_label=f"{base.tasks:,} tasks / {base.runs:,} runs",
                    measured=measured,
                    goal=f"< {PAGE_GOAL_MS:g} ms",
                    op="<",
                    limit=PAGE_GOAL_MS,
                    **spread(round_ratios(values["large"], values["small"])),
                )
            )


# -- the figure --------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres_databases(fig: Figure, names: list[str]) -> Iterator[dict[str, str] | None]:
    """Fresh PostgreSQL databases for the start-up stores (None if unreachable)."""
    admin = reachable_postgres(fig, "PostgreSQL start-up")
    if admin is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(scratch_database(admin)) for name in names}


async def _build_all(
    fig: Figure, stores: dict[tuple[str, str], tuple[str, Size]], base: datetime
) -> None:
    """Write every store, two at a time in fresh processes (the large ones first)."""
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    order = sorted(stores, key=lambda key: -stores[key][1].tasks)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(
                    pool,
                    _build_postgres if backend == "PostgreSQL" else _build_sqlite,
                    *stores[backend, name],
                    base,
                )
                for backend, name in order
            )
        )
    for (backend, name), (database, size) in stores.items():
        await _check_rows(fig, f"{backend} {name}", database, size, base)
    fig.notes.append(
        f"Bulk-writing the stores ({', '.join(sorted({b for b, _ in stores}))}; two at a "
        f"time) took {time.perf_counter() - began:.0f} s (not a figure)."
    )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("scale", "5. Scale", DEFINITION)
    sizes = SIZES["quick" if quick else "full"]
    await fig.part("creation", _creation(fig, workdir, quick=quick))
    base = utcnow()
    sqlite = {name: f"sqlite:///{workdir / f'scale-{name}.db'}" for name in sizes}
    with _postgres_databases(fig, list(sizes)) as pg:
        stores = {("SQLite", name): (sqlite[name], size) for name, size in sizes.items()}
        if pg is not None:
            stores |= {("PostgreSQL", name): (pg[name], size) for name, size in sizes.items()}
        await _build_all(fig, stores, base)
        for backend, label in (("SQLite", "SQLite file"), ("PostgreSQL", "PostgreSQL")):
            if (backend, "large") in stores:
                mine = {name: stores[backend, name] for name in sizes}
                await fig.part(f"start-up {label}", _startup(fig, label, mine, quick=quick))
    await fig.part("pages", _pages(fig, sqlite["small"], sqlite["large"], sizes, quick=quick))
    return fig
