"""``python -m benchmarks [--quick] [--only overhead,throughput,…] [--output FILE]``.

Each figure runs in its own Python process (clean memory figures, one event loop each);
the parent collects the results, prints the table and writes ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .common import Figure

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("overhead", "throughput", "timing", "concurrency", "scale", "replicas")
_MARK = "BENCHMARK-RESULT "
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "benchmarks" / "results.json"
"""Raw results of the last full run that wrote ``DEFAULT_OUTPUT`` (read back by
``--render``): a run written elsewhere (``--output FILE``) leaves them alone, so that
``--render`` never puts another run's numbers above the analysis."""
_TIMEOUT = {"quick": 600.0, "full": 1800.0}
"""Seconds a figure's process may take before it counts as hung (a failed check). A
guard against hangs, not a timing: a quick figure takes about a minute (each start-up
probe of figure 5 may first wait up to 21 s for the next minute), and a loaded CI
machine must not fail the smoke run on the wall clock."""


def _ensure_importable() -> None:
    """Let ``python -m benchmarks`` work from a checkout without ``pip install -e .``."""
    plugin = str(ROOT / "plugin")
    try:
        importlib.import_module("langgraph_scheduler")
    except ImportError:
        sys.path.insert(0, plugin)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (plugin, os.environ.get("PYTHONPATH")) if p
        )


def _child(name: str, *, quick: bool, workdir: Path) -> None:
    from .common import Figure

    module = importlib.import_module(f"benchmarks.{name}")
    start = time.perf_counter()
    try:
        fig: Figure = asyncio.run(module.run(quick=quick, workdir=workdir))
    except Exception as exc:  # report it as a failed check, keep the other figures
        import traceback

        traceback.print_exc()
        fig = Figure(name, name, "")
        fig.failed_checks.append(f"figure crashed: {type(exc).__name__}: {exc}")
    fig.seconds = time.perf_counter() - start
    if quick:
        fig.as_smoke_run()
    print(_MARK + json.dumps(fig.to_json()), flush=True)


def _command(name: str, quick: bool, workdir: Path) -> list[str]:
    """The child process that runs figure ``name`` and prints its result line."""
    command = [sys.executable, "-m", "benchmarks", "--child", name, "--workdir", str(workdir)]
    return [*command, "--quick"] if quick else command


def _run_figure(name: str, *, quick: bool, workdir: Path) -> Figure:
    """Run one figure in its own process. Its result fails (a failed check) if the
    process printed none, hung (killed after ``_TIMEOUT``) or exited with an error, even
    after printing it: a hang or a crash in the runtime's shutdown is a fault too."""
    from .common import Figure

    start = time.perf_counter()
    try:
        done = subprocess.run(
            _command(name, quick, workdir),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT["quick" if quick else "full"],
        )
        stdout, stderr = done.stdout, done.stderr
        fault = f"exited with status {done.returncode}" if done.returncode else ""
    except subprocess.TimeoutExpired as exc:
        stdout, stderr = (
            out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
            for out in (exc.stdout, exc.stderr)
        )
        fault = f"hung: timed out after {exc.timeout:.0f} s"
    tail = "\n".join(stderr.strip().splitlines()[-5:])  # the last lines say why
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            fig = Figure.from_json(json.loads(line[len(_MARK) :]))
            if fault:
                fig.failed_checks.append(f"figure process {fault} after its result: {tail}")
            return fig
    fig = Figure(name, name, "")
    why = f" (its process {fault})" if fault else ""
    fig.failed_checks.append(f"figure produced no result{why}: {tail}")
    fig.seconds = time.perf_counter() - start
    return fig


def keeps_results(output: str, *, quick: bool, only: bool) -> bool:
    """Whether a run writing ``output`` saves its raw results in ``RESULTS``: only a full
    run of every figure that writes ``DEFAULT_OUTPUT``, the file ``--render`` redraws."""
    return not quick and not only and Path(output).resolve() == DEFAULT_OUTPUT


def _write(output: str, figures: list[Figure], run: dict[str, Any]) -> None:
    """Write the markdown, with ``benchmarks/analysis.md`` (hand-written) appended."""
    from .report import markdown

    analysis_file = ROOT / "benchmarks" / "analysis.md"
    analysis = analysis_file.read_text() if analysis_file.exists() else ""
    text = markdown(
        figures,
        command=run["command"],
        info=run["info"],
        seconds=run["seconds"],
        analysis=analysis,
    )
    Path(output).write_text(text)
    print(f"wrote {output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small smoke run (under four minutes): no verdict on timings, fails only on a "
        "correctness check (lost or duplicated runs, a crash, a skipped fire where none is "
        "allowed)",
    )
    parser.add_argument("--only", help=f"comma-separated figures from: {', '.join(FIGURES)}")
    parser.add_argument(
        "--output",
        help="markdown file to write (default: BENCHMARKS.md for a full run of all "
        "figures, nothing for --quick or --only)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help=f"rewrite the markdown from {RESULTS.name}, the last full run that wrote "
        f"{DEFAULT_OUTPUT.name} (after editing benchmarks/analysis.md), without running "
        "anything; exit status 1 if that run failed a correctness check",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _ensure_importable()

    if args.child:
        _child(args.child, quick=args.quick, workdir=Path(args.workdir))
        return 0

    names = list(FIGURES)
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(FIGURES))
        if unknown:
            parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {FIGURES}")
        if not names:  # a run of no figure would pass having checked nothing
            parser.error(f"--only names no figure; choose from {', '.join(FIGURES)}")
    output = args.output
    if output is None and not args.quick and args.only is None:
        output = str(DEFAULT_OUTPUT)

    from .common import Figure
    from .report import machine, summary, table

    if args.render:
        saved = json.loads(RESULTS.read_text())
        stored = [Figure.from_json(f) for f in saved["figures"]]
        _write(output or str(DEFAULT_OUTPUT), stored, saved)
        return 1 if any(f.failed_checks for f in stored) else 0

    command = "python -m benchmarks " + shlex.join(sys.argv[1:]) if argv is None else ""
    command = command.strip() or "python -m benchmarks"
    info = machine()
    start = time.perf_counter()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="lgs-bench-") as tmp:
        for name in names:
            print(f"running {name} …", file=sys.stderr, flush=True)
            figure = _run_figure(name, quick=args.quick, workdir=Path(tmp))
            figures.append(figure)
            print(table([figure]) + "\n", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    info["load average"] += f" at start; {machine()['load average']} at end"
    print(table(figures))
    print(f"\n{summary(figures)}")
    times = ", ".join(f"{f.name} {f.seconds:.0f} s" for f in figures)
    print(f"\n{len(figures)} figure(s) in {seconds:.0f} s ({times})")
    if output:
        run: dict[str, Any] = {"command": command, "info": info, "seconds": seconds}
        if keeps_results(output, quick=args.quick, only=args.only is not None):
            saved = run | {"figures": [f.to_json() for f in figures]}
            RESULTS.write_text(json.dumps(saved, indent=1))
        _write(output, figures, run)
    failed = any(f.failed_checks for f in figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
