"""What people look at: task lists, run history and conversation transcripts.

Each view is a plain container that renders itself twice: in the terminal through
``rich`` (``console.print(view)``) and in notebooks through ``_repr_html_``. In a
transcript, task-triggered turns carry a label with the task name, the scheduled time
and the outcome, in a style of their own (one that failed shows its error); user turns
and tool calls stay plain.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._attribution import (
    KEY_NAME,
    MESSAGE_DIGEST,
    SIGNATURE,
    AttributionKey,
    SourceCheck,
    carried_by,
    check_messages_key,
    retry_attempt,
)
from ._cron import iso_day
from ._remote import server_thread_id
from ._service import BIDI_CONTROLS
from ._validated import kind_of
from .errors import InvalidTask
from .models import Task, TaskRunRecord, TaskSource, redact_url

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from .runtime import SchedulerRuntime
    from .store import Store

__all__ = ["RunHistory", "TaskList", "Transcript", "Turn", "load_transcript"]

_OUTCOME_STYLES = {
    "success": "green",
    "error": "red",
    "timeout": "yellow",
    "interrupted": "yellow",
    "skipped": "bright_black",
    "missed": "bright_black",
}
_OUTCOME_COLOURS = {
    "success": "#15803d",
    "error": "#b91c1c",
    "timeout": "#a16207",
    "interrupted": "#a16207",
    "skipped": "#6b7280",
    "missed": "#6b7280",
}
_WIDE = 110
"""Consoles at least this wide get the full tables; narrower ones a compact form."""
_MIN_TASK = 12
"""The run history's task column folds down to this many characters before giving up."""
_MIN_RESULT = 10
"""The fewest characters the run history's result column is given in a table."""
_TASK_STYLE = "magenta"
_TASK_COLOUR = "#7c3aed"
_SHORT = 80
_TITLE_FRAME = 6
"""The cells a panel's frame takes beside its title: the corners, a rule each side and a space."""

_CONTROL_ESCAPES = {
    code: repr(chr(code))[1:-1]
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0), *map(ord, BIDI_CONTROLS))
}
"""C0, DEL and C1 control characters and the text-direction controls → their escapes
(``\\x1b``, ``\\n``, ``\\u202e``)."""
_CONTROL_ESCAPES_BUT_LINES = {
    code: escape for code, escape in _CONTROL_ESCAPES.items() if chr(code) not in "\n\t"
}


