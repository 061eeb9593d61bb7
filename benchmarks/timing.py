"""Figure 3: lateness of fires at 10 … 1000 fires/s beside a bare APScheduler no-op job."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.state import SchedulerState

from .common import (
    Figure,
    Row,
    interleave,
    median,
    percentile,
    task_rows,
    trivial_graph,
    utcnow,
    write_tasks,
)

GOAL_MS = 20.0
LEAD = timedelta(seconds=0.5)
DEFINITION = (
    "Fires spread evenly at the offered rate (one `Once` task per fire). Lateness = the "
    "moment the work starts minus the scheduled time, on the wall clock: for the runtime, "
    "when the graph's node begins (after the due-time timer's wake-up, the claim and a free "
    "turn slot); for the baseline, when a bare `AsyncIOScheduler` (memory job store, "
    "`DateTrigger`, no misfire grace) enters a no-op coroutine job. Runtime on a SQLite file "
    "(the default database) with default settings (`max_concurrency=4`; fires beyond the "
    "free slots wait in the table); tasks are written to the store before the runtime "
    "starts, so it finds their due times when it loads its window. Rounds interleaved; "
    "p50/p99/max are medians over rounds. A rate is *saturated* when the runtime's "
    "starts spread over more than 1.1× the scheduled span + 50 ms (a backlog formed); the "
    "p99 goal applies to unsaturated rates only."
)


RATES = {
    "quick": ((10, 0.5), (100, 0.3), (1000, 0.1)),
    "full": ((10, 5.0), (30, 5.0), (60, 5.0), (100, 5.0), (300, 3.0), (1000, 2.0)),
}
"""(fires per second, seconds of fires) per mode."""

Sample = tuple[datetime, datetime]
"""(scheduled, started) of one fire."""


def _times(rate: float, seconds: float, first: datetime) -> list[datetime]:
    return [first + timedelta(seconds=i / rate) for i in range(max(int(rate * seconds), 1))]


async def _bare(rate: float, seconds: float) -> list[Sample]:
    samples: list[Sample] = []
    n = max(int(rate * seconds), 1)
    done = asyncio.Event()

    async def noop(scheduled: datetime) -> None:
        samples.append((scheduled, utcnow()))
        if len(samples) == n:
            done.set()

    scheduler = AsyncIOScheduler(
        timezone=timezone.utc, job_defaults={"coalesce": False, "misfire_grace_time": None}
    )
    scheduler.start()
    try:
        for at in _times(rate, seconds, utcnow() + LEAD + timedelta(seconds=n * 5e-5)):
            scheduler.add_job(noop, DateTrigger(run_date=at), args=[at])
        await asyncio.wait_for(done.wait(), timeout=seconds + 30)
    finally:
        scheduler.shutdown(wait=False)
    return samples


async def _runtime(fig: Figure, rate: float, seconds: float, path: Path) -> list[Sample]:
    samples: list[Sample] = []
    outcomes: list[str | None] = []
    done = asyncio.Event()
    n = max(int(rate * seconds), 1)

    def on_start(state: SchedulerState) -> None:
        source = state.get("task_source")
        if source:
            samples.append((datetime.fromisoformat(source["scheduled_for"]), utcnow()))

    def on_run(record: Any) -> None:
        outcomes.append(record.outcome)
        if len(outcomes) >= n:
            done.set()

    database = f"sqlite:///{path}"
    # Written before the runtime starts, which builds their jobs: the cost of creating
    # them through the API stays out of the way of the fires.
    lead = LEAD + timedelta(seconds=0.5 + n * 5e-4)
    times = _times(rate, seconds, utcnow() + lead)
    await write_tasks(database, task_rows(times, prefix="timing"))
    try:
        async with SchedulerRuntime(
            trivial_graph(on_start=on_start),
            database=database,
            on_run=on_run,
        ):
            fig.check(utcnow() < times[0], f"{rate}/s: runtime started after the first fire")
            try:
                await asyncio.wait_for(done.wait(), timeout=seconds + 10 + n * 0.05)
            except asyncio.TimeoutError:
                fig.check(False, f"{rate}/s: only {len(outcomes)} of {n} fires recorded")
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{path}{suffix}")
    bad = [o for o in outcomes if o != "success"]
    fig.check(not bad, f"{rate}/s: {len(bad)} fires not successful: {sorted(set(map(str, bad)))}")
    return samples


def _stats(samples: list[Sample]) -> dict[str, float]:
    late = [(started - scheduled).total_seconds() * 1e3 for scheduled, started in samples]
    if not late:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "saturated": 1.0}
    scheduled_span = (max(s for s, _ in samples) - min(s for s, _ in samples)).total_seconds()
    started_span = (max(t for _, t in samples) - min(t for _, t in samples)).total_seconds()
    return {
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late),
        "saturated": float(started_span > 1.1 * scheduled_span + 0.05),
    }


async def _rate(
    fig: Figure, rate: float, seconds: float, *, rounds: int, workdir: Path
) -> tuple[dict[str, float], dict[str, float], bool]:
    """Median stats over interleaved rounds: (bare, runtime, runtime saturated)."""
    bare: list[dict[str, float]] = []
    ours: list[dict[str, float]] = []

    async def baseline() -> float:
        bare.append(_stats(await _bare(rate, seconds)))
        return 0.0

    async def measured() -> float:
        path = workdir / f"timing-{rate:g}-{len(ours)}.db"
        ours.append(_stats(await _runtime(fig, rate, seconds, path)))
        return 0.0

    await interleave(rounds, {"bare": baseline, "runtime": measured})
    b = {k: median([s[k] for s in bare]) for k in ("p50", "p99", "max")}
    m = {k: median([s[k] for s in ours]) for k in ("p50", "p99", "max")}
    return b, m, any(s["saturated"] for s in ours)


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("timing", "3. Timing accuracy", DEFINITION)
    first_saturated: float | None = None
    last_ok: float | None = None
    for rate, seconds in RATES["quick" if quick else "full"]:
        b, m, saturated = await _rate(fig, rate, seconds, rounds=1 if quick else 2, workdir=workdir)
        if saturated and first_saturated is None:
            first_saturated = rate
        if not saturated and first_saturated is None:
            last_ok = rate
        state = "saturated" if saturated else "not saturated"
        fig.rows.append(
            Row(
                figure="timing",
                label=f"p99 lateness @ {rate:g}/s ({state})",
                unit="ms",
                baseline=b["p99"],
                baseline_label="bare APScheduler",
                measured=m["p99"],
                goal=f"p99 ≤ {GOAL_MS:g} ms unsaturated",
                met=None if saturated else m["p99"] <= GOAL_MS,
            )
        )
        fig.notes.append(
            f"{rate:g}/s for {seconds:g} s ({int(rate * seconds)} fires): runtime p50 "
            f"{m['p50']:.1f} / p99 {m['p99']:.1f} / max {m['max']:.1f} ms; bare APScheduler "
            f"p50 {b['p50']:.1f} / p99 {b['p99']:.1f} / max {b['max']:.1f} ms ({state})."
        )
    if first_saturated is None:
        fig.notes.append("No offered rate saturated the runtime.")
    else:
        fig.notes.append(
            f"Saturation begins between {last_ok or 0:g} and {first_saturated:g} fires/s "
            "(see figure 2 for the drain rate)."
        )
    return fig
