"""Execute ``examples/quickstart.ipynb`` with nbclient, so the notebook cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the dev extra")
nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the dev extra")
pytest.importorskip("ipykernel", reason="the notebook test needs the dev extra")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _html_outputs(notebook: object) -> list[str]:
    found = []
    for cell in notebook.cells:  # type: ignore[attr-defined]
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html:
                found.append("".join(html) if isinstance(html, list) else html)
    return found


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    # The kernel is this interpreter ("python" in the kernelspec is replaced by
    # sys.executable) and must import the package from the checkout.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "plugin"), os.environ.get("PYTHONPATH", "")])
    )
    client = nbclient.NotebookClient(
        source,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    executed = client.execute()

    errors = [
        output
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, errors
    html = _html_outputs(executed)
    transcripts = [h for h in html if 'class="lgs-transcript"' in h]
    assert len(transcripts) == 2
    assert "schedule_task" in transcripts[0] and 'data-lgs-turn="task"' not in transcripts[0]
    assert transcripts[1].count('data-lgs-turn="task"') == 2
    assert "⏰ Drink water · scheduled" in transcripts[1]
    assert any('class="lgs-runs"' in h and h.count(">success</span>") == 2 for h in html)
    assert any('class="lgs-tasks"' in h and "completed" in h for h in html)
