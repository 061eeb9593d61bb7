"""The ``langgraph-scheduler`` command line (also ``python -m langgraph_scheduler``).

Commands::

    demo                    an offline demo: an assistant schedules a reminder that fires
    serve --graph REF       run the scheduler for your graph until Ctrl-C (drains turns)
    tasks list|show|add|pause|resume|delete|run
    runs [--task ID]        run history, newest first
    transcript THREAD_ID    a conversation with its task-triggered turns marked

Every command but ``demo`` takes ``--database URL`` (default
``$LANGGRAPH_SCHEDULER_DATABASE``, else ``sqlite:///langgraph-scheduler.db``), so it works on
the database ``serve`` uses; ``tasks`` takes it (and ``--json``) before its action too.

Note:
    ``tasks`` commands go through the task service of a runtime that manages tasks only
    (``graph=None``): they never claim fires, so they never run turns. A ``serve`` on
    the same database follows their changes within its ``sync_interval_secs`` (2 s by
    default; at once on PostgreSQL), and the database decides at every fire what is due.
    ``tasks run`` runs the turn in this process and needs the graph (``--graph``).
    Only ``tasks add`` and ``serve`` set a database up: the others refuse one that holds
    no scheduler tables (a mistyped name, an application's database), on either backend.
    The commands that only read (``tasks list``/``show``, ``runs``, ``transcript``) open
    a SQLite file for reading only and never set it up or migrate it: they work on a
    file this user may not write, and say so when it needs a migration first.

``langgraph-scheduler`` alone prints the commands; ``--version`` prints the version.
A task's webhook URL is shown with its user and password, query values, fragment and long
path segments as ``***``, in ``--json`` too (the Python API returns it as stored).

Exit codes: 0 success, 1 an error (one line on stderr, e.g. an unknown task id; for
``tasks run``, a turn that did not succeed; silently, an output whose reader went away),
2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

from langchain_core.messages import HumanMessage
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from . import __version__
from ._clock import SystemClock
from ._cron import iso_day
from ._service import BIDI_CONTROLS, TaskService, draft_task, name_from_prompt
from ._validated import kind_of
from .errors import InvalidTask, SchedulerError
from .models import Task, TaskEvent, TaskRunRecord, TaskState
from .runtime import DEFAULT_DATABASE, SchedulerRuntime
from .schedules import parse_schedule, zone_notice
from .store import Store, is_in_memory, open_store, parse_database_url, sqlite_url
from .views import (
    RunHistory,
    TaskList,
    Transcript,
    load_transcript,
    task_json,
    terminal_text,
    utc_time,
)

__all__ = ["DATABASE_ENV", "GRAPH_ENV", "TIMEZONE_ENV", "main"]

DATABASE_ENV = "LANGGRAPH_SCHEDULER_DATABASE"
"""Default for ``--database``."""
GRAPH_ENV = "LANGGRAPH_SCHEDULER_GRAPH"
"""Default for ``--graph`` (``serve``, ``tasks run``)."""
TIMEZONE_ENV = "LANGGRAPH_SCHEDULER_TZ"
"""Default for ``--tz`` (``tasks add``, ``serve``)."""

_DEMO_THREAD = "demo"
_DEMO_RUNS = 3
_DEMO_WAIT_SECS = 60.0
_DEMO_REQUEST = "Remind me to stretch every 2 seconds, 3 times."


def _console(*, stderr: bool = False) -> Console:
    """A console that prints text as it is: task names, prompts, replies and errors
    come from users and models, and rich would read ``[bold]`` in them as markup and
    ``:smile:`` as an emoji code (control characters are escaped by ``terminal_text``)."""
    return Console(stderr=stderr, markup=False, highlight=False, emoji=False, log_path=False)


class _Failure(Exception):
    """A command failed in a way the user can fix; printed as one line, exit 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    _escape_what_the_terminal_cannot_show()
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `langgraph-scheduler`: what it can do
        parser.print_help()
        return 0
    out, err = _console(), _console(stderr=True)
    try:
        code: int = asyncio.run(args.handler(args, out))
        return code
    except (_Failure, SchedulerError) as exc:
        first, *rest = str(exc).strip().splitlines() or [type(exc).__name__]
        first = _as_typed(first, args)
        err.print(Text.assemble(("error: ", "bold red"), terminal_text(first)), soft_wrap=True)
        for line in rest:  # e.g. the accepted schedule forms
            err.print(terminal_text(line), soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


_OPTION_OF = {
    "drain_timeout_secs": ("drain_timeout", "--drain-timeout"),
    "max_concurrency": ("max_concurrency", "--max-concurrency"),
    "max_runs": ("max_runs", "--max-runs"),
    "messages_key": ("messages_key", "--messages-key"),
    "owner": ("owner", "--owner"),
    "task_id": ("task_id", "TASK_ID"),
    "thread_id": ("thread", "--thread"),
    "task name": ("name", "--name"),
    "invalid task payload: field 'prompt':": ("prompt", "--prompt:"),
}
"""The words a refusal starts with for a Python argument (or a task's field), by the
command's destination and the option (or argument) for it."""


def _as_typed(message: str, args: argparse.Namespace) -> str:
    """``message`` with the Python argument it starts with (``drain_timeout_secs must be
    …``) named as the option the user typed for it (``--drain-timeout must be …``), when
    the command was given that option, and the number it quotes (``got -1.0``, ``got
    -1``) as typed (``got -1``, ``got -01``): one place, so no refusal names a parameter
    the command line has not, or a value the user did not type."""
    for words, (dest, option) in _OPTION_OF.items():
        value = getattr(args, dest, None)
        if value is not None and message.startswith(f"{words} "):
            rest = message.removeprefix(words)
            if isinstance(value, _Typed):
                # Whether or not it ends the refusal ("got -1 (leave it out …"); the whole
                # number, not the start of another ("got -10"). A number's text holds no
                # backslash for re.sub to read.
                parsed = re.compile(rf"\bgot {re.escape(repr(value))}(?!\.?\d)")
                rest = parsed.sub(f"got {value.typed}", rest, count=1)
            return f"{option}{rest}"
    return message


class _Typed:
    """A number option's value, with the text the user typed for it (``typed``), for
    refusals to quote."""

    typed: str


class _Number(_Typed, float):
    """A number option's value (``-1``, ``2.5``, ``inf``), with its text."""


class _Whole(_Typed, int):
    """A whole-number option's value (``3``, ``-01``), with its text."""


_TypedNumber = TypeVar("_TypedNumber", _Number, _Whole)


def _typed(kind: type[_TypedNumber], text: str) -> _TypedNumber:
    """``text`` read as ``kind``, kept with its text; anything else refused as argparse
    refuses it for ``type=float`` or ``type=int`` (``invalid int value: 'x'``)."""
    try:
        value = kind(text)
    except ValueError:
        number = "float" if kind is _Number else "int"
        raise argparse.ArgumentTypeError(f"invalid {number} value: {text!r}") from None
    value.typed = text.strip()
    return value


def _number(text: str) -> _Number:
    """An argument that is a number (``-1``, ``2.5``, ``inf``), kept with its text."""
    return _typed(_Number, text)


def _whole(text: str) -> _Whole:
    """An argument that is a whole number (``3``, ``-01``), kept with its text."""
    return _typed(_Whole, text)


_MAX_COUNT = 1_000_000
"""The most rows one command shows (an argument above it is refused, not sent on)."""


def _positive(text: str) -> int:
    """An argument that counts things: a whole number from 1 to ``_MAX_COUNT``."""
    try:
        value = _whole(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value.typed} is not 1 or more")
    if value > _MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value.typed} is more than {_MAX_COUNT:,}")
    return int(value)


