"""Figure 3: lateness of fires (due time → the graph's node starts) at offered rates, beside
a bare APScheduler no-op job, and the saturation point against the direct drain rate."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from langgraph_scheduler import SchedulerRuntime, TaskRunRecord
from langgraph_scheduler._clock import SystemClock
from langgraph_scheduler.state import SchedulerState

from .common import (
    Figure,
    Row,
    check_each_once,
    check_not_early,
    check_settled,
    direct_calls,
    direct_input,
    interleave,
    median,
    percentile,
    records_per_task,
    remove_sqlite,
    round_ratios,
    spread,
    task_rows,
    trivial_graph,
    utcnow,
    write_tasks,
)

P50_GOAL_MS = 2.0
P99_GOAL_MS = 10.0
SATURATION_GOAL = 0.9
WORKERS = 4
"""``max_concurrency``'s default: the runtime's turn slots and the drain baseline's workers."""
ROW_RATES = (10.0, 100.0)
"""Rates with p50 and p99 lines (each checked to be below the direct drain rate)."""
LADDER = (10.0, 30.0, 100.0, 300.0, 1000.0)
"""Offered rates tried for the saturation point, with 0.9× the drain rate added."""
MIN_FIRES = 20
"""No p99 from fewer fires."""
LEAD = timedelta(seconds=0.5)
MODES = {
    # rounds, seconds of fires per rate (at most), drain turns per round, ladder
    "quick": (1, 0.3, 100, (10.0, 100.0)),
    "full": (2, 5.0, 500, LADDER),
}
DEFINITION = (
    "Fires spread evenly at the offered rate (one isolated `Once` task per fire). "
    "Lateness = the moment the work starts minus the task's scheduled time, on the wall "
    "clock: for the runtime, when the graph's node begins (after the due-time timer's "
    "wake-up, the claim, which may come shortly before the instant with the turn then "
    "waiting for it, and a free turn slot); for the baseline, when a bare "
    "`AsyncIOScheduler` (memory job store, `DateTrigger`, no misfire grace) enters a no-op "
    "coroutine job. Beside them, not judged: a direct `ainvoke` of the same graph on a "
    "SQLite file, started at each instant on the runtime's clock (its precise wait), a "
    "task each, fresh thread; its lateness (to the node's start) is the graph's own "
    "start-up, which every turn begun at the instant pays. Checked: no node starts over "
    "50 ms before its due time (a runtime "
    "that ran fires early would meet every lateness goal). Runtime on a SQLite file (the "
    "default database) with default settings "
    f"(`max_concurrency={WORKERS}`; fires beyond the free slots wait in the table) and the "
    "trivial one-node graph; tasks are written to a fresh store before the runtime starts, "
    "so it finds their due times when it loads its window. Each rate offers 5 s of fires, "
    "cut to 1,000 fires (but not below 2 s) at high rates, and never fewer than "
    f"{MIN_FIRES} fires (a smoke run offers 0.3 s, which the floor makes {MIN_FIRES} fires "
    "at 10/s and 30 at 100/s). "
    f"p50 and p99 lines at {' and '.join(f'{r:g}' for r in ROW_RATES)} fires/s, whose "
    f"goals are p50 ≤ {P50_GOAL_MS:g} ms and p99 ≤ {P99_GOAL_MS:g} ms; the graph is faster "
    "than these rates (the direct drain rate below is checked to exceed them, else a note "
    "says so). Two rounds per rate (a smoke run: one), interleaved with the bare baseline "
    "on the lines' rates; p50/p99 are medians over rounds, "
    "the ratio min–median–max of the per-round ratios to the bare baseline. Saturation "
    "point: the offered rates 10, 30, 100, 300 and 1000/s, with 0.9× the direct drain rate "
    f"added, tried upwards; it is the highest rate whose p99 (median over rounds) is ≤ "
    f"{P99_GOAL_MS:g} ms with every lower rate also within it (0 if the lowest misses); "
    "the climb stops at the first rate that misses (the p50/p99 rates run anyway). A smoke "
    "run tries 10 and 100/s and 0.9× the drain rate. Direct drain rate: a fresh runtime on a "
    f"fresh SQLite file, its compiled graph called with `ainvoke` by {WORKERS} workers "
    "(the runtime's default `max_concurrency`), fresh thread per call, 500 turns (a smoke "
    "run: 100) after 10 of warm-up, turns / elapsed; "
    "one round before every runtime round, plus one first (to place the 0.9× rate). "
    "Goal: saturation point ≥ "
    f"{SATURATION_GOAL:g}× the drain rate (min–median–max against each drain round)."
)

