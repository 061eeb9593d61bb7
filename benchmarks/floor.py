"""The floor of figure 2's burst: what a fire path with next to no Python would drain.

``python -m benchmarks.floor [--fires N] [--rounds R]``: an analysis tool, not a figure
(no goal, no verdict; see ``benchmarks/analysis.md``). It answers one question: can any
fire path that keeps a scheduled turn's attribution and writes a claim and a finish per
fire drain a burst at the 0.85× of direct calls that figure 2 asks?

In one process, on one compiled graph and checkpointer (the runtime's, in memory), 4 at
a time, rounds interleaved, it measures:

- **direct**: ``graph.ainvoke`` of a fresh thread, as figure 2's baseline;
- **runtime**: figure 2's burst (N isolated ``Once`` tasks due at one instant, the
  runtime's default settings), rate = N / (last record − due);
- **floor, per fire**: each of 4 workers reads one due task, claims it (one statement
  through the store's own ``lgs_claim`` view, committed), runs the turn the runtime
  builds for it (``GraphTurnRunner``'s prepared turn: signed source, config, metadata,
  tags, deadline, ``values`` and ``checkpoints`` streams) and finishes it (one statement
  through ``lgs_settle``, committed). Raw ``sqlite3`` on its own in-memory database with
  the store's schema: no SQLAlchemy, no pydantic, no task per fire, no listener;
- **floor, per 4**: one worker claims 4 due fires in one transaction, runs their 4 turns
  together (a task each, gathered) and finishes the 4 in one transaction (lock-step: each
  batch waits for its slowest turn);
- **floor, pipelined** (and **4 ahead**): 4 long-lived workers take claimed fires from a
  queue and run their turns, never waiting for each other; whenever turns end, one pass
  (scheduled once, however many ended) finishes every turn ended by then in one
  transaction (group commit) and claims in one transaction as many due fires as keep 4
  (or 4 + 4 ahead) claimed and unfinished, queued for the workers;
- **floor, bare turns**: the floor per fire with each turn a bare ``ainvoke``, as a
  direct call's (no attribution, deadline or checkpoint id): what the records alone cost;
- **run_now, one by one** against direct calls one after another (figure 1's
  ``run_now`` line, on an isolated task), and **floor, one by one**: one worker of the
  floor, a claim, a turn and a finish after another.

``--turn-ms M`` makes the graph's node wait M ms before it answers (``asyncio.sleep``, no
CPU), for every line alike: a turn that stands for a model's answer instead of the
trivial graph's, to show how much of each ratio is the trivial turn's shortness.

Each line prints CPU per fire and the rate, a floor line also its fires per claim and per
finish transaction; the ratios are against the direct round run just before, and each
floor line at 4 at a time is also set against the floor per fire of the same round.
Every floor fire is checked to end with one finished run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import create_engine, insert

from langgraph_scheduler import Once, SchedulerRuntime
from langgraph_scheduler._attribution import AttributionKey
from langgraph_scheduler._turns import ConversationRequest, GraphTurnRunner, Success
from langgraph_scheduler.store import metadata, open_store, tasks_table
from langgraph_scheduler.store_sqlite import _VIEWS_DDL

from .common import (
    RecordWaiter,
    direct_calls,
    direct_input,
    far_future,
    spread,
    task_rows,
    trivial_graph,
    utcnow,
)

WORKERS = 4

_DUE = (
    "SELECT id, name, next_run_at, version FROM lgs_tasks "
    "WHERE state = 'active' AND next_run_at <= ? ORDER BY next_run_at LIMIT ?"
)
_CLAIM = (
    'INSERT INTO lgs_claim (run_id, task_id, attempt, "trigger", scheduled_for, started_at, '
    "thread_id, holder, lease_expires_at, due_at, task_version, next_run_at, task_state) "
    "VALUES (?, ?, 1, 'schedule', ?, ?, ?, 'floor', ?, ?, ?, NULL, 'completed')"
)
_SETTLE = (
    "INSERT INTO lgs_settle (run_id, task_id, holder, started_at, finished_at, outcome, "
    "summary, error, checkpoint_id, reset) VALUES (?, ?, 'floor', ?, ?, ?, ?, ?, ?, 1)"
)

Rate = tuple[float, float]
"""CPU microseconds per fire, fires per second."""

_Claim = tuple[str, str, str, str, str]
"""A claimed fire: run id, task id, task name, due time and claim time (stored text)."""


def _stored(moment: datetime) -> str:
    """A time as the store keeps it on SQLite (naive UTC text)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ")


