"""The ``langgraph-scheduler`` command line: in-process ``main([...])`` and real subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from langgraph_scheduler import Interval, SchedulerRuntime, TaskOptions
from langgraph_scheduler.cli import main
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.testing import FakeClock

from .helpers import assert_no_url_secret, build_graph, secret_url, shown_url

ROOT = Path(__file__).resolve().parents[1]

GRAPH_MODULE = """
from langgraph.graph import START, StateGraph
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.state import SchedulerState

model = ScriptedChatModel(steps=["Reminder sent."], delay_secs={delay})


async def call_model(state):
    return {{"messages": [await model.ainvoke(state["messages"])]}}


builder = StateGraph(SchedulerState)
builder.add_node("model", call_model)
builder.add_edge(START, "model")
graph = builder.compile()
"""


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Processes the test starts take Ctrl-C (SIGINT) as from a terminal. A test run
    started with SIGINT ignored (a script's background job, ``nohup``) passes that on to
    each process it starts, and a CLI that inherits it rightly ignores Ctrl-C; a handler
    here instead is reset to the default in the child."""
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if before is signal.SIG_IGN:
            signal.signal(signal.SIGINT, before)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _add(capsys: pytest.CaptureFixture[str], db: str, *extra: str) -> dict[str, Any]:
    code, out, err = _cli(
        capsys,
        "tasks", "add", "--database", db, "--json",
        "--prompt", "Summarise my inbox", *extra,
    )  # fmt: skip
    assert code == 0, err
    task: dict[str, Any] = json.loads(out)
    return task


def _run_prompt(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, prompt: str
) -> dict[str, Any]:
    """A task with ``prompt`` on thread ``alice``, added and run once by hand."""
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice", "--prompt", prompt)
    graph = _graph_file(tmp_path, "prompt_graph")
    code, _, err = _cli(capsys, "tasks", "run", task["id"], "--database", db,
                        "--graph", f"{graph}:graph")  # fmt: skip
    assert code == 0, err
    return task


