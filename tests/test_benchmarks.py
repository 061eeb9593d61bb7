"""The benchmark harness's own logic: its correctness checks must be able to fail.

The figures' timings are not tested here (timing belongs to the benchmarks); what is
tested is that a lost or duplicated fire, a missing PostgreSQL server under CI, a store
that does not hold what was written, a round that measured nothing, a figure process
that hangs or dies and a line that could never fail are not passed over in silence.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from benchmarks import __main__, common, overhead, replicas, report, scale, throughput, timing
from benchmarks.__main__ import DEFAULT_OUTPUT, RESULTS, keeps_results
from benchmarks.common import (
    Figure,
    RecordWaiter,
    Row,
    check_burst,
    check_each_once,
    median,
    round_ratios,
    spread,
    utcnow,
)
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from langgraph_scheduler import SchedulerRuntime, Task, TaskRunRecord, _turns
from langgraph_scheduler.store import Finish, Store, retries_table, runs_table

_UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"
"""Nothing listens on port 1: connecting is refused at once."""


def _record(task_id: str, n: int = 0) -> TaskRunRecord:
    at = utcnow()
    return TaskRunRecord(
        run_id=f"{task_id}-run-{n}",
        task_id=task_id,
        attempt=1,
        trigger="schedule",
        scheduled_for=at,
        started_at=at,
        finished_at=at + timedelta(milliseconds=5),
        outcome="success",
    )


def test_each_fire_recorded_once_passes() -> None:
    fig = Figure("f", "f", "")
    check_each_once(fig, "burst", [_record("a"), _record("b")], ["a", "b"])
    assert fig.failed_checks == []


@pytest.mark.parametrize(
    ("records", "said"),
    [
        ([_record("a"), _record("b"), _record("b", 1)], "1 with more than one"),
        ([_record("a"), _record("a")], "1 without a record, 1 with more than one"),
        ([_record("a")], "1 without a record"),
        ([_record("a"), _record("b"), _record("c")], "records of 1 other task(s) ['c']"),
    ],
    ids=["duplicated", "one lost, one twice", "lost", "stray"],
)
def test_a_lost_duplicated_or_stray_fire_fails_the_check(
    records: list[TaskRunRecord], said: str
) -> None:
    """A duplicate that arrives beside a lost fire keeps the count right: the check
    counts per task, not in all."""
    fig = Figure("f", "f", "")
    check_each_once(fig, "burst", records, ["a", "b"])
    assert len(fig.failed_checks) == 1
    assert said in fig.failed_checks[0]


@pytest.mark.parametrize(
    "values", [[math.nan, 1.0, 2.0], [1.0, math.nan, 2.0], [2.0, 1.0, math.nan]]
)
def test_the_median_of_rounds_with_one_that_measured_nothing_is_nan(values: list[float]) -> None:
    """``statistics.median`` sorts, and a NaN among the values sorts anywhere: the
    result depended on which round failed."""
    assert math.isnan(median(values))
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_the_burst_note_survives_a_round_whose_fires_were_lost() -> None:
    """``round(nan)`` raised, and the figure reported a crash beside the lost fires."""
    assert throughput._rates([812.4, math.nan]) == "[812, nan]"


async def test_unreachable_postgres_fails_the_replicas_figure_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Under CI=true (set by `.ci/run`) a figure must not pass with its PostgreSQL lines
    missing; outside CI the skip is a note."""
    monkeypatch.setenv("LANGGRAPH_SCHEDULER_BENCH_POSTGRES_URL", _UNREACHABLE)
    monkeypatch.setenv("CI", "true")
    fig = await replicas.run(quick=True, workdir=tmp_path)
    assert fig.rows == []
    assert len(fig.failed_checks) == 1
    assert "unreachable" in fig.failed_checks[0]
    assert "CI=true requires it" in fig.failed_checks[0]

    monkeypatch.delenv("CI")
    fig = await replicas.run(quick=True, workdir=tmp_path)
    assert fig.failed_checks == []
    assert any("unreachable" in note for note in fig.notes)


