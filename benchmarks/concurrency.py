"""Figure 4: 10,000 fires due at once, 1-s turns, ``max_concurrency=500``: how soon all
have started, and none skipped."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import tasks_table

from .common import (
    CollectorTime,
    Figure,
    RecordWaiter,
    Row,
    check_burst,
    check_not_early,
    check_settled,
    direct_input,
    interleave,
    median,
    peak_rss_mib,
    records_per_task,
    spread,
    task_rows,
    trivial_graph,
    utcnow,
)

GOAL = 1.2
TURN_SECS = 1.0
SIZES = {
    # fires, max_concurrency, rounds, direct baseline rounds too
    "quick": (1_000, 100, 1, False),
    "full": (10_000, 500, 2, True),
}
DEFINITION = (
    "N isolated `Once` tasks all due at the same instant T; the graph's one node waits "
    f"{TURN_SECS:g} s (`asyncio.sleep`, no CPU), so at most `max_concurrency` turns are in "
    "flight and the ideal is N / max_concurrency × 1 s. Runtime with `max_concurrency=500` "
    "(the figure is about that many turns in flight) and otherwise default settings (no "
    "queue: fires beyond the free turn slots wait in the task table and are claimed as "
    "slots free), in memory (`sqlite://` with LangGraph's `InMemorySaver`, so the figure "
    "measures the scheduler and not a checkpointer's disk; a SQLite file's one checkpointer "
    "connection would serialise 500 turns' writes). The N task rows are inserted in one "
    "transaction through `runtime.store.transaction` a few seconds before T; the runtime "
    "learns of them through its change feed. Measured: T → the last node start (the "
    "node's first line, wall clock), N = 10,000 at `max_concurrency=500`: goal ≤ "
    f"{GOAL:g}× the ideal 20 s, i.e. 24 s; the ratio is to the ideal (min–median–max "
    "over two rounds). Not started = fires recorded `skipped` or `missed` (goal 0, also a "
    "correctness check, like every fire recorded `success` exactly once, read back from "
    "the store, with no fire left running or waiting for a retry at the end). For "
    "reference (notes, full run): the same N direct `graph.ainvoke` calls "
    "on the same kind of runtime's graph, at most 500 at a time (a semaphore), from the "
    "first call to the last node start, rounds interleaved. A smoke run uses N = 1,000 at "
    "`max_concurrency=100` (ideal 10 s), one round, no direct calls."
)


class _Starts:
    """Node start times of one round, as (scheduled, started)."""

    def __init__(self) -> None:
        self.samples: list[tuple[datetime | None, datetime]] = []

    def __call__(self, state: SchedulerState) -> None:
        source = state.get("task_source")
        scheduled = datetime.fromisoformat(source["scheduled_for"]) if source else None
        self.samples.append((scheduled, utcnow()))

    def last(self) -> datetime | None:
        return max((t for _, t in self.samples), default=None)


def _graph(starts: _Starts) -> Any:
    return trivial_graph(on_start=starts, delay_secs=TURN_SECS)


async def _direct(n: int, limit: int) -> dict[str, float]:
    """Seconds from the first of ``n`` direct calls (``limit`` at a time) to the last
    node start, and the collector's passes until the last call returned."""
    starts = _Starts()
    async with SchedulerRuntime(_graph(starts), database="sqlite://") as rt:
        graph = rt.graph
        gate = asyncio.Semaphore(limit)

        async def call() -> None:
            async with gate:
                await graph.ainvoke(*direct_input())

        began = utcnow()
        with CollectorTime() as collector:
            await asyncio.gather(*(call() for _ in range(n)))
    last = starts.last()
    return {
        "wall": math.nan if last is None else (last - began).total_seconds(),
        "gc_secs": collector.seconds,
        "gc_full": float(collector.full),
    }


