"""The scheduler section of the system prompt stays true to the code it documents."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import langgraph_scheduler
from langgraph_scheduler import ConversationTrigger, SchedulerRuntime
from langgraph_scheduler.prompts import load_prompt, render_system_prompt
from langgraph_scheduler.schedules import parse_schedule
from langgraph_scheduler.tools import TOOL_NAMES, ScheduleTaskArgs, scheduler_tools
from langgraph_scheduler.trigger import conversation_trigger_schema

REPO = Path(__file__).resolve().parents[1]
FIXED_NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def section(title: str) -> str:
    text = load_prompt("system_prompt.md")
    start = text.index(f"### {title}")
    end = text.find("\n### ", start + 1)
    return text[start : end if end != -1 else None]


def json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)\n```", text, re.DOTALL)


def test_documented_payload_schema_matches_conversation_trigger() -> None:
    documented = json.loads(json_blocks(section("Task payload (ConversationTrigger)"))[0])
    assert documented == conversation_trigger_schema(), (
        "prompts/system_prompt.md documents an outdated ConversationTrigger schema; replace "
        "its first ```json block with json.dumps(conversation_trigger_schema(), indent=2)"
    )


def test_documented_payload_examples_are_valid_triggers() -> None:
    examples = json_blocks(section("Task payload (ConversationTrigger)"))[1:]
    assert len(examples) >= 2
    for example in examples:
        ConversationTrigger.from_task_payload(example)


def test_every_tool_is_documented_and_nothing_else() -> None:
    documented = re.findall(r"^- `(\w+)`(?: / `(\w+)`)?:", section("Tools"), re.MULTILINE)
    names = [name for pair in documented for name in pair if name]
    assert sorted(names) == sorted(TOOL_NAMES)


def test_schedule_examples_in_the_prompt_and_the_tool_schema_parse() -> None:
    in_prompt = re.findall(r'"([^"]+)"', section("Talking about time").split("\n- Pass")[0])
    description = ScheduleTaskArgs.model_fields["schedule"].description or ""
    in_schema = re.findall(r"'([^']+)'", description.split("Accepted:")[1])
    assert len(in_prompt) >= 9 and len(in_schema) >= 9
    for text in {*in_prompt, *in_schema}:
        parse_schedule(text, tz="Europe/Berlin", now=FIXED_NOW)  # raises if it drifted


def test_render_fills_time_and_zone() -> None:
    text = render_system_prompt(
        timezone="America/New_York", now=datetime(2026, 7, 4, 16, 5, 30, tzinfo=timezone.utc)
    )
    assert "It is now 2026-07-04T12:05:30-04:00 (Saturday, America/New_York)." in text
    assert "The default timezone is America/New_York" in text
    assert "otherwise America/New_York applies" in text
    assert "{{" not in text and "}}" not in text
    # A naive "now" is UTC.
    naive = render_system_prompt(timezone="UTC", now=datetime(2026, 7, 4, 16, 5))
    assert "It is now 2026-07-04T16:05:00+00:00 (Saturday, UTC)." in naive


def test_only_the_last_lines_change_with_the_clock() -> None:
    # Providers cache prompt prefixes: the clock must not invalidate the whole section.
    early = render_system_prompt(timezone="UTC", now=datetime(2026, 1, 1, 9, 0))
    late = render_system_prompt(timezone="UTC", now=datetime(2026, 1, 2, 17, 45))
    head = early.rsplit("### Current time", 1)[0]
    assert len(head) > 0.9 * len(early)
    assert late.startswith(head)
    assert late.rstrip().endswith("It is now 2026-01-02T17:45:00+00:00 (Friday, UTC).")


def test_tool_descriptions_name_the_runtime_default_zone() -> None:
    from langgraph.graph import START, StateGraph

    from langgraph_scheduler.state import SchedulerState

    builder = StateGraph(SchedulerState)
    builder.add_node("n", lambda state: {})
    builder.add_edge(START, "n")
    runtime = SchedulerRuntime(builder, database="sqlite://", timezone="Asia/Kolkata")
    schedule_task = scheduler_tools(runtime)[0]
    assert schedule_task.description.endswith("Default timezone: Asia/Kolkata.")


def test_source_checkout_reads_the_repository_prompts_folder() -> None:
    if (Path(langgraph_scheduler.__file__).parent / "prompts").exists():
        pytest.skip("the package is installed from its wheel, with its own prompts (next test)")
    assert load_prompt("system_prompt.md") == (REPO / "prompts" / "system_prompt.md").read_text(
        encoding="utf-8"
    )


def test_installed_package_reads_its_own_prompts(tmp_path: Path) -> None:
    # The wheel layout: pyproject force-includes prompts/ as langgraph_scheduler/prompts.
    site = tmp_path / "site"
    package = site / "langgraph_scheduler"
    shutil.copytree(
        Path(langgraph_scheduler.__file__).parent,
        package,
        ignore=shutil.ignore_patterns("__pycache__", "prompts"),  # a wheel's are replaced
    )
    shutil.copytree(REPO / "prompts", package / "prompts")
    marker = "## Scheduled conversations (installed copy)"
    shipped = package / "prompts" / "system_prompt.md"
    shipped.write_text(
        shipped.read_text(encoding="utf-8").replace("## Scheduled conversations", marker, 1),
        encoding="utf-8",
    )
    code = (
        "import langgraph_scheduler.prompts as p, sys\n"
        f"assert p.__file__.startswith({str(site)!r}), p.__file__\n"
        "print(p.render_system_prompt(timezone='UTC').splitlines()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == marker


def test_a_missing_prompt_names_where_it_looked() -> None:
    with pytest.raises(FileNotFoundError, match=r"'nope\.md' is missing: looked in the installed"):
        load_prompt("nope.md")