async def test_a_store_missing_its_bulk_rows_fails_the_scale_check(tmp_path: Path) -> None:
    """An empty store used to pass: the sample read back nothing, so nothing was wrong."""
    database = f"sqlite:///{tmp_path / 'empty.db'}"
    await scale._schema(database)
    size = scale.Size(tasks=1_000, runs=1_000, soon=10)
    fig = Figure("scale", "scale", "")
    await scale._check_rows(fig, "SQLite small", database, size, utcnow())
    assert len(fig.failed_checks) == 2, fig.failed_checks
    assert "0 tasks in the store, 1000 written" in fig.failed_checks[0]
    assert "not in the store" in fig.failed_checks[1]


def test_a_smoke_run_gives_no_verdict_even_on_a_line_without_a_value() -> None:
    """``--quick`` promises "smoke run, no verdict" on every line: a line that measured
    nothing said FAILED there although the run passed (a lost fire is a failed check,
    listed under the table, and fails the run)."""
    fig = Figure("overhead", "overhead", "")
    fig.rows.append(Row("overhead", "store statements per fire", "", 0.0, math.nan, goal="≤ 3"))
    fig.as_smoke_run()
    lines = report.table([fig]).splitlines()
    assert lines[-1].endswith("smoke run, no verdict (no value)")
    assert "FAILED" not in "\n".join(lines)


def test_only_a_full_run_written_to_benchmarks_md_replaces_the_saved_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--render`` redraws BENCHMARKS.md from the saved results: a full run written
    elsewhere (``--output FILE``) must not replace them with its own numbers."""
    assert RESULTS.parent.parent == DEFAULT_OUTPUT.parent
    assert keeps_results(str(DEFAULT_OUTPUT), quick=False, only=False)
    monkeypatch.chdir(DEFAULT_OUTPUT.parent)
    assert keeps_results("BENCHMARKS.md", quick=False, only=False)
    assert not keeps_results("/tmp/elsewhere.md", quick=False, only=False)
    assert not keeps_results(str(DEFAULT_OUTPUT), quick=True, only=False)
    assert not keeps_results(str(DEFAULT_OUTPUT), quick=False, only=True)


_CHILD_RESULT = (
    "import json, sys, time\n"
    "figure = dict(name='timing', title='timing', definition='', rows=[], notes=[],"
    " failed_checks=[], seconds=0.0)\n"
    f"print({__main__._MARK!r} + json.dumps(figure), flush=True)\n"
)
"""A figure process that prints a clean result at once (without the harness's imports,
which take seconds on a loaded machine)."""


@pytest.mark.parametrize(
    ("after", "said"),
    [("time.sleep(60)\n", "hung: timed out after 3 s"), ("sys.exit(3)\n", "exited with status 3")],
    ids=["hangs", "exits non-zero"],
)
def test_a_figure_process_that_hangs_or_fails_after_its_result_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, after: str, said: str
) -> None:
    """The result line was taken as the whole story: a figure whose process hung (until
    the guard killed it) or died after printing it passed."""
    monkeypatch.setitem(__main__._TIMEOUT, "quick", 3.0)
    monkeypatch.setattr(
        __main__,
        "_command",
        lambda name, quick, workdir: [sys.executable, "-c", _CHILD_RESULT + after],
    )
    fig = __main__._run_figure("timing", quick=True, workdir=tmp_path)
    assert len(fig.failed_checks) == 1, fig.failed_checks
    assert said in fig.failed_checks[0]

    monkeypatch.setattr(
        __main__, "_command", lambda name, quick, workdir: [sys.executable, "-c", _CHILD_RESULT]
    )
    assert __main__._run_figure("timing", quick=True, workdir=tmp_path).failed_checks == []


def test_a_line_without_a_value_is_never_counted_as_met() -> None:
    """A round whose fires were lost has no rate; the ratio of the other rounds met the
    goal, and the summary counted the line as met beside its FAILED verdict."""
    ratios = spread(round_ratios([math.nan, 900.0], [1000.0, 1000.0]))
    assert ratios["ratio"] == pytest.approx(0.9)
    row = Row(
        "throughput",
        "burst",
        "/s",
        1000.0,
        median([math.nan, 900.0]),
        goal="≥ 0.85× direct",
        met=ratios["ratio"] >= 0.85,
        **ratios,
    )
    assert row.met is False
    fig = Figure("throughput", "throughput", "", rows=[row])
    text = report.markdown([fig], command="python -m benchmarks", info={}, seconds=1.0)
    assert "Goals met: 0; short: 0; failed: 1; failed correctness checks: 0." in text
    assert "| FAILED |" in text


def _lines_of_each_verdict() -> Figure:
    """A figure with a line met, one short and one FAILED (a broken baseline)."""
    fig = Figure("overhead", "1. Overhead per turn", "")
    for base, measured in ((1.0, 1.2), (1.0, 1.3), (0.0, 1.2)):
        ratios = fig.ratios("lone", [measured], [base])
        fig.rows.append(
            Row(
                "overhead",
                "lone",
                "ms",
                base,
                measured,
                goal="≤ 1.25×",
                op="<=",
                ratio_limit=1.25,
                **ratios,
            )
        )
    return fig


def test_a_failed_line_is_counted_apart_from_the_short_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line whose baseline was broken reads FAILED, and the summary counted it as
    short, a timing that missed its goal: BENCHMARKS.md and the console say the same."""
    fig = _lines_of_each_verdict()
    assert [_verdict_cells(r)[2] for r in fig.rows] == ["met", "SHORT", "FAILED"]
    said = "Goals met: 1; short: 1; failed: 1; failed correctness checks: 1."
    text = report.markdown([fig], command="python -m benchmarks", info={}, seconds=1.0)
    assert f"\n{said}\n" in text

    child = (
        f"import json\nprint({__main__._MARK!r} + {json.dumps(json.dumps(fig.to_json()))},"
        " flush=True)\n"
    )
    monkeypatch.setattr(
        __main__, "_command", lambda name, quick, workdir: [sys.executable, "-c", child]
    )
    assert __main__.main(["--only", "overhead"]) == 1
    assert f"\n{said}\n" in capsys.readouterr().out

    fig.as_smoke_run()
    assert report.summary([fig]) == (
        "Goals met: 0; short: 0; failed: 0; no verdict (smoke run): 3; failed correctness "
        "checks: 1."
    )