Sample = tuple[datetime, datetime]
"""(scheduled, started) of one fire."""


def _count(rate: float, seconds: float) -> int:
    """Fires offered at ``rate``: ``seconds`` of them, cut to 1,000 fires (but not below
    2 s) at high rates; never fewer than ``MIN_FIRES``."""
    return max(math.ceil(rate * min(seconds, max(2.0, 1000 / rate))), MIN_FIRES)


def _times(rate: float, n: int, first: datetime) -> list[datetime]:
    return [first + timedelta(seconds=i / rate) for i in range(n)]


async def _bare(rate: float, n: int) -> list[Sample]:
    samples: list[Sample] = []
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
        for at in _times(rate, n, utcnow() + LEAD + timedelta(seconds=n * 5e-5)):
            scheduler.add_job(noop, DateTrigger(run_date=at), args=[at])
        await asyncio.wait_for(done.wait(), timeout=n / rate + 30)
    finally:
        scheduler.shutdown(wait=False)
    return samples


async def _runtime(fig: Figure, rate: float, n: int, path: Path) -> list[Sample]:
    samples: list[Sample] = []
    records: list[TaskRunRecord] = []
    done = asyncio.Event()

    def on_start(state: SchedulerState) -> None:
        source = state.get("task_source")
        if source:
            samples.append((datetime.fromisoformat(source["scheduled_for"]), utcnow()))

    def on_run(record: TaskRunRecord) -> None:
        records.append(record)
        if len(records) >= n:
            done.set()

    database = f"sqlite:///{path}"
    # Written before the runtime starts, which builds their jobs: the cost of creating
    # them through the API stays out of the way of the fires.
    lead = LEAD + timedelta(seconds=0.5 + n * 5e-4)
    times = _times(rate, n, utcnow() + lead)
    rows = task_rows(times, prefix="timing")
    await write_tasks(database, rows)
    try:
        async with SchedulerRuntime(
            trivial_graph(on_start=on_start),
            database=database,
            on_run=on_run,
        ) as rt:
            if utcnow() >= times[0]:  # a slow start: the first fires are late, not wrong
                fig.notes.append(f"{rate:g}/s: the runtime started after the first fire")
            try:
                await asyncio.wait_for(done.wait(), timeout=n / rate + 10 + n * 0.05)
            except asyncio.TimeoutError:
                fig.check(False, f"{rate:g}/s: only {len(records)} of {n} fires recorded")
            else:
                await rt.wait_idle()  # a fire run twice may still be in flight
                check_each_once(fig, f"{rate:g}/s", records, [row["id"] for row in rows])
                # The store too: a second record the listener never reported is a fault.
                per_task, outcomes = await records_per_task(rt.store, "timing")
                fig.check(
                    per_task == Counter({1: n}) and outcomes == Counter({"success": n}),
                    f"{rate:g}/s: in the store, records per task "
                    f"{dict(sorted(per_task.items()))} and outcomes {dict(outcomes)} "
                    f"(expected {n} tasks with 1 success)",
                )
                await check_settled(fig, f"{rate:g}/s", rt.store, "timing")
                # Each fire's node saw its task_source once: else the lines lose samples.
                fig.check(len(samples) == n, f"{rate:g}/s: {len(samples)} node starts, {n} fires")
                check_not_early(fig, f"{rate:g}/s", samples)
    finally:
        remove_sqlite(path)
    bad = [r.outcome for r in records if r.outcome != "success"]
    fig.check(not bad, f"{rate:g}/s: {len(bad)} fires not successful: {sorted(set(map(str, bad)))}")
    return samples