def _escape_what_the_terminal_cannot_show() -> None:
    """Text the output's encoding cannot show (a dash in a schedule, an emoji in a
    reply, on an ASCII or Latin-1 terminal) is written escaped, instead of failing the
    command, or every later line of ``serve`` and its Ctrl-C."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


# -- parser ----------------------------------------------------------------------------


def _common_options(*, after_action: bool = False) -> list[argparse.ArgumentParser]:
    """``--database`` and ``--json``, as parents of the parsers that take them.

    ``tasks`` takes them before its action as well as after it (``tasks --database X
    list``). The actions' copies (``after_action``) have no default, so one not given
    after the action keeps what was given before it, and one given in both places is
    the later.
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_action else {}
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database",
        metavar="URL",
        help=f"sqlite:///file.db or postgresql://… (default: ${DATABASE_ENV} or "
        f"{DEFAULT_DATABASE})",
        **unset,
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument(
        "--json", action="store_true", help="print JSON instead of tables", **unset
    )
    return [common, as_json]


def _parser() -> argparse.ArgumentParser:
    common, as_json = _common_options()
    after_action = _common_options(after_action=True)
    graph = argparse.ArgumentParser(add_help=False)
    graph.add_argument(
        "--graph",
        default=os.environ.get(GRAPH_ENV),
        metavar="REF",
        help="module:attribute or path/to/file.py:attribute naming a compiled graph, a "
        "StateGraph, a SchedulerRuntime, or a function returning one "
        f"(default: ${GRAPH_ENV})",
    )

    parser = argparse.ArgumentParser(
        prog="langgraph-scheduler",
        description="Scheduled conversations for LangGraph agents.",
        epilog="Run 'langgraph-scheduler demo' to see it work, or COMMAND --help for more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="offline demo: an assistant schedules a reminder that fires"
    )
    demo.add_argument("--dir", type=Path, help="keep the demo database in this folder")
    demo.add_argument(
        "--model",
        metavar="PROVIDER:MODEL",
        help="use a real chat model through init_chat_model (needs langchain and the "
        "provider package), e.g. openai:gpt-4.1-mini",
    )
    demo.set_defaults(handler=_demo)

    serve = commands.add_parser(
        "serve", parents=[common, graph], help="run the scheduler for a graph until Ctrl-C"
    )
    serve.add_argument(
        "--tz",
        default=os.environ.get(TIMEZONE_ENV, "UTC"),
        help=f"default timezone of schedules that name none (default: ${TIMEZONE_ENV} or UTC)",
    )
    serve.add_argument(
        "--max-concurrency", type=_whole, default=4, help="turns at once (default: 4)"
    )
    serve.add_argument(
        "--drain-timeout",
        type=_number,
        default=30.0,
        metavar="SECS",
        help="on Ctrl-C, how long running turns may finish before they are interrupted "
        "(default: 30)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="also show library logs")
    serve.set_defaults(handler=_serve)

    tasks = commands.add_parser(
        "tasks", parents=[common, as_json], help="list, show, add, pause, resume, delete, run"
    )
    actions = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=after_action, help="list tasks")
    listing.add_argument("--owner", help="only this owner's tasks")
    listing.add_argument("--state", choices=get_args(TaskState))
    listing.add_argument("--thread", help="only the tasks that continue this conversation thread")
    listing.add_argument(
        "--limit", type=_positive, default=100, help="show at most this many (default: 100)"
    )
    listing.set_defaults(handler=_tasks_list)

    show = actions.add_parser("show", parents=after_action, help="one task in detail")
    show.add_argument("task_id", metavar="TASK_ID")
    show.set_defaults(handler=_tasks_show)

    add = actions.add_parser("add", parents=after_action, help="create a task")
    add.add_argument(
        "--schedule",
        required=True,
        help='e.g. "every weekday at 9:00", "in 20 minutes", "0 9 * * 1-5"',
    )
    add.add_argument("--prompt", required=True, help="the message the agent gets when it fires")
    add.add_argument("--name", help="short label (default: the prompt's start)")
    add.add_argument(
        "--tz",
        default=os.environ.get(TIMEZONE_ENV, "UTC"),
        help=f"IANA timezone of the schedule (default: ${TIMEZONE_ENV} or UTC)",
    )
    add.add_argument("--thread", help="conversation to continue (default: a fresh thread per run)")
    add.add_argument(
        "--owner",
        help="whose task it is (default: the thread id, as the agent's tools do; else 'default')",
    )
    add.add_argument("--max-runs", type=_whole, metavar="N", help="stop after this many runs")
    add.add_argument("--paused", action="store_true", help="create it paused")
    add.set_defaults(handler=_tasks_add)

    for name, handler, what in (
        ("pause", _tasks_pause, "stop a task firing"),
        ("resume", _tasks_resume, "fire again from the next occurrence"),
        ("delete", _tasks_delete, "delete a task and its history"),
    ):
        action = actions.add_parser(name, parents=after_action, help=what)
        action.add_argument("task_id", metavar="TASK_ID")
        action.set_defaults(handler=handler)

    run = actions.add_parser(
        "run", parents=[*after_action, graph], help="run a task's turn now, in this process"
    )
    run.add_argument("task_id", metavar="TASK_ID")
    run.set_defaults(handler=_tasks_run)

    runs = commands.add_parser("runs", parents=[common, as_json], help="run history, newest first")
    runs.add_argument("--task", metavar="TASK_ID", help="only this task's runs")
    runs.add_argument(
        "--limit", type=_positive, default=20, help="show at most this many (default: 20)"
    )
    runs.set_defaults(handler=_runs)

    transcript = commands.add_parser(
        "transcript", parents=[common, as_json], help="show a conversation thread"
    )
    transcript.add_argument("thread_id", metavar="THREAD_ID")
    transcript.add_argument(
        "--messages-key",
        default="messages",
        metavar="KEY",
        help="the state key the graph keeps its conversation under (default: messages)",
    )
    transcript.set_defaults(handler=_transcript)
    return parser


