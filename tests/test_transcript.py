"""Views: transcripts with task-triggered turns marked, task lists, run history (rich + HTML)."""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from html import unescape
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import START, StateGraph
from rich.console import Console

from langgraph_scheduler import (
    Cron,
    Once,
    SchedulerRuntime,
    SchedulerState,
    Task,
    TaskRunRecord,
)
from langgraph_scheduler._attribution import AttributionKey
from langgraph_scheduler._remote import server_thread_id
from langgraph_scheduler.views import RunHistory, TaskList, Transcript, load_transcript, utc_time

from .helpers import RunWaiter

NOW = datetime(2026, 5, 4, 7, 0, tzinfo=timezone.utc)


def _source(run_id: str = "run-1", name: str = "Water <plants>") -> dict[str, Any]:
    return {
        "task_id": "t1",
        "task_name": name,
        "run_id": run_id,
        "scheduled_for": "2026-05-04T07:00:00+00:00",
        "attempt": 1,
        "trigger": "schedule",
    }


def _record(run_id: str = "run-1", outcome: str | None = "success", **extra: Any) -> TaskRunRecord:
    return TaskRunRecord(
        run_id=run_id,
        task_id="t1",
        attempt=1,
        trigger="schedule",
        scheduled_for=NOW,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=1.5) if outcome else None,
        outcome=outcome,  # type: ignore[arg-type]
        summary=extra.pop("summary", "Time to water the plants."),
        thread_id="alice",
        **extra,
    )