async def _at_instant(rate: float, n: int, path: Path) -> list[Sample]:
    """A direct ``ainvoke`` of a fresh thread started at each instant on the runtime's
    clock (its precise wait, as a claimed-ahead fire's turn waits), each a task of its
    own: how late the graph's node begins when nothing but the graph runs after the
    instant. Not judged: it tells the graph's own start-up (the checkpointer's read, the
    first checkpoint, LangGraph's set-up) apart from the runtime's share of a fire's
    lateness."""
    samples: list[Sample] = []
    due: dict[str, datetime] = {}

    def on_start(state: SchedulerState) -> None:
        at = due.get(str(state["messages"][0].content))
        if at is not None:
            samples.append((at, utcnow()))

    clock = SystemClock()
    async with _warm_graph(path, on_start=on_start) as graph:
        turns = []
        for i, at in enumerate(_times(rate, n, utcnow() + LEAD)):
            due[f"at-{i}"] = at
            await clock.sleep((at - utcnow()).total_seconds())
            turns.append(asyncio.create_task(graph.ainvoke(*direct_input(f"at-{i}"))))
        await asyncio.gather(*turns)
    return samples


async def _drain(turns: int, path: Path) -> float:
    """Turns per second of direct ``ainvoke`` calls by ``WORKERS`` workers, on a fresh
    runtime's graph and SQLite file."""
    async with _warm_graph(path) as graph:
        wall, _ = await direct_calls(graph, turns, WORKERS)
    return turns / wall


@contextlib.asynccontextmanager
async def _warm_graph(
    path: Path, *, on_start: Callable[[SchedulerState], None] | None = None
) -> AsyncIterator[Any]:
    """The compiled trivial graph of a fresh runtime on a fresh SQLite file at ``path``,
    after 10 direct calls of warm-up (first checkpoint, SQLite pages): what the direct
    baselines call. The file is removed after."""
    try:
        async with SchedulerRuntime(
            trivial_graph(on_start=on_start), database=f"sqlite:///{path}"
        ) as rt:
            for _ in range(10):
                await rt.graph.ainvoke(*direct_input())
            yield rt.graph
    finally:
        remove_sqlite(path)


def _stats(samples: list[Sample]) -> dict[str, float]:
    late = [(started - scheduled).total_seconds() * 1e3 for scheduled, started in samples]
    if not late:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "spread": math.nan}
    scheduled_span = (max(s for s, _ in samples) - min(s for s, _ in samples)).total_seconds()
    started_span = (max(t for _, t in samples) - min(t for _, t in samples)).total_seconds()
    return {
        "p50": percentile(late, 50),
        "p99": percentile(late, 99),
        "max": max(late),
        "spread": started_span / scheduled_span if scheduled_span else math.nan,
    }


class _Ladder:
    """The rounds of one run of the figure: lateness per rate, drain rates."""

    def __init__(self, fig: Figure, workdir: Path, *, quick: bool) -> None:
        self.fig = fig
        self.workdir = workdir
        self.rounds, self.seconds, self.turns, self.rates = MODES["quick" if quick else "full"]
        self.drains: list[float] = []
        self.runs = 0

    async def drain(self) -> float:
        self.runs += 1
        rate = await _drain(self.turns, self.workdir / f"drain-{self.runs}.db")
        self.drains.append(rate)
        return rate

    async def rate(self, rate: float) -> dict[str, list[dict[str, float]]]:
        """Interleaved rounds at ``rate``: the runtime, a drain round before each, and
        the bare baseline on the lines' rates."""
        n = _count(rate, self.seconds)
        out: dict[str, list[dict[str, float]]] = {"runtime": [], "bare": [], "instant": []}

        async def runtime() -> float:
            await self.drain()
            self.runs += 1
            path = self.workdir / f"timing-{rate:g}-{self.runs}.db"
            out["runtime"].append(_stats(await _runtime(self.fig, rate, n, path)))
            return 0.0

        async def bare() -> float:
            out["bare"].append(_stats(await _bare(rate, n)))
            return 0.0

        async def instant() -> float:
            self.runs += 1
            path = self.workdir / f"instant-{rate:g}-{self.runs}.db"
            out["instant"].append(_stats(await _at_instant(rate, n, path)))
            return 0.0

        contenders = {"runtime": runtime}
        if rate in ROW_RATES:
            contenders |= {"bare": bare, "instant": instant}
        await interleave(self.rounds, contenders)
        return out


