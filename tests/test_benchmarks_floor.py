"""The floor tool (``python -m benchmarks.floor``): its fire paths (per fire, lock-step,
pipelined) end every fire once, with the runtime's own turn, and tell a fire that did not
succeed."""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks.common import trivial_graph
from benchmarks.floor import _Floor, _spread
from benchmarks.floor import main as floor_main
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from langgraph_scheduler._attribution import AttributionKey
from langgraph_scheduler._turns import GraphTurnRunner
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import open_store


def _runner(graph: Any) -> GraphTurnRunner:
    compiled = graph.compile(checkpointer=InMemorySaver())
    store = open_store("sqlite://")
    return GraphTurnRunner(compiled, store, AttributionKey("floor"), messages_key="messages")


@pytest.mark.parametrize("batch", [1, 4])
async def test_the_floor_ends_each_fire_once_with_the_turns_checkpoint(batch: int) -> None:
    floor = _Floor(_runner(trivial_graph()))
    floor.write_burst(10)
    (spent, rate), ended = await floor.drain(batch, 4 if batch == 1 else 1)
    assert ended == 10
    assert spent > 0 and rate > 0
    assert floor.db.execute("SELECT count(*) FROM lgs_runs").fetchone() == (0,)  # cleared


@pytest.mark.parametrize("ahead", [0, 4])
async def test_the_pipelined_floor_ends_each_fire_once_with_the_turns_checkpoint(
    ahead: int,
) -> None:
    floor = _Floor(_runner(trivial_graph()))
    floor.write_burst(11)  # not a multiple of the slots, nor of the slots and those ahead
    (spent, rate), ended = await floor.pipeline(ahead)
    assert ended == 11
    assert spent > 0 and rate > 0
    assert floor.db.execute("SELECT count(*) FROM lgs_runs").fetchone() == (0,)  # cleared


@pytest.mark.parametrize("pipelined", [False, True])
async def test_the_floor_counts_a_failed_turn_as_not_ended(pipelined: bool) -> None:
    def broken(state: SchedulerState) -> dict[str, Any]:
        raise RuntimeError("no")

    graph = StateGraph(SchedulerState)
    graph.add_node("broken", broken)
    graph.add_edge(START, "broken")
    floor = _Floor(_runner(graph))
    floor.write_burst(3)
    _, ended = await (floor.pipeline(0) if pipelined else floor.drain(1))
    assert ended == 0


async def test_the_floor_with_bare_turns_ends_each_fire_once() -> None:
    floor = _Floor(_runner(trivial_graph()))
    floor.write_burst(6)
    _, ended = await floor.drain(1, bare=True)
    assert ended == 6


@pytest.mark.parametrize("turn_ms", ["-1", "nan", "inf"])
def test_a_turn_of_no_length_is_refused(
    turn_ms: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--turn-ms` is how long the node waits: below 0 (or not a number) it would make
    every line's turn the trivial one's while saying otherwise."""
    monkeypatch.setattr("sys.argv", ["floor", "--turn-ms", turn_ms])
    with pytest.raises(SystemExit) as exited:
        floor_main()
    assert exited.value.code == 2
    assert "--turn-ms must be 0 or more, and finite" in capsys.readouterr().err


def test_the_floor_prints_the_spread_of_its_rounds() -> None:
    """The summary lines give the ratios' least, median and greatest, as figure rows do
    (one owner: ``common.spread``)."""
    assert _spread([1.5, 0.75, 1.0, 2.25]) == "min 0.75, median 1.25, max 2.25 (4 rounds)"