# -- tasks, runs, transcript (store only, no scheduler) --------------------------------


async def _tasks_list(args: argparse.Namespace, out: Console) -> int:
    async with _reader(_database(args)) as tasks_of:
        found = await tasks_of.find(
            owner=args.owner, state=args.state, thread_id=args.thread, limit=args.limit
        )
    tasks = TaskList(found)
    _emit(out, tasks, tasks.to_json() if args.json else None)
    return 0


async def _tasks_show(args: argparse.Namespace, out: Console) -> int:
    async with _reader(_database(args)) as tasks_of:
        task, records = await tasks_of.history(args.task_id, limit=5)
    history = RunHistory(records, task_names={task.id: task.name})
    next_runs = task.upcoming_runs(5)
    if args.json:
        data = {
            "task": task_json(task),
            "next_runs": [t.isoformat() for t in next_runs],
            "runs": history.to_json(),
        }
        _print_json(data)
        return 0
    out.print(_task_details(task, next_runs))
    out.print(history)
    return 0


async def _tasks_add(args: argparse.Namespace, out: Console) -> int:
    if args.thread is not None and not args.thread.strip():
        raise InvalidTask("--thread must not be blank; omit it for a fresh thread per run")
    if args.owner is not None and not args.owner.strip():
        # An unset shell variable ("--owner $USER") would file the task under no one.
        raise InvalidTask(
            "--owner must not be blank; omit it for the default (the thread id, else 'default')"
        )
    if not args.prompt.strip():
        raise InvalidTask(
            "--prompt must not be blank; give it the message the agent gets when the task fires"
        )
    now = SystemClock().now()
    fields: dict[str, Any] = {
        "name": args.name if args.name is not None else name_from_prompt(args.prompt),
        "trigger": {"prompt": args.prompt},
        "thread_id": args.thread,
        "owner": args.owner or args.thread or "default",
        "max_runs": args.max_runs,
        "paused": args.paused,
    }
    # Refused before the database is opened: a refused add creates no file and sets up
    # no tables (in a mistyped path, or an application's database).
    schedule = parse_schedule(args.schedule, tz=args.tz, now=now)
    draft_task(**fields, schedule=schedule, options=None, task_id=None, now=now, timezone=args.tz)
    async with _manager(_database(args), create=True) as rt:
        # Read again once the database is open: "in 1 second" counts from the create,
        # not from before the (maybe slow) connection.
        schedule = parse_schedule(args.schedule, tz=args.tz, now=rt.clock.now())
        task = await rt.create_task(**fields, schedule=schedule)
    notice = zone_notice(schedule.tz or args.tz)
    if notice is not None:  # stored as asked (the operator decides), but said
        _note(notice)
    return _report_change(out, args, task, "created", task.upcoming_runs(3))


