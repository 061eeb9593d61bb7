"""Figure 1: a scheduled turn end to end against a direct ``graph.ainvoke``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from langgraph_scheduler import Once, SchedulerRuntime

from .common import (
    Figure,
    RecordWaiter,
    Row,
    direct_input,
    far_future,
    interleave,
    median,
    trivial_graph,
    utcnow,
)

GOAL = 1.25
DEFINITION = (
    "Baseline: `graph.ainvoke` of the runtime's own compiled graph (same checkpointer), "
    "fresh thread per call, one call at a time. `run_now`: from the `run_now(task_id)` call "
    "until it returns the finished record (claim, a free turn slot, turn, the checkpoint "
    "id read, the finish committed). Fire: from the claim (the record's `started_at`, the "
    "instant the claim pass began, after the due-time timer woke the runtime) until the "
    "`on_run` listener sees the committed record; due: the same from the task's "
    "`scheduled_for` (a `Once` 30 ms ahead), i.e. with APScheduler's own wake-up lateness "
    "(figure 3's baseline) included. Default settings. Isolated "
    "tasks, so every turn starts a fresh thread like the baseline. Median of per-round "
    "medians, rounds interleaved."
)


async def _backend(fig: Figure, label: str, database: str, *, quick: bool) -> None:
    rounds, calls, fires = (2, 30, 5) if quick else (5, 200, 40)
    waiter = RecordWaiter()
    async with SchedulerRuntime(trivial_graph(), database=database, on_run=waiter) as rt:
        graph = rt.graph
        manual = await rt.create_task(
            name="overhead", schedule=Once(at=far_future()), trigger="benchmark"
        )

        async def direct() -> float:
            samples = []
            for _ in range(calls):
                payload, config = direct_input()
                start = time.perf_counter()
                await graph.ainvoke(payload, config)
                samples.append(time.perf_counter() - start)
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
                task = await rt.create_task(
                    name="overhead-fire",
                    schedule=Once(at=utcnow() + timedelta(milliseconds=30)),
                    trigger="benchmark",
                )
                ok = await waiter.wait_for(1, timeout=5, stall=5)
                fig.check(ok, f"{label}: scheduled fire of {task.id} not recorded in 5 s")
                if ok:
                    record, committed = waiter.records[0]
                    fig.check(record.outcome == "success", f"{label}: fire {record.outcome}")
                    samples.append((committed - record.started_at).total_seconds())
                    due.append((committed - record.scheduled_for).total_seconds())
            due_samples.append(median(due))
            return median(samples)

        await direct()
        await run_now()  # warm up both paths (imports, first checkpoint, SQLite pages)
        values = await interleave(
            rounds, {"direct": direct, "run_now": run_now, "scheduled": scheduled}
        )
    base = median(values["direct"]) * 1e3
    values["due"] = due_samples
    lines = (
        ("run_now", "run_now → record"),
        ("scheduled", "fire → record"),
        ("due", "due → record"),
    )
    for name, what in lines:
        measured = median(values[name]) * 1e3
        fig.rows.append(
            Row(
                figure="overhead",
                label=f"{what} ({label})",
                unit="ms",
                baseline=base,
                baseline_label="direct ainvoke",
                measured=measured,
                goal=f"≤ {GOAL}× direct",
                met=measured / base <= GOAL,
            )
        )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("overhead", "1. Overhead per turn", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", "sqlite://", quick=quick))
    sqlite_file = f"sqlite:///{workdir / 'overhead.db'}"
    await fig.part("SQLite", _backend(fig, "SQLite", sqlite_file, quick=quick))
    return fig
