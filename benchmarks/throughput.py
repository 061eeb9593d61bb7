"""Figure 2: sustained scheduled turns per second against the direct ``ainvoke`` rate."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from langgraph_scheduler import Once, SchedulerRuntime

from .common import (
    Figure,
    RecordWaiter,
    Row,
    check_burst,
    direct_input,
    interleave,
    median,
    trivial_graph,
    utcnow,
)

GOAL = 0.70
WORKERS = 4
DEFINITION = (
    f"Measured: N isolated `Once` tasks all due at the same instant T on a runtime with "
    f"`max_concurrency={WORKERS}` (the default) and a queue large enough for all; rate = "
    "N / (last run record committed − T), i.e. how fast the runtime drains a backlog of "
    f"due fires. Baseline: N direct `graph.ainvoke` calls on the same compiled graph and "
    f"checkpointer, {WORKERS} at a time, fresh thread each; rate = N / elapsed. Rounds "
    "interleaved; medians. Task creation is outside the timed window."
)


async def _backend(fig: Figure, label: str, database: str, *, quick: bool) -> dict[str, float]:
    rounds, n = (1, 100) if quick else (3, 1000)
    waiter = RecordWaiter()
    async with SchedulerRuntime(
        trivial_graph(),
        database=database,
        on_run=waiter,
        max_concurrency=WORKERS,
        queue_size=n + 10,
    ) as rt:
        graph = rt.graph

        async def direct() -> float:
            todo = iter(range(n))

            async def worker() -> None:
                for _ in todo:
                    payload, config = direct_input()
                    await graph.ainvoke(payload, config)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(WORKERS)))
            return n / (time.perf_counter() - start)

        async def scheduled() -> float:
            waiter.clear()
            # Leave room for creating the tasks before they fall due.
            lead = timedelta(seconds=1 + n * (0.004 if label == "memory" else 0.008))
            due = utcnow() + lead
            for i in range(n):
                await rt.create_task(name=f"burst-{i}", schedule=Once(at=due), trigger="go")
            fig.check(utcnow() < due, f"{label}: creating {n} tasks took past their due time")
            await asyncio.sleep(max((due - utcnow()).total_seconds(), 0))
            ok = await waiter.wait_for(
                n, timeout=(5 if quick else 60) + n * 0.05, stall=3 if quick else 10
            )
            last = check_burst(fig, label, waiter, n, ok)
            if last is None:
                return float("nan")
            return len(waiter.records) / (last - due).total_seconds()

        await direct()  # warm-up
        values = await interleave(rounds, {"direct": direct, "scheduled": scheduled})
    base, measured = median(values["direct"]), median(values["scheduled"])
    fig.rows.append(
        Row(
            figure="throughput",
            label=f"scheduled turns/s ({label})",
            unit="/s",
            baseline=base,
            baseline_label="direct ainvoke",
            measured=measured,
            goal=f"≥ {GOAL:.0%} of direct",
            met=measured / base >= GOAL,
        )
    )
    return {"direct": base, "scheduled": measured}


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("throughput", "2. Throughput", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", "sqlite://", quick=quick))
    sqlite_file = f"sqlite:///{workdir / 'throughput.db'}"
    await fig.part("SQLite", _backend(fig, "SQLite", sqlite_file, quick=quick))
    return fig