def _rename_by_hand(path: Path, task_id: str, name: str) -> None:
    """Give a stored task ``name`` as a row written by hand (or by an earlier version,
    which took names the service now refuses) would hold it."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        changed = conn.execute(
            "UPDATE lgs_tasks SET name = ?, version = version + 1 WHERE id = ?", (name, task_id)
        ).rowcount
    assert changed == 1


def _run_a_task(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, *add: str
) -> dict[str, Any]:
    """A task added with ``add`` and run once with ``tasks run``: the task."""
    task = _add(capsys, db, "--schedule", "in 1 hour", *add)
    graph = _graph_file(tmp_path, "run_graph")
    code, _, err = _cli(
        capsys, "tasks", "run", task["id"], "--database", db, "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    return task


def _graph_file(tmp_path: Path, name: str = "mygraph", *, delay: float = 0.0) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(GRAPH_MODULE.format(delay=delay))
    return path


def test_tasks_add_list_show_pause_resume_delete(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    task = _add(
        capsys, db, "--schedule", "every weekday at 9:00", "--tz", "Europe/Berlin",
        "--thread", "alice", "--name", "Inbox",
    )  # fmt: skip
    assert task["name"] == "Inbox" and task["state"] == "active"
    assert task["schedule"] == {
        "kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin", "start": None, "end": None
    }  # fmt: skip
    assert task["thread_id"] == "alice" and task["owner"] == "alice"  # as the tools do
    task_id = task["id"]

    code, out, _ = _cli(capsys, "tasks", "list", "--database", db, "--json")
    assert code == 0 and [t["id"] for t in json.loads(out)] == [task_id]
    code, out, _ = _cli(capsys, "tasks", "list", "--database", db)
    assert code == 0 and task_id in out and "Inbox" in out

    code, out, _ = _cli(capsys, "tasks", "show", task_id, "--database", db, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["task"]["id"] == task_id and shown["runs"] == []
    assert len(shown["next_runs"]) == 5 and shown["next_runs"][0].endswith(("+01:00", "+02:00"))
    code, out, _ = _cli(capsys, "tasks", "show", task_id, "--database", db)
    assert code == 0 and "Summarise my inbox" in out and "Monday–Friday" in out

    code, out, _ = _cli(capsys, "tasks", "pause", task_id, "--database", db)
    assert code == 0 and "paused" in out
    code, out, _ = _cli(capsys, "tasks", "list", "--database", db, "--state", "paused", "--json")
    assert [t["id"] for t in json.loads(out)] == [task_id]
    assert json.loads(out)[0]["next_run_at"] is None
    code, out, _ = _cli(capsys, "tasks", "resume", task_id, "--database", db, "--json")
    resumed = json.loads(out)
    assert code == 0 and resumed["state"] == "active" and resumed["next_run_at"]

    code, out, _ = _cli(capsys, "tasks", "delete", task_id, "--database", db)
    assert code == 0 and "deleted" in out
    code, out, _ = _cli(capsys, "tasks", "list", "--database", db, "--json")
    assert json.loads(out) == []


def test_isolated_task_gets_the_default_owner_and_a_name_from_its_prompt(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    task = _add(capsys, db, "--schedule", "every 2 hours", "--max-runs", "3", "--paused")
    assert task["thread_id"] is None and task["thread_mode"] == "isolated"
    assert task["owner"] == "default" and task["name"] == "Summarise my inbox"
    assert task["state"] == "paused" and task["max_runs"] == 3
    assert task["schedule"]["start"] is not None  # the interval's phase is pinned at creation


@pytest.mark.parametrize(
    ("prompt", "name"),
    [
        ("x" * 300, "x" * 199 + "…"),  # cut within the limit of 200
        ("hi " + "y" * 300, "hi " + "y" * 196 + "…"),
        ("remind\x1b[31m me", "remind [31m me"),  # a control character is a space
        ("ring\x07\x07 the\u2028bell\x9b now", "ring the bell now"),
        ("open a\u202etxt.exe", "open a txt.exe"),  # a text-direction control too
        ("\x1b\x07", "untitled task"),  # nothing readable left
        ("\u200b\u2066", "untitled task"),
    ],
)
def test_a_task_added_without_a_name_is_named_from_any_prompt(
    capsys: pytest.CaptureFixture[str], db: str, prompt: str, name: str
) -> None:
    # A long first word made a name over the limit, a control character one a name may
    # not hold: the add failed, naming neither --prompt nor --name.
    task = _add(capsys, db, "--schedule", "in 1 hour", "--prompt", prompt)
    assert task["name"] == name and task["payload"]["prompt"] == prompt
    code, out, err = _cli(capsys, "tasks", "list", "--database", db, "--json")
    assert code == 0 and [listed["name"] for listed in json.loads(out)] == [name], err
    code, out, err = _cli(capsys, "tasks", "show", task["id"], "--database", db)
    assert code == 0 and name.split()[0][:20] in out and "\x1b" not in out, err


@pytest.mark.parametrize(
    "command",
    [
        ["tasks", "show", "nope"],
        ["tasks", "pause", "nope"],
        ["tasks", "resume", "nope"],
        ["tasks", "delete", "nope"],
        ["runs", "--task", "nope"],
    ],
)
def test_unknown_task_id_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], db: str, command: list[str]
) -> None:
    _add(capsys, db, "--schedule", "in 1 hour")  # the database exists
    code, out, err = _cli(capsys, *command, "--database", db)
    assert code == 1 and out == ""
    assert err == "error: no task with id 'nope'; list tasks to see the valid ids\n"


@pytest.mark.parametrize("action", ["show", "pause", "resume", "delete", "run"])
def test_an_unknown_task_id_is_quoted_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, action: str
) -> None:
    # tasks run " nope " said "no task with id 'nope'" (the id stripped), the other
    # actions "' nope '".
    _add(capsys, db, "--schedule", "in 1 hour")
    graph = ["--graph", f"{_graph_file(tmp_path)}:graph"] if action == "run" else []
    code, out, err = _cli(capsys, "tasks", action, " nope ", "--database", db, *graph)
    assert code == 1 and out == ""
    assert err == "error: no task with id ' nope '; list tasks to see the valid ids\n"


def test_a_postgresql_database_that_cannot_be_reached_is_one_line_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://app:s3cret@127.0.0.1:{port}/agents"
    code, out, err = _cli(capsys, "tasks", "list", "--database", url)
    assert code == 1 and out == ""
    assert err.startswith("error: database postgresql+psycopg://app:***@127.0.0.1:")
    assert "unavailable" in err and "s3cret" not in err and "Traceback" not in err


def test_usage_and_input_errors(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    code, _, err = _cli(capsys, "tasks", "list", "--database", missing)
    assert code == 1 and err.startswith("error: no scheduler database at") and "--database" in err
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database
    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    code, _, err = _cli(capsys, "tasks", "list", "--database", f"sqlite:///{other}")
    assert code == 1 and err.startswith(f"error: no langgraph-scheduler tables in {other} (")
    assert "(it holds orders); is this the right database?" in err
    with contextlib.closing(sqlite3.connect(other)) as conn:  # nor adds its tables to one
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["orders"]

    code, _, err = _cli(
        capsys, "tasks", "add", "--database", db, "--schedule", "every blue moon", "--prompt", "x"
    )
    assert code == 1
    assert err.splitlines()[0] == "error: could not understand the schedule 'every blue moon'."
    assert "every weekday at 9am" in err  # the accepted forms follow

    code, _, err = _cli(
        capsys, "tasks", "add", "--database", db, "--schedule", "in 1 hour", "--prompt", "x",
        "--tz", "Mars/Olympus",
    )  # fmt: skip
    assert code == 1 and err.startswith("error: unknown timezone 'Mars/Olympus'")

    code, _, err = _cli(capsys, "tasks", "run", "abc", "--database", db)
    assert code == 1 and "needs the graph: pass --graph module:attribute" in err
    code, _, err = _cli(capsys, "serve", "--graph", "no_such_module:graph", "--database", db)
    assert code == 1 and err.startswith("error: cannot import no_such_module")
    code, _, err = _cli(capsys, "serve", "--graph", "json:dumps", "--database", db)
    assert code == 1 and "json:dumps needs arguments" in err
    code, _, err = _cli(capsys, "serve", "--graph", "json:JSONDecoder", "--database", db)
    assert code == 1 and "expected a compiled graph, a StateGraph" in err
    code, _, err = _cli(capsys, "serve", "--graph", "sys:maxsize", "--database", db)
    assert code == 1 and err.startswith("error: sys:maxsize is an int; expected a compiled")
    code, _, err = _cli(
        capsys, "serve", "--graph", "importlib:invalidate_caches", "--database", db
    )  # a function returning None: it read "is a NoneType"
    assert code == 1 and err.startswith(
        "error: importlib:invalidate_caches is None; expected a compiled graph"
    )

    with pytest.raises(SystemExit) as exc:
        main(["tasks"])
    assert exc.value.code == 2
    assert "required: ACTION" in capsys.readouterr().err

    huge = "99999999999999999999"  # more than SQLite's integers hold
    for command, value in (
        ("tasks", "-1"),
        ("tasks", "0"),
        ("tasks", huge),
        ("runs", "-1"),
        ("runs", "many"),
        ("runs", huge),
    ):
        args = [command, *(["list"] if command == "tasks" else []), "--limit", value]
        with pytest.raises(SystemExit) as exc:
            main([*args, "--database", db])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --limit: {value!r}" in err or f"argument --limit: {value} is" in err


@pytest.mark.parametrize(
    ("command", "refused"),
    [
        (["serve"], ["--drain-timeout", "nan"]),
        (["serve"], ["--drain-timeout", "-1"]),
        (["serve"], ["--max-concurrency", "0"]),
        (["serve"], ["--max-concurrency", str(2**64)]),
        (["tasks", "add"], ["--schedule", "in 1 hour", "--prompt", "x", "--max-runs", "0"]),
        (["tasks", "add"], ["--schedule", "in 1 hour", "--prompt", "x", "--thread", "t" * 300]),
        (["tasks", "add"], ["--schedule", "in 1 hour", "--prompt", "x", "--owner", "o" * 300]),
        (["tasks", "list"], ["--thread", " "]),
        (["transcript", "t"], ["--messages-key", ""]),
    ],
)
def test_a_refused_option_is_named_as_typed(
    capsys: pytest.CaptureFixture[str],
    db: str,
    tmp_path: Path,
    command: list[str],
    refused: list[str],
) -> None:
    # The runtime's refusal named its Python argument: "--drain-timeout nan" answered
    # "drain_timeout_secs must be 0 or more seconds", which the command line has not.
    graph = ["--graph", f"{_graph_file(tmp_path)}:graph"] if command == ["serve"] else []
    _add(capsys, db, "--schedule", "in 1 hour")  # a database for the reading commands
    code, out, err = _cli(capsys, *command, "--database", db, *graph, *refused)
    option = refused[-2]  # the option refused, given last
    assert code == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {option} "), err
    assert "_secs" not in err and "max_concurrency" not in err and "thread_id" not in err


_BLANK_PROMPT = "--prompt must not be blank; give it the message the agent gets when the task fires"


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (["--prompt", ""], _BLANK_PROMPT),
        (["--prompt", "   "], _BLANK_PROMPT),
        (["--prompt", "p" * 8001], "--prompt: String should have at most 8000 characters"),
        (
            ["--prompt", "bad \udcff byte"],  # a byte no UTF-8 reads, as Python passes it on
            "--prompt: Input should be a valid string, unable to parse raw data as a unicode "
            "string",
        ),
        (["--prompt", "x", "--name", ""], "--name must not be empty"),
        (["--prompt", "x", "--name", "n" * 201], "--name is 201 characters; the limit is 200"),
        (
            ["--prompt", "x", "--name", "a\x1bb"],
            "--name must be one line of text without control characters, found U+001B: give "
            "it a short label on one line",
        ),
    ],
)
def test_a_refused_prompt_or_name_is_named_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, refused: list[str], said: str
) -> None:
    # The task's refusal named its payload field or its Python words: --prompt "" said
    # "invalid task payload: field 'prompt': String should have at least 1 character".
    code, out, err = _cli(
        capsys, "tasks", "add", "--database", db, "--schedule", "in 1 hour", *refused
    )
    assert code == 1 and out == ""
    assert err == f"error: {said}\n"


@pytest.mark.parametrize("action", ["show", "pause", "resume", "delete", "run"])
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_task_id_is_refused_naming_the_argument_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, action: str, blank: str
) -> None:
    # A blank TASK_ID was refused as "task_id must be a non-blank string": the Python
    # argument's name, which the command line has not.
    _add(capsys, db, "--schedule", "in 1 hour")
    graph = ["--graph", f"{_graph_file(tmp_path)}:graph"] if action == "run" else []
    code, out, err = _cli(capsys, "tasks", action, blank, "--database", db, *graph)
    assert code == 1 and out == ""
    assert err == (
        f"error: TASK_ID must be a non-blank string, got {blank!r}; list tasks to see the "
        "valid ids\n"
    )


@pytest.mark.parametrize(
    ("typed", "echoed"),
    [("-1", "-1"), ("-1.50", "-1.50"), ("-2e3", "-2e3"), ("NaN", "NaN"), (" -1 ", "-1")],
)
def test_a_refused_number_is_echoed_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, typed: str, echoed: str
) -> None:
    # The refusal echoed the number read from the text: "--drain-timeout -1" said
    # "got -1.0", which the user did not type.
    graph = f"{_graph_file(tmp_path)}:graph"
    code, out, err = _cli(
        capsys, "serve", "--database", db, "--graph", graph, f"--drain-timeout={typed}"
    )
    assert code == 1 and out == ""
    assert err == f"error: --drain-timeout must be 0 or more seconds, got {echoed}\n"


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (
            ["tasks", "add", "--schedule", "in 1 hour", "--prompt", "x", "--max-runs", "-01"],
            "--max-runs must be a whole number from 1 to 1,000,000, got -01 (leave it out to "
            "repeat until the task is deleted)",
        ),
        (["serve", "--max-concurrency", " 00"], "--max-concurrency must be at least 1, got 00"),
        (
            ["serve", f"--max-concurrency=+{2**64}"],
            f"--max-concurrency must be at most 1,000,000, got +{2**64}",
        ),
    ],
)
def test_a_refused_whole_number_is_echoed_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, refused: list[str], said: str
) -> None:
    # A whole-number option's refusal echoed the number read from the text:
    # "--max-runs -01" said "got -1", which the user did not type.
    graph = ["--graph", f"{_graph_file(tmp_path)}:graph"] if refused[0] == "serve" else []
    code, out, err = _cli(capsys, *refused, "--database", db, *graph)
    assert code == 1 and out == ""
    assert err == f"error: {said}\n"


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (["tasks", "list", "--limit", "-01"], "argument --limit: -01 is not 1 or more"),
        (["runs", "--limit", "1_000_001"], "argument --limit: 1_000_001 is more than 1,000,000"),
        (["runs", "--limit", "many"], "argument --limit: 'many' is not a whole number"),
        (
            ["serve", "--max-concurrency", "two"],
            "argument --max-concurrency: invalid int value: 'two'",
        ),
        (
            ["tasks", "add", "--schedule", "in 1 hour", "--prompt", "x", "--max-runs", "1.5"],
            "argument --max-runs: invalid int value: '1.5'",
        ),
    ],
)
def test_a_whole_number_option_given_no_count_is_bad_usage_echoing_it_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, refused: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*refused, "--database", db])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {said}")


@pytest.mark.parametrize(
    "refused",
    [
        ["--schedule", "every blue moon", "--prompt", "x"],
        ["--schedule", "in 1 hour", "--prompt", "x", "--tz", "Mars/Olympus"],
        ["--schedule", "2020-01-01T09:00", "--prompt", "x"],
        ["--schedule", "in 1 hour", "--prompt", " "],
        ["--schedule", "in 1 hour", "--prompt", "x", "--name", " "],
        ["--schedule", "in 1 hour", "--prompt", "x", "--max-runs", "0"],
        ["--schedule", "in 1 hour", "--prompt", "x", "--owner", "  "],
        ["--schedule", "in 1 hour", "--prompt", "x", "--owner", ""],
    ],
)
def test_a_refused_tasks_add_creates_and_changes_no_database(
    capsys: pytest.CaptureFixture[str], database: str, tmp_path: Path, refused: list[str]
) -> None:
    # A tasks add opened its database before it checked its arguments: a refused one
    # left a mistyped path an empty scheduler database (which the reading commands then
    # took for the real one), and the scheduler's tables in an application's database.
    app = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(app)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    for url in (database, f"sqlite:///{app}"):
        code, out, err = _cli(capsys, "tasks", "add", "--database", url, *refused)
        assert code == 1 and out == "" and err.startswith("error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # none made
    with contextlib.closing(sqlite3.connect(app)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["orders"]
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database) as conn:
            query = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'lgs%'"
            assert conn.execute(query).fetchone() == (0,)


def test_blank_owner_and_task_options_are_refused_naming_them(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # --owner "  " stored a task under a blank owner (while --owner "" became
    # 'default'), and runs --task "" listed the runs of every task.
    _run_a_task(capsys, db, tmp_path)
    for blank in ("", "  "):
        code, out, err = _cli(
            capsys, "tasks", "add", "--database", db, "--schedule", "in 1 hour", "--prompt",
            "x", "--owner", blank,
        )  # fmt: skip
        assert code == 1 and out == ""
        assert err == (
            "error: --owner must not be blank; omit it for the default (the thread id, "
            "else 'default')\n"
        )
        code, out, err = _cli(capsys, "runs", "--database", db, "--task", blank)
        assert code == 1 and out == ""
        assert err == "error: --task must not be blank; omit it for the runs of every task\n"
    code, out, _ = _cli(capsys, "tasks", "list", "--database", db, "--json")
    assert code == 0 and len(json.loads(out)) == 1  # none added


def test_tasks_run_on_a_database_without_the_scheduler_creates_and_changes_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # tasks run set up the database it was given before it looked for the task: a
    # mistyped path became an empty scheduler database, an application's database got
    # the scheduler's tables, and the error only said the task id was unknown.
    graph = _graph_file(tmp_path)
    app = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(app)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    for path, expected in (
        (tmp_path / "typo.db", f"error: no scheduler database at {tmp_path / 'typo.db'}: "),
        (app, f"error: no langgraph-scheduler tables in {app} (it holds orders); "),
    ):
        code, out, err = _cli(
            capsys, "tasks", "run", "abc", "--database", f"sqlite:///{path}",
            "--graph", f"{graph}:graph",
        )  # fmt: skip
        assert code == 1 and out == "" and err.startswith(expected), err
        assert "--database" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["app.db"]
    with contextlib.closing(sqlite3.connect(app)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["orders"]


def test_task_commands_on_a_database_without_the_scheduler_refuse_and_set_none_up(
    capsys: pytest.CaptureFixture[str], database: str, tmp_path: Path
) -> None:
    # On PostgreSQL, tasks pause|resume|delete|run against a fresh database (a mistyped
    # name, an application's) set the scheduler's tables up in it, then called the task
    # id unknown. Only tasks add and serve set a database up.
    graph = _graph_file(tmp_path)
    sqlite = database.startswith("sqlite")
    if sqlite:
        (tmp_path / "scheduler.db").touch()  # a file SQLite reads as an empty database
    shown = tmp_path / "scheduler.db" if sqlite else database
    for command in (
        ["tasks", "pause", "abc"],
        ["tasks", "resume", "abc"],
        ["tasks", "delete", "abc"],
        ["tasks", "run", "abc", "--graph", f"{graph}:graph"],
        ["tasks", "list"],
        ["tasks", "show", "abc"],
        ["runs"],
        ["transcript", "alice"],
    ):
        code, out, err = _cli(capsys, *command, "--database", database)
        assert code == 1 and out == "", command
        assert err == (
            f"error: no langgraph-scheduler tables in {shown}; is this the right database? "
            "If so, 'tasks add' or 'serve' sets them up; if not, pass --database (or set "
            "LANGGRAPH_SCHEDULER_DATABASE) to the one 'serve' uses\n"
        ), command
    if sqlite:
        assert (tmp_path / "scheduler.db").stat().st_size == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mygraph.py", "scheduler.db"]
    else:
        import psycopg

        with psycopg.connect(database) as conn:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            assert conn.execute(query).fetchall() == []


@pytest.mark.parametrize("memory", ["sqlite://", "sqlite:///:memory:"])
def test_task_changes_on_a_database_in_memory_are_refused(
    capsys: pytest.CaptureFixture[str], memory: str
) -> None:
    # tasks add said "created task …" on a database that was gone once it returned, so
    # no serve ever saw the task; pause, resume and delete called every id unknown.
    for command in (
        ["add", "--schedule", "in 1 hour", "--prompt", "x"],
        ["pause", "abc"],
        ["resume", "abc"],
        ["delete", "abc"],
    ):
        code, out, err = _cli(capsys, "tasks", *command, "--database", memory)
        assert code == 1 and out == "", out
        assert err == (
            f"error: {memory} is a database in this command's memory, gone once it ends: "
            "pass --database sqlite:///file.db (or set LANGGRAPH_SCHEDULER_DATABASE) to "
            "the one 'serve' uses\n"
        )


def test_a_graph_module_that_fails_to_load_is_one_line_naming_where(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # A --graph module with a syntax error, or raising as it is imported or its factory
    # called, ended the command with Python's traceback instead of one error line.
    (tmp_path / "broken.py").write_text("graph = (\n")
    (tmp_path / "raising.py").write_text("x = 1\nraise RuntimeError('no API key set')\n")
    (tmp_path / "factory.py").write_text("def make():\n    raise KeyError('model')\n")
    for ref, expected in (
        ("broken.py:graph", "error: cannot import {path}: SyntaxError: "),
        ("raising.py:graph", "error: cannot import {path}: RuntimeError: no API key set ("),
        ("factory.py:make", "error: {ref} failed: KeyError: 'model' ("),
    ):
        path = tmp_path / ref.partition(":")[0]
        code, _, err = _cli(capsys, "serve", "--graph", f"{tmp_path / ref}", "--database", db)
        assert code == 1
        assert err.startswith(expected.format(path=path, ref=tmp_path / ref)), err
        assert f"{path.name}, line " in err and len(err.splitlines()) == 1, err


def test_a_graph_attribute_that_fails_to_read_or_a_module_that_exits_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An attribute read raising (a module __getattr__, a property of a module's class)
    # printed Python's traceback; a module or factory calling sys.exit() ended the
    # command with its status and no error line.
    (tmp_path / "lazy.py").write_text(
        "def __getattr__(name):\n    raise RuntimeError('lazy load failed')\n"
    )
    (tmp_path / "prop.py").write_text(
        "import sys, types\n\n\nclass _Module(types.ModuleType):\n    @property\n"
        "    def graph(self):\n        raise LookupError('no graph configured')\n\n\n"
        "sys.modules[__name__].__class__ = _Module\n"
    )
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "exits_bare.py").write_text("import sys\n\nsys.exit()\n")
    (tmp_path / "exits_later.py").write_text("import sys\ndef make():\n    sys.exit('no key')\n")
    database = f"sqlite:///{tmp_path / 'never.db'}"
    for ref, expected, line in (
        ("lazy.py:graph", "error: cannot read {ref}: RuntimeError: lazy load failed (", 2),
        ("prop.py:graph", "error: cannot read {ref}: LookupError: no graph configured (", 7),
        ("exits.py:graph", "error: importing {path} called sys.exit(3) (", 2),
        ("exits_bare.py:graph", "error: importing {path} called sys.exit() (", 3),
        ("exits_later.py:make", "error: {ref} called sys.exit('no key') (", 3),
    ):
        path = tmp_path / ref.partition(":")[0]
        code, out, err = _cli(
            capsys, "serve", "--graph", f"{tmp_path / ref}", "--database", database
        )
        assert code == 1 and out == ""
        assert err.startswith(expected.format(path=path, ref=tmp_path / ref)), err
        assert err.endswith(f"{path.name}, line {line})\n") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "never.db").exists()
    # A real process too: exit status 1, as for any error, not the module's 3.
    result = subprocess.run(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "run", "abc", "--graph",
         "exits.py:graph", "--database", database],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: importing exits.py called sys.exit(3) ("), result
    assert len(result.stderr.splitlines()) == 1


def test_a_database_path_that_is_not_utf8_is_one_line_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A file name in another encoding reaches Python with a lone surrogate ("caf\xe9" in
    # Latin-1): the store opened and made the file, then rendering the URL for the log
    # raised UnicodeEncodeError, a traceback, leaving the runtime started.
    database = f"sqlite:///{tmp_path}/caf\udce9.db"
    for args in (("tasks", "add", "--schedule", "in 1 hour", "--prompt", "x"), ("runs",)):
        code, _, err = _cli(capsys, *args, "--database", database)
        assert code == 1 and err.startswith("error: database URL "), err
        assert "is not UTF-8" in err and "caf\\udce9.db" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_shows_tool_call_attributed_turns_and_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = _cli(capsys, "demo", "--dir", str(tmp_path))
    assert code == 0, err
    assert "minimum interval to 1 second" in out  # the demo says it relaxed the limits
    assert '→ schedule_task({"name": "Stretch", "schedule": "every 2 seconds"' in out
    assert out.count("╭─ ⏰ Stretch · scheduled") == 3
    assert "reminder #3" in out
    assert "run history (3)" in out and out.count("success") >= 6
    db = f"sqlite:///{tmp_path / 'demo.db'}"

    # The demo's database works with the other commands.
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    runs = json.loads(out)
    assert code == 0 and [r["outcome"] for r in runs] == ["success"] * 3
    code, out, _ = _cli(capsys, "runs", "--database", db, "--task", runs[0]["task_id"])
    assert code == 0 and "Stretch" in out
    code, out, _ = _cli(capsys, "transcript", "demo", "--database", db, "--json")
    transcript = json.loads(out)
    assert [t["outcome"] for t in transcript["turns"]] == [None, "success", "success", "success"]
    code, out, _ = _cli(capsys, "transcript", "demo", "--database", db)
    assert code == 0 and "thread demo · 4 turns (3 task-triggered)" in out
    code, _, err = _cli(capsys, "transcript", "nobody", "--database", db)
    assert code == 1 and err.startswith("error: no conversation thread 'nobody'")


@pytest.mark.slow
def test_demo_in_a_folder_with_url_characters_and_again_in_the_same_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "?" starts a URL's query and "%20" is an escape: the database went to a file "a"
    # beside the folder, or the demo failed on a folder "100 x"; the commands it suggests
    # were not quoted for a shell (a space split them).
    monkeypatch.chdir(tmp_path)
    folder = Path("a?b 100%20x é")
    for _run in range(2):
        code, out, err = _cli(capsys, "demo", "--dir", str(folder))
        assert code == 0, err
        # The second run on the thread shows this run's request, not the first run's turns.
        asked = out.split("you ask the assistant")[1].split("the task fires")[0]
        assert asked.count("you: Remind me to stretch") == 1, asked
        assert "outcome unknown" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    assert (folder / "demo.db").is_file()
    suggested = [line.strip() for line in out.splitlines() if line.startswith("  langgraph-")]
    assert len(suggested) == 2
    for line in suggested:
        code, shown, err = _cli(capsys, *shlex.split(line)[1:])
        assert code == 0, err
    assert "thread demo · 8 turns (6 task-triggered)" in shown


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_demo_in_a_folder_that_cannot_be_one_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, out, err = _cli(capsys, "demo", "--dir", str(tmp_path / where))
    assert code == 1 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "not a folder" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpt-4", "must be written provider:model"),
        ("", "must be written provider:model"),  # ran the scripted model
        (":", "must be written provider:model"),
        ("openai:", "must be written provider:model"),
        (" :gpt-4.1", "must be written provider:model"),
        ("no_such_provider:model-x", "cannot load model 'no_such_provider:model-x'"),
    ],
)
def test_demo_with_an_unusable_model_fails_clearly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: str, message: str
) -> None:
    code, _, err = _cli(capsys, "demo", "--dir", str(tmp_path), "--model", spec)
    assert code == 1 and message in err and "Traceback" not in err


def test_tasks_run_runs_the_turn_in_process(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice")
    graph = _graph_file(tmp_path, "run_graph")
    code, out, err = _cli(
        capsys, "tasks", "run", task["id"], "--database", db, "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    assert "⏰ Summarise my inbox · run now" in out and "Reminder sent." in out
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    (run,) = json.loads(out)
    assert run["trigger"] == "manual" and run["outcome"] == "success"


def test_tasks_run_json_stays_json_beside_the_note_on_a_runtimes_own_database(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # The note that --database is ignored went to stdout, ahead of the JSON.
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice")
    graph = _graph_file(tmp_path, "own_graph")
    module = tmp_path / "own_runtime.py"
    module.write_text(
        f"from langgraph_scheduler import SchedulerRuntime\n"
        f"from own_graph import graph\n"
        f"runtime = SchedulerRuntime(graph, database={db!r})\n"
    )
    sys.path.insert(0, str(graph.parent))
    try:
        code, out, err = _cli(
            capsys, "tasks", "run", task["id"], "--graph", f"{module}:runtime",
            "--database", f"sqlite:///{tmp_path / 'other.db'}", "--json",
        )  # fmt: skip
    finally:
        sys.path.remove(str(graph.parent))
        sys.modules.pop("own_graph", None)
    assert code == 0, err
    assert json.loads(out)["outcome"] == "success"
    assert "--database ignored" in err


def test_control_characters_in_names_and_prompts_reach_the_terminal_escaped(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name that would write the clipboard, and a prompt that would clear the screen
    # (also by a C1 CSI) and retitle the window: every command shows them escaped.
    monkeypatch.setenv("COLUMNS", "200")
    name, prompt = "N\x1b]52;c;eA==\x07", "p\x1b[2J\x9b2J\x1b]0;PWNED\x07"
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice", "--name", "N",
                "--prompt", prompt)  # fmt: skip
    assert task["payload"]["prompt"] == prompt  # stored as given
    # A name is refused such characters now, but a row of an earlier version may hold them.
    _rename_by_hand(tmp_path / "cli.db", task["id"], name)
    graph = _graph_file(tmp_path, "escape_graph")
    shown_name, shown_prompt = "N\\x1b]52;c;eA==\\x07", "p\\x1b[2J\\x9b2J\\x1b]0;PWNED\\x07"
    for command, shown in (
        (["tasks", "run", task["id"], "--graph", f"{graph}:graph"], [shown_name, shown_prompt]),
        (["tasks", "list"], [shown_name]),
        (["tasks", "show", task["id"]], [shown_name, shown_prompt]),
        (["runs"], [shown_name]),
        (["transcript", "alice"], [shown_name, shown_prompt]),
    ):
        code, out, err = _cli(capsys, *command, "--database", db)
        assert code == 0, err
        assert not {"\x1b", "\x07", "\x9b"} & set(out), (command, out)
        assert all(text in out for text in shown), (command, out)
    # JSON escapes the C0 controls, and the output escapes DEL and the C1 ones too.
    code, out, err = _cli(capsys, "tasks", "show", task["id"], "--json", "--database", db)
    assert code == 0 and not {"\x1b", "\x07", "\x9b"} & set(out), out
    assert json.loads(out)["task"]["payload"]["prompt"] == prompt


def test_emoji_codes_in_names_and_prompts_are_shown_as_typed(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rich replaces ":smile:" in a printed string with 😄 unless told not to: a task's
    # name, prompt or reply would be shown as something other than what was stored.
    monkeypatch.setenv("COLUMNS", "200")
    name, prompt = ":smile: [bold]x[/] :thumbs_up:", "p :rocket: [/] \\[x"
    code, out, err = _cli(
        capsys, "tasks", "add", "--database", db, "--name", name, "--prompt", prompt,
        "--schedule", "in 1 hour", "--thread", "alice",
    )  # fmt: skip
    assert code == 0, err
    assert f"({name!r})" in out, out
    task_id = out.split()[2]
    graph = _graph_file(tmp_path, "emoji_graph")
    for command, shown in (
        (["tasks", "show", task_id], [name, prompt]),
        (["tasks", "pause", task_id], [name]),
        (["tasks", "run", task_id, "--graph", f"{graph}:graph"], [name, prompt]),
        (["tasks", "list"], [name]),
        (["transcript", "alice"], [name, prompt]),
    ):
        code, out, err = _cli(capsys, *command, "--database", db)
        assert code == 0, err
        assert not {"😄", "👍", "🚀"} & set(out), (command, out)
        assert all(text in out for text in shown), (command, out)


def test_text_direction_controls_in_a_prompt_reach_the_terminal_escaped(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # A direction override makes a terminal that lays out bidirectional text show the
    # rest of its line backwards: the tables and the JSON show it escaped, and the JSON
    # still reads back as the prompt stored.
    prompt = "Say \u202egnihton\u202c to \u2067שלום\u2069"
    task = _run_prompt(capsys, db, tmp_path, prompt)
    controls = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    shown = "Say \\u202egnihton\\u202c to \\u2067שלום\\u2069"
    readers: list[tuple[list[str], Callable[[Any], Any]]] = [
        (["tasks", "show", task["id"]], lambda data: data["task"]["payload"]["prompt"]),
        (["transcript", "alice"], lambda data: data["turns"][0]["messages"][0]["text"]),
    ]
    for command, read in readers:
        code, out, err = _cli(capsys, *command, "--database", db)
        assert code == 0 and shown in out and not controls & set(out), (command, out)
        code, out, err = _cli(capsys, *command, "--database", db, "--json")
        assert code == 0 and not controls & set(out), (command, out)
        assert read(json.loads(out)) == prompt


def test_crlf_in_a_prompt_breaks_its_line_and_json_keeps_it_as_stored(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows line ends showed a "\r" at the end of each line of a prompt; a lone one
    # stays escaped (printed, it sends the cursor back over its line).
    monkeypatch.setenv("COLUMNS", "200")
    prompt = "Agenda:\r\n- mail\r\n- calls\rX"
    _run_prompt(capsys, db, tmp_path, prompt)
    code, out, err = _cli(capsys, "transcript", "alice", "--database", db)
    assert code == 0 and "\r" not in out, (err, out)
    lines = [line.strip("│ ") for line in out.splitlines()]
    assert "task prompt: Agenda:" in lines and "- mail" in lines, lines
    assert "- calls\\rX" in lines and out.count("\\r") == 1, lines
    code, out, err = _cli(capsys, "transcript", "alice", "--database", db, "--json")
    assert code == 0, err
    assert json.loads(out)["turns"][0]["messages"][0]["text"] == prompt


def test_the_common_options_go_before_the_action_too(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # As with `git -C` or `kubectl -n`: `tasks --database X list` used to fail with
    # "invalid choice" for the URL.
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice")
    code, out, err = _cli(capsys, "tasks", "--database", db, "--json", "list")
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)] == [task["id"]]
    code, out, _ = _cli(capsys, "tasks", "--database", db, "show", task["id"])
    assert code == 0 and task["id"] in out
    # Given in both places, the later one holds.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = _cli(capsys, "tasks", "--database", other, "list", "--database", db, "--json")
    assert code == 0 and [t["id"] for t in json.loads(out)] == [task["id"]]
    code, _, err = _cli(capsys, "tasks", "--database", db, "list", "--database", other)
    assert code == 1 and f"no scheduler database at {tmp_path / 'other.db'}" in err
    # `run` takes them too: --json prints its record.
    graph = _graph_file(tmp_path, "before_graph")
    code, out, err = _cli(
        capsys, "tasks", "--json", "--database", db, "run", task["id"], "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    record = json.loads(out)
    assert (record["task_id"], record["outcome"]) == (task["id"], "success")


def test_commands_on_each_backend(
    capsys: pytest.CaptureFixture[str], database: str, tmp_path: Path
) -> None:
    task = _add(capsys, database, "--schedule", "every day at 7:00", "--thread", "bob")
    graph = _graph_file(tmp_path, "backend_graph")
    code, _, err = _cli(
        capsys, "tasks", "run", task["id"], "--database", database, "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    code, out, _ = _cli(capsys, "runs", "--database", database, "--task", task["id"], "--json")
    (run,) = json.loads(out)
    assert run["outcome"] == "success" and run["thread_id"] == "bob"
    code, out, _ = _cli(capsys, "transcript", "bob", "--database", database, "--json")
    turns = json.loads(out)["turns"]
    assert code == 0 and turns[0]["task_source"]["run_id"] == run["run_id"]
    assert turns[0]["outcome"] == "success"
    # What the source says, not its signature (a secret-derived HMAC of no use to a reader).
    assert set(turns[0]["task_source"]) == {
        "task_id", "task_name", "run_id", "scheduled_for", "attempt", "trigger", "system_addon"
    }  # fmt: skip
    code, table, _ = _cli(capsys, "transcript", "bob", "--database", database)
    assert code == 0 and "run now" in table
    assert not re.search("[0-9a-f]{64}", out + table), out + table
    code, _, _ = _cli(capsys, "tasks", "delete", task["id"], "--database", database)
    code, out, _ = _cli(capsys, "tasks", "list", "--database", database, "--json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize("columns", [60, 80])
def test_runs_stay_readable_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str],
    db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    # Below about 70 columns rich squeezed every column of the table ("success" to "s",
    # the run id to two characters, the time cut); now a long task name folds first, and
    # a console too narrow for the table gets a block of lines per run.
    name = "Water the balcony plants every morning"
    task = _add(capsys, db, "--schedule", "every day at 8:00", "--thread", "bob", "--name", name)
    graph = _graph_file(tmp_path, "narrow_graph")
    code, _, err = _cli(
        capsys, "tasks", "run", task["id"], "--database", db, "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    (run,) = json.loads(out)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = _cli(capsys, "runs", "--database", db)
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), out
    when = datetime.fromisoformat(run["scheduled_for"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    for whole in (run["run_id"][:8], "success", when, "Reminder"):
        assert any(whole in line for line in lines), (whole, out)
    assert all(word in out.split() for word in name.split()), out  # folded, not cut
    if columns == 60:
        assert "  task: Water the balcony plants every morning" in out, out


@pytest.mark.parametrize("columns", [60, 80])
def test_tasks_stay_readable_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], db: str, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    # Below about 80 columns (for these names) rich squeezed the table: the next run's day
    # was cut ("2026-12-" and "07"), the runs cut to "ru" or left out. A console too
    # narrow for the table gets a block of lines per task, as runs does.
    name = "Water the balcony plants every morning"
    task = _add(capsys, db, "--schedule", "every weekday at 9:00", "--tz", "Europe/Berlin",
                "--name", name)  # fmt: skip
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = _cli(capsys, "tasks", "list", "--database", db)
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), out
    day = datetime.fromisoformat(task["next_run_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    for whole in (task["id"], f"{day:%Y-%m-%d}", "runs"):
        assert any(whole in line for line in lines), (whole, out)
    assert all(word in out.split() for word in name.split()), out  # folded, not cut
    if columns == 60:
        assert f"{task['id']} · active" in out and "  runs: 0" in out, out
        assert f"  name: {name}" in out, out


@pytest.mark.parametrize(("column", "value"), [("outcome", "bogus"), ("attempt", -1)])
def test_a_run_row_that_cannot_be_read_leaves_runs_and_transcript_readable(
    capsys: pytest.CaptureFixture[str], database: str, tmp_path: Path, column: str, value: object
) -> None:
    # Written by hand: an outcome no run can have, or an attempt below the first. The
    # transcript used to fail with pydantic's traceback (and PostgreSQL listed attempt
    # -1 as a run); the turn is shown without its record, as a purged one is.
    task = _add(capsys, database, "--schedule", "every day at 7:00", "--thread", "bob")
    graph = _graph_file(tmp_path, "unreadable_graph")
    for _ in range(2):
        code, _, err = _cli(
            capsys, "tasks", "run", task["id"], "--database", database, "--graph", f"{graph}:graph"
        )
        assert code == 0, err
    code, out, _ = _cli(capsys, "runs", "--database", database, "--json")
    bad, good = json.loads(out)

    async def corrupt() -> None:
        statement = text(f"UPDATE lgs_runs SET {column} = :v WHERE run_id = :r")
        async with SchedulerRuntime(None, database=database) as rt:
            await rt.store.transaction(
                lambda c: c.execute(statement, {"v": value, "r": bad["run_id"]})
            )

    asyncio.run(corrupt())
    for by_task in ([], ["--task", task["id"]]):
        code, out, _ = _cli(capsys, "runs", "--database", database, "--json", *by_task)
        assert code == 0 and [r["run_id"] for r in json.loads(out)] == [good["run_id"]]
    code, out, err = _cli(capsys, "transcript", "bob", "--database", database, "--json")
    assert code == 0, err
    turns = {t["task_source"]["run_id"]: t for t in json.loads(out)["turns"]}
    assert (turns[bad["run_id"]]["outcome"], turns[good["run_id"]]["outcome"]) == (None, "success")
    code, out, err = _cli(capsys, "transcript", "bob", "--database", database)
    assert code == 0 and "thread bob · 2 turns (2 task-triggered)" in out, err


_HOOK = secret_url("https://hooks.example.com")


async def _hooked_task(database: str) -> str:
    async with SchedulerRuntime(None, database=database) as rt:
        options = TaskOptions(webhook_url=_HOOK)
        task = await rt.create_task(
            name="hooked", schedule=Interval(hours=1), trigger="hi", options=options
        )
        return task.id


async def _stored_hook(database: str, task_id: str) -> str | None:
    async with SchedulerRuntime(None, database=database) as rt:
        return (await rt.get_task(task_id)).options.webhook_url


@pytest.mark.parametrize(
    ("action", "hook_of"),
    [
        ("list", lambda shown: shown[0]["options"]["webhook_url"]),
        ("show", lambda shown: shown["task"]["options"]["webhook_url"]),
        ("pause", lambda shown: shown["options"]["webhook_url"]),
        ("resume", lambda shown: shown["options"]["webhook_url"]),
        ("delete", lambda shown: shown["options"]["webhook_url"]),
    ],
    ids=["list", "show", "pause", "resume", "delete"],
)
def test_a_tasks_webhook_url_is_shown_without_its_tokens(
    capsys: pytest.CaptureFixture[str], db: str, action: str, hook_of: Callable[[Any], Any]
) -> None:
    task_id = asyncio.run(_hooked_task(db))
    args = [] if action == "list" else [task_id]
    code, out, err = _cli(capsys, "tasks", action, *args, "--json", "--database", db)
    assert code == 0, err
    assert hook_of(json.loads(out)) == shown_url(_HOOK)
    assert_no_url_secret(out)
    if action in ("list", "show"):  # the tables show no webhook URL at all
        code, out, err = _cli(capsys, "tasks", action, *args, "--database", db)
        assert code == 0 and "hooked" in out, err
        assert_no_url_secret(out)
    if action != "delete":  # the Python API returns it as stored
        assert asyncio.run(_stored_hook(db, task_id)) == _HOOK


def test_a_refused_stored_webhook_url_is_named_without_its_tokens(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    task_id = asyncio.run(_hooked_task(db))
    refused = json.dumps({"webhook_url": _HOOK.replace("https:", "ftp:")})
    with contextlib.closing(sqlite3.connect(tmp_path / "cli.db")) as conn, conn:
        conn.execute("UPDATE lgs_tasks SET options = ? WHERE id = ?", (refused, task_id))

    for args in (["show", task_id], ["show", task_id, "--json"], ["list", "--json"]):
        code, out, err = _cli(capsys, "tasks", *args, "--database", db)
        assert code == 0, err
        assert "ftp://***@hooks.example.com/services/T0/B0/***" in out
        assert_no_url_secret(out + err)
    code, out, _ = _cli(capsys, "tasks", "show", task_id, "--database", db)
    shown = " ".join(out.split())  # the table wraps it
    assert "(delete it; update_task cannot mend its options" in shown
    assert "give it a new" not in shown


def _subprocess_env(encoding: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugin"), env.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"
    if encoding is not None:  # the terminal's, as PYTHONIOENCODING sets it
        env["PYTHONIOENCODING"] = encoding
    return env


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_cannot_show_a_character_gets_it_escaped(
    capsys: pytest.CaptureFixture[str], db: str, encoding: str
) -> None:
    # "Monday–Friday" (an en dash) and a prompt in another script, on a terminal whose
    # encoding has neither: escaped, not a traceback.
    _add(capsys, db, "--schedule", "every weekday at 9", "--name", "Стендап ⏰")
    for extra in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "langgraph_scheduler", "tasks", "list", "--database", db,
             *extra],
            capture_output=True, text=True, env=_subprocess_env(encoding), timeout=60,
            encoding="utf-8",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "\\u2013" in result.stdout or extra  # Monday\u2013Friday in the table
        assert "\\u23f0" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_json_output_stays_valid_json_on_a_terminal_that_cannot_show_a_character(
    capsys: pytest.CaptureFixture[str], db: str, encoding: str
) -> None:
    # Escaped by the terminal's error handler, "café 🎉" came out as "caf\xe9
    # \U0001f389" (ascii) or "café \U0001f389" (Latin-1): escapes JSON does not have.
    name = "café 🎉 Стендап"
    task = _add(capsys, db, "--schedule", "every weekday at 9", "--name", name)
    for args in (["tasks", "list"], ["tasks", "show", task["id"]]):
        result = subprocess.run(
            [sys.executable, "-m", "langgraph_scheduler", *args, "--database", db, "--json"],
            capture_output=True, env=_subprocess_env(encoding), timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout.decode(encoding))
        shown = data[0] if isinstance(data, list) else data["task"]
        assert shown["name"] == name


def test_module_entry_point_reports_bad_id_without_traceback(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    _add(capsys, db, "--schedule", "in 1 hour")
    result = subprocess.run(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "show", "nope", "--database", db],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == "error: no task with id 'nope'; list tasks to see the valid ids\n"


@pytest.mark.slow
@pytest.mark.parametrize("encoding", [None, "ascii"])
@pytest.mark.usefixtures("ctrl_c")
def test_serve_runs_tasks_added_while_it_runs_and_drains_on_ctrl_c(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path, encoding: str | None
) -> None:
    # On an ASCII terminal too: its fire lines (an em dash) are escaped, and Ctrl-C
    # still stops it. A name's escape sequence is shown escaped.
    _add(capsys, db, "--schedule", "in 1 hour", "--name", "Later")  # the database exists
    graph = _graph_file(tmp_path, "serve_graph", delay=1.5)
    serve = _serve(tmp_path, graph, db, encoding)
    lines: list[str] = []
    reader = _reading(serve.stdout, lines)
    try:
        _wait(lambda: any("serving 1 active task(s)" in line for line in lines), serve)
        # Added by another process while serve runs: serve picks it up from the store.
        # Its name written by an earlier version, which let escape sequences through.
        task = _add(
            capsys, db, "--schedule", "in 4 seconds", "--thread", "alice", "--name", "Ping",
            "--paused",
        )  # fmt: skip
        _rename_by_hand(tmp_path / "cli.db", task["id"], "Ping\x1b[2J")
        code, _, err = _cli(capsys, "tasks", "resume", task["id"], "--database", db)
        assert code == 0, err
        # Interrupt while its turn is in flight: its run row exists, without an outcome,
        # and the turn has begun (its thread has a checkpoint); a fire claimed ahead of
        # its instant but not begun is recorded interrupted at a stop, not drained.
        path = tmp_path / "cli.db"
        _wait(lambda: bool(_running_runs(path)) and _has_checkpoint(path, "alice"), serve)
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if serve.poll() is None:
            serve.kill()
    out, err = "".join(lines), serve.stderr.read() if serve.stderr else ""
    assert serve.returncode == 0, err
    assert "stopping: letting running turns finish" in out
    dash = "—" if encoding is None else "\\u2014"
    assert f"Ping\\x1b[2J ({task['id']}) run" in out and "\x1b" not in out
    assert f": success {dash} Reminder sent." in out
    # the time written as the views write a run's (one helper: views.utc_time)
    assert re.search(r" run [0-9a-f]{8} due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: success", out)
    assert out.index("stopping") < out.index(": success") < out.index("stopped cleanly")
    assert "Traceback" not in err
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    assert [r["outcome"] for r in json.loads(out)] == ["success"]  # drained, not interrupted


@pytest.mark.slow
@pytest.mark.parametrize(
    ("drain", "said"),
    [
        ("inf", "however long they take"),
        ("1e300", "however long they take"),
        ("86400", "up to 86,400s"),
        ("2.5", "up to 2.5s"),
    ],
)
@pytest.mark.usefixtures("ctrl_c")
def test_serve_says_how_long_a_stop_waits_in_words(
    db: str, tmp_path: Path, drain: str, said: str
) -> None:
    # --drain-timeout inf said "up to infs" as serve stopped, and a huge one "1e+300s".
    serve = _serve(tmp_path, _graph_file(tmp_path), db, None, "--drain-timeout", drain)
    out = _ctrl_c_once_serving(serve)
    assert serve.returncode == 0
    assert f"stopping: letting running turns finish ({said}); Ctrl-C again" in out


@pytest.mark.parametrize("drain", ["0", "-0"])
@pytest.mark.usefixtures("ctrl_c")
def test_serve_with_no_drain_says_it_interrupts_the_running_turns(
    db: str, tmp_path: Path, drain: str
) -> None:
    # It said "letting running turns finish (up to 0s)", and "(up to -0s)" for -0, while
    # the stop interrupts them at once.
    serve = _serve(tmp_path, _graph_file(tmp_path), db, None, "--drain-timeout", drain)
    out = _ctrl_c_once_serving(serve)
    assert serve.returncode == 0
    assert (
        "stopping: interrupting running turns now (--drain-timeout 0); they are recorded "
        "'interrupted'" in out
    )
    assert "letting running turns finish" not in out


@pytest.mark.slow
@pytest.mark.usefixtures("ctrl_c")
def test_serve_refuses_a_max_concurrency_beyond_what_a_database_can_count(
    db: str, tmp_path: Path
) -> None:
    # It was taken: serve said it was serving, then every claim pass failed (a number
    # beyond the database's integers), a traceback each time, and no fire ever ran.
    graph = _graph_file(tmp_path)
    serve = subprocess.Popen(
        [sys.executable, "-m", "langgraph_scheduler", "serve", "--graph", f"{graph}:graph",
         "--database", db, "--max-concurrency", str(2**64)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        encoding="utf-8", env=_subprocess_env(None),
    )  # fmt: skip
    assert serve.stdout is not None
    try:
        first = serve.stdout.readline()  # "" as it exits; its "serving" line if it serves
        if first:
            serve.send_signal(signal.SIGINT)  # stop it, and fail below
        out, err = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 1 and first + out == "", first + out + err
    assert err == f"error: --max-concurrency must be at most 1,000,000, got {2**64}\n"


@pytest.mark.slow
@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_during_tasks_run_interrupts_its_turn_at_once(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # Ctrl-C waited in silence for the turn to end (up to 30 s), then exited 130
    # "interrupted" beside a run recorded success.
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice")
    graph = _graph_file(tmp_path, "slow_graph", delay=20)
    run = subprocess.Popen(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "run", task["id"], "--graph",
         f"{graph}:graph", "--database", db],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        encoding="utf-8", env=_subprocess_env(),
    )  # fmt: skip
    try:
        path = tmp_path / "cli.db"
        _wait(lambda: bool(_running_runs(path)) and _has_checkpoint(path, "alice"), run)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert err.strip() == "interrupted" and "Traceback" not in err
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    (record,) = json.loads(out)
    assert record["outcome"] == "interrupted"


@pytest.mark.slow
@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_while_serve_waits_to_start_stops_it_before_it_serves(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # Ctrl-C during the start (here waiting for a write lock another process holds) said
    # "stopping: letting running turns finish", went on waiting, then served (claiming
    # due fires) and stopped, exit 0; a second Ctrl-C was needed to leave.
    _add(capsys, db, "--schedule", "in 1 hour")
    graph = _graph_file(tmp_path, "serve_graph")
    holder = sqlite3.connect(tmp_path / "cli.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    serve = _serve(tmp_path, graph, db)
    errors: list[str] = []
    reader = _reading(serve.stderr, errors)
    try:
        _wait(lambda: any("is locked by another process" in line for line in errors), serve)
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=90)
        reader.join(timeout=5)
        out = serve.stdout.read() if serve.stdout else ""
    finally:
        holder.close()
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 130, errors
    assert errors[-1].strip() == "interrupted" and "Traceback" not in "".join(errors)
    assert "serving" not in out and "stopping" not in out


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_while_the_command_imports_exits_130_with_one_line(db: str) -> None:
    # A Ctrl-C in the first second or so, while LangChain and LangSmith import, ended
    # the command with a KeyboardInterrupt traceback (and killed by SIGINT, not 130).
    env = _subprocess_env()
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # a line on stderr as each module has imported
    run = subprocess.Popen(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "list", "--database", db],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env,
    )  # fmt: skip
    try:
        assert run.stderr is not None
        # Sent once LangChain's import has begun: the rest of it writes more lines than
        # the pipe holds, so the import cannot end before the signal comes (it waits
        # for communicate() to read them).
        said = list(itertools.takewhile(lambda line: "langchain_core" not in line, run.stderr))
        run.send_signal(signal.SIGINT)
        out, rest = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    err = "".join(said) + rest
    assert run.returncode == 130, err
    assert [line for line in err.splitlines() if not line.startswith("import time:")] == [
        "interrupted"
    ]
    assert out == ""


@pytest.mark.slow
@pytest.mark.parametrize("action", ["list", "pause"])
def test_a_command_waiting_for_a_postgresql_lock_names_the_session_holding_it(
    capsys: pytest.CaptureFixture[str], postgres_url: str, action: str
) -> None:
    # A table locked by another session (a migration, a DBA's LOCK TABLE in a
    # transaction left open) made commands wait without a word, where a SQLite file's
    # lock is said after 2 s.
    import psycopg

    task = _add(capsys, postgres_url, "--schedule", "in 1 hour")
    args = ["tasks", "list"] if action == "list" else ["tasks", "pause", task["id"]]
    errors: list[str] = []
    with psycopg.connect(postgres_url) as holder:
        holder.execute("LOCK TABLE lgs_tasks IN ACCESS EXCLUSIVE MODE")
        pid = holder.info.backend_pid
        run = subprocess.Popen(
            [sys.executable, "-m", "langgraph_scheduler", *args, "--database", postgres_url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            env=_subprocess_env(),
        )  # fmt: skip
        try:
            reader = _reading(run.stderr, errors)
            _wait(lambda: any(f"PostgreSQL session pid {pid} " in line for line in errors), run)
            holder.rollback()  # the lock freed: the command goes on
            out, _ = run.communicate(timeout=60)
            reader.join(timeout=5)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 0, errors
    said = errors[0]
    assert " holds a lock this process needs: it waits for it (" in said
    assert f"`SELECT pg_terminate_backend({pid})` ends that session" in said
    assert task["id"] in out and "Traceback" not in "".join(errors)


def _serve(
    tmp_path: Path, graph: Path, db: str, encoding: str | None = None, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "langgraph_scheduler", "serve", "--graph", f"{graph}:graph",
         "--database", db, *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        encoding="utf-8", env=_subprocess_env(encoding),
    )  # fmt: skip


def _ctrl_c_once_serving(serve: subprocess.Popen[str]) -> str:
    """Ctrl-C ``serve`` once it serves; what it printed until it ended."""
    lines: list[str] = []
    reader = _reading(serve.stdout, lines)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_kill_if_running, serve)
        _wait(lambda: any("Ctrl-C to stop" in line for line in lines), serve)
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
        reader.join(timeout=5)
    return "".join(lines)


def _kill_if_running(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()


def _reading(stream: Any, lines: list[str]) -> threading.Thread:
    """A thread adding each line of ``stream`` to ``lines`` as it comes."""
    assert stream is not None
    reader = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    reader.start()
    return reader


def _wait(check: Any, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, "serve exited early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _running_runs(path: Path) -> list[Any]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute("SELECT run_id FROM lgs_runs WHERE outcome IS NULL").fetchall()
        except sqlite3.OperationalError:
            return []


def _has_checkpoint(path: Path, thread_id: str) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            query = "SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1"
            return conn.execute(query, (thread_id,)).fetchone() is not None
        except sqlite3.OperationalError:  # no checkpoint table yet
            return False


def test_tasks_list_filters_by_thread(capsys: pytest.CaptureFixture[str], db: str) -> None:
    alice = _add(capsys, db, "--schedule", "every day at 9:00", "--thread", "alice")
    _add(capsys, db, "--schedule", "every day at 10:00", "--thread", "bob")
    code, out, err = _cli(capsys, "tasks", "list", "--database", db, "--thread", "alice", "--json")
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)] == [alice["id"]]


def test_tasks_list_filters_quarantined_tasks(capsys: pytest.CaptureFixture[str], db: str) -> None:
    # A task whose stored schedule cannot be read is quarantined when it falls due; an
    # operator looks for such tasks with `--state quarantined`, which argparse refused.
    good = _add(capsys, db, "--schedule", "every day at 9:00", "--thread", "alice")
    bad = _add(capsys, db, "--schedule", "every day at 10:00", "--thread", "alice")

    async def quarantine() -> None:
        corrupt = text("UPDATE lgs_tasks SET schedule = '{not json' WHERE id = :i")
        clock = FakeClock(datetime.now(timezone.utc))
        graph = build_graph(ScriptedChatModel())
        async with SchedulerRuntime(graph, database=db, clock=clock) as rt:
            await rt.store.transaction(lambda c: c.execute(corrupt, {"i": bad["id"]}))
            await clock.advance(86_400)  # both fall due
            await rt.run_due()
            await rt.wait_idle()
            assert (await rt.get_task(bad["id"])).state == "quarantined"

    asyncio.run(quarantine())
    code, out, err = _cli(capsys, "tasks", "list", "--database", db, "--state", "quarantined")
    assert code == 0 and bad["id"] in out, err
    code, out, _ = _cli(
        capsys, "tasks", "list", "--database", db, "--state", "quarantined", "--json"
    )
    (listed,) = json.loads(out)
    assert listed["id"] == bad["id"] and "schedule" in listed["problem"]
    code, out, _ = _cli(capsys, "tasks", "show", bad["id"], "--database", db)
    assert "(delete it, or give it a new schedule with update_task)" in " ".join(out.split())
    code, out, _ = _cli(capsys, "tasks", "list", "--database", db, "--state", "active", "--json")
    assert [t["id"] for t in json.loads(out)] == [good["id"]]


def test_an_unknown_thread_says_where_thread_ids_are_shown(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # An isolated task's thread is one per run, shown by neither `tasks show` ("isolated")
    # nor the `runs` table: the hint named both as where a thread id is shown.
    task = _run_a_task(capsys, db, tmp_path)
    code, out, _ = _cli(capsys, "runs", "--database", db, "--json")
    (thread,) = [run["thread_id"] for run in json.loads(out)]
    code, out, _ = _cli(capsys, "tasks", "show", task["id"], "--database", db)
    assert thread not in out
    code, _, err = _cli(capsys, "transcript", "nobody", "--database", db)
    assert code == 1 and err.startswith("error: no conversation thread 'nobody'")
    assert "'runs --json'" in err and thread not in err
    code, out, _ = _cli(capsys, "transcript", thread, "--database", db)
    assert code == 0 and "1 turn (1 task-triggered)" in " ".join(out.split())


def test_a_thread_whose_turns_ran_on_a_langgraph_server_is_named_there(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    # Served turns are runs of the server, on its threads: `transcript` of the thread
    # `runs --json` names said "no conversation thread", and pointed back at `runs`.
    _run_a_task(capsys, db, tmp_path, "--thread", "alice")
    server_thread, server_run = "1f0e5c4a-0000-4000-8000-000000000001", "1f0e5c4a-run"
    with contextlib.closing(sqlite3.connect(tmp_path / "cli.db")) as conn, conn:
        conn.execute(  # as a runtime with server=LangGraphServer(...) records its turns
            "UPDATE lgs_runs SET thread_id = ?, server_thread_id = ?, server_run_id = ?",
            ("served", server_thread, server_run),
        )
    code, _, err = _cli(capsys, "transcript", "served", "--database", db)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: thread 'served' ran on a LangGraph server"), err
    assert f"threads.get_state('{server_thread}')" in err


def test_tasks_add_in_a_fixed_offset_zone_notes_the_zone_to_use(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    # The tools refuse "EST" (9:00 in it is 10:00 in New York all summer) and name the
    # zone to use; the CLI acts for the operator and took it without a word.
    task = _add(capsys, db, "--schedule", "every day at 9:00", "--tz", "EST")
    assert task["schedule"]["tz"] == "EST"
    code, out, err = _cli(
        capsys, "tasks", "add", "--database", db, "--json", "--schedule", "every day at 9:00",
        "--prompt", "p", "--tz", "EST",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["schedule"]["tz"] == "EST"
    assert err.startswith("note: 'EST' is a fixed offset") and "America/New_York" in err
    code, out, err = _cli(
        capsys, "tasks", "add", "--database", db, "--schedule", "every day at 9:00",
        "--prompt", "p", "--tz", "Europe/Berlin",
    )  # fmt: skip
    assert code == 0 and err == ""


def test_a_graph_file_named_like_a_module_in_use_does_not_replace_it(
    capsys: pytest.CaptureFixture[str],
    db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The file was registered as sys.modules[its stem]: a graph in json.py replaced the
    # json module for the whole process, and the turn failed ("module 'json' has no
    # attribute 'loads'").
    monkeypatch.setitem(sys.modules, "json", json)  # restored whatever happens
    task = _add(capsys, db, "--schedule", "in 1 hour", "--thread", "alice")
    graph = _graph_file(tmp_path, "json")
    code, out, err = _cli(
        capsys, "tasks", "run", task["id"], "--database", db, "--graph", f"{graph}:graph"
    )
    assert code == 0, err
    assert sys.modules["json"] is json
    assert "Reminder sent." in out


async def _many_tasks(database: str, count: int) -> None:
    async with SchedulerRuntime(None, database=database) as rt:
        for n in range(count):
            await rt.create_task(name=f"task {n}", schedule=Interval(hours=1), trigger="x" * 500)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_output_without_a_reader_ends_quietly(db: str, as_json: bool) -> None:
    # `langgraph-scheduler tasks list --json | true`: with the reader gone, the JSON's
    # write failed with a BrokenPipeError traceback (a table ended quietly, exit 1, as
    # rich does it).
    asyncio.run(_many_tasks(db, 3))
    process = subprocess.Popen(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "list", "--database", db,
         *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_subprocess_env(),
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert err == "", err


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """``path`` (a file, or a folder and the files in it) made read-only for this process,
    as a backup on a read-only mount or another user's file is: immutable for root
    (``chattr +i``), whom permissions do not stop; without write permission otherwise."""
    paths = [path, *path.iterdir()] if path.is_dir() else [path]
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not available here: {made.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        return
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_reading_commands_work_on_a_database_this_user_may_not_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, what: str
) -> None:
    folder = tmp_path / "backup"
    folder.mkdir()
    path = folder / "scheduler.db"
    db = f"sqlite:///{path}"
    task = _run_a_task(capsys, db, tmp_path, "--thread", "bob")
    assert sorted(p.name for p in folder.iterdir()) == ["scheduler.db"]  # no -wal, -shm
    with _read_only(path if what == "file" else folder):
        code, out, err = _cli(capsys, "runs", "--database", db, "--json")
        assert code == 0, err
        (run,) = json.loads(out)
        assert run["outcome"] == "success"
        code, out, err = _cli(capsys, "tasks", "list", "--database", db, "--json")
        assert code == 0 and [t["id"] for t in json.loads(out)] == [task["id"]], err
        code, out, err = _cli(capsys, "tasks", "show", task["id"], "--database", db, "--json")
        assert code == 0 and json.loads(out)["runs"][0]["run_id"] == run["run_id"], err
        code, out, err = _cli(capsys, "transcript", "bob", "--database", db, "--json")
        assert code == 0, err
        assert json.loads(out)["turns"][0]["task_source"]["run_id"] == run["run_id"]
        # A command that writes says it cannot, in one line.
        code, _, err = _cli(capsys, "tasks", "pause", task["id"], "--database", db)
        assert code == 1 and err.startswith(f"error: the SQLite file {path} ")
        assert "fix the permissions" in err  # "is read-only", or "cannot be opened" (folder)
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir())[0] == "scheduler.db"


def test_reading_commands_never_migrate_a_database_and_say_it_needs_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "old.db"
    path.write_bytes((ROOT / "tests" / "data" / "schema_v1.db").read_bytes())
    for command in (["runs"], ["tasks", "list"], ["transcript", "bob"]):
        code, _, err = _cli(capsys, *command, "--database", f"sqlite:///{path}")
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "has schema version 1, which this library reads only once migrated" in err
        assert "start a runtime (e.g. 'serve') on it with write access" in err
    with contextlib.closing(sqlite3.connect(path)) as conn:
        query = "SELECT value FROM lgs_meta WHERE key = 'schema_version'"
        assert conn.execute(query).fetchall() == [("1",)]


FAILING_GRAPH = """
from langgraph.graph import START, StateGraph
from langgraph_scheduler.state import SchedulerState


def fail(state):
    raise ValueError("the model is down")


builder = StateGraph(SchedulerState)
builder.add_node("model", fail)
builder.add_edge(START, "model")
graph = builder.compile()
"""


def test_a_failed_tasks_run_calls_its_turn_a_manual_run(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    task = _add(capsys, db, "--schedule", "in 1 hour")
    graph = tmp_path / "failing_graph.py"
    graph.write_text(FAILING_GRAPH)
    result = subprocess.run(
        [sys.executable, "-m", "langgraph_scheduler", "tasks", "run", task["id"],
         "--database", db, "--graph", f"{graph}:graph"],
        capture_output=True, text=True, env=_subprocess_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "the model is down" in result.stdout
    assert f"manual run of task {task['id']} failed: ValueError" in result.stderr
    assert "scheduled" not in result.stderr