@pytest.mark.parametrize(
    ("goal", "met", "said"),
    [("", True, "has no goal"), ("≤ 2 ms", None, "has no verdict")],
    ids=["no goal", "no verdict"],
)
def test_a_line_without_a_goal_or_a_verdict_is_refused(
    goal: str, met: bool | None, said: str
) -> None:
    """Such a line could never fail: without a goal it printed `met` or nothing, without a
    verdict an empty cell, in a full run as in a smoke run."""
    with pytest.raises(ValueError, match=said):
        Row("timing", "p50 lateness", "ms", 1.0, 1.5, goal=goal, met=met)
    fig = Figure("timing", "timing", "")
    fig.rows.append(Row("timing", "p50 lateness", "ms", 1.0, 1.5, goal="≤ 2 ms", met=True))
    fig.as_smoke_run()
    assert Figure.from_json(fig.to_json()).rows[0].met is None


def test_render_of_results_with_failed_checks_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--render`` said nothing through its exit status about the saved run's failed
    checks: a script re-rendering BENCHMARKS.md took a failed run for a good one."""
    fig = Figure("replicas", "6. Replicas", "")
    fig.failed_checks.append("3 replica(s): 1 duplicate run records")
    saved = {"command": "python -m benchmarks", "info": {}, "seconds": 1.0}
    results = tmp_path / "results.json"
    results.write_text(json.dumps(saved | {"figures": [fig.to_json()]}))
    monkeypatch.setattr(__main__, "RESULTS", results)
    output = tmp_path / "out.md"
    assert __main__.main(["--render", "--output", str(output)]) == 1
    assert "- 3 replica(s): 1 duplicate run records" in output.read_text()

    results.write_text(json.dumps(saved | {"figures": [Figure("replicas", "6", "").to_json()]}))
    assert __main__.main(["--render", "--output", str(output)]) == 0


@pytest.mark.parametrize(
    ("runs", "turns", "said"),
    [
        (61, 60, ["3 replica(s): 61 runs claimed for 60 fires"]),
        (60, 59, ["3 replica(s): the graph started 59 times for 60 fires"]),
        (60, 60, []),
    ],
    ids=["claimed twice", "a turn never run", "each once"],
)
def test_a_fire_claimed_twice_or_never_run_fails_the_replicas_check(
    runs: int, turns: int, said: list[str]
) -> None:
    """Two replicas running one fire, with one record kept, passed: every check read the
    records, none the claims the replicas reported. So did a success recorded without its
    turn (fast, it met the rate goal): the replicas count their graph's node starts."""
    n = 60
    tally = replicas.Tally(finished=n, successes=n, tasks_with_one=n, holders={"a": 30, "b": 30})
    fig = Figure("replicas", "replicas", "")
    totals = {"runs": float(runs), "turns": float(turns)}
    replicas._check_round(fig, "3 replica(s)", tally, totals, n, reported=True)
    assert fig.failed_checks == said


