"""Figure 2: a burst of fires due at once: none skipped or lost, drained how fast."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.store import tasks_table

from .common import (
    Figure,
    RecordWaiter,
    Row,
    TurnStarts,
    check_burst,
    check_settled,
    check_turns_ran,
    direct_calls,
    interleave,
    median,
    records_per_task,
    task_rows,
    trivial_graph,
    utcnow,
)

GOAL = 0.85
WORKERS = 4
"""``max_concurrency``'s default, used by the runtime and the direct baseline alike."""
SIZES = {
    # (fires per burst, rounds) per backend
    "quick": {"memory": (1_000, 1), "SQLite": (200, 1)},
    "full": {"memory": (10_000, 2), "SQLite": (1_000, 3)},
}
DEFINITION = (
    "N isolated `Once` tasks all due at the same instant T, on a runtime with default "
    f"settings (`max_concurrency={WORKERS}`, no queue: fires beyond the free turn slots wait "
    "in the task table) and the trivial one-node graph (a model turn would make a "
    f"10,000-fire burst at {WORKERS} turns at a time last hours); in memory (`sqlite://`, "
    "10,000 fires, two rounds) and on a SQLite file (the default database, 1,000 fires, "
    "three rounds); a smoke run: 1,000 and 200 fires, one round each. The tasks are "
    "inserted in one transaction through `runtime.store.transaction` (the store's own row "
    "mapping) a few seconds before T, as another process would write them; the runtime "
    "learns of them through its change feed. Checks: every fire recorded `success` (none "
    "`skipped`), every task has exactly one run record in the store, its turn ran the "
    "graph's node once, none started over 50 ms before T, and none is left running or "
    "waiting for a retry at the end. Rate = N / (last run record committed − T). "
    "Baseline: N direct `graph.ainvoke` calls on the same "
    f"compiled graph and checkpointer, {WORKERS} at a time, fresh thread each; rate = N / "
    "elapsed. Goal: the burst drains at ≥ 0.85× the direct rate at the same concurrency. "
    "Rounds interleaved, after one direct run of warm-up; medians, and the ratio as "
    "min–median–max of the per-round ratios. "
    "Task creation is outside the timed window."
)


async def _backend(fig: Figure, label: str, database: str, *, quick: bool) -> None:
    n, rounds = SIZES["quick" if quick else "full"][label]
    waiter = RecordWaiter()
    lateness: list[float] = []
    bursts = iter(range(1000))
    starts = TurnStarts()
    async with SchedulerRuntime(
        trivial_graph(on_start=starts), database=database, on_run=waiter
    ) as rt:
        graph = rt.graph

        async def direct() -> float:
            wall, _ = await direct_calls(graph, n, WORKERS)
            return n / wall

        async def scheduled() -> float:
            waiter.clear()
            prefix = f"burst{next(bursts):03d}-"
            # Change-feed poll (2 s) plus writing the rows before T.
            due = utcnow() + timedelta(seconds=4 + n * 2e-4)
            rows = task_rows([due] * n, prefix=prefix)
            await rt.store.transaction(lambda conn: conn.execute(insert(tasks_table), rows))
            if utcnow() > due - timedelta(seconds=2):
                fig.notes.append(f"{label}: the burst was written less than 2 s before T")
            await asyncio.sleep(max((due - utcnow()).total_seconds(), 0))
            ok = await waiter.wait_for(n, timeout=(10 if quick else 60) + n * 0.05, stall=15)
            await rt.wait_idle()  # a fire run twice may still be in flight
            last = check_burst(fig, label, waiter, [row["id"] for row in rows], ok)
            per_task, outcomes = await records_per_task(rt.store, prefix)
            fig.check(
                per_task == Counter({1: n}),
                f"{label}: records per task {dict(per_task)} (expected {n} tasks with 1)",
            )
            fig.check(
                outcomes["skipped"] == 0, f"{label}: {outcomes['skipped']} fires recorded skipped"
            )
            await check_settled(fig, label, rt.store, prefix)
            check_turns_ran(fig, label, starts, [r.run_id for r, _ in waiter.records])
            lateness.extend(
                (r.started_at - r.scheduled_for).total_seconds() for r, _ in waiter.records
            )
            if last is None:
                return float("nan")
            return n / (last - due).total_seconds()

        await direct()  # warm-up
        values = await interleave(rounds, {"direct": direct, "scheduled": scheduled})
    ratios = fig.ratios(f"{label} burst", values["scheduled"], values["direct"])
    fig.rows.append(
        Row(
            figure="throughput",
            label=f"{n:,} fires due at once, turns/s ({label})",
            unit="/s",
            baseline=median(values["direct"]),
            baseline_label=f"direct ainvoke ×{WORKERS}",
            measured=median(values["scheduled"]),
            goal=f"≥ {GOAL:g}× direct",
            op=">=",
            ratio_limit=GOAL,
            **ratios,
        )
    )
    if lateness:
        fig.notes.append(
            f"{label}: {n:,} fires per burst, {rounds} burst(s); lateness (claim − due) "
            f"p50 {median(lateness):.1f} s, max {max(lateness):.1f} s; per-round rates direct "
            f"{_rates(values['direct'])}/s, scheduled {_rates(values['scheduled'])}/s."
        )


def _rates(values: list[float]) -> str:
    """Per-round rates for a note; a round whose fires were lost has none (NaN)."""
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("throughput", "2. Burst and throughput", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", "sqlite://", quick=quick))
    sqlite_file = f"sqlite:///{workdir / 'throughput.db'}"
    await fig.part("SQLite", _backend(fig, "SQLite", sqlite_file, quick=quick))
    return fig