class _Floor:
    """The floor fire path on a database of its own with the store's schema and views."""

    def __init__(self, runner: GraphTurnRunner) -> None:
        self.runner = runner
        self.db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        engine = create_engine("sqlite://", creator=lambda: self.db)
        metadata.create_all(engine)
        for ddl in _VIEWS_DDL:
            self.db.execute(ddl)
        self.engine = engine
        self.bursts = 0
        self.transactions = [0, 0]  # claims and finishes committed in the drain under way
        self.per_transaction = (0.0, 0.0)
        """Fires per claim and per finish transaction in the last drain."""

    def write_burst(self, n: int) -> None:
        self.bursts += 1
        rows = task_rows([utcnow()] * n, prefix=f"floor{self.bursts:03d}-")
        with self.engine.begin() as conn:
            conn.execute(insert(tasks_table), rows)

    async def drain(
        self, batch: int, workers: int = WORKERS, *, bare: bool = False
    ) -> tuple[Rate, int]:
        """Drain the due tasks with ``workers`` workers, each claiming ``batch`` at a time
        and running their turns together: CPU per fire and rate, and how many tasks ended
        with one run, in success. ``bare``: each turn a bare ``ainvoke`` of a fresh
        thread, as a direct call, instead of the runtime's turn."""

        async def worker() -> None:
            while rows := self.db.execute(_DUE, (_stored(utcnow()), batch)).fetchall():
                claims = self._claim(rows)
                answers = await asyncio.gather(*(self._turn(*claim, bare=bare) for claim in claims))
                self._settle(list(zip(claims, answers, strict=True)))

        return await self._measured(asyncio.gather(*(worker() for _ in range(workers))))

    async def pipeline(self, ahead: int, slots: int = WORKERS) -> tuple[Rate, int]:
        """Drain the due tasks through ``slots`` long-lived workers fed from a queue, with
        ``ahead`` fires claimed beyond the free slots: CPU per fire and rate, and how many
        tasks ended with one run, in success (see :meth:`drain`).

        A turn's end schedules one pass of the loop (once, however many turns end before
        it runs). The pass finishes every turn ended by then in one transaction (group
        commit: ``sqlite3`` commits synchronously, so the previous one is always done) and
        claims, in one transaction, as many due fires as keep ``slots + ahead`` claimed
        and unfinished. A worker whose turn ends takes the next queued fire at once."""
        queue: asyncio.Queue[_Claim | None] = asyncio.Queue()
        ended: list[tuple[_Claim, tuple[Any, ...]]] = []
        unfinished = 0  # claimed, not yet ended
        loop = asyncio.get_running_loop()
        scheduled = exhausted = False

        def claim() -> None:
            nonlocal unfinished, exhausted
            room = slots + ahead - unfinished
            if room <= 0:
                return
            rows = self.db.execute(_DUE, (_stored(utcnow()), room)).fetchall()
            if not rows:  # nothing due is left: the workers stop once the queue is empty
                exhausted = True
                for _ in range(slots):
                    queue.put_nowait(None)
                return
            unfinished += len(rows)
            for claimed in self._claim(rows):
                queue.put_nowait(claimed)

        def settle_and_claim() -> None:
            nonlocal scheduled
            scheduled = False
            if ended:
                self._settle(ended)
                ended.clear()
            if not exhausted:
                claim()

        async def worker() -> None:
            nonlocal unfinished, scheduled
            while (claimed := await queue.get()) is not None:
                ended.append((claimed, await self._turn(*claimed)))
                unfinished -= 1
                if not scheduled:
                    scheduled = True
                    loop.call_soon(settle_and_claim)

        async def work() -> None:
            claim()
            await asyncio.gather(*(worker() for _ in range(slots)))
            # The pass the last turn scheduled has run by now (it was queued before the
            # workers' ends reached this gather); this one only makes sure of it.
            settle_and_claim()

        return await self._measured(work())

    def _claim(self, rows: list[Any]) -> list[_Claim]:
        """Claim due ``rows`` (read by ``_DUE``) in one transaction."""
        now = _stored(utcnow())
        self.transactions[0] += 1
        claims = [(str(uuid.uuid4()), task_id, name, due, now) for task_id, name, due, _ in rows]
        params = [
            (run_id, task_id, due, now, f"run-{run_id}", now, due, version)
            for (run_id, task_id, _, due, _), (*_, version) in zip(claims, rows, strict=True)
        ]
        self.db.execute("BEGIN")
        self.db.executemany(_CLAIM, params)
        self.db.execute("COMMIT")
        return claims

    def _settle(self, ended: list[tuple[_Claim, tuple[Any, ...]]]) -> None:
        """Finish the ``ended`` claims with their turns' answers in one transaction."""
        self.transactions[1] += 1
        finished = _stored(utcnow())
        self.db.execute("BEGIN")
        self.db.executemany(
            _SETTLE,
            [
                (run_id, task_id, started, finished, *answer)
                for (run_id, task_id, _, _, started), answer in ended
            ],
        )
        self.db.execute("COMMIT")

    async def _measured(self, drained: Awaitable[Any]) -> tuple[Rate, int]:
        """Await a drain: CPU per fire and rate over the runs it wrote, and how many tasks
        ended with one run, in success (and :attr:`per_transaction`); then clear the tasks
        and runs."""
        self.transactions = [0, 0]
        cpu, start = time.process_time(), time.perf_counter()
        await drained
        wall, spent = time.perf_counter() - start, time.process_time() - cpu
        ((done,),) = self.db.execute("SELECT count(*) FROM lgs_runs").fetchall()
        (ended,) = self.db.execute(  # one run per task, ended in success
            "SELECT count(DISTINCT task_id) FROM lgs_runs WHERE outcome = 'success' AND "
            "task_id NOT IN (SELECT task_id FROM lgs_runs GROUP BY task_id HAVING count(*) > 1)"
        ).fetchone()
        self.db.execute("DELETE FROM lgs_runs")
        self.db.execute("DELETE FROM lgs_tasks")
        self.per_transaction = (done / self.transactions[0], done / self.transactions[1])
        return (spent / done * 1e6, done / wall), ended

    async def _turn(
        self, run_id: str, task_id: str, name: str, due: str, _claimed: str, *, bare: bool = False
    ) -> tuple[Any, ...]:
        if bare:
            payload, config = direct_input()
            await self.runner.graph.ainvoke(payload, config)
            return ("success", "", None, None)
        request = ConversationRequest(
            task_id=task_id,
            run_id=run_id,
            thread_id=f"run-{run_id}",
            prompt="go",
            source={
                "task_id": task_id,
                "task_name": name,
                "run_id": run_id,
                "scheduled_for": due,
                "attempt": 1,
                "trigger": "schedule",
            },
            owner="bench",
            fresh_thread=True,
        )
        answer = await self.runner._prepare(request)()
        if isinstance(answer, Success):
            return ("success", answer.text, None, answer.checkpoint_id)
        return ("error", None, repr(answer), None)