def _med(stats: list[dict[str, float]], key: str) -> float:
    return median([s[key] for s in stats])


def _rows(fig: Figure, rate: float, runs: dict[str, list[dict[str, float]]]) -> None:
    ours, bare = runs["runtime"], runs["bare"]
    for key, goal in (("p50", P50_GOAL_MS), ("p99", P99_GOAL_MS)):
        measured = _med(ours, key)
        fig.rows.append(
            Row(
                figure="timing",
                label=f"{key} lateness @ {rate:g}/s",
                unit="ms",
                baseline=_med(bare, key),
                baseline_label="bare APScheduler",
                measured=measured,
                goal=f"≤ {goal:g} ms",
                op="<=",
                limit=goal,
                **spread(round_ratios([s[key] for s in ours], [s[key] for s in bare])),
            )
        )


async def run(*, quick: bool, workdir: Path) -> Figure:
    fig = Figure("timing", "3. Timing accuracy", DEFINITION)
    ladder = _Ladder(fig, workdir, quick=quick)
    first = await ladder.drain()
    # 0.9× the drain rate is tried unless a rate of the ladder is within 5% of it.
    target = float(max(round(SATURATION_GOAL * first), 1))
    rates = sorted(set(ladder.rates))
    if min(abs(r / target - 1) for r in rates) > 0.05:
        rates = sorted([*rates, target])
    saturation = 0.0
    climbing = True
    for rate in rates:
        if not climbing and rate not in ROW_RATES:
            continue
        runs = await ladder.rate(rate)
        ours = runs["runtime"]
        p99 = _med(ours, "p99")
        if rate in ROW_RATES:
            _rows(fig, rate, runs)
        within = p99 <= P99_GOAL_MS
        if climbing and within:
            saturation = rate
        elif climbing:
            climbing = False
        fig.notes.append(
            f"{rate:g}/s ({_count(rate, ladder.seconds)} fires per round, {len(ours)} "
            f"round(s)): runtime p50 {_med(ours, 'p50'):.1f} / p99 {p99:.1f} / max "
            f"{_med(ours, 'max'):.1f} ms, starts spread over {_med(ours, 'spread'):.2f}× the "
            "scheduled span"
            + (
                f"; bare APScheduler p50 {_med(runs['bare'], 'p50'):.1f} / p99 "
                f"{_med(runs['bare'], 'p99'):.1f} / max {_med(runs['bare'], 'max'):.1f} ms"
                if runs["bare"]
                else ""
            )
            + (
                f"; a direct ainvoke started at each instant p50 {_med(runs['instant'], 'p50'):.1f}"
                f" / p99 {_med(runs['instant'], 'p99'):.1f} / max "
                f"{_med(runs['instant'], 'max'):.1f} ms (not judged: the graph's own start-up)"
                if runs["instant"]
                else ""
            )
            + ("." if within else f" (p99 over {P99_GOAL_MS:g} ms).")
        )
    drain = median(ladder.drains)
    for rate in ROW_RATES:
        if min(ladder.drains) <= rate:
            fig.notes.append(
                f"The direct drain rate ({min(ladder.drains):.0f}/s at its lowest) was not "
                f"above {rate:g}/s: at that rate the graph itself is not faster than the fires."
            )
    ratios = fig.ratios("saturation point", [saturation] * len(ladder.drains), ladder.drains)
    fig.rows.append(
        Row(
            figure="timing",
            label=f"saturation point (highest rate with p99 ≤ {P99_GOAL_MS:g} ms)",
            unit="/s",
            baseline=drain,
            baseline_label=f"direct drain ×{WORKERS}",
            measured=saturation,
            goal=f"≥ {SATURATION_GOAL:g}× direct drain",
            op=">=",
            ratio_limit=SATURATION_GOAL,
            **ratios,
        )
    )
    fig.notes.append(
        f"Rates tried: {', '.join(f'{r:g}' for r in rates)}/s (0.9× the first drain round: "
        f"{target:g}/s); direct drain rounds {[round(d) for d in ladder.drains]}/s."
    )
    return fig