async def _tasks_pause(args: argparse.Namespace, out: Console) -> int:
    async with _manager(_database(args)) as rt:
        task = await rt.pause_task(args.task_id)
    return _report_change(out, args, task, "paused", [])


async def _tasks_resume(args: argparse.Namespace, out: Console) -> int:
    async with _manager(_database(args)) as rt:
        task = await rt.resume_task(args.task_id)
    return _report_change(out, args, task, "resumed", task.upcoming_runs(3))


async def _tasks_delete(args: argparse.Namespace, out: Console) -> int:
    async with _manager(_database(args)) as rt:
        task = await rt.delete_task(args.task_id)
    return _report_change(out, args, task, "deleted", [])


async def _runs(args: argparse.Namespace, out: Console) -> int:
    if args.task is not None and not args.task.strip():
        raise _Failure("--task must not be blank; omit it for the runs of every task")
    names: dict[str, str] = {}
    async with _reader(_database(args)) as tasks_of:
        if args.task is not None:
            task, records = await tasks_of.history(args.task, limit=args.limit)
            names[task.id] = task.name
        else:
            records = await tasks_of.store.recent_runs(limit=args.limit)
            for task_id in {r.task_id for r in records}:
                found = await tasks_of.store.get_task(task_id)
                if found is not None:
                    names[task_id] = found.name
    history = RunHistory(records, task_names=names)
    _emit(out, history, history.to_json() if args.json else None)
    return 0


async def _transcript(args: argparse.Namespace, out: Console) -> int:
    database = _database(args)
    async with contextlib.AsyncExitStack() as stack:
        store = (await stack.enter_async_context(_reader(database))).store
        saver = await store.open_checkpointer(stack, max_connections=2)
        key = args.messages_key
        transcript = await load_transcript(saver, args.thread_id, store=store, messages_key=key)
        kept, served = None, None
        if not transcript.turns:
            found = await saver.aget_tuple(
                {"configurable": {"thread_id": args.thread_id, "checkpoint_ns": ""}}
            )
            kept = found and sorted(found.checkpoint.get("channel_values", {}))
            runs = await store.recent_runs(limit=1, thread_id=args.thread_id)
            served = next((r.server_thread_id for r in runs if r.server_thread_id), None)
    if served and not kept:
        raise _Failure(
            f"thread {args.thread_id!r} ran on a LangGraph server, which keeps its messages: "
            f"read them there, with langgraph-sdk (client.threads.get_state({served!r})) "
            "or in Studio"
        )
    if kept:
        raise _Failure(
            f"thread {args.thread_id!r} has no messages under {key!r} (its state keys: "
            f"{', '.join(map(repr, kept))}): pass --messages-key naming the key its graph "
            "keeps its conversation under"
        )
    if not transcript.turns:
        raise _Failure(
            f"no conversation thread {args.thread_id!r} in {_safe_url(database)} (each run's "
            "thread id is in 'runs --json'; a task that continues one names it in 'tasks show')"
        )
    _emit(out, transcript, transcript.to_json() if args.json else None)
    return 0


