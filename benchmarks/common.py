"""Shared pieces: result rows, the trivial graph, statistics and interleaved rounds."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import operator
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from langgraph_scheduler import Once, Task, TaskRunRecord
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import (
    Store,
    _task_row,
    open_store,
    retries_table,
    runs_table,
    tasks_table,
)

__all__ = [
    "CollectorTime",
    "Figure",
    "RecordWaiter",
    "Row",
    "Spread",
    "TurnStarts",
    "admin_url",
    "check_burst",
    "check_each_once",
    "check_not_early",
    "check_settled",
    "check_turns_ran",
    "direct_calls",
    "direct_input",
    "far_future",
    "interleave",
    "median",
    "model_graph",
    "peak_rss_mib",
    "percentile",
    "postgres_unreachable",
    "reachable_postgres",
    "records_per_task",
    "remove_sqlite",
    "round_ratios",
    "rss_mib",
    "scratch_database",
    "spread",
    "task_rows",
    "trivial_graph",
    "utcnow",
    "write_tasks",
]

EARLY_WAKE = timedelta(milliseconds=50)
"""How far ahead of its instant the runtime may claim a fire its timer woke for (its turn
then waits for the instant)."""
URL_ENV = ("LANGGRAPH_SCHEDULER_BENCH_POSTGRES_URL", "LANGGRAPH_SCHEDULER_TEST_POSTGRES_URL")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Row:
    """One line of the results table: a measured value beside its same-run baseline.

    ``ratio`` is measured / baseline unless a figure says otherwise; where rounds were
    interleaved it is the median of the per-round ratios, with their least and greatest
    in ``ratio_min`` / ``ratio_max`` (None where there are no rounds to compare, e.g. in
    results written before these fields existed). Every row has a ``goal`` that can fail,
    and ``met`` is the verdict on it: None only in a smoke run (``smoke``), whose small
    sizes judge nothing (only its correctness checks can fail); False wherever no value
    was measured (``measured`` NaN), whatever the ratio of the rounds that gave one.

    The goal's comparison, where given (``op`` one of ``OPS``, against ``limit`` for the
    measured value and/or ``ratio_limit`` for the ratio), makes the verdict (every given
    limit must hold; a ``met`` passed too must hold as well) and lets the table show the
    judged values with enough digits to read as the verdict does. A line judged on its
    ratio that has none (no round with a usable baseline) never meets its goal either.

    Raises:
        ValueError: the row has no goal, an ``op`` that is not one of ``OPS`` or without a
            limit, or (outside a smoke run) a measured value but no verdict: a line that
            could never fail.
    """

    figure: str
    label: str
    unit: str
    baseline: float | None
    measured: float
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    baseline_label: str = ""
    smoke: bool = False
    ratio_min: float | None = None
    ratio_max: float | None = None
    op: str = ""
    limit: float | None = None
    ratio_limit: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and usable_baseline(self.baseline):
            assert self.baseline is not None
            self.ratio = self.measured / self.baseline
        if not self.goal:
            raise ValueError(f"the line {self.label!r} of {self.figure!r} has no goal")
        no_limit = self.limit is None and self.ratio_limit is None
        if self.op and (self.op not in OPS or no_limit):
            raise ValueError(
                f"the line {self.label!r} of {self.figure!r} compares with {self.op!r} "
                f"against limits {self.limit}, {self.ratio_limit}: give one of {sorted(OPS)} "
                "and a limit"
            )
        if self.smoke:
            return
        if self.missing():
            self.met = False  # lost fires, a crash, a broken baseline: never meets a goal
        elif self.op:
            meets = all(OPS[self.op](value, limit) for value, limit in self.judged())
            self.met = meets if self.met is None else self.met and meets
        elif self.met is None:
            raise ValueError(f"the line {self.label!r} of {self.figure!r} has no verdict")

    def judged(self) -> list[tuple[float, float]]:
        """(value, limit) of each value the goal compares (none without an ``op``)."""
        pairs = [(self.measured, self.limit), (self.ratio, self.ratio_limit)]
        return [(v, lim) for v, lim in pairs if lim is not None and v is not None]

    def missing(self) -> bool:
        """Whether a value the verdict needs is missing: the measured value, the ratio of
        a line judged on it (no round had a usable baseline), or a limit (one made from a
        baseline that measured nothing)."""
        judged = [self.measured, *(v for pair in self.judged() for v in pair)]
        ratio_lost = self.ratio_limit is not None and self.ratio is None
        return ratio_lost or any(math.isnan(v) for v in judged)


OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
"""The comparisons a goal may make of a value with its limit."""


def usable_baseline(value: float | None) -> bool:
    """Whether a baseline can divide: above 0 and finite. Zero, negative or NaN means the
    baseline's measurement is broken (a ratio of it would say nothing, or flatter)."""
    return value is not None and math.isfinite(value) and value > 0