def test_a_start_up_that_holds_no_due_fire_fails_the_scale_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A runtime that loaded nothing into its window started fast and held fewer
    instants than the goal's bound: every start-up line passed."""
    database = f"sqlite:///{tmp_path / 'scale.db'}"
    size = scale.Size(tasks=100, runs=1_000, soon=10)
    scale._build_sqlite(database, size, utcnow())
    result = scale._probe(database, scale._make_soon(database, size, utcnow()), traced=False)
    fig = Figure("scale", "scale", "")
    scale._check_held(fig, "SQLite file small", result)
    assert fig.failed_checks == []
    assert result["pending"] >= result["ahead"] > 0

    async def nothing_due(self: Store, *, until: datetime) -> list[datetime]:
        return []

    monkeypatch.setattr(Store, "due_times", nothing_due)
    result = scale._probe(database, scale._make_soon(database, size, utcnow()), traced=False)
    scale._check_held(fig, "SQLite file small", result)
    assert len(fig.failed_checks) == 1
    assert "held 0 due instants after start-up" in fig.failed_checks[0]


async def test_task_creation_that_stores_nothing_fails_the_scale_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`create_task` was timed and never read back: one that wrote nothing was fast."""
    fig = Figure("scale", "scale", "")
    await scale._creation(fig, tmp_path, quick=True)
    assert fig.failed_checks == []

    async def dropped(self: Store, task: Task, **kwargs: object) -> bool:
        return True

    monkeypatch.setattr(Store, "insert_task", dropped)
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    await scale._creation(fig, tmp_path, quick=True)
    assert len(fig.failed_checks) == 1
    assert "0 of 100 created tasks in the store" in fig.failed_checks[0]


def _copy_first_success(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store keep a second record (the next attempt) of the first fire finished,
    which the ``on_run`` listener never hears of."""
    finish_runs = Store.finish_runs
    copied: list[str] = []

    async def and_a_copy(self: Store, finishes: list[Finish], **kwargs: Any) -> Any:
        out = await finish_runs(self, finishes, **kwargs)
        if not copied:
            copied.append(finishes[0].record.run_id)

            def copy(conn: Connection) -> None:
                query = select(runs_table).where(runs_table.c.run_id == copied[0])
                row = dict(conn.execute(query).mappings().one())
                row |= {"run_id": f"{copied[0]}-again", "attempt": row["attempt"] + 1}
                conn.execute(insert(runs_table).values(**row))

            await self.transaction(copy)
        return out

    monkeypatch.setattr(Store, "finish_runs", and_a_copy)