async def _scheduled(fig: Figure, n: int, limit: int) -> dict[str, float]:
    """One burst: seconds from T to the last node start, and fires not started."""
    starts = _Starts()
    waiter = RecordWaiter()
    async with SchedulerRuntime(
        _graph(starts), database="sqlite://", max_concurrency=limit, on_run=waiter
    ) as rt:
        # Change-feed poll (2 s) plus building and writing the rows before T.
        due = utcnow() + timedelta(seconds=4 + n * 4e-4)
        rows = task_rows([due] * n, prefix="conc")
        await rt.store.transaction(lambda conn: conn.execute(insert(tasks_table), rows))
        if utcnow() > due - timedelta(seconds=2.5):
            fig.notes.append("the burst was written less than 2.5 s before T")
        await asyncio.sleep(max((due - utcnow()).total_seconds(), 0))
        ideal = n / limit * TURN_SECS
        with CollectorTime() as collector:
            ok = await waiter.wait_for(n, timeout=ideal * 5 + 30, stall=30)
        await rt.wait_idle()  # a fire run twice may still be in flight
        check_burst(fig, f"{n:,} fires", waiter, [row["id"] for row in rows], ok)
        per_task, outcomes = await records_per_task(rt.store, "conc")
        await check_settled(fig, f"{n:,} fires", rt.store, "conc")
    fig.check(
        per_task == Counter({1: n}),
        f"records per task {dict(per_task)} (expected {n} tasks with 1)",
    )
    not_started = outcomes["skipped"] + outcomes["missed"]
    fig.check(not_started == 0, f"{not_started} fires recorded skipped or missed")
    check_not_early(fig, f"{n:,} fires (node starts)", starts.samples)
    last = starts.last()
    started = len(starts.samples)
    fig.check(started == n, f"{started} node starts for {n} fires")
    return {
        "wall": math.nan if last is None or started < n else (last - due).total_seconds(),
        "not_started": float(not_started),
        "lateness_p50": median([(t - s).total_seconds() for s, t in starts.samples if s]),
        "gc_secs": collector.seconds,
        "gc_full": float(collector.full),
    }


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("concurrency", "4. Concurrency", DEFINITION)
    n, limit, rounds, with_direct = SIZES["quick" if quick else "full"]
    ideal = n / limit * TURN_SECS
    results: list[dict[str, float]] = []
    direct_results: list[dict[str, float]] = []

    async def scheduled() -> float:
        began = time.perf_counter()
        try:
            results.append(await _scheduled(fig, n, limit))
        except Exception as exc:
            fig.check(False, f"a burst crashed: {type(exc).__name__}: {exc}")
            results.append({"wall": math.nan, "not_started": math.nan})
        fig.notes.append(f"a round took {time.perf_counter() - began:.0f} s in all")
        return results[-1]["wall"]

    async def direct() -> float:
        direct_results.append(await _direct(n, limit))
        return direct_results[-1]["wall"]

    contenders = {"scheduled": scheduled, "direct": direct} if with_direct else {}
    values = await interleave(rounds, contenders or {"scheduled": scheduled})
    walls = values["scheduled"]
    measured = median([w for w in walls if not math.isnan(w)]) if walls else math.nan
    if any(math.isnan(w) for w in walls):
        measured = math.nan  # a round whose fires did not all start has no wall time
    fig.rows.append(
        Row(
            figure="concurrency",
            label=(
                f"{n:,} fires due at once, {TURN_SECS:g}-s turns, max_concurrency={limit}: "
                "due → last node start (memory)"
            ),
            unit="s",
            baseline=ideal,
            baseline_label=f"ideal {n:,}/{limit} × {TURN_SECS:g} s",
            measured=measured,
            goal=f"≤ {GOAL:g}× ideal ({GOAL * ideal:g} s)",
            op="<=",
            limit=GOAL * ideal,
            ratio_limit=GOAL,
            **spread([w / ideal for w in walls]),
        )
    )
    not_started = sum(r["not_started"] for r in results)
    fig.rows.append(
        Row(
            figure="concurrency",
            label=f"fires skipped or missed ({len(results)} × {n:,} fires)",
            unit="",
            baseline=0.0,
            baseline_label="none allowed",
            measured=not_started if results else math.nan,
            ratio=math.nan,
            goal="0",
            op="<=",
            limit=0.0,
        )
    )
    fig.notes.append(
        f"Per round: due → last node start {[round(w, 1) for w in walls]} s; p50 lateness "
        f"(due → node start) {[round(r.get('lateness_p50', math.nan), 1) for r in results]} s."
    )
    if with_direct:
        fig.notes.append(
            f"Direct ainvoke, {n:,} calls at most {limit} at a time, first call → last node "
            f"start: {[round(v, 1) for v in values['direct']]} s."
        )
    fig.notes.append(
        "Garbage collector, per round (T → every record in; direct: first call → last "
        f"return): runtime {_collected(results)}"
        + (f"; direct calls {_collected(direct_results)}" if direct_results else "")
        + " (see the analysis: the share of the collector's full passes over the heap)."
    )
    fig.notes.append(f"Peak RSS of the benchmark process (all rounds): {peak_rss_mib():.0f} MiB.")
    return fig


def _collected(rounds: list[dict[str, float]]) -> str:
    """The collector's time and full passes of each round, for a note."""
    return ", ".join(
        f"{r.get('gc_secs', math.nan):.1f} s in {r.get('gc_full', math.nan):.0f} full passes"
        for r in rounds
    )