async def _main(fires: int, rounds: int, turn_ms: float = 0.0) -> None:
    waiter = RecordWaiter()
    graph_of = trivial_graph(delay_secs=turn_ms / 1000)
    async with SchedulerRuntime(graph_of, database="sqlite://", on_run=waiter) as rt:
        graph = rt.graph
        store = open_store("sqlite://")
        runner = GraphTurnRunner(graph, store, AttributionKey("floor"), messages_key="messages")
        floor = _Floor(runner)
        bursts = iter(range(10_000))

        async def direct(workers: int = WORKERS) -> Rate:
            wall, cpu = await direct_calls(graph, fires, workers)
            return cpu / fires * 1e6, fires / wall

        async def runtime() -> Rate:
            waiter.clear()
            due = utcnow() + timedelta(seconds=3 + fires * 2e-4)
            rows = task_rows([due] * fires, prefix=f"burst{next(bursts):03d}-")
            await rt.store.transaction(lambda conn: conn.execute(insert(tasks_table), rows))
            await asyncio.sleep(max((due - utcnow()).total_seconds() - 0.05, 0))
            cpu = time.process_time()
            if not await waiter.wait_for(fires, timeout=60 + fires * 0.05, stall=15):
                raise SystemExit(f"the runtime recorded {len(waiter.records)} of {fires} fires")
            last = max(committed for _, committed in waiter.records)
            spent = (time.process_time() - cpu) / fires * 1e6
            return spent, fires / (last - due).total_seconds()

        manual = await rt.create_task(
            name="floor-manual", schedule=Once(at=far_future()), trigger="go"
        )

        async def run_now() -> Rate:
            cpu, start = time.process_time(), time.perf_counter()
            for _ in range(fires):
                record = await rt.run_now(manual.id)
                if record.outcome != "success":
                    raise SystemExit(f"run_now recorded {record.outcome}")
            spent = (time.process_time() - cpu) / fires * 1e6
            return spent, fires / (time.perf_counter() - start)

        def floor_of(
            drain: Callable[[], Awaitable[tuple[Rate, int]]],
        ) -> Callable[[], Awaitable[Rate]]:
            async def run() -> Rate:
                floor.write_burst(fires)
                rate, ended = await drain()
                if ended != fires:
                    raise SystemExit(f"the floor ended {ended} of {fires} fires in success")
                return rate

            return run

        # name: (measure, workers of its direct baseline)
        lines: dict[str, tuple[Callable[[], Awaitable[Rate]], int]] = {
            "runtime (figure 2)": (runtime, WORKERS),
            "floor, per fire": (floor_of(lambda: floor.drain(1)), WORKERS),
            "floor, per 4": (floor_of(lambda: floor.drain(WORKERS, 1)), WORKERS),
            "floor, pipelined": (floor_of(lambda: floor.pipeline(0)), WORKERS),
            "floor, 4 ahead": (floor_of(lambda: floor.pipeline(4)), WORKERS),
            "floor, bare turns": (floor_of(lambda: floor.drain(1, bare=True)), WORKERS),
            "run_now, one by one": (run_now, 1),
            "floor, one by one": (floor_of(lambda: floor.drain(1, 1)), 1),
        }
        ratios: dict[str, list[float]] = {name: [] for name in lines}
        rates: dict[str, list[float]] = {name: [] for name in lines}
        await direct()  # warm-up
        for _ in range(rounds):
            for name, (measure, workers) in lines.items():
                base = await direct(workers)
                got = await measure()
                is_floor = name.startswith("floor")
                ratios[name].append(got[1] / base[1])
                rates[name].append(got[1])
                claim, finish = floor.per_transaction
                print(
                    f"{name:20s} {got[0]:6.0f} µs CPU/fire {got[1]:6.0f} /s | direct "
                    f"{base[0]:6.0f} µs {base[1]:6.0f} /s | {got[1] / base[1]:.2f}×"
                    + (f" | {claim:.2f}, {finish:.2f} fires/claim, /finish" * is_floor),
                    flush=True,
                )
        await store.close()
    print()
    for name, values in ratios.items():
        print(f"{name:20s} ratio to direct: {_spread(values)}")
    # The shapes of the floor against each other without the direct rounds' drift: each
    # against the floor per fire drained a few seconds before or after, in the same round.
    for name, (_, workers) in lines.items():
        if name.startswith("floor") and workers == WORKERS and name != "floor, per fire":
            paired = [a / b for a, b in zip(rates[name], rates["floor, per fire"], strict=True)]
            print(f"{name:20s} rate to the floor per fire in the same round: {_spread(paired)}")


def _spread(values: list[float]) -> str:
    """Per-round ratios as min, median and max (:func:`~benchmarks.common.spread`)."""
    got = spread(values)
    return (
        f"min {got['ratio_min']:.2f}, median {got['ratio']:.2f}, max {got['ratio_max']:.2f} "
        f"({len(values)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--fires", type=int, default=3000, help="fires per burst (3000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each line (5)")
    parser.add_argument(
        "--turn-ms",
        type=float,
        default=0.0,
        help="how long the graph's node waits before it answers (asyncio.sleep, no CPU), "
        "standing for a model's answer; 0, the trivial graph of figures 1 and 2, by default",
    )
    args = parser.parse_args()
    if not 0 <= args.turn_ms < math.inf:
        parser.error("--turn-ms must be 0 or more, and finite")
    asyncio.run(_main(args.fires, args.rounds, args.turn_ms))


if __name__ == "__main__":
    main()