async def test_a_second_record_in_the_store_fails_the_timing_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The timing figure judged the records its listener saw: a fire the store holds a
    second record of (a retry of a success, never reported to the listener) passed."""
    fig = Figure("timing", "timing", "")
    await timing._runtime(fig, 100.0, timing.MIN_FIRES, tmp_path / "clean.db")
    assert fig.failed_checks == []

    _copy_first_success(monkeypatch)
    await timing._runtime(fig, 100.0, timing.MIN_FIRES, tmp_path / "twice.db")
    assert len(fig.failed_checks) == 1, fig.failed_checks
    assert "records per task {1: 19, 2: 1}" in fig.failed_checks[0]


async def test_a_trimmed_history_passes_the_overhead_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full run makes more `run_now` calls of one task than the runtime's default
    `history_limit` keeps: the upkeep's trim of the oldest records is no lost record
    (the check counted all calls' records, and failed every full run)."""
    finish_runs = Store.finish_runs

    async def and_trim(self: Store, finishes: list[Finish], **kwargs: Any) -> Any:
        out = await finish_runs(self, finishes, **kwargs)
        await self.trim_history([f.record.task_id for f in finishes], keep=10)
        return out

    monkeypatch.setattr(Store, "finish_runs", and_trim)
    fig = Figure("overhead", "overhead", "")
    monkeypatch.setattr(
        overhead, "SchedulerRuntime", functools.partial(SchedulerRuntime, history_limit=10)
    )
    await overhead._backend(fig, "memory", "sqlite://", quick=True)
    assert fig.failed_checks == []


def _counted(fig: Figure) -> dict[str, float]:
    """The measured value of each statement and commit line of figure 1, by label."""
    return {r.label: r.measured for r in fig.rows if " added per fire" in r.label}


