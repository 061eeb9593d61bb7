"""The results table (terminal) and ``BENCHMARKS.md``."""

from __future__ import annotations

import math
import os
import platform
from importlib import metadata

from .common import Figure, Row

__all__ = ["machine", "markdown", "table"]

_PACKAGES = ("langgraph", "langgraph-checkpoint-sqlite", "apscheduler", "sqlalchemy", "psycopg")


def machine() -> dict[str, str]:
    """What this machine is, from /proc and ``platform``."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _mem_total(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load average": _loadavg(),
    }
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    info["packages"] = ", ".join(versions)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _num(value: float | None, unit: str = "") -> str:
    if _missing(value):
        return "–"
    assert value is not None
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _verdict(row: Row) -> str:
    if row.smoke:  # a lost fire or a crash is a failed check, listed under the table
        return "smoke run, no verdict" + (" (no value)" if math.isnan(row.measured) else "")
    if math.isnan(row.measured):
        return "FAILED"  # no value: the fires were lost or the run never started
    if row.met is None:
        return ""
    return "met" if row.met else "SHORT"


def _ratio(row: Row) -> str:
    """``median×``, or ``min–median–max×`` over rounds when the rounds differ."""
    if _missing(row.ratio):
        return "–"
    if _missing(row.ratio_min) or _missing(row.ratio_max) or row.ratio_min == row.ratio_max:
        return f"{row.ratio:.2f}×"
    return f"{row.ratio_min:.2f}–{row.ratio:.2f}–{row.ratio_max:.2f}×"


def _cells(row: Row) -> list[str]:
    ratio = _ratio(row)
    baseline = _num(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_label:
        baseline = f"{baseline} ({row.baseline_label})"
    return [row.label, baseline, _num(row.measured, row.unit), ratio, row.goal, _verdict(row)]


_HEADER = ["figure / line", "baseline", "measured", "ratio (min–median–max)", "goal", "verdict"]


def table(figures: list[Figure]) -> str:
    """A plain-text table for the terminal."""
    lines = [_HEADER] + [_cells(r) for f in figures for r in f.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    for fig in figures:
        for message in fig.failed_checks:
            out.append(f"CHECK FAILED [{fig.name}]: {message}")
    return "\n".join(out)


def _md_table(rows: list[Row]) -> list[str]:
    out = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    return out


def markdown(
    figures: list[Figure],
    *,
    command: str,
    info: dict[str, str],
    seconds: float,
    analysis: str = "",
) -> str:
    """The whole ``BENCHMARKS.md``."""
    out = [
        "# Benchmarks",
        "",
        "Every figure is a ratio against a baseline measured in the same run, on the same "
        "machine, with rounds interleaved where possible (baseline and measured alternate, "
        "medians taken), because the machine is shared with other work; a ratio column "
        "reads min–median–max over the per-round ratios of those rounds. Every line has a "
        "goal that can be missed. Written by "
        "`python -m benchmarks`; do not edit the generated part by hand.",
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Total wall time: {seconds:.0f} s. From the repository root (the package is "
        "imported from `plugin/` when it is not installed): `python -m benchmarks` runs "
        "every figure and writes this file; `--quick` is a smoke run (small sizes, "
        '"smoke run, no verdict" on every goal, no file written unless `--output FILE`); '
        "`--only overhead,throughput,timing,concurrency,scale,replicas` picks figures; "
        "`--render` rewrites this file from `benchmarks/results.json` after "
        "`benchmarks/analysis.md` was edited. Figures 1, 5 and 6 use "
        "`LANGGRAPH_SCHEDULER_BENCH_POSTGRES_URL` (else "
        "`LANGGRAPH_SCHEDULER_TEST_POSTGRES_URL`, else "
        "`postgresql://postgres@127.0.0.1:5432/test`) to create and drop their scratch "
        "databases; their PostgreSQL parts are skipped when it is unreachable (with a failed "
        "check under `CI=true`, where PostgreSQL is required). The exit "
        "status is 1 when a correctness check failed (lost or duplicated runs, a crash, a "
        "skipped fire where none is allowed), never because of a timing.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- **{k}**: {v}" for k, v in info.items()]
    out += ["", "## Summary", ""]
    out += _md_table([r for f in figures for r in f.rows])
    short = [r for f in figures for r in f.rows if r.met is False]
    failed = [(f.name, m) for f in figures for m in f.failed_checks]
    out += [
        "",
        f"Goals met: {sum(r.met is True for f in figures for r in f.rows)}; "
        f"short: {len(short)}; failed correctness checks: {len(failed)}.",
    ]
    for fig in figures:
        out += ["", f"## {fig.title}", "", fig.definition, "", f"Ran in {fig.seconds:.0f} s.", ""]
        out += _md_table(fig.rows)
        if fig.notes:
            out += [""] + [f"- {n}" for n in fig.notes]
        if fig.failed_checks:
            out += ["", "Failed checks:", ""] + [f"- {m}" for m in fig.failed_checks]
    if analysis:
        out += ["", analysis.strip()]
    return "\n".join(out) + "\n"
