"""Execute ``examples/quickstart.ipynb`` with nbclient, so the notebook cannot rot."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the dev extra")
nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the dev extra")
pytest.importorskip("ipykernel", reason="the notebook test needs the dev extra")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _html_outputs(cells: list[Any]) -> list[str]:
    found = []
    for cell in cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html:
                found.append("".join(html) if isinstance(html, list) else html)
    return found


def _errors(cells: list[Any]) -> list[Any]:
    return [
        output
        for cell in cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def _check_pass(cells: list[Any]) -> None:
    """What one top-to-bottom pass shows: the request, the two fires, the completed task."""
    assert not _errors(cells), _errors(cells)
    html = _html_outputs(cells)
    transcripts = [h for h in html if 'class="lgs-transcript"' in h]
    assert len(transcripts) == 2
    assert "schedule_task" in transcripts[0] and 'data-lgs-turn="task"' not in transcripts[0]
    assert transcripts[1].count('data-lgs-turn="task"') == 2
    assert transcripts[1].count("⏰ Time to drink water!") == 2
    assert "⏰ <bdi>Drink water</bdi> · scheduled" in transcripts[1]
    assert any('class="lgs-runs"' in h and h.count(">success</span>") == 2 for h in html)
    assert any('class="lgs-tasks"' in h and "completed" in h for h in html)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run All; ask again (the request cell and those after it: they watch the new task);
    then Run All again in the same kernel without the last cell's stop (as a user does who
    re-runs the notebook, or its first cell, while the runtime runs): the second pass shows
    the same and the first runtime is stopped, not left firing its turns through the new
    one."""
    source = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    # The kernel is this interpreter ("python" in the kernelspec is replaced by
    # sys.executable) and must import the package from the checkout.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "plugin"), os.environ.get("PYTHONPATH", "")])
    )
    # The notebook keeps its database in a new temporary folder: one under tmp_path.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = [i for i, cell in enumerate(source.cells) if cell.cell_type == "code"]
    assert "runtime.stop()" in source.cells[code[-1]].source
    ask, listing, watch = code[1:4]
    assert "ainvoke" in source.cells[ask].source and "finished_runs" in source.cells[watch].source
    # Cells of the test's own after the notebook's: is the watched task the newest, with its
    # two runs; keep the first runtime, then look at it.
    source.cells.append(
        nbformat.v4.new_code_cell(
            "newest = (await runtime.list_tasks())[-1]\n"
            "(task.id == newest.id, len(history), {r.task_id for r in history} == {task.id})"
        )
    )
    source.cells.append(nbformat.v4.new_code_cell("first_runtime = runtime"))
    source.cells.append(
        nbformat.v4.new_code_cell(
            "(first_runtime is runtime, first_runtime.running, str(folder.parent))"
        )
    )
    follows, keep, look = len(source.cells) - 3, len(source.cells) - 2, len(source.cells) - 1
    client = nbclient.NotebookClient(
        source,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )

    def run(index: int, cell: Any) -> Any:
        cell.outputs = []
        client.execute_cell(cell, index)
        return cell

    with client.setup_kernel():
        first = [run(i, source.cells[i]) for i in code[:-1]]
        _check_pass(first)
        # Ask again in the same thread: the cells that follow watch the new task.
        again = [run(i, source.cells[i]) for i in (ask, listing, watch, follows)]
        assert not _errors(again), _errors(again)
        assert again[-1].outputs[0]["data"]["text/plain"] == "(True, 2, True)"
        run(keep, source.cells[keep])
        second = [run(i, source.cells[i]) for i in code]
        _check_pass(second)
        check = run(look, source.cells[look])
        assert not _errors([check]), _errors([check])
        # IPython breaks a long repr over lines (a worker's tmp_path is long): read it back.
        shown = ast.literal_eval(check.outputs[0]["data"]["text/plain"])
        assert shown == (False, False, str(tmp_path))
