"""The results table (terminal) and ``BENCHMARKS.md``."""

from __future__ import annotations

import math
import os
import platform
from collections import Counter
from importlib import metadata

from .common import OPS, Figure, Row

__all__ = ["machine", "markdown", "summary", "table"]

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


MAX_PLACES = 4
"""Decimals a judged value is given at most to read as its verdict does."""


def _shown(value: float, places: int, row: Row, limit: float | None) -> str:
    """``value`` to ``places`` decimals, where it is judged (a ``limit`` of ``row``'s
    ``op``) such that the text reads as the verdict does: with more decimals where fewer
    would round it across the limit (1.254 against ≤ 1.25 reads 1.254, never 1.25 beside
    SHORT; 1.9996 against < 2 reads 1.9996, never 2.00 beside met), and past
    ``MAX_PLACES`` rounded towards the verdict's side (1.2500001 reads 1.2501)."""
    if limit is None or row.met is None or not row.op or not math.isfinite(value):
        return f"{value:,.{places}f}"
    meets = OPS[row.op]
    for digits in range(places, MAX_PLACES + 1):
        text = f"{value:,.{digits}f}"
        if meets(float(text.replace(",", "")), limit) == row.met:
            return text
    step = 10.0**-MAX_PLACES
    above = (row.op in ("<=", "<")) != row.met  # short of an upper bound, or meets a lower
    rounded = (math.ceil if above else math.floor)(value / step) * step
    return f"{rounded:,.{MAX_PLACES}f}"


def _num(value: float | None, unit: str = "", row: Row | None = None) -> str:
    """A value for the table; the measured value of ``row`` as its verdict reads."""
    if _missing(value):
        return "–"
    assert value is not None
    if abs(value) >= 100:
        places = 0
    elif abs(value) >= 10:
        places = 1
    else:
        places = 2
    if row is None:
        text = f"{value:,.{places}f}"
    else:
        text = _shown(value, places, row, row.limit)
    return f"{text} {unit}".strip()


def _verdict(row: Row) -> str:
    if row.smoke:  # a lost fire or a crash is a failed check, listed under the table
        return "smoke run, no verdict" + (" (no value)" if math.isnan(row.measured) else "")
    if row.missing():
        return "FAILED"  # no value: fires lost, the run never started, a broken baseline
    if row.met is None:
        return ""
    return "met" if row.met else "SHORT"


def _ratio(row: Row) -> str:
    """``median×``, or ``min–median–max×`` over rounds when the rounds differ; the median
    as its verdict reads where the goal judges the ratio."""
    if _missing(row.ratio):
        return "–"
    assert row.ratio is not None
    median = _shown(row.ratio, 2, row, row.ratio_limit)
    if _missing(row.ratio_min) or _missing(row.ratio_max) or row.ratio_min == row.ratio_max:
        return f"{median}×"
    return f"{row.ratio_min:.2f}–{median}–{row.ratio_max:.2f}×"


def summary(figures: list[Figure]) -> str:
    """The count of lines by verdict, as the verdict column reads, and of failed checks:
    a FAILED line (no value: fires lost, a broken baseline) is counted apart, never as
    short (a timing that missed its goal)."""
    verdicts = Counter("smoke" if row.smoke else _verdict(row) for f in figures for row in f.rows)
    checks = sum(len(f.failed_checks) for f in figures)
    smoke = f"; no verdict (smoke run): {verdicts['smoke']}" if verdicts["smoke"] else ""
    return (
        f"Goals met: {verdicts['met']}; short: {verdicts['SHORT']}; failed: "
        f"{verdicts['FAILED']}{smoke}; failed correctness checks: {checks}."
    )


def _cells(row: Row) -> list[str]:
    ratio = _ratio(row)
    baseline = _num(row.baseline, row.unit)
    if row.baseline is not None and row.baseline_label:
        baseline = f"{baseline} ({row.baseline_label})"
    return [row.label, baseline, _num(row.measured, row.unit, row), ratio, row.goal, _verdict(row)]


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
        "goal that can be missed, and its verdict is the goal's own comparison: a value "
        "it judges is shown with the digits it needs to read as the verdict does (1.254× "
        "against ≤ 1.25×, never 1.25× beside SHORT). A baseline that measured 0, less or "
        "nothing is a failed check, and its line reads FAILED (counted apart from the short "
        "lines in the summary). Written by "
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
    out += ["", summary(figures)]
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