async def test_a_checkpoint_read_the_fire_path_adds_is_counted(
    monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    """Figure 1 counted only the store's statements: a fire path that read its turn's
    checkpoint back (``aget_tuple``, on the checkpointer's connection) met its goals. Now
    the checkpointer's statements count too, for the fires and for the direct turns
    alike, so the read shows as what a fire adds."""
    label = "SQLite" if database.startswith("sqlite") else "PostgreSQL"
    fig = Figure("overhead", "overhead", "")
    await overhead._backend(fig, label, database, quick=True)
    assert fig.failed_checks == []
    plain = _counted(fig)
    assert plain[f"statements added per fire ({label})"] >= 2  # a claim and a finish

    run_turn = _turns._run_turn

    async def and_read_back(graph: Any, payload: Any, config: Any, context: Any = None) -> Any:
        ran = await run_turn(graph, payload, config, context)
        await graph.checkpointer.aget_tuple(config)
        return ran

    monkeypatch.setattr(_turns, "_run_turn", and_read_back)
    fig = Figure("overhead", "overhead", "")
    await overhead._backend(fig, label, database, quick=True)
    assert fig.failed_checks == []
    # The read of a thread's last checkpoint: one statement on PostgreSQL; on SQLite a
    # second reads its pending writes. A read commits nothing.
    more = {"SQLite": 2, "PostgreSQL": 1}[label]
    assert {k: v - plain[k] for k, v in _counted(fig).items()} == {
        f"statements added per fire ({label})": more,
        f"commits added per fire ({label})": 0,
        f"statements added per fire, continuing a thread ({label})": more,
        f"commits added per fire, continuing a thread ({label})": 0,
    }


async def test_writes_in_a_pipeline_count_one_commit_at_its_sync(postgres_url: str) -> None:
    """The PostgreSQL checkpointer writes in autocommit, in ``pipeline()`` blocks: the
    server commits a block's writes together at its sync, not each by itself (the count
    gave the turn a commit per statement, and a fire a commit per checkpoint blob)."""
    import psycopg

    tally = overhead._Tally(lambda statement: None)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        overhead._hook_psycopg(conn, tally.sent, tally.commit)
        await conn.execute("CREATE TABLE counted (n int)")
        assert (tally.statements, tally.commits) == (1, 1)  # alone: commits by itself
        tally.reset()
        async with conn.pipeline(), conn.cursor() as cur:
            await cur.executemany("INSERT INTO counted VALUES (%s)", [(1,), (2,)])
            await cur.execute("INSERT INTO counted VALUES (3)")
        assert (tally.statements, tally.commits) == (3, 1)
        tally.reset()
        async with conn.cursor() as cur:  # psycopg sends them in a pipeline of its own
            await cur.executemany("INSERT INTO counted VALUES (%s)", [(4,), (5,)])
            await cur.execute("SELECT count(*) FROM counted")
        assert (tally.statements, tally.commits) == (3, 1)


@pytest.mark.parametrize("only", ["", ","])
def test_a_run_of_no_figure_is_refused(only: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--only ,` ran no figure and passed (a run that checks nothing); `--only ""` ran
    every figure, as if `--only` were not there."""
    with pytest.raises(SystemExit) as exit:
        __main__.main(["--quick", "--only", only])
    assert exit.value.code == 2
    assert "--only names no figure" in capsys.readouterr().err


def _verdict_cells(row: Row) -> tuple[str, str, str]:
    """The measured, ratio and verdict cells of ``row`` in the table."""
    cells = report._cells(row)
    return cells[2], cells[3], cells[5]


@pytest.mark.parametrize(
    ("row", "shown"),
    [
        (
            Row("o", "lone", "ms", 1.0, 1.254, 1.254, "≤ 1.25× direct", op="<=", ratio_limit=1.25),
            ("1.25 ms", "1.254×", "SHORT"),
        ),
        (
            Row("o", "lone", "ms", 1.0, 1.25, 1.2500001, "≤ 1.25×", op="<=", ratio_limit=1.25),
            ("1.25 ms", "1.2501×", "SHORT"),
        ),
        (
            Row("o", "lone", "ms", 1.0, 1.24, 1.2449, "≤ 1.25×", op="<=", ratio_limit=1.25),
            ("1.24 ms", "1.24×", "met"),
        ),
        (
            Row("t", "burst", "/s", 1000.0, 849.6, 0.8496, "≥ 0.85×", op=">=", ratio_limit=0.85),
            ("850 /s", "0.8496×", "SHORT"),
        ),
        (
            Row("t", "p99", "ms", 5.0, 10.04, goal="≤ 10 ms", op="<=", limit=10.0),
            ("10.04 ms", "2.01×", "SHORT"),
        ),
        (
            Row("s", "start-up", "s", 1.0, 1.99999, goal="< 2 s", op="<", limit=2.0),
            ("1.9999 s", "2.00×", "met"),
        ),
        (
            Row("s", "page", "ms", 1.0, 9.996, goal="< 10 ms", op="<", limit=10.0),
            ("9.996 ms", "10.00×", "met"),
        ),
    ],
    ids=["1.254 short", "a hair short", "met", "short of a floor", "p99", "start-up", "page"],
)
def test_a_value_near_its_goal_reads_as_its_verdict(row: Row, shown: tuple[str, str, str]) -> None:
    """1.254× against ≤ 1.25× read "1.25×" beside SHORT, and 1.9999 s against < 2 s read
    "2.00 s" beside met: the judged value gets the digits it needs (the verdict comes from
    the goal's own comparison), and past four it is rounded towards the verdict's side."""
    assert _verdict_cells(row) == shown


def test_a_comparison_without_a_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="compares with '=>'"):
        Row("t", "p99", "ms", 5.0, 1.0, goal="≤ 10 ms", op="=>", limit=10.0)
    with pytest.raises(ValueError, match="give one of"):
        Row("t", "p99", "ms", 5.0, 1.0, goal="≤ 10 ms", op="<=")


@pytest.mark.parametrize("broken", [0.0, math.nan, -5.0], ids=["zero", "nan", "negative"])
@pytest.mark.parametrize(
    ("goal", "op", "limit"), [("≤ 1.25× direct", "<=", 1.25), ("≥ 0.85× direct", ">=", 0.85)]
)
def test_a_broken_baseline_is_a_failed_check_not_a_verdict(
    broken: float, goal: str, op: str, limit: float
) -> None:
    """A baseline of 0 or NaN made a ratio line SHORT, a timing verdict on a broken
    measurement; a negative one made a "≤" line met. Each is a failed check, and the line
    reads FAILED, even where another round's baseline was fine."""
    fig = Figure("throughput", "throughput", "")
    ratios = fig.ratios("burst", [1.0, 1.0], [1.0, broken])
    assert len(fig.failed_checks) == 1, fig.failed_checks
    assert "1 of 2 rounds measured a baseline of" in fig.failed_checks[0]
    assert "the measurement is broken" in fig.failed_checks[0]
    assert ratios["ratio"] == 1.0  # the good round alone: the check is what fails

    fig = Figure("throughput", "throughput", "")
    ratios = fig.ratios("burst", [1.0], [broken])
    row = Row("t", "burst", "/s", broken, 1.0, goal=goal, op=op, ratio_limit=limit, **ratios)
    fig.rows.append(row)
    assert len(fig.failed_checks) == 1
    assert row.met is False
    assert _verdict_cells(row)[2] == "FAILED"
    assert Row("t", "burst", "/s", broken, 1.0, goal=goal, op=op, ratio_limit=limit).met is False


def _retry_after_first_success(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store leave a retry waiting (a year ahead) for the first fire finished, as
    a fire that failed and waits out its backoff would; the listener hears nothing."""
    finish_runs = Store.finish_runs
    done: list[str] = []

    async def and_a_retry(self: Store, finishes: list[Finish], **kwargs: Any) -> Any:
        out = await finish_runs(self, finishes, **kwargs)
        if not done:
            record = finishes[0].record
            done.append(record.run_id)
            retry = {
                "task_id": record.task_id,
                "scheduled_for": record.scheduled_for,
                "attempt": record.attempt + 1,
                "due_at": utcnow() + timedelta(days=365),
            }
            await self.transaction(lambda conn: conn.execute(insert(retries_table), retry))
        return out

    monkeypatch.setattr(Store, "finish_runs", and_a_retry)


async def test_a_retry_left_waiting_fails_the_timing_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every record the figure read back was one success per fire, so a retry still
    waiting at the end (where a lost fire would hide) passed."""
    _retry_after_first_success(monkeypatch)
    fig = Figure("timing", "timing", "")
    await timing._runtime(fig, 100.0, timing.MIN_FIRES, tmp_path / "retry.db")
    assert fig.failed_checks == [
        "100/s: at the end, 0 fire(s) still running, 1 waiting for a retry, 0 task(s) still "
        "active (0 expected)"
    ]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (
            _copy_first_success,
            "memory: 1 records in the store that no run_now call returned, 90 of 90 calls' "
            "(at least 90 kept)",
        ),
        (
            _retry_after_first_success,
            "memory: run_now: at the end, 0 fire(s) still running, 1 waiting for a retry, 1 "
            "task(s) still active (1 expected)",
        ),
    ],
    ids=["a second record", "a retry waiting"],
)
async def test_a_fault_in_the_store_fails_the_overhead_check(
    monkeypatch: pytest.MonkeyPatch, fault: Callable[[pytest.MonkeyPatch], None], said: str
) -> None:
    """The first fire the overhead figure makes is a `run_now` (of a task that stays
    active), whose records were never read back: a second record of it in the store
    passed, and so did a retry of it left waiting."""
    fault(monkeypatch)
    fig = Figure("overhead", "overhead", "")
    await overhead._backend(fig, "memory", "sqlite://", quick=True)
    assert fig.failed_checks == [said]


def test_the_hang_guards_scale_with_a_slow_machine() -> None:
    """Figure 1 gave each fire 5 s and figure 6 its replicas 20 s to start, fixed: a slow
    CI machine failed the smoke run on the wall clock. The fire's guard grows with the
    same run's slowest warm-up `run_now`; the replicas' start has two minutes (a guard
    against a hang: both rounds still fit in the figure process's own limit)."""
    assert overhead.fire_guard(0.001) == overhead.FIRE_GUARD_SECS >= 5
    assert overhead.fire_guard(0.5) == 50.0
    quick = replicas.STARTUP_TIMEOUT["quick"]
    assert 60 <= quick and 2 * (quick + replicas.STALL_SECS) < __main__._TIMEOUT["quick"]


async def test_a_slow_round_is_waited_for_while_its_records_come() -> None:
    """Figure 6 waited 30 s + 0.1 s per fire, fixed, for the records; now it waits while
    they keep coming, and gives up once none came for its stall time."""
    reads = iter(range(100))

    async def rising() -> replicas.Tally:
        return replicas.Tally(finished=next(reads) // 2)

    async def stuck() -> replicas.Tally:
        return replicas.Tally(finished=3)

    got = await replicas.wait_finished(rising, 8, utcnow(), stall=0.3, every=0.02)
    assert got == 8  # 16 reads: longer than the stall time, never stalled
    assert await replicas.wait_finished(stuck, 8, utcnow(), stall=0.1, every=0.02) == 3


async def test_turns_started_before_their_due_time_fail_the_timing_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Lateness is node start minus due time: a runtime that ran its fires a second early
    had a negative p50 and p99, which met their goals, and nothing failed."""

    def later(text: str) -> datetime:
        """Every due time the node reads is a second later than its fire's: the turn
        began a second early."""
        return datetime.fromisoformat(text) + timedelta(seconds=1)

    monkeypatch.setattr(timing, "datetime", SimpleNamespace(fromisoformat=later))
    fig = Figure("timing", "timing", "")
    await timing._runtime(fig, 100.0, timing.MIN_FIRES, tmp_path / "early.db")
    assert fig.failed_checks == ["100/s: 20 turn(s) started over 50 ms before their due time"]


def test_fires_started_before_their_due_time_fail_the_burst_and_replicas_checks() -> None:
    """A burst drained before its instant had a rate of N over almost nothing (figures 2
    and 4), and replicas that ran their fires early likewise (figure 6): the rate goals
    were met by a runtime that ignored the due time."""
    waiter = RecordWaiter()
    late = _record("b")
    early = late.model_copy(update={"started_at": late.scheduled_for - timedelta(seconds=1)})
    for record in (_record("a"), early):
        waiter(record)
    fig = Figure("throughput", "throughput", "")
    check_burst(fig, "memory", waiter, ["a", "b"], True)
    assert fig.failed_checks == ["memory: 1 turn(s) started over 50 ms before their due time"]

    n = 60
    tally = replicas.Tally(finished=n, successes=n, tasks_with_one=n, early=2)
    fig = Figure("replicas", "replicas", "")
    replicas._check_round(fig, "1 replica(s)", tally, {}, n, reported=False)
    assert fig.failed_checks == ["1 replica(s): 2 fire(s) started over 50 ms before their due time"]


async def test_a_success_recorded_without_its_turn_fails_the_overhead_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runtime that recorded `success` without running the graph was fast, and its
    records, each one success, passed every check: the node's starts are counted now.
    Here the graph runs but does not report its starts, as a skipped turn would look."""
    monkeypatch.setattr(overhead, "trivial_graph", lambda **kwargs: common.trivial_graph())
    fig = Figure("overhead", "overhead", "")
    await overhead._backend(fig, "memory", "sqlite://", quick=True)
    assert fig.failed_checks == [
        "memory: of 110 runs, 110 whose graph never started, 0 whose graph started more than once"
    ]


async def test_the_direct_call_at_the_instant_begins_at_each_instant(tmp_path: Path) -> None:
    """Figure 3's note beside the runtime: a direct `ainvoke` per instant, begun on the
    runtime's clock, never before its instant and for every instant (a contender that
    began them all at once, or lost some, would show the graph's start-up wrong)."""
    samples = await timing._at_instant(100.0, timing.MIN_FIRES, tmp_path / "instant.db")
    assert len(samples) == timing.MIN_FIRES
    assert [due for due, _ in samples] == sorted(due for due, _ in samples)
    assert all(started >= due for due, started in samples)
    span = samples[-1][0] - samples[0][0]
    assert span.total_seconds() == pytest.approx((timing.MIN_FIRES - 1) / 100.0, abs=1e-3)
