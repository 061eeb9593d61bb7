"""The scheduler section of the system prompt, loaded from the shipped ``prompts/`` folder.

The Markdown files live in the repository's top-level ``prompts/`` folder and are
packaged into the wheel as ``langgraph_scheduler/prompts``. Placeholders are written
``{{name}}`` so the JSON examples in the files need no escaping.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from ._attribution import retry_attempt
from .models import TaskSource

__all__ = ["load_prompt", "render_system_prompt", "render_task_turn_prompt"]

SYSTEM_PROMPT = "system_prompt.md"
"""The scheduler section: tools, time, task-triggered turns, examples, payload schema."""
TASK_TURN_PROMPT = "task_turn.md"
"""The note added to the system prompt of a task-triggered turn."""

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@functools.cache
def load_prompt(name: str) -> str:
    """The text of a shipped prompt file, e.g. ``load_prompt("system_prompt.md")``.

    Looks inside the installed package first (``langgraph_scheduler/prompts``), then in
    the source checkout's top-level ``prompts/`` folder.

    Raises:
        FileNotFoundError: naming both places searched.
    """
    packaged = resources.files("langgraph_scheduler") / "prompts" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # Source checkout: plugin/langgraph_scheduler/prompts.py -> <repo>/prompts/
    checkout = Path(__file__).resolve().parents[2] / "prompts" / name
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"prompt file {name!r} is missing: looked in the installed package "
        f"(langgraph_scheduler/prompts) and in {checkout.parent}; reinstall "
        "langgraph-scheduler or run from a full source checkout"
    )


def render_system_prompt(*, timezone: str = "UTC", now: datetime | None = None) -> str:
    """The scheduler section with the current date-time and default timezone filled in.

    Args:
        timezone: the runtime's default IANA zone (``SchedulerRuntime.timezone``).
        now: the current time (default: the clock); naive means UTC.

    Example:
        >>> text = render_system_prompt(timezone="Europe/Berlin")
        >>> "Europe/Berlin" in text
        True
    """
    zone = ZoneInfo(timezone)
    current = _aware(now or datetime.now(zone)).astimezone(zone)
    return _fill(
        load_prompt(SYSTEM_PROMPT),
        current_time=f"{_iso(current)} ({current:%A}, {timezone})",
        timezone=timezone,
    )


def render_task_turn_prompt(source: TaskSource, *, timezone: str = "UTC") -> str:
    """The system note that tells the model a scheduled task started this turn.

    Args:
        source: the turn's attribution (``state["task_source"]``).
        timezone: zone to show the due time in.
    """
    scheduled = str(source.get("scheduled_for", ""))
    try:
        due = _aware(datetime.fromisoformat(scheduled)).astimezone(ZoneInfo(timezone))
        scheduled = f"{_iso(due)} ({due:%A}, {timezone})"
    except (ValueError, OverflowError):  # no ISO time, or past year 1..9999 in the zone
        pass
    notes = []
    if source.get("trigger") == "manual":
        notes.append("run on request, outside its schedule")
    attempt = retry_attempt(source)
    if attempt is not None:
        notes.append(f"attempt {attempt}")
    return _fill(
        load_prompt(TASK_TURN_PROMPT),
        task_name=str(source.get("task_name", "")),
        task_id=str(source.get("task_id", "")),
        run_id=str(source.get("run_id", "")),
        scheduled_for=scheduled,
        trigger_note=f"; {', '.join(notes)}" if notes else "",
    ).strip()


def _fill(template: str, **values: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"prompt placeholder {{{{{key}}}}} has no value")
        return values[key]

    return _PLACEHOLDER.sub(replace, template)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()