# -- tasks run, serve (they run turns: they need the graph) ----------------------------


async def _tasks_run(args: argparse.Namespace, out: Console) -> int:
    runtime = await _runtime_for(args)
    await _require_database(runtime.database)  # the task is in it: never set one up here
    async with runtime:
        record = await runtime.run_now(args.task_id, wait=True)
        task = await runtime.get_task(args.task_id)
        turn = await _turn_of(runtime, record)
    if args.json:
        _print_json(record.model_dump(mode="json"))
    else:
        if turn is not None:
            out.print(turn)
        out.print(RunHistory([record], task_names={task.id: task.name}))
    return 0 if record.outcome == "success" else 1


async def _serve(args: argparse.Namespace, out: Console) -> int:
    if args.verbose:
        _log_library(out)
    runtime = await _runtime_for(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        # What the signal does comes first: a failing write (a closed pipe) must not
        # keep Ctrl-C from stopping serve.
        if stop.is_set():
            # Second Ctrl-C: leave now. Claims of the turns still running expire and are
            # recorded 'interrupted' by the next runtime on this database.
            with contextlib.suppress(Exception):
                out.print("forced exit: running turns will be recorded 'interrupted'")
            os._exit(130)
        stop.set()
        with contextlib.suppress(Exception):
            out.print(_stopping(runtime))

    async def on_run(record: TaskRunRecord) -> None:
        task = await runtime.store.get_task(record.task_id)  # its current name
        out.log(terminal_text(_fire_line(task.name if task else record.task_id, record)))

    def on_event(event: TaskEvent) -> None:
        kind = event.kind.replace("_", " ")
        out.log(terminal_text(f"task {event.task_id} {kind}: {event.reason}"))

    runtime.add_listener(on_run)
    runtime.add_event_listener(on_event)
    installed: list[int] = []
    try:
        async with runtime:
            # Only now: a Ctrl-C during the start (a lock or a database waited for)
            # cancels it, exit 130, instead of serving and stopping once it is done.
            installed = _install_signals(loop, on_signal)
            active = await runtime.store.count_tasks(states=["active"])
            out.log(
                f"serving {active} active task(s) from {_safe_url(runtime.database)}; "
                "Ctrl-C to stop",
            )
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    out.log("stopped cleanly")
    return 0


# -- demo ------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace, out: Console) -> int:
    if args.dir is not None:
        try:
            args.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "not a folder" if isinstance(exc, FileExistsError | NotADirectoryError) else ""
            raise _Failure(
                f"--dir {args.dir} cannot hold the demo's database: {why or exc.strerror or exc}"
            ) from None
        return await _run_demo(args.dir, args.model, out, kept=True)
    with tempfile.TemporaryDirectory(prefix="langgraph-scheduler-demo-") as folder:
        return await _run_demo(Path(folder), args.model, out, kept=False)


async def _run_demo(folder: Path, model_spec: str | None, out: Console, *, kept: bool) -> int:
    from .assistant import build_assistant, demo_model, load_chat_model
    from .tools import SchedulerLimits

    started = time.monotonic()
    model = load_chat_model(model_spec) if model_spec is not None else demo_model()
    database = sqlite_url(folder / "demo.db")
    limits = SchedulerLimits(min_interval_secs=1)
    out.print(Rule(Text("langgraph-scheduler demo", style="bold")))
    out.print(f"database  {database}")
    scripted = "scripted (an offline stand-in for an LLM; --model for a real one)"
    out.print(f"model     {scripted if model_spec is None else model_spec}")
    out.print(
        "limits    the demo lowers the tools' minimum interval to 1 second "
        "(default: 5 minutes) so the reminder fires within seconds"
    )
    records: asyncio.Queue[TaskRunRecord] = asyncio.Queue()
    holder: list[SchedulerRuntime] = []
    builder = build_assistant(lambda: holder[0], model=model, limits=limits)
    runtime = SchedulerRuntime(builder, database=database, on_run=records.put_nowait)
    holder.append(runtime)
    config: Any = {"configurable": {"thread_id": _DEMO_THREAD}}
    async with runtime:
        out.print(Rule("you ask the assistant"))
        result = await runtime.ainvoke({"messages": [HumanMessage(_DEMO_REQUEST)]}, config)
        # This request's turn only: a folder kept with --dir holds earlier runs' turns.
        out.print(Transcript.from_messages(_DEMO_THREAD, result["messages"]).turns[-1])
        tasks = await runtime.list_tasks(owner=_DEMO_THREAD, state="active")
        if not tasks:
            raise _Failure("the model did not schedule a task, so nothing will fire")
        task = tasks[0]
        expected = min(task.max_runs or _DEMO_RUNS, _DEMO_RUNS)
        out.print(Rule(f"the task fires ({expected} times, each a turn attributed to it)"))
        try:
            await _show_fires(runtime, records, expected, out)
        finally:
            for leftover in await runtime.list_tasks(owner=_DEMO_THREAD, state="active"):
                await runtime.pause_task(leftover.id)  # a real model may not set max_runs
        out.print(Rule("run history"))
        history = await runtime.history(task.id)
        out.print(RunHistory(history, task_names={task.id: task.name}))
        out.print(TaskList(await runtime.list_tasks(owner=_DEMO_THREAD)))
    took = f"done in {time.monotonic() - started:.1f}s."
    if kept:
        out.print(f"{took} Look again with:")
        quoted = shlex.quote(database)
        # Whole lines, however narrow the terminal: they are to be copied.
        for command in ("runs", f"transcript {_DEMO_THREAD}"):
            out.print(f"  langgraph-scheduler {command} --database {quoted}", soft_wrap=True)
    else:
        out.print(f"{took} The database was temporary; keep it with --dir FOLDER.")
    return 0


async def _show_fires(
    runtime: SchedulerRuntime, records: asyncio.Queue[TaskRunRecord], expected: int, out: Console
) -> None:
    """Print each finished fire's turn as it arrives."""
    deadline = time.monotonic() + _DEMO_WAIT_SECS
    for seen in range(expected):
        try:
            record = await asyncio.wait_for(records.get(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            raise _Failure(
                f"only {seen} of {expected} runs arrived within {_DEMO_WAIT_SECS:g}s"
            ) from None
        turn = await _turn_of(runtime, record)
        out.print(turn if turn is not None else RunHistory([record]))


# -- helpers ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _manager(database: str, *, create: bool = False) -> AsyncIterator[SchedulerRuntime]:
    """A runtime that manages tasks only: no scheduler runs in the CLI process, and a
    running ``serve`` follows the changes it makes (so never one in this process's
    memory, whose tasks no ``serve`` sees and which is gone when the command ends)."""
    if is_in_memory(parse_database_url(database)):
        raise _Failure(
            f"{database} is a database in this command's memory, gone once it ends: pass "
            f"--database sqlite:///file.db {_WHICH_DATABASE}"
        )
    if not create:
        await _require_database(database)
    async with SchedulerRuntime(None, database=database) as rt:
        yield rt


@contextlib.asynccontextmanager
async def _reader(database: str) -> AsyncIterator[TaskService]:
    """The tasks and runs of a database, for the commands that only read them: the store
    opened for reading only and never set up or migrated (nothing written), so they work
    on a file this user may not write, a backup on a read-only mount say."""
    store = _open_existing(database)
    try:
        await _require_tables(store, database)
        await store.check_schema()
        yield TaskService(store, clock=SystemClock())
    finally:
        await store.close()


_WHICH_DATABASE = f"(or set {DATABASE_ENV}) to the one 'serve' uses"
"""How a command that needs the scheduler's database is pointed at it."""
_WHERE = f"pass --database {_WHICH_DATABASE}"


async def _require_database(database: str) -> None:
    """Refuse a database that holds no scheduler tables (a SQLite file that does not
    exist, a fresh or an application's database), for a command that needs its tasks:
    read without writing, so such a database is left as it was, not set up."""
    store = _open_existing(database)
    try:
        await _require_tables(store, database)
    finally:
        await store.close()


def _open_existing(database: str) -> Store:
    """The store of ``database`` opened for reading only; a SQLite file that does not
    exist is refused, not made."""
    url = parse_database_url(database)
    if url.get_backend_name() == "sqlite" and not is_in_memory(url):
        if not Path(str(url.database)).exists():
            raise _Failure(f"no scheduler database at {url.database}: {_WHERE}")
    return open_store(database, read_only=True)


async def _require_tables(store: Store, database: str) -> None:
    """Refuse ``store`` unless its database holds the scheduler's tables."""
    url = parse_database_url(database)
    if is_in_memory(url):
        return  # nothing to spare: a new one each time
    others = await store.other_tables()
    if others is None:
        return
    shown = url.database if url.get_backend_name() == "sqlite" else _safe_url(database)
    held = f" (it holds {', '.join(others[:5])})" if others else ""
    raise _Failure(
        f"no langgraph-scheduler tables in {shown}{held}; is this the right database? If "
        f"so, 'tasks add' or 'serve' sets them up; if not, {_WHERE}"
    )


def _database(args: argparse.Namespace) -> str:
    """``--database``, else ``$LANGGRAPH_SCHEDULER_DATABASE``, else the runtime's default."""
    return str(args.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE)


async def _runtime_for(args: argparse.Namespace) -> SchedulerRuntime:
    if not args.graph:
        raise _Failure(
            f"this command runs turns, so it needs the graph: pass --graph module:attribute "
            f"(or set {GRAPH_ENV})"
        )
    target = await _load_target(args.graph)
    if isinstance(target, SchedulerRuntime):
        if args.database is not None:
            _note(f"{args.graph} is a runtime on its own database; --database ignored")
        return target
    return SchedulerRuntime(
        target,
        database=_database(args),
        timezone=getattr(args, "tz", "UTC"),
        max_concurrency=int(getattr(args, "max_concurrency", 4)),
        # serve drains its turns on Ctrl-C; tasks run (no --drain-timeout) stops its own
        # turn at once: recorded interrupted, as its exit code says.
        drain_timeout_secs=float(getattr(args, "drain_timeout", 0.0)),
    )


async def _load_target(ref: str) -> Any:
    """Import ``module:attr`` or ``file.py:attr``; call it if it is a factory."""
    module_ref, sep, attr = ref.rpartition(":")
    if not sep or not module_ref or not attr:
        raise _Failure(
            f"--graph {ref!r} must be module:attribute or path/to/file.py:attribute, "
            "e.g. myapp.agent:graph"
        )
    module = _import(module_ref)
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise _Failure(f"{module_ref} has no attribute {attr!r}") from None
        except (Exception, SystemExit) as exc:  # a module __getattr__ or property of its own
            raise _Failure(f"cannot read {ref}: {_raised(exc)}") from None
    if callable(value) and not isinstance(value, Pregel | StateGraph | SchedulerRuntime):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise _Failure(
                f"{ref} needs arguments; point --graph at a graph, a runtime, or a function "
                "taking none"
            ) from None
        except ValueError:  # no signature to check (some builtins): just call it
            pass
        try:
            value = value()
            if inspect.isawaitable(value):
                value = await value
        except SchedulerError:
            raise  # one line already (a runtime it made with a bad option, say)
        except SystemExit as exc:
            raise _Failure(f"{ref} {_raised(exc)}") from None
        except Exception as exc:
            raise _Failure(f"{ref} failed: {_raised(exc)}") from None
    if not isinstance(value, Pregel | StateGraph | SchedulerRuntime):
        raise _Failure(
            f"{ref} is {kind_of(value)}; expected a compiled graph, a StateGraph, "
            "a SchedulerRuntime or a function returning one"
        )
    return value


def _import(module_ref: str) -> Any:
    try:
        if module_ref.endswith(".py") or os.sep in module_ref or "/" in module_ref:
            path = Path(module_ref).resolve()
            if not path.is_file():
                raise _Failure(f"no such file: {module_ref}")
            name = _file_module_name(path)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise _Failure(f"cannot import {module_ref}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up here
            spec.loader.exec_module(module)
            return module
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # like `python -m`: the project's own modules
        return importlib.import_module(module_ref)
    except _Failure:
        raise
    except ImportError as exc:
        raise _Failure(f"cannot import {module_ref}: {exc}") from None
    except SyntaxError as exc:  # its text names the file and line
        raise _Failure(f"cannot import {module_ref}: SyntaxError: {exc}") from None
    except SystemExit as exc:  # a script's "no API key: sys.exit(1)", run on import
        raise _Failure(f"importing {module_ref} {_raised(exc)}") from None
    except Exception as exc:  # raised by the module's own code as it ran
        raise _Failure(f"cannot import {module_ref}: {_raised(exc)}") from None


def _file_module_name(path: Path) -> str:
    """The module name a graph file is loaded under: its stem, unless that names another
    module (a ``json.py`` registered as ``json`` would replace the json module for the
    whole process)."""
    try:
        other = path.stem in sys.modules or importlib.util.find_spec(path.stem) is not None
    except (ImportError, ValueError):  # a stem that is no module name at all
        other = False
    return f"_langgraph_scheduler_graph_{path.stem}" if other else path.stem


def _raised(exc: BaseException) -> str:
    """An exception in one line, with where it was raised: ``Type: message (file, line
    N)``, or ``called sys.exit(3) (file, line N)``, for code of the user's that failed as
    the CLI loaded it."""
    if isinstance(exc, SystemExit):
        text = f"called sys.exit({'' if exc.code is None else repr(exc.code)})"
    else:
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{text} ({frames[-1].filename}, line {frames[-1].lineno})" if frames else text


async def _turn_of(runtime: SchedulerRuntime, record: TaskRunRecord) -> Any:
    if record.thread_id is None:
        return None
    transcript = await load_transcript(runtime, record.thread_id)
    for turn in transcript.turns:
        if turn.source is not None and turn.source.get("run_id") == record.run_id:
            return turn
    return None


def _install_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[], None]) -> list[int]:
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises instead
            pass
    return installed


def _log_library(out: Console) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("langgraph_scheduler")
    logger.setLevel(logging.INFO)
    handler = RichHandler(console=out, show_path=False)
    handler.setFormatter(_TerminalFormatter())
    logger.addHandler(handler)


class _TerminalFormatter(logging.Formatter):
    """Library log lines (which hold task names, replies and errors) with their control
    characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record), lines=True)


def _fire_line(name: str, record: TaskRunRecord) -> str:
    due = utc_time(record.scheduled_for)
    detail = record.summary if record.outcome == "success" else record.error
    text = f"{name} ({record.task_id}) run {record.run_id[:8]} due {due}: {record.outcome}"
    if record.attempt > 1:
        text += f" (attempt {record.attempt})"
    return f"{text} — {_one_line(detail)}" if detail else text


_MULTILINE_DETAILS = frozenset({"next runs", "prompt", "system addon"})
"""The rows of ``tasks show`` whose text keeps its line breaks."""


def _task_details(task: Task, next_runs: list[datetime]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    try:
        trigger = task.trigger
        prompt, addon = trigger.prompt, trigger.system_addon
    except SchedulerError as exc:
        prompt, addon = f"(invalid payload: {exc})", None
    rows = [
        ("id", task.id),
        ("name", task.name),
        ("owner", task.owner),
        ("state", task.state),
        ("schedule", task.describe_schedule()),
        ("next runs", "\n".join(_local(t) for t in next_runs) or "—"),
        ("thread", task.thread_id or "isolated (a fresh thread per run)"),
        ("prompt", prompt),
        ("system addon", addon or "—"),
        ("runs", f"{task.run_count}" + (f" of {task.max_runs}" if task.max_runs else "")),
        ("last outcome", task.last_outcome or "—"),
        ("created", _local(task.created_at.astimezone(task.zone))),
    ]
    if task.problem is not None:
        rows.insert(4, ("problem", f"{task.problem} ({task.problem_advice()})"))
    for key, value in rows:
        table.add_row(key, terminal_text(value, lines=key in _MULTILINE_DETAILS))
    return table


def _report_change(
    out: Console, args: argparse.Namespace, task: Task, verb: str, next_runs: list[datetime]
) -> int:
    if args.json:
        _print_json(task_json(task))
        return 0
    out.print(terminal_text(f"{verb} task {task.id} ({task.name!r}): {task.state}"))
    if next_runs:
        out.print("next runs: " + ", ".join(_local(t) for t in next_runs))
    return 0


def _note(text: str) -> None:
    """A note for the operator, on stderr: stdout may be JSON."""
    notes = _console(stderr=True)
    notes.print(terminal_text(f"note: {text}"), soft_wrap=True)


def _emit(out: Console, view: Any, data: Any) -> None:
    if data is not None:
        _print_json(data)
    else:
        out.print(view)


_JSON_CONTROLS = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), *map(ord, BIDI_CONTROLS))}
"""DEL, the C1 controls and the text-direction controls, which JSON leaves as they are (a
terminal acts on some, or shows the rest of a line backwards)."""


def _print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False).translate(_JSON_CONTROLS)
    try:
        text.encode(getattr(sys.stdout, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        # The terminal's own escapes (\xe9, \U0001f389) are no JSON: use JSON's.
        text = json.dumps(data, indent=2)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone (`| head`): end as rich ends a table then, quietly, exit 1,
        # with stdout pointed at nothing so the interpreter's last flush fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def _stopping(runtime: SchedulerRuntime) -> str:
    """What serve says at the first Ctrl-C: how long the stop lets running turns go on, in
    words (``up to 30s``; a limit past any turn, ``--drain-timeout inf`` or one of
    centuries, as none), or that it interrupts them at once (``--drain-timeout 0``, or
    ``-0``, which is 0)."""
    secs = runtime.drain_timeout_secs
    if secs == 0:
        return (
            "stopping: interrupting running turns now (--drain-timeout 0); they are recorded "
            "'interrupted'"
        )
    limit = f"up to {secs:,.10g}s" if secs < _NO_DRAIN_LIMIT_SECS else "however long they take"
    return f"stopping: letting running turns finish ({limit}); Ctrl-C again to force"


_NO_DRAIN_LIMIT_SECS = 1e10
"""A drain limit this long or longer (over 300 years) is none: ``serve`` says so."""


def _local(value: datetime) -> str:
    return f"{iso_day(value)} {value:%H:%M:%S %Z (%a)}"


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:299] + "…"


def _safe_url(database: str) -> str:
    return parse_database_url(database).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