def _task(**extra: Any) -> Task:
    values: dict[str, Any] = {
        "id": "t1",
        "name": "Water plants",
        "owner": "alice",
        "schedule": Cron("0 9 * * 1-5", tz="Europe/Berlin"),
        "payload": {"prompt": "Remind me to water the plants"},
        "thread_mode": "continue",
        "thread_id": "alice",
        "state": "active",
        "next_run_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Task(**(values | extra))


def _conversation() -> list[Any]:
    return [
        HumanMessage("Remind me to water the plants every weekday at 9"),
        AIMessage(
            "",
            tool_calls=[{"name": "schedule_task", "args": {"name": "Water"}, "id": "c1"}],
        ),
        ToolMessage("Scheduled task 'Water'.\nid: t1", tool_call_id="c1", name="schedule_task"),
        AIMessage("Done: weekdays at 09:00 (Europe/Berlin)."),
        HumanMessage("Remind me to water the plants", additional_kwargs={"task_source": _source()}),
        AIMessage("Time to water the plants."),
        HumanMessage("thanks <3"),
        AIMessage("You're welcome."),
    ]


def _render(view: Any, width: int = 120) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(view)
    return console.export_text()


async def _run_once(rt: SchedulerRuntime, prompt: str) -> tuple[TaskRunRecord, Transcript]:
    """A task with ``prompt`` run once by hand on ``rt``: its record and its transcript."""
    async with rt:
        task = await rt.create_task(name="Agenda", schedule=Cron("@daily"), trigger=prompt)
        record = await rt.run_now(task.id)
        assert record.thread_id is not None
        return record, await load_transcript(rt, record.thread_id)


RunOnce = Callable[[str, str], Awaitable[tuple[TaskRunRecord, Transcript]]]


@pytest.fixture
def run_once(sqlite_url: str, make_graph: Any, runtime_factory: Any) -> RunOnce:
    """``run_once(prompt, reply)``: a task with ``prompt`` run once by hand on a runtime
    whose model answers ``reply``; its record and its transcript."""

    async def run(prompt: str, reply: str) -> tuple[TaskRunRecord, Transcript]:
        return await _run_once(runtime_factory(make_graph(reply), database=sqlite_url), prompt)

    return run


def test_turns_split_at_human_messages_and_task_turns_are_attributed() -> None:
    transcript = Transcript.from_messages("alice", _conversation(), runs={"run-1": _record()})
    assert [turn.scheduled for turn in transcript.turns] == [False, True, False]
    assert [len(turn.messages) for turn in transcript.turns] == [4, 2, 2]
    task_turn = transcript.scheduled_turns[0]
    assert task_turn.outcome == "success"
    assert task_turn.label() == ("⏰ Water <plants> · scheduled 2026-05-04 07:00:00 UTC · success")
    data = transcript.to_json()
    assert data["turns"][1]["task_source"]["run_id"] == "run-1"
    assert data["turns"][0]["messages"][1]["tool_calls"] == [
        {"name": "schedule_task", "args": {"name": "Water"}}
    ]


def test_rich_transcript_marks_task_turns_and_keeps_user_turns_plain() -> None:
    text = _render(Transcript.from_messages("alice", _conversation(), runs={"run-1": _record()}))
    assert "thread alice · 3 turns (1 task-triggered)" in text
    assert "you: Remind me to water the plants every weekday at 9" in text
    assert '→ schedule_task({"name": "Water"})' in text
    assert "← schedule_task: Scheduled task 'Water'. …" in text  # first line only
    assert "╭─ ⏰ Water <plants> · scheduled 2026-05-04 07:00:00 UTC · success" in text
    assert "task prompt: Remind me to water the plants" in text
    # User turns are not boxed: only the task turn has a panel.
    assert text.count("╭─") == 1
    assert "│ you:" not in text


def test_retry_attempts_are_labelled() -> None:
    source = _source() | {"attempt": 2}
    message = HumanMessage("Remind me", additional_kwargs={"task_source": source})
    (turn,) = Transcript.from_messages("alice", [message]).turns
    assert "scheduled 2026-05-04 07:00:00 UTC (attempt 2) · outcome unknown" in turn.label()


def test_a_task_source_of_the_wrong_shape_still_renders() -> None:
    """A message's ``task_source`` is whatever its checkpoint holds (a client may send
    one). An attempt that is no number, or a time beyond the calendar's end in UTC,
    made the whole transcript fail to render, in the terminal and the notebook."""
    sources = [
        _source() | {"attempt": "x"},
        _source() | {"attempt": [2], "task_name": {"a": "<b>"}},
        _source() | {"attempt": float("nan")},
        _source() | {"scheduled_for": "9999-12-31T23:59:59-23:59"},
    ]
    messages = [HumanMessage("hi", additional_kwargs={"task_source": s}) for s in sources]
    transcript = Transcript.from_messages("alice", messages)
    text, html = _render(transcript), transcript._repr_html_()
    assert text.count("⏰") == html.count('data-lgs-turn="task"') == 4
    assert "(attempt" not in text
    assert "&lt;b&gt;" in html and "<b>'" not in html
    assert "9999-12-31 23:59:59-23:59" in html


def test_task_turn_without_its_record_says_outcome_unknown() -> None:
    transcript = Transcript.from_messages("alice", _conversation())
    assert transcript.scheduled_turns[0].outcome is None
    assert "outcome unknown" in _render(transcript)


def test_html_transcript_styles_task_turns_and_escapes_text() -> None:
    record = _record(outcome="error", summary=None, error="boom")
    html = Transcript.from_messages("alice", _conversation(), runs={"run-1": record})._repr_html_()
    assert html.count('data-lgs-turn="task"') == 1
    assert html.count('data-lgs-turn="user"') == 2
    assert "⏰ <bdi>Water &lt;plants&gt;</bdi> · scheduled 2026-05-04 07:00:00 UTC" in html
    assert ">error</span>" in html
    assert "thanks &lt;3" in html and "<3" not in html.replace("&lt;3", "")
    assert "border-left:4px solid" in html.split('data-lgs-turn="task"')[1].split(">")[0]


def test_a_failed_task_turn_shows_why() -> None:
    # The label said "error" or "timeout", and the panel held only the prompt: why the
    # turn failed was nowhere in the transcript (and cut short in the run table).
    why = "NotRunning: no scheduler runtime <is> served\x1b[2J in this process"
    for outcome in ("error", "timeout"):
        record = _record(outcome=outcome, summary=None, error=why)
        transcript = Transcript.from_messages("alice", _conversation(), runs={"run-1": record})
        text = " ".join(_render(transcript).replace("│", " ").split())
        assert "error: NotRunning: no scheduler runtime <is> served\\x1b[2J in this" in text
        html = transcript._repr_html_()
        assert "NotRunning: no scheduler runtime &lt;is&gt; served" in html
    succeeded = Transcript.from_messages("alice", _conversation(), runs={"run-1": _record()})
    assert "error:" not in _render(succeeded) and "error:" not in succeeded._repr_html_()


async def test_a_task_turns_label_shows_its_time_and_outcome_whatever_the_name_and_width(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # The label was the panel's title, which rich cuts at the console's edge: at 80
    # columns a 46-character name left out the time and the outcome ("error").
    def fail(state: SchedulerState) -> dict[str, Any]:
        raise RuntimeError("inbox unreachable")

    builder = StateGraph(SchedulerState)
    builder.add_node("fail", fail)
    builder.add_edge(START, "fail")
    name = "Summarise the inbox and the calendar for today"
    rt = runtime_factory(builder, database=sqlite_url)
    async with rt:
        task = await rt.create_task(
            name=name, schedule=Cron("0 9 * * *"), trigger="Summarise", thread_id="alice"
        )
        record = await rt.run_now(task.id)
        transcript = await load_transcript(rt, "alice")
    assert record.outcome == "error"
    (turn,) = transcript.turns
    when = utc_time(record.scheduled_for)
    assert turn.label() == f"⏰ {name} · run now {when} · error"
    for width in (120, 80, 40, 20):
        text = " ".join(_render(transcript, width).replace("│", " ").replace("─", " ").split())
        assert turn.label() in text, (width, text)
        assert "error: RuntimeError: inbox unreachable" in text
    # Where it fits, it stays the panel's title.
    assert f"╭─ {turn.label()} ─" in _render(transcript, 120)


async def test_a_notebook_transcript_keeps_the_lines_of_prompts_replies_and_errors(
    run_once: RunOnce,
) -> None:
    # HTML runs the lines of a text together: a reply's list read as one line in a
    # notebook ("Today: - stand-up at 9 - review at 2"), kept apart in the terminal.
    reply, prompt = "Today:\n- stand-up at 9\n- review  at 2", "What is on?\nBe brief."
    record, transcript = await run_once(prompt, reply)
    html = transcript._repr_html_()
    pre = '<div style="white-space:pre-wrap">'
    assert f"{pre}<b>task prompt:</b> <bdi>What is on?\nBe brief.</bdi></div>" in html
    assert (
        f"{pre}<b>assistant:</b> <bdi>Today:\n- stand-up at 9\n- review  at 2</bdi></div>" in html
    )
    failed = TaskRunRecord(**(record.model_dump() | {"outcome": "error", "error": "a\n  b"}))
    again = Transcript.from_messages(
        "t", transcript.turns[0].messages, runs={record.run_id: failed}
    )
    assert 'white-space:pre-wrap"><b>error:</b> <bdi>a\n  b</bdi></div>' in again._repr_html_()


def test_task_list_is_a_list_and_renders_in_terminal_and_notebook() -> None:
    tasks = TaskList([_task(), _task(id="t2", name="Paused one", state="paused", next_run_at=None)])
    assert isinstance(tasks, list) and len(tasks) == 2
    wide, narrow = _render(tasks, 160), _render(tasks, 80)
    for text in (wide, narrow):
        assert "t1" in text and "t2" in text
        assert "Monday–Friday" in text
    assert "2026-05-04 09:00 CEST" in wide  # next run in the task's own zone
    assert "paused" in narrow  # the compact form shows the state in the next-run column
    html = tasks._repr_html_()
    assert html.count("<tr>") == 3 and "Paused one" in html
    assert tasks.to_json()[0]["schedule"]["expr"] == "0 9 * * 1-5"
    assert "no tasks" in _render(TaskList()) and "no tasks" in TaskList()._repr_html_()


def test_task_list_and_run_history_print_a_year_below_1000_in_four_digits() -> None:
    # ``%Y`` prints year 1 as "1": a run whose stored time cannot be read is listed with
    # the earliest time, and read "1-01-01".
    early = datetime.min.replace(tzinfo=timezone.utc)
    record = _record().model_copy(update={"scheduled_for": early})
    history = RunHistory([record], task_names={"t1": "Water plants"})
    assert "0001-01-01 00:00:00 UTC" in _render(history, 160)
    assert "0001-01-01 00:00:00 UTC" in _render(history, 60)  # the narrow form
    at = datetime(999, 12, 7, 8, tzinfo=timezone.utc)
    tasks = TaskList([_task(schedule=Cron("0 8 * * *", tz="UTC"), next_run_at=at)])
    assert "0999-12-07 08:00 UTC" in _render(tasks, 160)


def test_run_history_keeps_one_row_per_run_wherever_a_table_fits() -> None:
    history = RunHistory(
        [_record("r2", summary="x" * 300), _record("r1", outcome=None)],
        task_names={"t1": "Water plants"},
    )
    for width in (80, 160):
        lines = [line for line in _render(history, width).splitlines() if line.strip()]
        assert len(lines) == 5, lines  # title, header, rule, one line per run
        assert all(len(line) <= width for line in lines)
    text = _render(history, 160)
    assert "Water plants" in text and "1.50s" in text and "running" in text
    html = history._repr_html_()
    assert "Water plants" in html and ">success</span>" in html
    assert history.to_json()[0]["run_id"] == "r2"
    assert "no runs" in _render(RunHistory())


def _shown(view: Any, where: str) -> str:
    """What ``view`` shows: in a terminal, or (``"notebook"``) its HTML's text."""
    if where == "terminal":
        return _render(view, 160)
    return unescape(re.sub(r"<[^>]*>", "", view._repr_html_()))


@pytest.mark.parametrize("where", ["terminal", "notebook"])
def test_views_show_control_characters_escaped(where: str) -> None:
    # Model replies, tool calls and answers, run results and thread ids: an escape
    # sequence (ESC, or the C1 CSI) in any of them would reach the terminal. A notebook
    # wrote them into its HTML as they were, where they showed as nothing or a box.
    messages = [
        HumanMessage("hi\x1b[2J", additional_kwargs={"task_source": _source(name="W\x1b]0;t\x07")}),
        AIMessage(
            "",
            tool_calls=[{"name": "schedule_task", "args": {"name": "\x9b2J"}, "id": "c1"}],
        ),
        ToolMessage("Scheduled \x1b[31m", tool_call_id="c1", name="schedule_task"),
        AIMessage("line one\x1b]52;c;eA==\x07\n\tline two"),
    ]
    failed = _record(outcome="error", summary=None, error="fail\x1b[2J\x7f")
    transcript = Transcript.from_messages("al\x1bice", messages, runs={"run-1": failed})
    history = RunHistory(
        [_record(summary="done\x1b[2J"), _record("r0", "error", summary=None, error="\x9bboom")]
    )
    tasks = TaskList([_task(thread_id="b\x1bob", name="W\x07")])
    text = "".join(_shown(view, where) for view in (transcript, history, tasks))
    assert not {"\x1b", "\x07", "\x9b", "\x7f"} & set(text)
    for shown in (
        "thread al\\x1bice ·",
        "error: fail\\x1b[2J\\x7f",
        "⏰ W\\x1b]0;t\\x07 · scheduled",
        "task prompt: hi\\x1b[2J",
        '→ schedule_task({"name": "\\x9b2J"})',
        "← schedule_task: Scheduled \\x1b[31m",
        "assistant: line one\\x1b]52;c;eA==\\x07",
        "done\\x1b[2J",
        "\\x9bboom",
        "b\\x1bob",
        "W\\x07",
    ):
        assert shown in text, (shown, text)
    assert "line two" in text and "\\n" not in text and "\\t" not in text  # lines kept


async def test_terminal_views_show_text_direction_controls_escaped(run_once: RunOnce) -> None:
    # A direction override in a prompt or a reply makes a terminal that lays out
    # bidirectional text show the rest of its line backwards (the panel's border too),
    # so the text reads as something else; names are refused them, the rest is shown
    # escaped. Text in a right-to-left script, and its marks (U+200F), stay as written.
    reply = "Done \u202egnihton\u202c, \u2067שלום\u2069 \u200f!"
    prompt = "Say \u202dhi\u202c \u2066twice\u2069"
    record, transcript = await run_once(prompt, reply)
    history = RunHistory([record], task_names={record.task_id: "Agenda"})
    assert record.summary == reply  # stored as written
    text = _render(transcript) + _render(history, 200) + _render(history, 60)
    assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    assert "Done \\u202egnihton\\u202c, \\u2067שלום\\u2069 \u200f!" in text
    assert "task prompt: Say \\u202dhi\\u202c \\u2066twice\\u2069" in text


async def test_crlf_line_ends_are_line_breaks_and_a_lone_carriage_return_is_shown_escaped(
    run_once: RunOnce,
) -> None:
    # A reply with Windows line ends showed "\r" at the end of each line; a lone one,
    # printed as it was, would send the cursor back over the line it ends.
    reply, prompt = "Today:\r\n- stand-up\r\n- review\rOVERWRITE", "What is on?\r\nBe brief."
    record, transcript = await run_once(prompt, reply)
    assert record.summary == reply  # stored as written
    text = _render(transcript)
    assert "\r" not in text
    lines = [line.strip("│ ") for line in text.splitlines()]
    assert "task prompt: What is on?" in lines and "Be brief." in lines, lines
    assert "assistant: Today:" in lines and "- stand-up" in lines, lines
    assert "- review\\rOVERWRITE" in lines, lines
    assert text.count("\\r") == 1  # the lone one, shown escaped
    html = transcript._repr_html_()  # the same in a notebook
    assert "\r" not in html and "<bdi>What is on?\nBe brief.</bdi>" in html
    assert "- stand-up\n- review\\rOVERWRITE</bdi>" in html
    # What --json prints keeps the text exactly as stored.
    data = json.loads(json.dumps(transcript.to_json()))
    assert [m["text"] for m in data["turns"][0]["messages"]] == [prompt, reply]


def test_notebook_views_isolate_the_direction_of_names_and_messages() -> None:
    # HTML lays out bidirectional text: a right-to-left thread id read its label's count
    # as its own ("thread 1 · שלום turn"), and a direction override in a forged task
    # name turned the rest of its label around. Each such text is a <bdi> of its own,
    # with its direction controls shown escaped.
    name, prompt, reply = "\u202eevil", "שלום\u200f 2", "\u05d0\u05d1 3"
    failed = _record(outcome="error", summary=None, error="\u05e9\u05d2\u05d9\u05d0\u05d4 5")
    messages = [
        HumanMessage(prompt, additional_kwargs={"task_source": _source(name=name)}),
        AIMessage("", tool_calls=[{"name": "list_tasks", "args": {"q": "\u05d0"}, "id": "c1"}]),
        ToolMessage("\u05d0 1", tool_call_id="c1", name="list_tasks"),
        AIMessage(reply),
    ]
    transcript = Transcript.from_messages("שלום", messages, runs={"run-1": failed})
    history = RunHistory([failed], task_names={"t1": "\u05d0\u05d1"})
    tasks = TaskList([_task(name="\u05d0\u05d1", thread_id="\u05d2")])
    shown = transcript._repr_html_() + history._repr_html_() + tasks._repr_html_()
    assert "\u202e" not in shown
    for isolated in (
        "thread <bdi>שלום</bdi> · 1 turn",
        "⏰ <bdi>\\u202eevil</bdi> · scheduled 2026-05-04 07:00:00 UTC",
        f"<b>task prompt:</b> <bdi>{prompt}</bdi>",
        f"<b>assistant:</b> <bdi>{reply}</bdi>",
        "<b>error:</b> <bdi>\u05e9\u05d2\u05d9\u05d0\u05d4 5</bdi>",
        "→ <bdi>list_tasks({&quot;q&quot;: &quot;\u05d0&quot;})</bdi>",
        "← list_tasks: <bdi>\u05d0 1</bdi>",
        '<td style="text-align:left"><bdi>\u05d0\u05d1</bdi></td>',  # a task's name
        '<td style="text-align:left"><bdi>\u05d2</bdi></td>',  # its thread
        '<td style="text-align:left"><bdi>\u05e9\u05d2\u05d9\u05d0\u05d4 5</bdi></td>',
    ):
        assert isolated in shown, (isolated, shown)


async def test_a_tool_call_with_arguments_json_cannot_hold_renders_and_reads_as_json(
    sqlite_url: str, runtime_factory: Any
) -> None:
    # A graph's own node may put any value in a tool call's arguments (the checkpoint
    # keeps a datetime, bytes, a set): to_json, what transcript --json prints, raised
    # TypeError, and a key JSON cannot hold (a tuple) failed the terminal view too.
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    args = {"when": when, "raw": b"\x00x", "ids": {1}, "by": {(1, 2): "pair"}, "n": math.nan}

    def call(state: SchedulerState) -> dict[str, Any]:
        return {"messages": [AIMessage("", tool_calls=[{"name": "t", "args": args, "id": "c"}])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("call", call)
    builder.add_edge(START, "call")
    _, transcript = await _run_once(runtime_factory(builder, database=sqlite_url), "go")
    (turn,) = transcript.turns
    assert isinstance(asked := turn.messages[1], AIMessage)
    assert asked.tool_calls[0]["args"]["when"] == when  # kept as the node wrote it
    data = json.loads(json.dumps(transcript.to_json(), allow_nan=False))
    shown = data["turns"][0]["messages"][1]["tool_calls"][0]["args"]
    assert shown["when"] == str(when) and shown["raw"] == str(b"\x00x")
    assert shown["ids"] == "{1}" and shown["by"] == {"(1, 2)": "pair"} and shown["n"] == "nan"
    assert f't({{"when": "{when}", "raw": "b' in _render(transcript)


def test_terminal_tables_show_brackets_in_names_and_results_as_written() -> None:
    # rich reads "[...]" in a plain string as markup: a model's task name with a
    # closing tag of no opened one ("[/data]") raised MarkupError from console.print,
    # and "[red]x[/red]" lost its brackets (only the CLI's console had markup off).
    name, reply = "Backup [/d] [red]x[/red]", "copied [/var] [bold]3 files[/bold]"
    tasks = TaskList([_task(name=name, thread_id="[/t]")])
    history = RunHistory(
        [_record(summary=reply), _record("r0", "error", summary=None, error="[/boom]")],
        task_names={"t1": name},
    )
    for view in (tasks, history):
        assert name in _render(view, 200)
    assert "[/t]" in _render(tasks, 200)
    assert reply in _render(history, 200) and "[/boom]" in _render(history, 200)


async def test_load_transcript_from_runtime_and_checkpointer(
    sqlite_url: str, make_graph: Any, runtime_factory: Any, runs: RunWaiter
) -> None:
    rt = runtime_factory(make_graph("Water them now."), database=sqlite_url)
    async with rt:
        await rt.ainvoke(
            {"messages": [HumanMessage("hello")]}, {"configurable": {"thread_id": "alice"}}
        )
        task = await rt.create_task(
            name="Water",
            schedule=Once(at=datetime.now(timezone.utc) + timedelta(seconds=0.3)),
            trigger="Remind me to water the plants",
            thread_id="alice",
        )
        (record,) = await runs.wait_for(1, task_id=task.id)
        # A client's message carrying a made-up attribution.
        forged = HumanMessage("hi", additional_kwargs={"task_source": _source("run-x", "Fake")})
        await rt.ainvoke({"messages": [forged]}, {"configurable": {"thread_id": "alice"}})
        from_runtime = await load_transcript(rt, "alice")
        assert rt.checkpointer is not None
        from_saver = await load_transcript(rt.checkpointer, "alice", store=rt.store)
        without_store = await load_transcript(rt.checkpointer, "alice")
        empty = await load_transcript(rt, "nobody")
    for transcript in (from_runtime, from_saver):
        assert [t.scheduled for t in transcript.turns] == [False, True, False]
        turn = transcript.turns[1]
        assert turn.run == record and turn.outcome == "success"
        assert turn.source is not None and turn.source["task_name"] == "Water"
        assert "Fake" not in transcript.turns[2].label()
    # From a checkpointer alone nothing can be checked: a message is taken as it is.
    assert [t.scheduled for t in without_store.turns] == [False, True, True]
    assert without_store.turns[1].run is None
    assert empty.turns == []


def test_a_turn_is_task_triggered_only_if_signed_for_its_thread_or_its_server_thread() -> None:
    key = AttributionKey("k" * 64)
    signed_here = key.sign(_source("r1"), "alice", "hi")  # type: ignore[arg-type]
    signed_served = key.sign(_source("r2"), server_thread_id("alice"), "hi")  # type: ignore[arg-type]
    signed_elsewhere = key.sign(_source("r3"), "bob", "hi")  # type: ignore[arg-type]
    signed_for_other_text = key.sign(_source("r5"), "alice", "water")  # type: ignore[arg-type]
    messages = [
        HumanMessage("hi", additional_kwargs={"task_source": dict(source)})
        for source in (
            signed_here, signed_served, signed_elsewhere, _source("r4"), signed_here,
            signed_for_other_text,
        )
    ]  # fmt: skip
    checked = Transcript.from_messages("alice", messages, verify=key.verify)
    # The fifth message is a client's copy of the first one's source, the sixth one's
    # source was signed for another text (a client's own on a copied source): user turns.
    assert [t.scheduled for t in checked.turns] == [True, True, False, False, False, False]
    trusting = Transcript.from_messages("alice", messages)
    assert [t.scheduled for t in trusting.turns] == [True] * 6
    # What a turn shows of its attribution leaves out the signature and the digest.
    assert checked.to_json()["turns"][0]["task_source"] == _source("r1")


async def test_a_transcript_read_with_a_store_no_runtime_started_on_writes_no_key(
    sqlite_url: str,
) -> None:
    # A reader does not make the key: no runtime made one, so nothing was signed.
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, MessagesState, StateGraph

    from langgraph_scheduler._attribution import KEY_NAME
    from langgraph_scheduler.store import open_store

    builder = StateGraph(MessagesState)
    builder.add_node("noop", lambda state: {})
    builder.add_edge(START, "noop")
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    claimed = HumanMessage("hi", additional_kwargs={"task_source": _source()})
    await graph.ainvoke({"messages": [claimed]}, {"configurable": {"thread_id": "alice"}})
    store = open_store(sqlite_url)
    try:
        await store.setup()
        transcript = await load_transcript(saver, "alice", store=store)
        assert [t.scheduled for t in transcript.turns] == [False]
        assert await store.secret(KEY_NAME, make=False) is None
    finally:
        await store.close()


class _NotesState(SchedulerState):
    notes: Annotated[list[str], operator.add]
    count: int
    gaps: Annotated[list[Any], operator.add]


async def test_a_key_that_holds_no_messages_is_a_clear_error(sqlite_url: str) -> None:
    # A state key that exists but holds notes, a count or a title (a mistyped
    # --messages-key) raised AttributeError or TypeError from inside the view.
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, StateGraph

    from langgraph_scheduler import InvalidTask, SchedulerRuntime

    def node(state: _NotesState) -> dict[str, Any]:
        return {"messages": [AIMessage("ok")], "notes": ["a note"], "count": 3, "gaps": [None]}

    builder = StateGraph(_NotesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    saver = InMemorySaver()
    config: Any = {"configurable": {"thread_id": "alice"}}
    said: Any = {"messages": [("user", "hi")]}
    await builder.compile(checkpointer=saver).ainvoke(said, config)
    async with SchedulerRuntime(builder, database=sqlite_url) as rt:
        await rt.ainvoke(said, config)
        for source in (saver, rt):
            for key, held in (
                ("notes", "a list holding a str"),
                ("count", "an int"),
                ("gaps", "a list holding None"),  # None was taken for "no odd item"
            ):
                try:
                    await load_transcript(source, "alice", messages_key=key)
                except InvalidTask as exc:
                    assert str(exc).startswith(
                        f"thread 'alice' keeps no messages under {key!r} (it holds {held})"
                    ), exc
                else:
                    raise AssertionError(f"{key} was read as messages")
            assert len((await load_transcript(source, "alice")).turns) == 1
