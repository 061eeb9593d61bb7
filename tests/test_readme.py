"""The README's examples work: every Python block runs, every CLI line parses.

A Python block whose first line is ``# requires: a real chat model`` is skipped: it needs a
provider and an API key.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from langgraph_scheduler.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REAL_MODEL = "# requires: a real chat model"
_BLOCK = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(lang: str) -> list[Any]:
    found = []
    for match in _BLOCK.finditer(README):
        if match.group("lang") == lang:
            line = README.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group("body"), id=f"line{line}"))
    return found


PYTHON_BLOCKS = _blocks("python")


def test_the_readme_has_runnable_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 5
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    assert "pip install -e . && langgraph-scheduler demo\n" in quickstart  # the core only
    assert 'pip install -e ".[dev]" && pytest\n' in quickstart


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_python_block_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if code.startswith(REAL_MODEL):
        compile(code, "README.md", "exec", dont_inherit=True)  # it is Python, at least
        pytest.skip("needs a real chat model")
    monkeypatch.chdir(tmp_path)  # databases the examples create land here
    # An example that keeps a database file works when run again (a user tries it twice).
    for _run in range(2 if "sqlite:///" in code else 1):
        # Run as a module of its own: without the `from __future__` imports of this file.
        exec(compile(code, "README.md", "exec", dont_inherit=True), {"__name__": "__readme__"})
        printed = capsys.readouterr().out
        # `print(...)  # what it prints` comments are checked; "…" or "..." stands for anything.
        for expected in re.findall(r"^\s*print\(.*\)\s+#\s*(.+)$", code, re.MULTILINE):
            for piece in re.split(r"…|\.\.\.", expected):
                assert piece.strip() in printed, (piece, printed)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(line, id=line.split("#")[0].strip()[:60])
        for block in _blocks("bash")
        for line in block.values[0].splitlines()
        if line.startswith("langgraph-scheduler ")
    ],
)
def test_cli_line_parses(line: str) -> None:
    args = shlex.split(line, comments=True)[1:]
    namespace = _parser().parse_args(args)  # exits with 2 on an unknown option
    assert callable(namespace.handler)