def terminal_text(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters shown escaped (``\\x1b``), for a terminal
    (and a notebook's HTML, which shows them the same way).

    Names, prompts, errors and replies come from users and models: printed as they are,
    an escape sequence in one clears the operator's screen, retitles the window or
    writes the clipboard, and a direction override (``\\u202e``) makes a terminal that
    lays out bidirectional text show the rest of the line backwards. ``lines`` keeps
    newlines and tabs, for text meant to span lines (a prompt, a reply), and reads a
    ``\\r\\n`` as a newline; a lone ``\\r``, which would send the cursor back over its
    line, stays escaped.
    """
    if lines:
        return text.replace("\r\n", "\n").translate(_CONTROL_ESCAPES_BUT_LINES)
    return text.translate(_CONTROL_ESCAPES)


def task_json(task: Task) -> dict[str, Any]:
    """A task as JSON-ready data to show (what ``--json`` prints): its webhook URL with
    its tokens as ``***`` (:func:`~.models.redact_url`). The task itself keeps the URL as
    stored, to send."""
    data = task.model_dump(mode="json")
    url = data["options"].get("webhook_url")
    if url:
        data["options"]["webhook_url"] = redact_url(url)
    return data


class TaskList(list[Task]):
    """A list of tasks that renders as a table (terminal and notebook; on a console too
    narrow for one, about 70 columns, as a block of lines per task).

    It is a plain ``list``: index it, filter it, ``len()`` it.
    """

    def to_json(self) -> list[dict[str, Any]]:
        """JSON-ready dicts, one per task (what ``--json`` prints; see :func:`task_json`)."""
        return [task_json(task) for task in self]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self:
            yield Text("no tasks", style="dim")
            return
        wide = options.max_width >= _WIDE
        table = _table(f"tasks ({len(self)})")
        table.add_column("id", no_wrap=True, min_width=16)
        table.add_column("name", overflow="fold")
        if wide:
            table.add_column("state", no_wrap=True, min_width=9)
        table.add_column("schedule", overflow="fold", min_width=16)
        table.add_column("next run", overflow="fold")
        table.add_column("runs", no_wrap=True, justify="right", min_width=4)
        if wide:
            table.add_column("last", no_wrap=True, min_width=11)
            table.add_column("thread", overflow="fold")
        for task in self:
            cells: list[str | Text] = [task.id, task.name]
            if wide:
                cells.append(_state_text(task.state))
            next_run: str | Text = _task_next_run(task)
            if not wide and task.state != "active":
                next_run = _state_text(task.state)  # the compact form folds state in here
            cells += [task.describe_schedule(), next_run, _runs_text(task)]
            if wide:
                cells += [_outcome_text(task.last_outcome), task.thread_id or "isolated"]
            table.add_row(*(_plain(c) if isinstance(c, str) else c for c in cells))
        # A console too narrow for the table (about 70 columns) gets a block of lines
        # per task instead: rich squeezed the columns, cutting the next run's day and
        # the runs, or leaving the runs out.
        if not _fits(console, options, table):
            yield from _blocks(
                f"tasks ({len(self)})",
                (
                    _Block(
                        task.id,
                        _state_text(task.state),
                        {
                            "name": task.name,
                            "schedule": task.describe_schedule(),
                            "next run": _task_next_run(task),
                            "runs": _runs_text(task),
                            "last": task.last_outcome or "—",
                            "thread": task.thread_id or "isolated",
                        },
                    )
                    for task in self
                ),
            )
            return
        yield table

    def _repr_html_(self) -> str:
        if not self:
            return _html_note("no tasks")
        rows = [
            [
                _code(task.id),
                _isolated(task.name),
                _esc(task.state),
                _esc(task.describe_schedule()),
                _esc(_task_next_run(task)),
                _esc(_runs_text(task)),
                _outcome_html(task.last_outcome),
                _isolated(task.thread_id or "isolated"),
            ]
            for task in self
        ]
        header = ["id", "name", "state", "schedule", "next run", "runs", "last", "thread"]
        return _html_table(f"tasks ({len(self)})", header, rows, kind="tasks")


class RunHistory(list[TaskRunRecord]):
    """Run records (newest first, as the store returns them) that render as a table (on a
    console too narrow for one, about 70 columns, as a block of lines per run).

    Args:
        records: the run records.
        task_names: task id → name, to show names instead of ids.
    """

    def __init__(
        self,
        records: Iterable[TaskRunRecord] = (),
        *,
        task_names: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(records)
        self.task_names: dict[str, str] = dict(task_names or {})

    def to_json(self) -> list[dict[str, Any]]:
        """JSON-ready dicts, one per run (what ``--json`` prints)."""
        return [record.model_dump(mode="json") for record in self]

    def _task_label(self, record: TaskRunRecord) -> str:
        return self.task_names.get(record.task_id, record.task_id)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self:
            yield Text("no runs", style="dim")
            return
        wide = options.max_width >= _WIDE
        rows = [
            [
                _plain(cell)
                for cell in (
                    record.run_id[:8],
                    self._task_label(record),
                    *([record.trigger] if wide else []),
                    utc_time(record.scheduled_for),
                    *([_duration(record)] if wide else []),
                    record.outcome or "running",
                    " ".join((record.summary or record.error or "").split()),
                )
            ]
            for record in self
        ]
        headers = ["run", "task", *(["trigger"] if wide else []), "scheduled for"]
        headers += [*(["took"] if wide else []), "outcome", "result"]
        # Every column but the last gets its content's width; the result gets what is
        # left, on one line, so a history stays one row per run wherever a table fits.
        widths = [
            max(cell_len(h), *(row[i].cell_len for row in rows)) for i, h in enumerate(headers[:-1])
        ]
        widths[1] = min(widths[1], 24)
        overhead = 2 + (len(headers) - 1) + 2 * len(headers)
        # A long task name folds into fewer columns before the result goes below its
        # least; a console too narrow even then gets a run per block of lines instead
        # (rich squeezed every column, "success" to "s", the run id to two characters).
        short = options.max_width - overhead - sum(widths) - _MIN_RESULT
        if short < 0:
            if widths[1] + short < min(widths[1], _MIN_TASK):
                yield from self._blocks()
                return
            widths[1] += short
        budget = options.max_width - overhead - sum(widths)
        table = _table(f"run history ({len(self)})")
        for header, width in zip(headers[:-1], widths, strict=True):
            table.add_column(header, width=width, overflow="fold", no_wrap=header != "task")
        table.add_column("result", width=budget, no_wrap=True, overflow="ellipsis")
        for record, row in zip(self, rows, strict=True):
            cells = list(row)
            cells[-2] = _outcome_text(record.outcome, running=True)
            table.add_row(*cells)
        yield table

    def _blocks(self) -> RenderResult:
        """The history for a narrow console: per run, its id and outcome, then a line a
        field; the result on one line, as in the table."""
        yield from _blocks(
            f"run history ({len(self)})",
            (
                _Block(
                    record.run_id[:8],
                    _outcome_text(record.outcome, running=True),
                    {
                        "task": self._task_label(record),
                        "trigger": record.trigger,
                        "scheduled for": utc_time(record.scheduled_for),
                        "took": _duration(record),
                    },
                    result=" ".join((record.summary or record.error or "").split()),
                )
                for record in self
            ),
        )

    def _repr_html_(self) -> str:
        if not self:
            return _html_note("no runs")
        rows = [
            [
                _code(record.run_id[:8]),
                _isolated(self._task_label(record)),
                _esc(record.trigger),
                _esc(utc_time(record.scheduled_for)),
                _esc(_duration(record)),
                _outcome_html(record.outcome, running=True),
                _isolated(_short(record.summary or record.error or "")),
            ]
            for record in self
        ]
        header = ["run", "task", "trigger", "scheduled for", "took", "outcome", "result"]
        return _html_table(f"run history ({len(self)})", header, rows, kind="runs")


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: a human message and what followed it.

    ``source`` is set when a task triggered the turn; ``run`` is that fire's record
    when it could be found (it is gone once its task is deleted).
    """

    messages: tuple[BaseMessage, ...]
    source: TaskSource | None = None
    run: TaskRunRecord | None = None

    @property
    def scheduled(self) -> bool:
        """True for a task-triggered turn."""
        return self.source is not None

    @property
    def outcome(self) -> str | None:
        """The recorded outcome of a task-triggered turn (None if unknown or a user turn)."""
        return self.run.outcome if self.run is not None else None

    def label(self) -> str:
        """``⏰ <task name> · scheduled <time> · <outcome>`` for a task-triggered turn."""
        if self.source is None:
            return "user turn"
        return f"{_label_head(self.source)} · {_outcome_word(self.run)}"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.source is None:
            yield Group(*_rich_lines(self.messages, task_turn=False))
            return
        failed = self.outcome not in (None, "success")
        lines = _rich_lines(self.messages, task_turn=True)
        if why := self._why():
            style = f"bold {_OUTCOME_STYLES.get(self.outcome or '', '')}"
            lines.append(Text.assemble(("error: ", style), terminal_text(why, lines=True)))
        label = Text(terminal_text(self.label()), style=f"bold {_TASK_STYLE}")
        # Rich cuts a title at the panel's edge: a label too long for it (a long name on
        # a narrow console) opens the panel instead, wrapped, so its time and outcome stay.
        title: Text | None = label
        if label.cell_len > options.max_width - _TITLE_FRAME:
            title, lines = None, [label, *lines]
        yield Panel(
            Group(*lines),
            title=title,
            title_align="left",
            border_style=_OUTCOME_STYLES.get(self.outcome or "", "") if failed else _TASK_STYLE,
            padding=(0, 1),
        )

    def _repr_html_(self) -> str:
        if self.source is None:
            return "".join(
                [
                    '<div data-lgs-turn="user" style="margin:6px 0;padding:2px 10px">',
                    *_html_lines(self.messages, task_turn=False),
                    "</div>",
                ]
            )
        colour = _OUTCOME_COLOURS.get(self.outcome or "", "#6b7280")
        why = self._why()
        error = f"<b>error:</b> {_isolated(why, lines=True)}" if why else ""
        name, rest = _label_parts(self.source)
        return "".join(
            [
                '<div data-lgs-turn="task" style="margin:8px 0;padding:4px 10px;'
                f"border-left:4px solid {_TASK_COLOUR};background:#f5f3ff;color:#1f2937;"
                'border-radius:4px">'
                f'<div style="font-weight:600;color:{_TASK_COLOUR}">'
                f"⏰ {_isolated(name)}{_esc(rest)} · "
                f'<span style="color:{colour}">{_esc(_outcome_word(self.run))}</span></div>',
                *_html_lines(self.messages, task_turn=True),
                *([f'<div style="color:{colour};{_LINES}">{error}</div>'] if error else []),
                "</div>",
            ]
        )

    def _why(self) -> str | None:
        """Why a task-triggered turn failed (its record's error), if it did."""
        if self.run is None or self.run.outcome in (None, "success"):
            return None
        return self.run.error or None


@dataclass(frozen=True)
class Transcript:
    """A conversation thread as turns, with task-triggered turns attributed.

    Build it with :func:`load_transcript` (from a runtime or a checkpointer) or
    :meth:`from_messages`.
    """

    thread_id: str
    turns: list[Turn] = field(default_factory=list)

    @classmethod
    def from_messages(
        cls,
        thread_id: str,
        messages: Sequence[BaseMessage],
        *,
        runs: Mapping[str, TaskRunRecord] | None = None,
        verify: SourceCheck | None = None,
    ) -> Transcript:
        """Split messages into turns at each human message.

        Args:
            thread_id: the conversation's thread id.
            messages: the thread's messages, oldest first.
            runs: run id → record, to show each task-triggered turn's outcome.
            verify: ``rt.verify_task_source``: a turn is task-triggered only if a runtime
                signed its attribution for its message's text, and only the first message
                carrying it (a later one, or one of another text, is a client's copy).
                Without it a message's ``task_source`` is taken as it is (a client could
                have written it).
        """
        runs = runs or {}

        def signed(source: Any) -> bool:
            # A served turn is signed for the server's id of the thread.
            assert verify is not None
            return verify(source, thread_id) or verify(source, server_thread_id(thread_id))

        labelled: set[str] = set()

        def first_signed(source: Any, content: Any) -> bool:
            run_id = str(source.get("run_id", ""))
            if run_id in labelled or not signed(source) or not carried_by(source, content):
                return False
            labelled.add(run_id)
            return True

        check = first_signed if verify is not None else None
        turns: list[Turn] = []
        current: list[BaseMessage] = []
        for message in messages:
            if isinstance(message, HumanMessage) and current:
                turns.append(_turn(current, runs, check))
                current = []
            current.append(message)
        if current:
            turns.append(_turn(current, runs, check))
        return cls(thread_id=thread_id, turns=turns)

    @property
    def scheduled_turns(self) -> list[Turn]:
        """The task-triggered turns."""
        return [turn for turn in self.turns if turn.scheduled]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: the thread id and, per turn, its attribution (without its
        ``signature``, an HMAC a reader has no use for) and messages (a value JSON cannot
        hold in a tool call's arguments, a datetime say, as its ``str``)."""
        return {
            "thread_id": self.thread_id,
            "turns": [
                {
                    "task_source": _json_ready(_shown_source(turn.source)) if turn.source else None,
                    "outcome": turn.outcome,
                    "messages": [_message_json(m) for m in turn.messages],
                }
                for turn in self.turns
            ],
        }

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(terminal_text(self._header()), style="dim")
        if not self.turns:
            yield Text("no messages", style="dim")
        yield from self.turns

    def _repr_html_(self) -> str:
        return "".join(
            [
                f'<div class="lgs-transcript" style="{_BOX_STYLE}">',
                f'<div style="color:#6b7280;margin-bottom:6px">thread '
                f"{_isolated(self.thread_id)} · {_esc(self._counts())}</div>",
                *(turn._repr_html_() for turn in self.turns),
                "</div>",
            ]
        )

    def _header(self) -> str:
        return f"thread {self.thread_id} · {self._counts()}"

    def _counts(self) -> str:
        count, scheduled = len(self.turns), len(self.scheduled_turns)
        turns = "turn" if count == 1 else "turns"
        return f"{count} {turns} ({scheduled} task-triggered)"


async def load_transcript(
    source: SchedulerRuntime | BaseCheckpointSaver[Any],
    thread_id: str,
    *,
    store: Store | None = None,
    messages_key: str | None = None,
) -> Transcript:
    """Read a thread's messages and the outcomes of its task-triggered turns.

    Args:
        source: a started runtime (reads through its graph, whatever its checkpointer),
            or a checkpointer (reads the latest checkpoint).
        thread_id: the conversation to show.
        store: where to look up run outcomes; a runtime's own store by default. With a
            runtime or a store, a turn is labelled task-triggered only if a runtime on
            that store signed its attribution; from a checkpointer alone, a message's
            ``task_source`` is taken as it is.
        messages_key: the state key the messages are under; by default a runtime's
            ``messages_key``, ``"messages"`` from a checkpointer.

    Returns:
        The transcript; empty when the thread has no checkpoint.

    Raises:
        InvalidTask: ``messages_key`` names no key, or ``"task_source"``, which holds a
            turn's attribution (see ``SchedulerRuntime(messages_key=...)``), or a key
            the thread's state keeps something other than messages under.
    """
    from .runtime import SchedulerRuntime

    if messages_key is not None:
        check_messages_key(messages_key)

    config: Any = {"configurable": {"thread_id": thread_id}}
    verify: SourceCheck | None = None
    if isinstance(source, SchedulerRuntime):
        verify = source.verify_task_source
        store = store or source.store
        under = messages_key or source.messages_key
        state = (await source.graph.aget_state(config)).values
        # A functional-API entrypoint's state is whatever it returned, a string say.
        held = state.get(under) if isinstance(state, Mapping) else None
        messages = _messages_held(held, thread_id, under)
    else:
        found = await source.aget_tuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        )
        values = found.checkpoint.get("channel_values", {}) if found else {}
        under = messages_key or "messages"
        messages = _messages_held(values.get(under), thread_id, under)
        if store is not None:
            # Read, not made: no key yet, no turn was signed (and a reader writes nothing).
            key = await store.secret(KEY_NAME, make=False)
            verify = AttributionKey(key).verify if key is not None else _signed_by_none
    runs: dict[str, TaskRunRecord] = {}
    if store is not None:
        for message in messages:
            run_id = _source_of(message, "run_id")
            if run_id and run_id not in runs:
                record = await store.get_run(run_id)
                if record is not None:
                    runs[run_id] = record
    return Transcript.from_messages(thread_id, messages, runs=runs, verify=verify)


def _messages_held(value: Any, thread_id: str, key: str) -> list[BaseMessage]:
    """The messages a thread's state holds under ``key`` (none when it holds nothing).

    Raises:
        InvalidTask: the key holds something else (a mistyped ``messages_key``).
    """
    if value is None:
        return []
    if isinstance(value, list | tuple):
        odd = [item for item in value if not isinstance(item, BaseMessage)][:1]
        if not odd:  # a list, not a sentinel: an item may be None itself
            return list(value)
        held = f"a list holding {kind_of(odd[0])}"
    else:
        held = kind_of(value)
    raise InvalidTask(
        f"thread {thread_id!r} keeps no messages under {key!r} (it holds {held}): name "
        "the state key its graph keeps its conversation under (messages_key)"
    )


def _signed_by_none(source: Any, thread_id: str | None) -> bool:
    """The check where no runtime ever made the store's key: nothing is signed."""
    return False


# -- turn building ---------------------------------------------------------------------


def _source_of(message: BaseMessage, key: str) -> str | None:
    source = message.additional_kwargs.get("task_source")
    if isinstance(source, Mapping):
        value = source.get(key)
        return str(value) if value is not None else None
    return None


def _turn(
    messages: list[BaseMessage],
    runs: Mapping[str, TaskRunRecord],
    signed: Callable[[Any, Any], bool] | None,
) -> Turn:
    first = messages[0]
    raw = first.additional_kwargs.get("task_source") if isinstance(first, HumanMessage) else None
    if not isinstance(raw, Mapping) or (signed is not None and not signed(raw, first.content)):
        return Turn(messages=tuple(messages))
    source: TaskSource = dict(raw)  # type: ignore[assignment]
    run = runs.get(str(source.get("run_id", "")))
    return Turn(messages=tuple(messages), source=source, run=run)


def _shown_source(source: TaskSource) -> dict[str, Any]:
    """A turn's attribution as shown: what it says (task, run, trigger), not its signature
    nor its message's digest."""
    return {key: value for key, value in source.items() if key not in _UNSHOWN}


_UNSHOWN = frozenset({SIGNATURE, MESSAGE_DIGEST})
"""The keys of a turn's attribution that tell a reader nothing (see _shown_source)."""


def _label_head(source: TaskSource) -> str:
    name, rest = _label_parts(source)
    return f"⏰ {name}{rest}"


def _label_parts(source: TaskSource) -> tuple[str, str]:
    """A task turn's label head as the task's name and what follows it: ``" · scheduled
    <time>"`` and the attempt of a retry (HTML isolates the name, :func:`_isolated`)."""
    when = utc_time(_parse_time(source.get("scheduled_for")))
    trigger = "run now" if source.get("trigger") == "manual" else "scheduled"
    attempt = retry_attempt(source)
    retry = f" (attempt {attempt})" if attempt is not None else ""
    return str(source.get("task_name", "?")), f" · {trigger} {when}{retry}"


def _message_json(message: BaseMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"type": message.type, "text": message.text}
    if isinstance(message, AIMessage) and message.tool_calls:
        data["tool_calls"] = [
            {"name": c["name"], "args": _json_ready(c["args"])} for c in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        data["tool"] = message.name
    return data


# -- rich ------------------------------------------------------------------------------


def _rich_lines(messages: Sequence[BaseMessage], *, task_turn: bool) -> list[Text]:
    lines: list[Text] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            who = ("task prompt", f"bold {_TASK_STYLE}") if task_turn else ("you", "bold")
            text = terminal_text(message.text, lines=True)
            lines.append(Text.assemble((f"{who[0]}: ", who[1]), text))
        elif isinstance(message, AIMessage):
            if message.text:
                text = terminal_text(message.text, lines=True)
                lines.append(Text.assemble(("assistant: ", "bold cyan"), text))
            for call in message.tool_calls:
                lines.append(Text(terminal_text(f"  → {_call_text(call)}"), style="dim"))
        elif isinstance(message, ToolMessage):
            answer = f"  ← {message.name or 'tool'}: {_first_line(message)}"
            lines.append(Text(terminal_text(answer), style="dim"))
        else:
            lines.append(Text(terminal_text(f"{message.type}: {message.text}", lines=True)))
    return lines


def _plain(text: str) -> Text:
    """A table cell shown as written: rich would read ``[...]`` in a plain string as
    markup (a task name with ``[/data]`` in it raised ``MarkupError``)."""
    return Text(terminal_text(text))


@dataclass
class _Block:
    """One item of a narrow console's listing (see :func:`_blocks`)."""

    key: str
    status: Text
    fields: Mapping[str, str]
    result: str = ""


def _blocks(title: str, items: Iterable[_Block]) -> RenderResult:
    """A listing for a console too narrow for its table: per item, its key and status,
    then a line a field (a wrapped line stays indented), and its result, if any, on one
    line, cut, as in the table."""
    yield Text(title, style="bold")
    for item in items:
        yield Text()
        yield Text.assemble((item.key, "bold"), " · ", item.status)
        for name, value in item.fields.items():
            line = Text.assemble(f"{name}: ", terminal_text(value), overflow="fold")
            yield Padding(line, (0, 0, 0, 2))
        if item.result:
            line = Text.assemble(
                "result: ", terminal_text(item.result), no_wrap=True, overflow="ellipsis"
            )
            yield Padding(line, (0, 0, 0, 2))


def _fits(console: Console, options: ConsoleOptions, table: Table) -> bool:
    """Whether rich lays ``table`` out within the console without squeezing a column
    below its least width (its longest word or ``min_width``; a column that does not
    wrap, its content). Rich narrows the widest wrapping columns first, evenly, so
    they all must fit at one level no lower than any of their least widths."""
    fixed, wrapping = 2, list[tuple[int, int]]()  # the table's edges, then its columns
    for column in table.columns:
        cells = [column.header, *column.cells]
        sizes = [Measurement.get(console, options.update_width(10_000), c) for c in cells]
        most = max(size.maximum for size in sizes) + 2  # with its padding
        least = max(column.min_width or 0, *(size.minimum for size in sizes)) + 2
        if column.no_wrap:
            fixed += max(most, least)
        else:
            wrapping.append((least, most))
    level = max((least for least, _ in wrapping), default=0)
    return fixed + sum(min(most, level) for _, most in wrapping) <= options.max_width


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)


def _state_text(state: str) -> Text:
    style = {"active": "green", "paused": "yellow"}.get(state, "bright_black")
    return Text(state, style=style)


def _outcome_text(outcome: str | None, *, running: bool = False) -> Text:
    if outcome is None:
        return Text("running" if running else "—", style="dim")
    return Text(outcome, style=_OUTCOME_STYLES.get(outcome, ""))


# -- html ------------------------------------------------------------------------------

_BOX_STYLE = "font-family:system-ui,-apple-system,sans-serif;font-size:13px;line-height:1.45"
_LINES = "white-space:pre-wrap"
"""For a text meant to span lines (a prompt, a reply, an error): HTML runs them together."""


def _esc(text: str, *, lines: bool = False) -> str:
    """``text`` for HTML: its control characters shown escaped as in the terminal
    (:func:`terminal_text`: a notebook showed an ESC as nothing, or a box), then its
    markup escaped."""
    return html.escape(terminal_text(text, lines=lines), quote=True)


def _isolated(text: str, *, lines: bool = False) -> str:
    """Text from a user or a model (a name, prompt, reply, error, thread id) for HTML, as
    :func:`_esc`, in a ``<bdi>``: its direction is its own, and right-to-left text or a
    mark in it cannot reorder the label around it ("thread שלום · 1 turn" showed as
    "thread 1 · שלום turn")."""
    return f"<bdi>{_esc(text, lines=lines)}</bdi>"


def _code(text: str) -> str:
    return f"<code>{_esc(text)}</code>"


def _html_note(text: str) -> str:
    return f'<div style="{_BOX_STYLE};color:#6b7280">{_esc(text)}</div>'


def _outcome_html(outcome: str | None, *, running: bool = False) -> str:
    if outcome is None:
        return f'<span style="color:#6b7280">{"running" if running else "—"}</span>'
    colour = _OUTCOME_COLOURS.get(outcome, "inherit")
    return f'<span style="color:{colour};font-weight:600">{_esc(outcome)}</span>'


def _html_table(title: str, header: list[str], rows: list[list[str]], *, kind: str) -> str:
    head = "".join(f'<th style="text-align:left">{_esc(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:left">{cell}</td>' for cell in row) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="lgs-{kind}" style="{_BOX_STYLE}"><div style="font-weight:600">'
        f"{_esc(title)}</div><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _html_lines(messages: Sequence[BaseMessage], *, task_turn: bool) -> list[str]:
    lines: list[str] = []
    mono = "font-family:ui-monospace,monospace;font-size:12px;color:#6b7280"
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            who = "task prompt" if task_turn else "you"
            text = _isolated(message.text, lines=True)
            lines.append(f'<div style="{_LINES}"><b>{who}:</b> {text}</div>')
        elif isinstance(message, AIMessage):
            if message.text:
                text = _isolated(message.text, lines=True)
                lines.append(f'<div style="{_LINES}"><b>assistant:</b> {text}</div>')
            for call in message.tool_calls:
                lines.append(f'<div style="{mono}">→ {_isolated(_call_text(call))}</div>')
        elif isinstance(message, ToolMessage):
            text = f"← {_esc(message.name or 'tool')}: {_isolated(_first_line(message))}"
            lines.append(f'<div style="{mono}">{text}</div>')
        else:
            text = f"{_esc(message.type)}: {_isolated(message.text, lines=True)}"
            lines.append(f'<div style="{_LINES}">{text}</div>')
    return lines


# -- formatting ------------------------------------------------------------------------


def _call_text(call: Mapping[str, Any]) -> str:
    args = json.dumps(_json_ready(call.get("args", {})), ensure_ascii=False)
    return f"{call.get('name', '?')}({_short(args, 160)})"


def _json_ready(value: Any) -> Any:
    """``value`` as JSON data. A graph's node or a client may write anything a checkpoint
    keeps into a tool call's arguments or a ``task_source`` (a datetime, bytes, a set, a
    tuple as a key, NaN): what JSON cannot hold is written as its ``str``."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, str) else str(key): _json_ready(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    return str(value)


def _first_line(message: ToolMessage) -> str:
    """A tool answer's first line (the rest is detail for the model)."""
    lines = message.text.strip().splitlines() or [""]
    more = " …" if len(lines) > 1 else ""
    return _short(lines[0], 160) + more


def _short(text: str, limit: int = _SHORT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def utc_time(value: datetime | None) -> str:
    """``2026-05-04 09:00:00 UTC`` (run times are stored in UTC): how the views and the
    CLI's fire lines write a run's time. A naive value is read as UTC; ``?`` for None."""
    if value is None:
        return "?"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # beyond year 9999 in UTC: shown as written
        return value.isoformat(sep=" ")
    return f"{iso_day(value)} {value:%H:%M:%S} UTC"


def _task_next_run(task: Task) -> str:
    if task.next_run_at is None:
        return "—"
    local = task.next_run_at.astimezone(task.zone)
    return (
        f"{iso_day(local)} {local:%H:%M:%S %Z}"
        if local.second
        else f"{iso_day(local)} {local:%H:%M %Z}"
    )


def _runs_text(task: Task) -> str:
    return f"{task.run_count}/{task.max_runs}" if task.max_runs else str(task.run_count)


def _duration(record: TaskRunRecord) -> str:
    if record.finished_at is None:
        return "running" if record.outcome is None else "—"
    secs = (record.finished_at - record.started_at).total_seconds()
    return f"{secs:.2f}s" if secs < 60 else f"{secs / 60:.1f}min"


def _outcome_word(run: TaskRunRecord | None) -> str:
    if run is None:
        return "outcome unknown"
    return run.outcome or "running"