@dataclass
class Figure:
    """What one figure hands back to the runner (JSON over stdout)."""

    name: str
    title: str
    definition: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, ok: bool, message: str) -> None:
        """Record a correctness invariant (never a timing) that did not hold."""
        if not ok:
            self.failed_checks.append(message)

    def ratios(self, label: str, measured: list[float], baseline: list[float]) -> Spread:
        """The ratio fields of a line judged on its ratio (``**``-pass them to ``Row``):
        measured / baseline per round (:func:`round_ratios`). A round whose baseline is
        not :func:`usable_baseline` is a failed check, not a timing: its measurement is
        broken, and its ratio (none) never counts."""
        broken = [f"{b:g}" for b in baseline if not usable_baseline(b)]
        self.check(
            not broken,
            f"{label}: {len(broken)} of {len(baseline)} rounds measured a baseline of "
            f"{', '.join(broken)} (not above 0): the measurement is broken",
        )
        return spread(round_ratios(measured, baseline))

    async def part(self, label: str, work: Awaitable[object]) -> None:
        """Run one part (a backend); if it raises, record that and go on with the next."""
        try:
            await work
        except Exception as exc:
            self.failed_checks.append(f"{label}: crashed: {type(exc).__name__}: {exc}")

    def as_smoke_run(self) -> None:
        """Withdraw every line's verdict (a ``--quick`` run): only checks can fail."""
        for row in self.rows:
            row.met, row.smoke = None, True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figure:
        rows = [Row(**r) for r in data.pop("rows")]
        return cls(rows=rows, **data)


