"""Figure 5: 100,000 tasks and 1,000,000 run records on a SQLite file."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, insert

from langgraph_scheduler import Cron, Interval, Once, SchedulerRuntime, Task
from langgraph_scheduler.store import Store, _task_row, runs_table, tasks_table

from .common import Figure, Row, far_future, interleave, median, rss_mib, trivial_graph, utcnow

PAGE_GOAL_MS = 10.0
SIZES = {
    # (tasks, owners, run records, tasks with history); per owner and per task the same
    # in the small and the large store, so only the totals differ.
    "quick": {"small": (200, 2, 2_000, 2), "large": (2_000, 20, 20_000, 20)},
    "full": {"small": (1_000, 10, 10_000, 10), "large": (100_000, 1_000, 1_000_000, 1_000)},
}
DEFINITION = (
    "On a SQLite file (the default database). Creation: `create_task` with a cron schedule "
    "on a running runtime, against `add_job` of the same cron into APScheduler's own "
    "persistent `SQLAlchemyJobStore` on a SQLite file (batches interleaved; rate, higher is "
    "better). Start-up: `SchedulerRuntime.start()` with 100,000 active tasks (and 1,000,000 "
    "run records) in the store, against a bare `AsyncIOScheduler` given 100,000 jobs "
    "with the same three kinds of trigger (one APScheduler trigger built per job; the "
    "runtime shares one trigger between equal cron schedules, and the store repeats its "
    "three schedules exactly, where real stores would repeat cron lines only) and "
    "started; each in a fresh process (spawn), RSS growth "
    "measured in that process. Pages: `list_tasks(owner=…, limit=50)` for an owner of 100 "
    "tasks and `history(task_id, limit=20)` for a task with 1,000 records, through a "
    "running runtime, in a store of 100,000 tasks / 1,000,000 runs against a store with the "
    "same owner and task sizes but 1% of the totals (calls interleaved, median); the same "
    "for the two queries every runtime repeats on its own, the lease sweep "
    "(`interrupt_expired`, every `lease_secs / 3`) and the change poll (`changed_since`, "
    "every `sync_interval_secs`). The bulk rows are written with SQLAlchemy core through "
    "the store's own table objects."
)


def _schedules() -> list[tuple[Cron | Interval | Once, datetime]]:
    """The three schedule kinds the big store holds, each with its next fire time."""
    now = utcnow()
    kinds: list[Cron | Interval | Once] = [
        Cron("0 9 * * 1-5", tz="Europe/Berlin"),
        Interval(hours=1, tz="UTC", start=now + timedelta(days=30)),
        Once(at=far_future(), tz="UTC"),
    ]
    return [(s, s.next_fire_times(1, after=now)[0].astimezone(timezone.utc)) for s in kinds]


def _build(path: Path, tasks: int, owners: int, runs: int, with_history: int) -> None:
    """Write ``tasks`` active tasks (round-robin over owners) and ``runs`` finished run
    records spread evenly over the first ``with_history`` tasks."""
    database = f"sqlite:///{path}"

    async def schema() -> None:
        store = Store(database)
        await store.setup()
        await store.close()

    asyncio.run(schema())
    engine = create_engine(database)
    schedules = _schedules()
    base = utcnow() - timedelta(days=400)
    chunk = 10_000
    with engine.begin() as conn:
        for start in range(0, tasks, chunk):
            rows = []
            for i in range(start, min(start + chunk, tasks)):
                schedule, next_run = schedules[i % len(schedules)]
                created = base + timedelta(microseconds=i)
                task = Task(
                    id=f"task{i:08d}",
                    name=f"task {i}",
                    owner=f"owner-{i % owners:05d}",
                    schedule=schedule,
                    payload={"prompt": "summarise my inbox"},
                    thread_mode="continue",
                    thread_id=f"thread-{i}",
                    state="active",
                    next_run_at=next_run,
                    created_at=created,
                    updated_at=created,
                )
                rows.append(_task_row(task))
            conn.execute(insert(tasks_table), rows)
        per_task = runs // with_history
        for start in range(0, runs, chunk):
            rows = []
            for n in range(start, min(start + chunk, runs)):
                task_no, k = divmod(n, per_task)
                at = base + timedelta(hours=k)
                rows.append(
                    {
                        "run_id": str(uuid.UUID(int=n)),
                        "task_id": f"task{task_no:08d}",
                        "attempt": 1,
                        "trigger": "schedule",
                        "scheduled_for": at,
                        "started_at": at + timedelta(milliseconds=3),
                        "finished_at": at + timedelta(milliseconds=900),
                        "outcome": "success",
                        "summary": "Inbox: 3 new messages, nothing urgent.",
                        "thread_id": f"thread-{task_no}",
                        "checkpoint_id": str(uuid.UUID(int=n + 1)),
                    }
                )
            conn.execute(insert(runs_table), rows)
    engine.dispose()


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
    aps.shutdown(wait=False)
    fig.rows.append(
        Row(
            figure="scale",
            label="create_task (cron), SQLite",
            unit="/s",
            baseline=median(values["bare"]),
            baseline_label="APScheduler SQLAlchemyJobStore",
            measured=median(values["ours"]),
        )
    )


def noop() -> None:
    """The job the bare APScheduler baseline schedules (never fires)."""


# -- start-up (fresh processes) ----------------------------------------------------------


def _startup_probe(kind: str, database: str, tasks: int) -> tuple[float, float]:
    """In a fresh process: (seconds to start, RSS growth in MiB)."""
    import gc

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    async def ours() -> tuple[float, float]:
        rss = rss_mib()
        start = time.perf_counter()
        rt = SchedulerRuntime(trivial_graph(), database=database)
        await rt.start()
        seconds = time.perf_counter() - start
        gc.collect()
        grown = rss_mib() - rss
        await rt.stop()
        return seconds, grown

    async def bare() -> tuple[float, float]:
        # One APScheduler trigger built per job, from plain values, as a rebuild from
        # any store would; the same three kinds of schedule as the runtime's tasks.
        first = utcnow() + timedelta(days=30)
        berlin = ZoneInfo("Europe/Berlin")
        makers: list[Callable[[], Any]] = [
            lambda: CronTrigger(hour=9, minute=0, day_of_week="mon-fri", timezone=berlin),
            lambda: IntervalTrigger(hours=1, start_date=first, timezone=timezone.utc),
            lambda: DateTrigger(run_date=far_future(), timezone=timezone.utc),
        ]
        rss = rss_mib()
        start = time.perf_counter()
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        for i in range(tasks):
            scheduler.add_job(noop, trigger=makers[i % len(makers)](), id=f"task{i:08d}")
        scheduler.start()
        seconds = time.perf_counter() - start
        gc.collect()
        grown = rss_mib() - rss
        scheduler.shutdown(wait=False)
        return seconds, grown

    # Import and warm up what both need before measuring.
    asyncio.run(asyncio.sleep(0))
    return asyncio.run(ours() if kind == "ours" else bare())


async def _startup(fig: Figure, database: str, tasks: int, *, quick: bool) -> None:
    context = multiprocessing.get_context("spawn")
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": []}
    loop = asyncio.get_running_loop()

    def probe(kind: str) -> Callable[[], Awaitable[float]]:
        async def call() -> float:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                result = await loop.run_in_executor(pool, _startup_probe, kind, database, tasks)
            results[kind].append(result)
            return result[0]

        return call

    await interleave(1 if quick else 2, {"bare": probe("bare"), "ours": probe("ours")})
    for index, (label, unit) in enumerate(
        ((f"start-up, {tasks:,} tasks", "s"), (f"RSS growth at start, {tasks:,} tasks", "MiB"))
    ):
        fig.rows.append(
            Row(
                figure="scale",
                label=label,
                unit=unit,
                baseline=median([r[index] for r in results["bare"]]),
                baseline_label="bare AsyncIOScheduler",
                measured=median([r[index] for r in results["ours"]]),
            )
        )


# -- pages -------------------------------------------------------------------------------


async def _pages(
    fig: Figure, small: str, large: str, sizes: dict[str, tuple[int, int, int, int]], *, quick: bool
) -> None:
    calls = 50 if quick else 200
    tasks, owners, runs, with_history = sizes["large"]
    async with (
        SchedulerRuntime(trivial_graph(), database=small) as rt_small,
        SchedulerRuntime(trivial_graph(), database=large) as rt_large,
    ):
        owner, task_id = "owner-00001", "task00000001"
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

        probes: list[tuple[str, Callable[[SchedulerRuntime], Awaitable[Any]], float | None]] = [
            (
                "list_tasks page (one owner)",
                lambda rt: rt.list_tasks(owner=owner, limit=50),
                PAGE_GOAL_MS,
            ),
            ("history page (one task)", lambda rt: rt.history(task_id, limit=20), PAGE_GOAL_MS),
            (
                "lease sweep (interrupt_expired)",
                lambda rt: rt.store.interrupt_expired(now=utcnow(), reason="benchmark"),
                None,
            ),
            (
                "change poll (changed_since 5 s)",
                lambda rt: rt.store.changed_since(utcnow() - timedelta(seconds=5)),
                None,
            ),
        ]
        for label, call, goal in probes:
            if label.startswith("change poll") and not hasattr(rt_large.store, "changed_since"):
                continue
            values = await interleave(
                1 if quick else 3,
                {"small": timed(call, rt_small), "large": timed(call, rt_large)},
            )
            measured = median(values["large"])
            fig.rows.append(
                Row(
                    figure="scale",
                    label=f"{label}, {tasks:,} tasks / {runs:,} runs",
                    unit="ms",
                    baseline=median(values["small"]),
                    baseline_label="1% of the totals",
                    measured=measured,
                    goal=f"< {goal:g} ms" if goal else "",
                    met=None if goal is None else measured < goal,
                )
            )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("scale", "5. Scale", DEFINITION)
    sizes = SIZES["quick" if quick else "full"]
    await _creation(fig, workdir, quick=quick)
    paths = {name: workdir / f"scale-{name}.db" for name in sizes}
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    for name, path in paths.items():
        await loop.run_in_executor(None, _build, path, *sizes[name])
    fig.notes.append(
        f"Bulk-writing both stores took {time.perf_counter() - start:.0f} s (not a figure)."
    )
    large = f"sqlite:///{paths['large']}"
    await _startup(fig, large, sizes["large"][0], quick=quick)
    await _pages(fig, f"sqlite:///{paths['small']}", large, sizes, quick=quick)
    return fig
