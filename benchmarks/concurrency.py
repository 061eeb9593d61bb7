"""Figure 4: 1000 turns whose model waits 1 s each, with concurrency 1000."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from langgraph_scheduler import Once, SchedulerRuntime
from langgraph_scheduler.scripted import ScriptedChatModel

from .common import (
    Figure,
    RecordWaiter,
    Row,
    check_burst,
    direct_input,
    interleave,
    median,
    model_graph,
    peak_rss_mib,
    task_rows,
    utcnow,
    write_tasks,
)

GOAL_SECS = 3.0
MODEL_SECS = 1.0
DEFINITION = (
    "N isolated `Once` tasks all due at the same instant T, on a graph whose one node calls "
    f"a `ScriptedChatModel(delay_secs={MODEL_SECS:g})`, runtime with `max_concurrency=N` "
    "(the figure is about N turns in flight at once; otherwise default settings); in "
    "memory (`sqlite://`, tasks created with `create_task`) and on a SQLite file (the "
    "default database; tasks written to the store before the runtime starts). Wall time = "
    "last run record committed − T. Baseline: N concurrent `graph.ainvoke` calls "
    "(`asyncio.gather`) of the same graph with the same checkpointer. Memory: peak of "
    "Python allocations (tracemalloc, `reset_peak` at the start) in one extra round of "
    "each, kept apart from the timed rounds because tracing slows everything down."
)


def _graph() -> object:
    return model_graph(ScriptedChatModel(steps=["done"], delay_secs=MODEL_SECS))


async def _direct(n: int, database: str) -> float:
    async with SchedulerRuntime(_graph(), database=database) as rt:  # type: ignore[arg-type]
        graph = rt.graph
        start = time.perf_counter()
        await asyncio.gather(*(graph.ainvoke(*direct_input()) for _ in range(n)))
        return time.perf_counter() - start


async def _scheduled(
    fig: Figure, label: str, n: int, database: str, *, quick: bool, slow: bool = False
) -> float:
    """One burst; ``slow`` (tracemalloc on) waits far longer before giving up."""
    waiter = RecordWaiter()
    in_memory = database == "sqlite://"
    due = utcnow() + timedelta(seconds=1.5 + n * (0.008 if in_memory else 5e-4))
    if not in_memory:
        await write_tasks(database, task_rows([due] * n, prefix="conc"))
    async with SchedulerRuntime(
        _graph(),  # type: ignore[arg-type]
        database=database,
        max_concurrency=n,
        on_run=waiter,
    ) as rt:
        if in_memory:  # a fresh in-memory store: create the tasks through the API
            for i in range(n):
                await rt.create_task(name=f"conc-{i}", schedule=Once(at=due), trigger="go")
        fig.check(utcnow() < due, f"{label}: tasks were not ready before they were due")
        await asyncio.sleep(max((due - utcnow()).total_seconds(), 0))
        # All turns run at once, so they also end together: on SQLite the first record
        # comes ~10 s after the due time (the direct baseline takes as long), and a
        # "stall" shorter than that would call a slow burst lost.
        timeout, stall = (5.0, 3.0) if quick else (90.0, 30.0)
        if slow:
            timeout, stall = timeout * 10, stall * 10
        ok = await waiter.wait_for(n, timeout=timeout, stall=stall)
    last = check_burst(fig, label, waiter, n, ok)
    return float("nan") if last is None else (last - due).total_seconds()


def _fresh(workdir: Path, name: str) -> str:
    path = workdir / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
    return f"sqlite:///{path}"


async def _traced(call: Callable[[], Awaitable[float]]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        await call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


async def _backend(fig: Figure, label: str, workdir: Path, *, quick: bool) -> None:
    n, rounds = (100, 1) if quick else (1000, 3)
    counter = iter(range(1000))

    def database(kind: str) -> str:
        if label == "memory":
            return "sqlite://"
        return _fresh(workdir, f"conc-{kind}-{next(counter)}")

    async def direct() -> float:
        return await _direct(n, database("direct"))

    async def scheduled() -> float:
        return await _scheduled(fig, label, n, database("sched"), quick=quick)

    async def scheduled_traced() -> float:
        return await _scheduled(fig, label, n, database("sched"), quick=quick, slow=True)

    values = await interleave(rounds, {"direct": direct, "scheduled": scheduled})
    base, measured = median(values["direct"]), median(values["scheduled"])
    fig.notes.append(
        f"{label}: per-round wall times direct {[round(v, 2) for v in values['direct']]} s, "
        f"scheduled {[round(v, 2) for v in values['scheduled']]} s."
    )
    fig.rows.append(
        Row(
            figure="concurrency",
            label=f"{n} × {MODEL_SECS:g} s turns at concurrency {n}, wall ({label})",
            unit="s",
            baseline=base,
            baseline_label="direct gather",
            measured=measured,
            goal=f"< {GOAL_SECS:g} s",
            met=measured < GOAL_SECS,
        )
    )
    if quick:
        return
    mem_direct = await _traced(direct)
    mem_sched = await _traced(scheduled_traced)
    fig.rows.append(
        Row(
            figure="concurrency",
            label=f"{n} concurrent turns, peak traced memory ({label})",
            unit="MiB",
            baseline=mem_direct,
            baseline_label="direct gather",
            measured=mem_sched,
        )
    )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("concurrency", "4. Concurrency", DEFINITION)
    await fig.part("memory", _backend(fig, "memory", workdir, quick=quick))
    await fig.part("SQLite", _backend(fig, "SQLite", workdir, quick=quick))
    fig.notes.append(f"Peak RSS of the benchmark process (all rounds): {peak_rss_mib():.0f} MiB.")
    return fig