def trivial_graph(
    *, on_start: Callable[[SchedulerState], None] | None = None, delay_secs: float = 0.0
) -> StateGraph[Any, Any, Any, Any]:
    """One node, no model: answers "ok" at once, so the plugin's own cost is measured.

    Args:
        on_start: called with the state when the node begins (to time turn starts).
        delay_secs: how long the node waits (``asyncio.sleep``) before it answers, to
            stand for a turn that takes time without using the CPU.
    """

    async def answer(state: SchedulerState) -> dict[str, Any]:
        if on_start is not None:
            on_start(state)
        if delay_secs > 0:
            await asyncio.sleep(delay_secs)
        return {"messages": [AIMessage(content="ok")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder


def model_graph(
    model: BaseChatModel, *, on_start: Callable[[SchedulerState], None] | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """One node calling ``model``; ``on_start`` sees the state when the node begins."""

    async def call_model(state: SchedulerState) -> dict[str, Any]:
        if on_start is not None:
            on_start(state)
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")
    return builder


def task_rows(
    times: list[datetime], *, owner: str = "bench", prefix: str = "bench"
) -> list[dict[str, Any]]:
    """Rows for ``lgs_tasks``: one active isolated ``Once`` task per fire time.

    For writing many tasks with SQLAlchemy core before a runtime starts; the rows are
    built by the store's own row mapping, so they are what ``create_task`` would write.
    """
    now = utcnow()
    rows = []
    for i, at in enumerate(times):
        task = Task(
            id=f"{prefix}{i:08d}",
            name=f"{prefix}-{i}",
            owner=owner,
            schedule=Once(at=at, tz="UTC"),
            payload={"prompt": "go"},
            thread_mode="isolated",
            thread_id=None,
            state="active",
            next_run_at=at,
            created_at=now,
            updated_at=now,
        )
        rows.append(_task_row(task))
    return rows


async def write_tasks(database: str, rows: list[dict[str, Any]]) -> None:
    """Create the schema if needed and insert task rows in one transaction."""
    store = open_store(database)
    try:
        await store.setup()
        await store.transaction(lambda conn: conn.execute(insert(tasks_table), rows))
    finally:
        await store.close()


def direct_input(prompt: str = "benchmark") -> tuple[dict[str, Any], RunnableConfig]:
    """The input and config of a direct ``graph.ainvoke`` baseline turn (fresh thread)."""
    return (
        {"messages": [HumanMessage(content=prompt)], "task_source": None},
        {"configurable": {"thread_id": f"direct-{uuid.uuid4().hex}"}},
    )


async def direct_calls(graph: Any, n: int, workers: int) -> tuple[float, float]:
    """``n`` direct ``graph.ainvoke`` calls of fresh threads (:func:`direct_input`), by
    ``workers`` workers at a time: the wall and CPU seconds they took (the baseline of a
    drain rate)."""
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            await graph.ainvoke(*direct_input())

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - start, time.process_time() - cpu


class TurnStarts:
    """An ``on_start`` for :func:`trivial_graph`: how often the node started for each
    fire's run (the ``run_id`` of its ``task_source``; direct calls have none)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()

    def __call__(self, state: SchedulerState) -> None:
        source = state.get("task_source")
        if source:
            self.runs[source["run_id"]] += 1


def check_turns_ran(fig: Figure, label: str, starts: TurnStarts, run_ids: Collection[str]) -> None:
    """Check that the graph's node started once for each of ``run_ids`` (runs recorded
    `success`): a runtime that recorded a success without running the turn would be fast
    and meet every time goal, and the records alone would not tell."""
    never = sum(starts.runs[r] == 0 for r in run_ids)
    twice = sum(starts.runs[r] > 1 for r in run_ids)
    fig.check(
        not (never or twice),
        f"{label}: of {len(run_ids)} runs, {never} whose graph never started, {twice} "
        "whose graph started more than once",
    )


class RecordWaiter:
    """An ``on_run`` listener: keeps records with their commit time and wakes waiters."""

    def __init__(self) -> None:
        self.records: list[tuple[TaskRunRecord, datetime]] = []
        self._changed = asyncio.Event()

    def __call__(self, record: TaskRunRecord) -> None:
        self.records.append((record, utcnow()))
        self._changed.set()

    def clear(self) -> None:
        self.records.clear()

    async def wait_for(self, count: int, *, timeout: float, stall: float = 10.0) -> bool:
        """Wait until ``count`` records arrived; False after ``timeout`` seconds, or once
        no new record came for ``stall`` seconds (lost fires never arrive)."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count:
            left = min(deadline - time.monotonic(), stall)
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True


async def records_per_task(store: Store, prefix: str) -> tuple[Counter[int], Counter[str]]:
    """(tasks by number of run records, records by outcome) for the tasks whose id starts
    with ``prefix``."""
    mine = runs_table.c.task_id.like(f"{prefix}%")
    per_task = select(func.count()).where(mine).group_by(runs_table.c.task_id)
    outcomes = select(runs_table.c.outcome, func.count()).where(mine).group_by(runs_table.c.outcome)

    def read(conn: Connection) -> tuple[Counter[int], Counter[str]]:
        counts = Counter(int(n) for (n,) in conn.execute(per_task))
        return counts, Counter({str(o): int(n) for o, n in conn.execute(outcomes)})

    return await store.transaction(read)


async def check_settled(
    fig: Figure, label: str, store: Store, prefix: str = "", *, active: int = 0
) -> None:
    """Check that the fires of the tasks whose id starts with ``prefix`` all ended: none
    left running (a run row without an outcome), none waiting for a retry (a row of
    ``lgs_retries``) and no task but the ``active`` ones expected still active with a
    fire to come. Call it once the figure's last record came and the runtime is idle: a
    fire that failed and waits for its retry, or one claimed and never finished, hides
    there from the checks of the records, which see only the attempts that ended. The
    figures' ``Once`` tasks each fire once and complete."""
    mine = f"{prefix}%"
    running = select(func.count()).where(
        runs_table.c.task_id.like(mine), runs_table.c.outcome.is_(None)
    )
    retries = select(func.count()).where(retries_table.c.task_id.like(mine))
    still = select(func.count()).where(tasks_table.c.id.like(mine), tasks_table.c.state == "active")

    def read(conn: Connection) -> tuple[int, int, int]:
        counts = [int(conn.scalar(query) or 0) for query in (running, retries, still)]
        return counts[0], counts[1], counts[2]

    left = await store.transaction(read)
    fig.check(
        left == (0, 0, active),
        f"{label}: at the end, {left[0]} fire(s) still running, {left[1]} waiting for a "
        f"retry, {left[2]} task(s) still active ({active} expected)",
    )


def remove_sqlite(path: Path) -> None:
    """Delete a SQLite file with its WAL and shared-memory files, if there."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


def check_each_once(
    fig: Figure, label: str, records: Iterable[TaskRunRecord], task_ids: Collection[str]
) -> None:
    """Check that each of ``task_ids`` (one fire each) has exactly one record among
    ``records`` and no other task has one: a lost fire, a fire run or recorded twice and a
    stray one all fail. Call it once the runtime is idle, so that a duplicate still in
    flight when the last expected record came is counted."""
    wanted = set(task_ids)
    per_task = Counter(r.task_id for r in records)
    lost = sum(per_task[t] == 0 for t in wanted)
    twice = sum(n > 1 for t, n in per_task.items() if t in wanted)
    strays = sorted(t for t in per_task if t not in wanted)
    fig.check(
        not (lost or twice or strays),
        f"{label}: {len(wanted)} fires: {lost} without a record, {twice} with more than "
        f"one, records of {len(strays)} other task(s) {strays[:3]}",
    )


def check_not_early(
    fig: Figure, label: str, starts: Iterable[tuple[datetime | None, datetime]]
) -> None:
    """Check that no turn began more than ``EARLY_WAKE`` before its due time, given
    (scheduled, started) pairs (a scheduled None is no fire's): a runtime that ran fires
    early would earn every lateness and rate goal."""
    early = [s for s, t in starts if s is not None and t < s - EARLY_WAKE]
    fig.check(
        not early,
        f"{label}: {len(early)} turn(s) started over "
        f"{EARLY_WAKE.total_seconds() * 1e3:.0f} ms before their due time",
    )


def check_burst(
    fig: Figure, label: str, waiter: RecordWaiter, task_ids: Collection[str], ok: bool
) -> datetime | None:
    """Check that every fire of a burst (one per task of ``task_ids``) succeeded, each
    recorded once (call it once the runtime is idle); the last commit time, or None."""
    n = len(task_ids)
    fig.check(ok, f"{label}: {len(waiter.records)} of {n} fires recorded in time")
    outcomes = Counter(r.outcome for r, _ in waiter.records)
    fig.check(outcomes == {"success": n}, f"{label}: outcomes {dict(outcomes)}")
    check_each_once(fig, label, (r for r, _ in waiter.records), task_ids)
    check_not_early(fig, label, ((r.scheduled_for, r.started_at) for r, _ in waiter.records))
    errors = Counter(r.error for r, _ in waiter.records if r.outcome == "error")
    for error, count in errors.most_common(2):
        fig.notes.append(f"{label}: {count} fire(s) ended in error: {error}")
    if not ok:
        return None
    return max(committed for _, committed in waiter.records)


async def interleave(
    rounds: int, contenders: Mapping[str, Callable[[], Awaitable[float]]]
) -> dict[str, list[float]]:
    """Run one round of each contender in turn, rotating who goes first, ``rounds`` times.

    Alternating keeps drift from other load on the machine out of the ratios; each
    contender's list holds one value per round (take the median).
    """
    names = list(contenders)
    values: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            values[name].append(await contenders[name]())
    return values


def median(values: list[float]) -> float:
    """The median; NaN when there are no values or one of them is NaN (a round that
    measured nothing), since sorting with a NaN among the values gives any order."""
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return float(statistics.median(values))


def round_ratios(measured: list[float], baseline: list[float]) -> list[float]:
    """measured / baseline of each interleaved round (a round without a value, or whose
    baseline is not :func:`usable_baseline`, is NaN)."""
    return [
        m / b if usable_baseline(b) and not math.isnan(m) else math.nan
        for m, b in zip(measured, baseline, strict=True)
    ]


class Spread(TypedDict):
    """The ratio fields of a ``Row`` (pass as ``**spread(...)``)."""

    ratio: float
    ratio_min: float
    ratio_max: float


def spread(ratios: list[float]) -> Spread:
    """``Row`` fields for per-round ratios: their median as ``ratio``, and the least
    and greatest; all NaN when no round gave a value (it never counts as met)."""
    good = [r for r in ratios if not math.isnan(r)]
    if not good:
        return Spread(ratio=math.nan, ratio_min=math.nan, ratio_max=math.nan)
    return Spread(ratio=median(good), ratio_min=min(good), ratio_max=max(good))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100), nearest-rank on sorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


class CollectorTime:
    """The garbage collector's passes while this is entered (``gc.callbacks``): wall
    seconds spent in them and how many were full (generation 2). The collector's share
    of a figure is machine- and heap-dependent, so it is reported in notes, not judged."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._began = 0.0

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._began
        self.full += info["generation"] == 2

    def __enter__(self) -> CollectorTime:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._observe)


def rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux /proc)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (VmHWM), in MiB."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


def admin_url() -> str:
    """The PostgreSQL URL to create scratch databases from: ``URL_ENV`` in order, else
    ``DEFAULT_URL``."""
    for name in URL_ENV:
        if os.environ.get(name):
            return os.environ[name].replace("postgresql+psycopg://", "postgresql://")
    return DEFAULT_URL


def postgres_unreachable(admin: str) -> str | None:
    """Why the server at ``admin`` cannot be used, or None when it answers."""
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def reachable_postgres(fig: Figure, part: str) -> str | None:
    """The admin URL of the PostgreSQL server (``admin_url``) if it answers. Otherwise
    None, and ``part`` is skipped: with a note, or, under ``CI=true`` (where PostgreSQL
    is required, as for the tests), with a failed check, so that a CI run cannot pass
    with the PostgreSQL lines missing."""
    admin = admin_url()
    why = postgres_unreachable(admin)
    if why is None:
        return admin
    message = f"{part} skipped: PostgreSQL at {admin} is unreachable ({why})"
    if os.environ.get("CI") == "true":
        fig.check(False, f"{message}; CI=true requires it")
    else:
        fig.notes.append(f"{message}.")
    return None


@contextlib.contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    """A fresh database on the ``admin`` server, dropped afterwards."""
    import psycopg

    name = f"lgs_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def far_future() -> datetime:
    """A fire time that never comes during a benchmark."""
    return utcnow() + timedelta(days=365)
