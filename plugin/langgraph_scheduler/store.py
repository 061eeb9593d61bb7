"""The task and run store: one interface, shared tables and statements, migrations.

The task table is the only source of truth for when a task fires next (``next_run_at``,
indexed with ``state``). A runtime claims due rows up to its free capacity; a due fire
that nobody has room for waits in the table. Retries waiting for their backoff are rows
too (``lgs_retries``), so they survive restarts and follow pause, delete and update.
Changes a model asked for that wait for a human's approval are rows of ``lgs_approvals``,
so what was shown is what gets stored, once, however often LangGraph re-runs the tool.
The answers of tool calls that changed tasks are rows of ``lgs_tool_calls``, written in
the same transaction as the change, so a call LangGraph runs again after a resume finds
its answer instead of acting again.

Backends are twins behind :class:`Store`: :class:`~langgraph_scheduler.store_sqlite.SqliteStore`
(a file or memory) and :class:`~langgraph_scheduler.store_postgres.PostgresStore`. Each owns
its execution strategy, locks, change feed and checkpointer; :func:`open_store` picks one
from a URL. Driver and SQLAlchemy errors are mapped to :class:`~.errors.StoreError` here.

The fire path (claim and finish) is the hot one: its statements are built once
(:class:`_FireStatements`), compiled once per store and run on the DBAPI connection
itself (:class:`_Prepared`: ``sqlite3``, or psycopg through SQLAlchemy's asyncio
adapter), past SQLAlchemy's execution layer. Each twin writes a claimed fire (its
record inserted, its task moved on) and a settled finish (the run's outcome and its
task's) as one statement: data-modifying CTEs on PostgreSQL, inserts into views with
``INSTEAD OF`` triggers on SQLite. A lone settled finish is sent alone, without a
transaction around it, and so is SQLite's usual claim, fire by fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import importlib
import logging
import os
import re
import secrets
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, overload

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    inspect,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.types import TypeDecorator
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_fixed

from ._clock import Clock
from ._fire import FireDecision, RunConsequence, after_run, plan_fire, settles_alone
from ._logs import Repeats
from ._validated import is_whole
from .errors import (
    InvalidTask,
    SchedulerError,
    StoreError,
    StoreUnavailable,
    TaskBusy,
    ThreadBusy,
)
from .models import (
    AS_STORED,
    MAX_DELIVERY_ATTEMPTS,
    MAX_RETRIES,
    DeliveryStatus,
    ProblemPart,
    RunOutcome,
    RunTrigger,
    Task,
    TaskEventKind,
    TaskOptions,
    TaskRunRecord,
    TaskState,
    ThreadMode,
    WebhookDelivery,
    WebhookPayload,
    check_webhook_url,
)
from .schedules import schedule_from_dict, schedule_to_dict
from .trigger import payload_problem

__all__ = [
    "SCHEMA_VERSION",
    "Approval",
    "ApprovalStatus",
    "CallAnswer",
    "CallAnswered",
    "Claimed",
    "DeliveryFloor",
    "Finished",
    "QueuedDelivery",
    "SaveResult",
    "Store",
    "TaskChange",
    "TaskPage",
    "open_store",
    "sqlite_url",
]

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

SCHEMA_VERSION = 3
"""Version of the tables below; each bump comes with an entry in ``_MIGRATIONS``."""

LOCK_LOG_SECS = 5.0
"""How often a start waiting for another process's lock (:meth:`Store.setup_lock`), or a
PostgreSQL transaction waiting for another session's, says so."""

QUIET_LOCK_SECS = 2.0
"""How long a wait for another process's lock goes unsaid (another runtime holds one for
a moment at a time: a warning then would be for nothing)."""

TASK_LOCK_PATIENCE = 5.0
"""Seconds a task write tries again while another session holds the task's row locked
(PostgreSQL) before it gives up with :class:`~.errors.TaskBusy`."""

_LOCK_RETRY_PAUSE = 0.2
"""Seconds between those tries: the write's pooled connection is back in the pool
meanwhile, for what waited for one (a lease renewal) to take first."""

_CLOCK_SLACK = timedelta(seconds=5)
"""How far back each poll looks again: writers' clocks and commit order may lag a little."""

MAX_WINDOW_TIMES = 10_000
"""Most distinct due times one window load returns (the rest wait for the next load)."""


_STORED_LENGTH = len("2026-01-01 09:00:00.000000")
"""The length of a time as SQLite holds it: ``isoformat(" ", "microseconds")``, in UTC."""

_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)
_BOUNDS = (_EARLIEST, _LATEST)
"""What a stored time that is no time Python can hold reads as (a SQLite text that is no
time; on PostgreSQL ``-infinity``, ``infinity``, years BC or past 9999)."""


class _UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not timezone.utc:  # the runtime's own instants are UTC already
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r} cannot be stored; pass an aware one")
            value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # a raw SQLite value read through a plain expression
            value = datetime.fromisoformat(value)
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)

    # On SQLite both directions in one step each, in C where it can be: SQLAlchemy's
    # text form of a datetime is what ``isoformat(" ", "microseconds")`` writes, and its
    # own processors (a ``%`` format, a regular expression) cost several times as much on
    # the fire path. Text in another form is read by SQLAlchemy's processor as before.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            naive = self.process_bind_param(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        fallback = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or fallback is None:
            return fallback

        def process(value: Any) -> datetime | None:
            if isinstance(value, str):
                try:
                    return self.process_result_value(value, dialect)  # fromisoformat
                except ValueError:
                    pass
            try:
                return fallback(value)
            except (TypeError, ValueError):
                # Text that is no time, or a number (a row written by hand): the earliest
                # time, so one corrupt row does not fail the read of the others; a task
                # that holds it is read with a problem (see task_from_row).
                return _EARLIEST

        return process


class _ComparedDateTime(_UTCDateTime):
    """A time the database compares (what is due, a lease that lapsed): on SQLite, text
    in another form than the store writes ("T", an offset, written by hand) reads as
    unreadable, as the database tells it (see ``_readable_time``), since it compares as
    text with the store's own times and would fall due at another moment than it says."""

    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        read = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or read is None:
            return read

        def process(value: Any) -> datetime | None:
            if isinstance(value, str) and (len(value) != _STORED_LENGTH or value[10] != " "):
                return _EARLIEST
            moment: datetime | None = read(value)
            return moment

        return process


class _LenientJSON(TypeDecorator[Any]):
    """JSON whose unreadable stored text comes back as that text instead of failing the
    fetch of the whole result: SQLite keeps any text in a JSON column, and one corrupt
    row must not stop reads of the others (:func:`task_from_row` reports it)."""

    impl = JSON
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        process = super().result_processor(dialect, coltype)
        if process is None:
            return None

        def lenient(value: Any) -> Any:
            try:
                return process(value)
            except ValueError:  # json.JSONDecodeError
                return value

        return lenient


_JSON = _LenientJSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = MetaData()

meta_table = Table(
    "lgs_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

tasks_table = Table(
    "lgs_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("schedule", _JSON, nullable=False),
    Column("payload", _JSON),
    Column("options", _JSON, nullable=False),
    Column("thread_mode", String(16), nullable=False),
    Column("thread_id", String(256)),
    Column("state", String(16), nullable=False),
    Column("max_runs", Integer),
    Column("run_count", Integer, nullable=False, default=0),
    Column("failure_streak", Integer, nullable=False, default=0),
    Column("next_run_at", _ComparedDateTime()),
    Column("last_run_at", _ComparedDateTime()),
    Column("last_outcome", String(16)),
    Column("created_at", _ComparedDateTime(), nullable=False),
    Column("updated_at", _ComparedDateTime(), nullable=False),
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    Index("lgs_tasks_owner_created", "owner", "created_at", "id"),
    Index("lgs_tasks_updated", "updated_at"),
)

# Part of schema version 2 (replacing 0.1.0's lgs_tasks_state): the claims' and the
# window loader's reads of what is due.
_due_tasks = Index("lgs_tasks_due", tasks_table.c.state, tasks_table.c.next_run_at)

runs_table = Table(
    "lgs_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("task_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("scheduled_for", _UTCDateTime(), nullable=False),
    Column("started_at", _UTCDateTime(), nullable=False),
    Column("finished_at", _UTCDateTime()),
    Column("outcome", String(16)),
    Column("summary", Text),
    Column("error", Text),
    Column("thread_id", String(256)),
    Column("checkpoint_id", String(128)),
    Column("holder", String(128)),
    Column("lease_expires_at", _ComparedDateTime()),
    Column("due_at", _UTCDateTime()),
    Column("server_thread_id", String(64)),
    Column("server_run_id", String(64)),
    UniqueConstraint("task_id", "scheduled_for", "attempt", name="lgs_runs_fire"),
    Index("lgs_runs_task_started", "task_id", "started_at"),
)

# Only the fires in flight: the lease sweep and start-up look for them among all the
# finished runs, whose lease_expires_at is NULL as well (a plain index on it walks them all).
_running_runs = Index(
    "lgs_runs_running",
    runs_table.c.lease_expires_at,
    sqlite_where=runs_table.c.outcome.is_(None),
    postgresql_where=runs_table.c.outcome.is_(None),
)

retries_table = Table(
    "lgs_retries",
    metadata,
    Column("task_id", String(64), nullable=False),
    Column("scheduled_for", _UTCDateTime(), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("due_at", _UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("task_id", "scheduled_for", "attempt", name="lgs_retries_fire"),
    Index("lgs_retries_due", "due_at"),
)

# Part of schema version 2 (created by create_all on databases that lack it).
approvals_table = Table(
    "lgs_approvals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("step", String(64), nullable=False),
    Column("tool_call_id", Text, nullable=False),
    Column("action", String(16), nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("change", _JSON, nullable=False),
    Column("preview", _JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("decided_at", _UTCDateTime()),
    Index("lgs_approvals_step", "owner", "step"),
    Index("lgs_approvals_decided", "decided_at"),
)

# Part of schema version 3: the answer of each tool call that changed tasks (or was
# refused), under the call's key, so a re-run of the call answers the same.
tool_calls_table = Table(
    "lgs_tool_calls",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("tool", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("answer", Text, nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Index("lgs_tool_calls_created", "created_at"),
)

# Part of schema version 2 (created by create_all on databases that lack it): one row per
# finished run and webhook URL, so a delivery survives restarts and its outcome is kept.
deliveries_table = Table(
    "lgs_deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("next_attempt_at", _UTCDateTime()),
    Column("delivered_at", _UTCDateTime()),
    UniqueConstraint("run_id", "url", name="lgs_deliveries_run_url"),
)

# Only pending deliveries: the sweep looks for those due among all the finished ones.
_due_deliveries = Index(
    "lgs_deliveries_due",
    deliveries_table.c.next_attempt_at,
    sqlite_where=deliveries_table.c.status == "pending",
    postgresql_where=deliveries_table.c.status == "pending",
)

# Created by create_all with a new lgs_runs, and after setup on an existing one: the
# webhook sweep reads the runs finished since a delivery floor, page by page in this
# order, and the purge by age the runs finished before a time.
_finished_runs = Index("lgs_runs_finished", runs_table.c.finished_at, runs_table.c.run_id)

# Only the approvals answered yes and not yet carried out: a model's retry of a change
# whose write the database refused looks for them by owner (and task), among every
# approval kept for 30 days.
_approved_approvals = Index(
    "lgs_approvals_approved",
    approvals_table.c.owner,
    approvals_table.c.task_id,
    sqlite_where=approvals_table.c.status == "approved",
    postgresql_where=approvals_table.c.status == "approved",
)

LATE_INDEXES: tuple[Index, ...] = (_due_tasks, _finished_runs, _approved_approvals)
"""The indexes added to tables that may exist already, and be large (``lgs_runs`` holds
millions of runs): created with their tables, and else by SQLite's setup, in its
transaction, but on PostgreSQL by :meth:`Store.build_indexes`, concurrently, after it
(a ``CREATE INDEX`` there blocks every write to the table until its transaction ends)."""

# Created by create_all on databases that lack it (no schema version of its own): one row
# per runtime with a webhook, the earliest finish time of a run record it may hold in
# memory without a delivery row, so that what a dead runtime held is still delivered.
delivery_floors_table = Table(
    "lgs_delivery_floors",
    metadata,
    Column("holder", String(128), primary_key=True),
    Column("floor", _UTCDateTime(), nullable=False),
    Column("seen_at", _UTCDateTime(), nullable=False),
    Column("expires_at", _UTCDateTime(), nullable=False),
)

# Part of schema version 3: a conversation thread held across replicas (PostgreSQL), one
# row per held thread, leased to its holder and renewed by its upkeep, so that a lost
# session frees nothing. SQLite has the table too (one schema) but holds threads in its
# process only.
thread_locks_table = Table(
    "lgs_thread_locks",
    metadata,
    Column("thread_id", String(256), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("lease_expires_at", _UTCDateTime(), nullable=False),
    Column("run_id", String(64)),
    # The fire whose claim took the thread (NULL: a hold took it); its finish frees it.
    Index("lgs_thread_locks_run", "run_id"),
)


# -- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks and the offset of the next page (None at the end)."""

    tasks: list[Task]
    next_offset: int | None


@dataclass(frozen=True)
class TaskChange:
    """A task as the change feed reports it: enough to set a timer, nothing more."""

    task_id: str
    state: str | None
    """None when the task was deleted."""
    next_run_at: datetime | None


SaveResult = Literal["saved", "conflict", "missing", "quota", "done"]
"""How a conditional task write ended: ``conflict`` means another write came first;
``done`` that the approval it was made for was already applied (nothing written)."""

ApprovalStatus = Literal["pending", "approved", "rejected", "applied", "failed"]
"""Where an approval stands: waiting for a human, answered, or carried out (``applied``:
the task was written; ``failed``: writing it was refused, ``reason`` says why)."""


@dataclass(frozen=True)
class Approval:
    """A task change a model asked for, held until a human answers (``require_approval``).

    One per tool call: ``id`` is derived from the owner, the LangGraph step the call ran
    in and its tool call id, so every re-run of that call finds the same row. A new call
    of the owner asking for exactly a change approved but not stored yet (the database
    failed) is carried out under that row (``TaskService.propose_update``).
    """

    id: str
    owner: str
    step: str
    """Digest of the thread and LangGraph task the tool call ran in: calls of one model
    message that ran in one task share it."""
    tool_call_id: str
    action: Literal["create", "update"]
    task_id: str
    """The task to create (its id is fixed in advance) or to change."""
    change: dict[str, Any]
    """Exactly the values to store, fixed when the approval was asked for."""
    preview: dict[str, Any]
    """What the human is shown (the interrupt payload's ``task``)."""
    status: ApprovalStatus
    created_at: datetime
    reason: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class CallAnswer:
    """What a tool call that changes tasks answered, kept under the call's key.

    LangGraph runs a node again when it resumes it after an ``interrupt()``, and a
    ``ToolNode`` runs every call of a model message in one node: a re-run of the call
    finds this answer and gives it back instead of acting again.
    """

    id: str
    """Derived from the owner, the LangGraph step and the tool call id (the key of the
    call's approval too)."""
    owner: str
    tool: str
    status: Literal["success", "error"]
    """``error``: the call was refused (the text says why); nothing was changed."""
    text: str
    created_at: datetime


class CallAnswered(Exception):  # noqa: N818 - a signal, like LangGraph's GraphInterrupt
    """A write carried the answer of a tool call that was answered already (by an earlier
    or a concurrent run of the call): nothing of the write was kept.

    Not a :class:`~.errors.SchedulerError`: nothing failed. The tools answer with the
    answer kept (:meth:`Store.get_call_answer`).
    """

    def __init__(self, call_id: str) -> None:
        super().__init__(call_id)
        self.call_id = call_id


@dataclass(frozen=True)
class Claimed:
    """What one claimed due task (or retry) gave: the run to execute, the records already
    finished (missed occurrences, a quarantined task's error) and the task's event."""

    task: Task
    run: TaskRunRecord | None
    finished: tuple[TaskRunRecord, ...] = ()
    event: TaskEventKind | None = None
    reason: str = ""
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class Finished:
    """A recorded outcome and what it did to its task (retry, streak, pause)."""

    record: TaskRunRecord
    consequence: RunConsequence


@dataclass(frozen=True)
class Finish:
    """An outcome to record for a running fire."""

    record: TaskRunRecord
    outcome: RunOutcome
    summary: str | None = None
    error: str | None = None
    checkpoint_id: str | None = None
    server_thread_id: str | None = None
    server_run_id: str | None = None
    started_at: datetime | None = None
    """When the turn began (None: the claim's instant stands, e.g. a turn never begun)."""
    retry: bool = True
    """Retried while the task's retries allow; False for an ``interrupted`` turn a
    client of the server stopped (see ``Interrupted.final``), which, as any
    interruption, counts toward no failure streak either. Not stored."""
    counted: bool = True
    """Counted toward the task's failure streak when it fails; False for an ``error``
    whose LangGraph server could not be reached (see ``Error.unreachable``): the streak
    stays as it was. Not stored."""

    def recorded_in(self, stored: TaskRunRecord) -> bool:
        """Whether ``stored`` is this outcome as recorded (whenever): a finish told its
        run was finished already sees here that it was its own write, whose answer was
        lost (a connection cut after the commit), not a lease sweep's."""
        return stored.finished_at is not None and stored == _finished_record(
            self, stored.finished_at
        )


@dataclass(frozen=True)
class _DueClaim:
    """A claim of due fires asked for: those due at ``as_of``, at most ``limit``, by
    ``holder`` until ``lease_until``, for a runtime started at ``started_at``."""

    as_of: datetime
    limit: int
    holder: str
    lease_until: datetime
    started_at: datetime
    in_doubt: list[TaskRunRecord] = field(default_factory=list)
    """Running records this claim sent and has not heard were written: a usual claim's
    until its write of that fire answered, a locked claim's until it committed."""


@dataclass(frozen=True)
class _ManualClaim:
    """A manual run asked for: of which task (of which owner, if given), due when,
    claimed by whom until when, and the run id it keeps however often it is sent (a
    claim whose commit went through but whose answer was lost finds its own run when
    sent again, instead of claiming a second one)."""

    task_id: str
    owner: str | None
    at: datetime
    holder: str
    lease_until: datetime
    run_id: str

    def record(self, task: Task, due: datetime) -> TaskRunRecord:
        """The running record of this claim, due ``due``."""
        return _running_record(
            task, due, trigger="manual", attempt=1, due_at=due, now=due, run_id=self.run_id
        )


@dataclass(frozen=True)
class DeliveryFloor:
    """A runtime's promise about the run records it holds in memory, undelivered: none
    finished before ``floor`` (on its clock), and none after ``expires_at`` unless it
    writes its floor again by then."""

    holder: str
    floor: datetime
    seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class QueuedDelivery:
    """A pending webhook delivery this process has claimed: what to POST, and where."""

    delivery_id: str
    run_id: str
    url: str = field(repr=False)
    """As stored, to send: shown only through :func:`~.models.redact_url`."""
    body: str
    """The JSON of a :class:`~.models.WebhookPayload`, the same for every attempt."""
    attempts: int
    """Attempts made before this claim (by any process)."""


_TASK_COLUMN = {column.name: i for i, column in enumerate(tasks_table.columns)}
"""Position of each column in a task row read with ``select(tasks_table)``."""

_TASK_NAMES = tuple(_TASK_COLUMN)
"""The columns of a task row, in order (a claim's rows carry one more after them)."""

_TASKS_REMEMBERED = 4096
"""Most tasks whose validated form a store keeps beside the row it was read from."""


_RUN_FINISH = (
    "outcome",
    "summary",
    "error",
    "checkpoint_id",
    "server_thread_id",
    "server_run_id",
    "started_at",
    "finished_at",
)
"""The columns of a run its finish writes."""


def _bind(column: Column[Any]) -> Any:
    """The bind parameter a fire statement writes ``column`` from: ``b_<name>``."""
    return bindparam(f"b_{column.name}", type_=column.type)


def _binds(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters for the :func:`_bind` parameters of these column values."""
    return {f"b_{name}": value for name, value in values.items()}


class _Prepared:
    """A fire-path statement compiled once for the store's dialect and run on the DBAPI
    connection itself (``sqlite3``; psycopg through SQLAlchemy's asyncio adapter), with
    the SQL, bind and result processing SQLAlchemy would use, without its execution
    layer, which costs several times the statement on this path. The drivers keep the
    statement prepared in their own caches (on PostgreSQL unless the URL says
    ``prepared_statements=false``, see ``store_postgres.PREPARED_STATEMENTS_PARAM``)."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert "POSTCOMPILE" not in compiled.string and not compiled.escaped_bind_names
        self.statement = statement
        """Kept, so the ``id`` it is cached under is never another statement's."""
        self.sql = compiled.string
        self.dialect = dialect
        selects = isinstance(statement, Select)
        self._positional = compiled.positional
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        self._args: list[tuple[str, str | None, Any, Callable[[Any], Any] | None]] = []
        """Per parameter: its name in the SQL, the caller's name for it (None for a
        literal of the statement, as in ``version + 1``), that literal's value, and the
        processor of the caller's value."""
        for name in names or ():
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self._args.append((name, name, None, process))
            else:
                fixed = bind.value if process is None else process(bind.value)
                self._args.append((name, None, fixed, None))
        results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in (statement.selected_columns if selects else ())
        ]
        self._processed = [(i, process) for i, process in enumerate(results) if process]
        """Per selected column that has a result processor: its position and processor."""

    def args(self, params: dict[str, Any]) -> Any:
        """The driver's parameters for ``params`` (by bind name), processed."""
        values = [
            fixed if key is None else params[key] if process is None else process(params[key])
            for _, key, fixed, process in self._args
        ]
        if self._positional:
            return values
        return {name: value for (name, _, _, _), value in zip(self._args, values, strict=True)}

    def write(self, conn: Connection, params: dict[str, Any]) -> tuple[int, Any]:
        """Execute with ``params`` (by bind name) on ``conn``'s DBAPI connection: the rows
        changed and the first row returned (None without RETURNING)."""
        args = self.args(params)
        cursor = self._execute(conn, args)
        try:
            # RETURNING, told by the cursor: asking the compiled statement would spoil
            # the statement's later ``returning(…).cte()`` (SQLAlchemy memoizes it).
            returns = cursor.description is not None
            return cursor.rowcount, cursor.fetchone() if returns else None
        except self.dialect.loaded_dbapi.Error as exc:  # a step after the first failed
            raise self._wrapped(conn, exc, args, cursor) from exc
        finally:
            cursor.close()

    def read(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of this query, their values processed as SQLAlchemy would."""
        args = self.args(params)
        cursor = self._execute(conn, args)
        try:
            fetched = cursor.fetchall()
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(conn, exc, args, cursor) from exc
        finally:
            cursor.close()
        return self.rows(fetched)

    def rows(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Rows the driver returned for this query, their values processed as
        SQLAlchemy would."""
        processed = self._processed
        if not processed:  # writes with RETURNING, and queries of plain columns
            return [tuple(row) for row in rows]
        out = []
        for row in rows:
            values = list(row)
            for i, process in processed:  # only the columns that have a processor
                value = values[i]
                if value is not None:
                    values[i] = process(value)
            out.append(tuple(values))
        return out

    def _execute(self, conn: Connection, args: Any) -> Any:
        dbapi = conn.connection
        cursor = None
        try:
            cursor = dbapi.cursor()
            cursor.execute(self.sql, args)
        except self.dialect.loaded_dbapi.Error as exc:
            if cursor is not None:
                cursor.close()
            raise self._wrapped(conn, exc, args, cursor) from exc
        return cursor

    def _wrapped(self, conn: Connection, exc: Any, args: Any, cursor: Any) -> DBAPIError:
        """The driver's ``exc`` as SQLAlchemy's own execution would raise it (a lost
        connection, busy…), for the store's mapping of errors to see it."""
        gone = self.dialect.is_disconnect(exc, conn.connection, cursor)
        if gone:  # the pool must not hand this connection out again
            conn.invalidate(exc)
        wrapped: DBAPIError = DBAPIError.instance(
            self.sql,
            args,
            exc,
            self.dialect.loaded_dbapi.Error,
            hide_parameters=True,  # as the engines do (see Store._map_error)
            connection_invalidated=gone,
            dialect=self.dialect,
        )
        return wrapped


class _FireStatements:
    """The statements of the fire path (claim and finish), built once per store with
    bind parameters: SQLAlchemy then compiles each once and reuses it, instead of
    building, coercing and keying a new statement for every fire. A column written from
    a value is bound as ``b_<column>`` (:func:`_bind`), so the values a fire writes
    give the parameters (:func:`_binds`)."""

    def __init__(self, store: Store) -> None:
        by_id = tasks_table.c.id == bindparam("b_id")
        one_task = select(tasks_table).where(by_id)
        # A claimed retry's row is dropped by its occurrence as the row holds it, read
        # with it: one written by hand in another form than the store writes (SQLite)
        # is still the row dropped, or every claim found it due again.
        held_for = store._as_held(retries_table.c.scheduled_for)
        self.due_retries = store._lock_due(
            select(retries_table, held_for.label("held_for"))
            .where(retries_table.c.due_at <= bindparam("b_as_of", type_=_UTCDateTime()))
            .order_by(retries_table.c.due_at)
            .limit(bindparam("b_room", type_=Integer()))
        )
        # Each due task row also says whether a retry is due: the claim then reads the
        # retries too (they come first), and otherwise spares itself that statement.
        retry_due = (
            select(retries_table.c.task_id)
            .where(retries_table.c.due_at <= bindparam("b_as_of", type_=_UTCDateTime()))
            .exists()
        )
        self.due_seen = (
            select(tasks_table, retry_due.label("retry_due"))
            .where(
                tasks_table.c.state == "active",
                tasks_table.c.next_run_at <= bindparam("b_as_of", type_=_UTCDateTime()),
            )
            .order_by(tasks_table.c.next_run_at)
            .limit(bindparam("b_room", type_=Integer()))
        )
        """The due tasks, read without locking them (the usual claim's read)."""
        self.due_tasks = store._lock_due(self.due_seen)
        self.task_row = one_task
        self.owned_task_row = one_task.where(tasks_table.c.owner == bindparam("b_owner"))
        self.task_or_skip = store._lock_due(one_task)
        self.task_locked = store._lock_row(one_task)
        self.task_exists = select(tasks_table.c.id).where(by_id)
        self.drop_retry = delete(retries_table).where(
            retries_table.c.task_id == bindparam("b_id"),
            held_for == bindparam("b_for", type_=held_for.type),
            retries_table.c.attempt == bindparam("b_attempt", type_=Integer()),
        )
        self.drop_retries = delete(retries_table).where(
            retries_table.c.task_id == bindparam("b_id")
        )
        self.insert_run = store._insert_ignore(
            runs_table, "task_id", "scheduled_for", "attempt"
        ).returning(runs_table.c.run_id)
        self.insert_retry = store._insert_ignore(retries_table)
        task = tasks_table.c
        moved = {
            "next_run_at": _bind(task.next_run_at),
            "run_count": task.run_count + bindparam("b_ran", type_=Integer()),
            "version": task.version + 1,
            "state": _bind(task.state),
        }
        move = update(tasks_table).where(
            by_id, tasks_table.c.version == bindparam("b_version", type_=Integer())
        )
        self.move_task = move.values(moved)
        self.move_missed = move.values(
            moved | {"last_outcome": "missed", "last_run_at": _bind(task.last_run_at)}
        )
        quarantine = (
            update(tasks_table)
            .where(by_id)
            .values(
                state="quarantined",
                last_outcome="error",
                last_run_at=_bind(task.last_run_at),
                # A version at its most (the row's problem, maybe) stays there: no write
                # conditional on it can succeed, as each would bump it past its most.
                version=case((task.version < COUNTER_MOST, task.version + 1), else_=task.version),
            )
        )
        self.quarantine = quarantine.values(next_run_at=None)
        self.quarantine_as_due = quarantine
        """For a task whose due time is what cannot be read: kept as stored, so the task
        still says so (its ``problem``); it is no longer due, being quarantined."""
        # Only while its claim is the finisher's (``b_holder``; NULL: any, for a writer
        # that names none, such as a process of an earlier build still writing through
        # SQLite's ``lgs_settle``): a runtime that stalled past its lease and resumed
        # must not write over (or beside) the record of the one that took the claim
        # over (see ``take_over_run``).
        holder = runs_table.c.holder
        self.finish_run = (
            update(runs_table)
            .where(
                runs_table.c.run_id == bindparam("b_run"),
                runs_table.c.outcome.is_(None),
                holder.is_not_distinct_from(
                    func.coalesce(bindparam("b_holder", type_=String()), holder)
                ),
            )
            .values(
                {name: _bind(runs_table.c[name]) for name in _RUN_FINISH}
                | {"lease_expires_at": None}
            )
        )
        outcome = {
            name: _bind(task[name]) for name in ("last_outcome", "last_run_at", "failure_streak")
        }
        self.task_outcome = update(tasks_table).where(by_id).values(outcome)
        # A settled outcome (see _fire.settles_alone): written without reading the task.
        self.task_settled = (
            update(tasks_table)
            .where(by_id)
            .values(
                last_outcome=_bind(task.last_outcome),
                last_run_at=_bind(task.last_run_at),
                failure_streak=case(
                    (bindparam("b_reset", type_=Boolean()), 0), else_=task.failure_streak
                ),
            )
            .returning(task.failure_streak)
        )
        self.task_paused = (
            update(tasks_table)
            .where(by_id)
            .values(
                outcome
                | {
                    "state": "paused",
                    "next_run_at": None,
                    "updated_at": _bind(task.updated_at),
                    "version": task.version + 1,
                }
            )
        )


# -- the interface -------------------------------------------------------------------


class Store(ABC):
    """Tasks, runs and retries in one database.

    Every operation is one transaction, a plain function of a SQLAlchemy ``Connection``
    run by :meth:`transaction` in the twin's own way, but for the fire path's statements
    that are atomic alone (a usual claim's, a lone settled finish), which are sent
    without a transaction around them. Only the task service writes
    tasks (``insert_task``, ``save_task``, ``delete_task``) and approvals
    (``add_approval``, ``decide_approval``); the engine claims and finishes fires.
    A task write, or a batch of finishes, that meets a row another session holds locked
    waits for it only a short while at a time (:meth:`_run_bounded`): it cannot keep
    the pooled connections the upkeep's lease renewals need.

    Args:
        url: the database URL, as normalised by the twin.
    """

    dialect: str

    def __init__(self, url: URL) -> None:
        self.url = url
        self._tasks: dict[str, tuple[tuple[Any, ...], Task]] = {}
        self._tasks_lock = threading.Lock()
        self._statements: dict[int, _Prepared] = {}
        self._in_burst = False
        """The last claim filled all its room by the locked path (see :meth:`_claim`)."""
        self._unheard: list[TaskRunRecord] = []
        """Running records of claims whose answer never came (see :meth:`_adopt`)."""
        self._driver_errors: tuple[type[Exception], ...] = ()
        """The driver's error classes (PEP 249 ``Error``), set by the twin: raised where
        SQLAlchemy does not wrap them, :meth:`_guarded` maps them all the same."""

    @functools.cached_property
    def _fire(self) -> _FireStatements:
        return _FireStatements(self)

    def _task_of(self, row: Sequence[Any], *, keep: bool = True) -> Task:
        """The task of a row read with ``select(tasks_table)``: validated once, then
        reused while the row reads the same (a row that differs in any column, written
        by anyone, is validated again). For the fire path only: the tasks it returns are
        shared, never handed to callers. ``keep=False``: a newly validated task is not
        kept here, because the caller writes to its row and keeps (or drops) it then."""
        raw = _task_raw(row)
        known = self._tasks.get(raw[0])
        if known is not None and known[0] == raw:
            return known[1]
        task = task_from_row(dict(zip(_TASK_NAMES, raw, strict=True)))
        if keep:
            self._remember(raw, task)
        return task

    def _remember(self, raw: tuple[Any, ...], task: Task, **written: Any) -> None:
        """Keep ``task`` as the validated form of ``raw`` with the columns ``written``
        (values this store just wrote to that row) applied to both. A counter written at
        its most is not kept: the row is read again, with that problem (see
        :data:`COUNTER_MOST`)."""
        if written:
            if any(written.get(name, 0) >= COUNTER_MOST for name in _COUNTERS):
                self._forget(task.id)
                return
            row = list(raw)
            for name, value in written.items():
                row[_TASK_COLUMN[name]] = value
            raw = tuple(row)
            task = task.model_copy(update=written)
        with self._tasks_lock:  # file transactions run on a few threads
            self._tasks.pop(task.id, None)
            self._tasks[task.id] = (raw, task)
            if len(self._tasks) > _TASKS_REMEMBERED:
                del self._tasks[next(iter(self._tasks))]

    def _forget(self, task_id: str) -> None:
        with self._tasks_lock:
            self._tasks.pop(task_id, None)

    @property
    def lock_scope(self) -> Hashable:
        """What a thread held through :meth:`thread_lock` is held against: here this
        store (SQLite's locks are this process's, this store's own); the PostgreSQL twin
        names its database, whose rows every runtime on it shares."""
        return self

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    # -- what each twin provides --------------------------------------------------

    @abstractmethod
    async def _run(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in one transaction, the twin's way."""

    async def _run_bounded(self, work: Callable[[Connection], _T]) -> _T:
        """:meth:`_run` for work that may meet a row another session holds locked (a
        task's row held by a DBA's open transaction): each wait for a lock ends within a
        short lock timeout (PostgreSQL), so the work cannot keep one of the store's few
        pooled connections, which the upkeep's lease renewals need, for as long as that
        session holds it. SQLite has no row locks: its twin runs ``work`` as is."""
        return await self._run(work)

    @abstractmethod
    async def _run_alone(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` outside a transaction: each of its statements commits by itself.
        For statements that are atomic alone (the usual claim's, a lone settled
        finish's)."""

    def _prepared(self, statement: Any, dialect: Dialect) -> _Prepared:
        prepared = self._statements.get(id(statement))
        if prepared is None:  # once per statement (they live as long as the store)
            prepared = _Prepared(statement, dialect)
            self._statements[id(statement)] = prepared
        return prepared

    def _write(
        self, conn: Connection, statement: Any, params: dict[str, Any]
    ) -> tuple[int, tuple[Any, ...] | None]:
        """Run one of the fire path's writes (:class:`_FireStatements`) on the driver:
        the rows it changed, and its first returned row (None without RETURNING)."""
        return self._prepared(statement, conn.dialect).write(conn, params)

    def _read(
        self, conn: Connection, statement: Any, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Run one of the fire path's reads (:class:`_FireStatements`) on the driver."""
        return self._prepared(statement, conn.dialect).read(conn, params)

    @abstractmethod
    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        """INSERT … ON CONFLICT DO NOTHING."""

    def _as_held(self, held: ColumnElement[Any]) -> ColumnElement[Any]:
        """A stored time as its column holds it, to match a row by the value read from
        it: a twin whose column may hold a time in several forms reads it raw."""
        return held

    def _lock_due(self, query: Select[Any]) -> Select[Any]:
        """Lock rows a claim reads, skipping those another claim holds (PostgreSQL)."""
        return query

    def _lock_row(self, query: Select[Any]) -> Select[Any]:
        """Lock a row read before it is written in the same transaction (PostgreSQL)."""
        return query

    def _serialize_owner(self, conn: Connection, owner: str) -> None:
        """Serialise quota checks of one owner (PostgreSQL; SQLite has one writer)."""
        return None

    def _notify(self, conn: Connection, task_id: str) -> None:
        """Tell other processes that a task changed (PostgreSQL NOTIFY)."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    async def follow_changes(
        self,
        on_change: Callable[[TaskChange], Awaitable[None]],
        *,
        since: datetime,
        poll_secs: float,
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], datetime],
    ) -> None:
        """Call ``on_change`` for every task created or changed by anyone, until
        cancelled: by polling ``updated_at`` every ``poll_secs`` (at least
        :attr:`_CHANGE_POLL_MIN_SECS`), and at once whenever the twin's
        :meth:`_pushed_changes` asks (each poll reads what changed since the one before
        it, so a poll asked for covers every change not heard otherwise until then)."""
        woken = asyncio.Event()
        poll_secs = max(poll_secs, self._CHANGE_POLL_MIN_SECS)
        seen: dict[str, datetime] = {}
        failures = Repeats(now)
        """A failed poll is logged the first time, the same failure again once a minute
        while it lasts (not at every poll), and the first poll back once."""
        async with self._pushed_changes(on_change, woken):
            while True:
                await _nap(sleep, poll_secs, woken)
                polled_at = now()
                try:
                    changes = await self.changed_since(since - _CLOCK_SLACK)
                except Exception as exc:
                    if failures.new(str(exc)):
                        logger.warning(
                            "polling task changes failed (%s); retrying every %gs", exc, poll_secs
                        )
                    continue
                if failures.forget():
                    logger.info("polling task changes works again")
                await _tell_changes(changes, seen, on_change)
                # Not kept through the nap: a burst of new tasks is read as many changes,
                # which would go on living while the burst's turns run.
                del changes
                cutoff = since - _CLOCK_SLACK
                for task_id in [t for t, at in seen.items() if at < cutoff]:
                    del seen[task_id]
                since = polled_at

    _CHANGE_POLL_MIN_SECS = 0.0
    """The shortest interval between polls of task changes (longer where they are pushed)."""

    def _pushed_changes(
        self, on_change: Callable[[TaskChange], Awaitable[None]], poll_now: asyncio.Event
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """While entered, call ``on_change`` for the changes pushed by the database as
        they come, and set ``poll_now`` whenever some may have been missed: here none
        are pushed (SQLite); the PostgreSQL twin LISTENs."""
        return contextlib.nullcontext()

    @abstractmethod
    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None, run_id: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold a conversation thread (in this process; across replicas on PostgreSQL,
        as a row leased to the holder named by :meth:`hold_threads_as`).

        Args:
            run_id: the fire whose turn holds it: on PostgreSQL its claim may have taken
                the thread's row already, which the hold then uses (and the fire's
                finish frees).

        Raises:
            ThreadBusy: not had within ``timeout`` seconds.
        """

    def hold_threads_as(self, holder: str, *, clock: Clock, lease_secs: float) -> None:
        """Name who holds this store's thread locks, the clock their leases are read by,
        and how long a lease lasts unrenewed: the runtime does as it opens the store.
        Only a twin that holds threads across processes uses them (PostgreSQL)."""
        return None

    async def renew_thread_locks(self, *, until: datetime) -> None:
        """Extend the leases of the threads held through this store (the upkeep does,
        with the runs' leases); a thread another holder took meanwhile is logged."""
        return None

    async def free_thread_locks(self, holders: Sequence[str]) -> None:
        """Free at once the threads held by ``holders``, known to be dead (a lapsed
        lease frees them anyway)."""
        if not holders:
            return
        statement = delete(thread_locks_table).where(thread_locks_table.c.holder.in_(list(holders)))
        await self.transaction(lambda conn: conn.execute(statement))

    @abstractmethod
    async def open_checkpointer(
        self, stack: contextlib.AsyncExitStack, *, max_connections: int
    ) -> Any:
        """The LangGraph checkpointer that lives beside the tasks; ``stack`` closes it."""

    def setup_lock(
        self, *, patience: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialise start-up work (migrations, the checkpointer's) across processes.

        Args:
            patience: how long to wait for what another process holds (a SQLite file's
                write lock, another PostgreSQL replica's start-up), saying so every
                :data:`LOCK_LOG_SECS`; None: SQLite, the busy wait of any write;
                PostgreSQL, as long as the other start-up lasts.

        Raises:
            StoreUnavailable: the database could not be reached, or another process held
                its lock longer than ``patience``.
        """
        return contextlib.nullcontext()

    # -- transactions -------------------------------------------------------------

    async def transaction(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work(conn)`` in one transaction (committed if it returns).

        ``work`` must not block on anything but the database; it is the extension point
        for queries the store has no method for.

        Raises:
            StoreUnavailable: the database could not be reached (retry later), or (on
                PostgreSQL) another session held a lock it needed for longer than the
                store's ``lock_patience`` (see :func:`open_store`).
            StoreError: any other database failure.
        """
        return await self._guarded(self._run(work))

    async def _write_task(self, task_id: str, work: Callable[[Connection], _T]) -> _T:
        """Run the task service's write of ``task_id`` in one transaction
        (:meth:`_run_bounded`); a try that timed out waiting for a lock (the task's row
        held by another session) is tried again after a short pause, for up to
        :data:`TASK_LOCK_PATIENCE` seconds.

        Raises:
            TaskBusy: the row stayed held; nothing was written.
            StoreUnavailable: the database could not be reached (retry later).
            StoreError: any other database failure.
        """

        async def tries() -> _T:
            began = time.monotonic()
            try:
                try:  # the usual case, without building a retry: no row held
                    return await self._run_bounded(work)
                except DBAPIError as exc:
                    if not _lock_timed_out(exc):
                        raise
                    left = TASK_LOCK_PATIENCE - (time.monotonic() - began)
                    if left <= 0:
                        raise
                await asyncio.sleep(_LOCK_RETRY_PAUSE)
                retry = AsyncRetrying(
                    retry=retry_if_exception(_lock_timed_out),
                    wait=wait_fixed(_LOCK_RETRY_PAUSE),
                    stop=stop_after_delay(left),
                    reraise=True,
                )
                return await retry(self._run_bounded, work)
            except DBAPIError as exc:
                if not _lock_timed_out(exc):
                    raise
                raise TaskBusy(task_id) from exc

        return await self._guarded(tries())

    async def _guarded(self, run: Awaitable[_T]) -> _T:
        """Await a twin's run of some work, with foreign errors mapped to ours."""
        try:
            return await run
        except SchedulerError:
            raise
        except UnicodeEncodeError as exc:  # raised by the driver, before the database
            raise InvalidTask(
                f"a value holds text no database can store ({exc.reason}): "
                f"{exc.object[max(exc.start - 20, 0) : exc.end + 20]!r}"
            ) from None
        except (DBAPIError, OSError) as exc:
            raise self._map_error(exc) from exc
        except self._driver_errors as exc:  # the driver's own, raised past SQLAlchemy
            raise self._map_error(exc) from exc  # (an engine event, a DBAPI call)
        except SATimeoutError as exc:  # no pooled connection came free in time
            raise StoreUnavailable(
                f"database {self.safe_url} is busy: no connection came free ({exc}); "
                "the operation can be retried"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.safe_url} failed: {exc}") from exc

    def _map_error(self, exc: BaseException) -> StoreError:
        """Our error for a database's, with the driver's first line of it. The values a
        statement sent (prompts, webhook URLs, secrets) are never in it, nor in the
        chained error a traceback shows: the engines hide them (``hide_parameters``)."""
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        transient = (
            isinstance(exc, OSError)
            or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
            or _is_transient(orig)
        )
        detail = str(orig or exc).strip().splitlines()[0]
        if transient:
            return StoreUnavailable(
                f"database {self.safe_url} is unavailable ({_kind(exc)}: {detail}); "
                "the operation can be retried once it is reachable"
            )
        return StoreError(f"database {self.safe_url} failed: {detail}")

    # -- lifecycle ----------------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables, or migrate them to :data:`SCHEMA_VERSION`."""
        await self.transaction(self._setup)

    def _setup(self, conn: Connection) -> None:
        self._before_setup(conn)
        existing = conn.dialect.has_table(conn, tasks_table.name)
        if not existing:
            metadata.create_all(conn, checkfirst=True)
            conn.execute(
                self._insert_ignore(meta_table).values(
                    key="schema_version", value=str(SCHEMA_VERSION)
                )
            )
            self._after_setup(conn)
            return
        found = _read_version(conn)
        self._refuse_newer(found)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            logger.info("migrating %s to schema version %d", self.safe_url, version)
            _MIGRATIONS[version](conn)
            conn.execute(
                update(meta_table)
                .where(meta_table.c.key == "schema_version")
                .values(value=str(version))
            )
        metadata.create_all(conn, checkfirst=True)
        self._create_late_indexes(conn)  # create_all skips an existing table's
        _lock_runs(conn)
        self._after_setup(conn)

    def _before_setup(self, conn: Connection) -> None:
        """Twin hook run first in the setup transaction (PostgreSQL takes a lock and
        reads the database's identity, its ``lock_scope``)."""
        return None

    def _create_late_indexes(self, conn: Connection) -> None:
        """Twin hook of the setup transaction on an existing schema: create the
        :data:`LATE_INDEXES` it lacks (PostgreSQL leaves them to :meth:`build_indexes`)."""
        for index in LATE_INDEXES:
            index.create(conn, checkfirst=True)

    async def build_indexes(self) -> None:
        """Build the :data:`LATE_INDEXES` that :meth:`setup` left to be built without
        blocking writes (PostgreSQL: concurrently, an index left invalid by an
        interrupted build built again); nothing on SQLite, whose setup built them. A
        runtime that runs turns calls it in the background once started: they only
        make reads faster.

        Raises:
            StoreUnavailable: the database could not be reached (retry later).
            StoreError: a build failed (for example, the role does not own the table).
        """
        return None

    def _free_claimed_threads(self, conn: Connection, run_ids: Sequence[str]) -> None:
        """Twin hook run last in a transaction of finishes: free the threads the claims of
        ``run_ids`` took (PostgreSQL), a finish having written its run or found it gone. Last,
        after every task row the transaction locks: a claim holds its task's row while it
        takes its thread, and would wait for a freed row this transaction holds."""
        return None

    def _after_setup(self, conn: Connection) -> None:
        """Twin hook run last in the setup transaction (SQLite's views)."""
        return None

    async def server_now(self) -> datetime | None:
        """The database server's clock, read now, to compare a runtime's clock with (see
        :meth:`~._upkeep.Upkeep.check_clock`); None where the database has no clock of
        its own (SQLite runs in this process, on its clock).

        Raises:
            StoreUnavailable: the database could not be reached (retry later).
            StoreError: any other database failure.
        """
        return None

    def _refuse_newer(self, found: int) -> None:
        """Refuse a database whose schema version ``found`` is newer than this library's:
        neither a set-up nor a read may take it for one it knows."""
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.safe_url} has schema version {found}, newer than this "
                f"library's ({SCHEMA_VERSION}); upgrade langgraph-scheduler"
            )

    async def schema_version(self) -> int:
        return await self.transaction(_read_version)

    async def check_schema(self) -> None:
        """Check, without writing, that the database holds this library's schema: what a
        store that only reads (see :func:`open_store`'s ``read_only``) does instead of
        :meth:`setup`.

        Raises:
            StoreError: it holds no scheduler tables, or a schema version that
                :meth:`setup` would migrate, or a newer one; the message says what to do.
        """

        def read(conn: Connection) -> int | None:
            return _read_version(conn) if _holds_tables(conn) else None

        found = await self.transaction(read)
        if found is None:
            raise StoreError(f"database {self.safe_url} holds no scheduler tables")
        self._refuse_newer(found)
        if found < SCHEMA_VERSION:
            raise StoreError(
                f"database {self.safe_url} has schema version {found}, which this library "
                f"reads only once migrated to version {SCHEMA_VERSION}: start a runtime "
                "(e.g. 'serve') on it with write access once, after backing it up"
            )

    async def other_tables(self) -> list[str] | None:
        """Read without writing: None when the database holds the scheduler's tables,
        else the names of the tables it holds (none in a fresh one), sorted. What a
        command that only acts on existing tasks checks before a runtime's start would
        set them up in a database given by mistake.

        Raises:
            StoreUnavailable: the database could not be reached (retry later).
            StoreError: any other database failure (a file that is no database, say).
        """

        def read(conn: Connection) -> list[str] | None:
            return None if _holds_tables(conn) else sorted(inspect(conn).get_table_names())

        return await self.transaction(read)

    @overload
    async def secret(self, name: str) -> str: ...

    @overload
    async def secret(self, name: str, *, make: bool) -> str | None: ...

    async def secret(self, name: str, *, make: bool = True) -> str | None:
        """The random secret ``name`` that every runtime on this database shares: made by
        the first to ask, read by the others (kept in the meta table, so no schema change).
        ``make=False`` only reads it: None when no runtime made it yet (a reader that
        must not write).

        Two processes asking at once end with one secret: each inserts its own only if
        none is there, then reads what is stored.
        """

        def work(conn: Connection) -> str | None:
            if make:
                conn.execute(
                    self._insert_ignore(meta_table).values(key=name, value=secrets.token_hex(32))
                )
            value = conn.scalar(select(meta_table.c.value).where(meta_table.c.key == name))
            assert value is None or isinstance(value, str)
            return value

        return await self.transaction(work)

    # -- tasks: written by the task service only ----------------------------------

    async def insert_task(
        self,
        task: Task,
        *,
        max_active: int | None = None,
        if_absent: bool = False,
        approval_id: str | None = None,
        answer: CallAnswer | None = None,
    ) -> bool:
        """Insert a task; with ``max_active``, only if its owner has fewer active tasks
        (checked in the same statement). Returns False when the quota refused it.

        With ``if_absent``, a task already stored under this id is left as it is. With
        ``approval_id``, the task is inserted only while that approval is ``approved``,
        and the approval becomes ``applied`` in the same transaction, so it is carried
        out at most once. In both cases True is returned when nothing was written.

        Raises:
            CallAnswered: ``answer`` (kept with the task, in the same transaction) is
                that of a call answered already; nothing was written.
            TaskBusy: another session held the row locked throughout (see
                :meth:`_write_task`); nothing was written.
        """
        row = _task_row(task)

        def work(conn: Connection) -> bool:
            if approval_id is not None and not self._approval_open(conn, approval_id):
                return True
            if max_active is None or task.state != "active":
                statement = (
                    self._insert_ignore(tasks_table, "id") if if_absent else insert(tasks_table)
                ).returning(tasks_table.c.id)
                # RETURNING, not rowcount: SQLAlchemy keeps an INSERT's rowcount only when
                # asked, and psycopg's reads -1 once its cursor is closed (on PostgreSQL a
                # new task would then go unannounced to the other replicas).
                inserted = conn.execute(statement, row).first() is not None
            else:
                self._serialize_owner(conn, task.owner)
                if if_absent and _task_exists(conn, task.id):
                    inserted = False
                else:
                    values = select(*[literal(v, tasks_table.c[k].type) for k, v in row.items()])
                    # The owner's lock does not hold off an insert of this id by another
                    # owner, or by a create without quota: that one wins, as above.
                    into = (
                        self._insert_ignore(tasks_table, "id") if if_absent else insert(tasks_table)
                    )
                    statement = into.from_select(
                        list(row), values.where(self._active_of(task.owner) < max_active)
                    ).returning(tasks_table.c.id)
                    inserted = conn.execute(statement).first() is not None
                    if not inserted and not (if_absent and _task_exists(conn, task.id)):
                        return False
            if approval_id is not None:
                _close_approval(conn, approval_id, task.updated_at)
            if inserted:
                self._keep_answer(conn, answer)
                self._notify(conn, task.id)
                # A copy: the caller keeps ``task``, and may change what its payload holds
                # (the rest of a task is frozen).
                self._remember(
                    tuple(row[column.name] for column in tasks_table.columns),
                    task.model_copy(update={"payload": copy.deepcopy(task.payload)}),
                )
            return True

        return await self._write_task(task.id, work)

    async def save_task(
        self,
        task: Task,
        *,
        expected_version: int,
        columns: Iterable[str],
        max_active: int | None = None,
        cancel_retries: bool = False,
        approval_id: str | None = None,
        answer: CallAnswer | Callable[[Task], CallAnswer | None] | None = None,
    ) -> SaveResult:
        """Write the ``columns`` of ``task`` (and ``updated_at``, the version bumped) if the
        stored one still has ``expected_version``; with ``max_active``, only if the owner
        then has room for it among its active tasks (for a task becoming active).
        ``cancel_retries`` drops the task's retries waiting for their backoff in the same
        transaction. Columns not named keep what is stored (even if it cannot be read).
        With ``approval_id``, the write happens only while that approval is ``approved``
        (``done`` otherwise), and the approval becomes ``applied`` with it. ``answer`` is
        kept with the write (see :meth:`insert_task`); given as a function, it is made
        from the task as the write left its row (for a row read with a ``problem``, which
        only that read tells mended or not).

        Raises:
            CallAnswered: ``answer``'s call was answered already; nothing was written.
            TaskBusy: another session held the task's row locked throughout (see
                :meth:`_write_task`); nothing was written.
        """
        full = _task_row(task)
        row = {key: full[key] for key in {*columns, "updated_at"}}
        row["version"] = expected_version + 1

        def work(conn: Connection) -> SaveResult:
            if approval_id is not None and not self._approval_open(conn, approval_id):
                return "done"
            match = and_(tasks_table.c.id == task.id, tasks_table.c.version == expected_version)
            condition = match
            if max_active is not None:
                self._serialize_owner(conn, task.owner)
                others = self._active_of(task.owner, excluding=task.id)
                condition = and_(match, others < max_active)
            if conn.execute(update(tasks_table).where(condition).values(row)).rowcount != 1:
                found = conn.scalar(
                    select(tasks_table.c.version).where(tasks_table.c.id == task.id)
                )
                if found is None:
                    return "missing"
                return "conflict" if found != expected_version else "quota"
            if cancel_retries:
                conn.execute(delete(retries_table).where(retries_table.c.task_id == task.id))
            if approval_id is not None:
                _close_approval(conn, approval_id, task.updated_at)
            kept = answer
            if callable(kept):
                by_id = select(tasks_table).where(tasks_table.c.id == task.id)
                kept = kept(task_from_row(conn.execute(by_id).mappings().one()))
            self._keep_answer(conn, kept)
            self._notify(conn, task.id)
            return "saved"

        return await self._write_task(task.id, work)

    async def delete_task(
        self,
        task_id: str,
        *,
        answer: CallAnswer | Callable[[int], CallAnswer | None] | None = None,
    ) -> bool:
        """Delete a task, its history and its waiting retries; a run in flight finishes
        unrecorded (a delete stops no turn under way). ``answer`` is kept with the delete
        (see :meth:`insert_task`); given as a function, it is made from the number of the
        task's runs in flight, read in the delete's transaction (called only when there
        was such a task).

        Raises:
            CallAnswered: ``answer``'s call was answered already; nothing was deleted.
            TaskBusy: another session held the task's row locked throughout (see
                :meth:`_write_task`); nothing was deleted.
        """
        of_task = runs_table.c.task_id == task_id
        in_flight = select(func.count()).where(of_task, runs_table.c.outcome.is_(None))

        def work(conn: Connection) -> bool:
            result = conn.execute(delete(tasks_table).where(tasks_table.c.id == task_id))
            running = conn.scalar(in_flight) or 0
            conn.execute(delete(runs_table).where(of_task))
            conn.execute(delete(retries_table).where(retries_table.c.task_id == task_id))
            if result.rowcount:
                self._keep_answer(conn, answer(running) if callable(answer) else answer)
            self._notify(conn, task_id)
            return bool(result.rowcount)

        return await self._write_task(task_id, work)

    # -- approvals: written by the task service only --------------------------------

    async def add_approval(self, approval: Approval) -> Approval:
        """Store ``approval`` unless one with its id exists; returns the stored one (the
        first proposal of a tool call wins, however often the call runs)."""
        row = _approval_row(approval)
        query = select(approvals_table).where(approvals_table.c.id == approval.id)

        def work(conn: Connection) -> Approval:
            conn.execute(self._insert_ignore(approvals_table, "id").values(row))
            return approval_from_row(conn.execute(query).mappings().one())

        return await self.transaction(work)

    async def get_approval(self, approval_id: str) -> Approval | None:
        query = select(approvals_table).where(approvals_table.c.id == approval_id)

        def work(conn: Connection) -> Approval | None:
            row = conn.execute(query).mappings().first()
            return approval_from_row(row) if row else None

        return await self.transaction(work)

    async def move_approval(self, approval_id: str, *, step: str) -> Approval | None:
        """Move an approval to another LangGraph step (its call runs again from a new
        checkpoint); the approval as stored, None if it is gone."""
        table = approvals_table
        statement = update(table).where(table.c.id == approval_id).values(step=step)
        query = select(table).where(table.c.id == approval_id)

        def work(conn: Connection) -> Approval | None:
            conn.execute(statement)
            row = conn.execute(query).mappings().first()
            return approval_from_row(row) if row else None

        return await self.transaction(work)

    async def step_approvals(self, owner: str, step: str) -> list[Approval]:
        """The owner's approvals asked for in one LangGraph step, oldest first."""
        query = (
            select(approvals_table)
            .where(approvals_table.c.owner == owner, approvals_table.c.step == step)
            .order_by(approvals_table.c.created_at, approvals_table.c.id)
        )
        return await self.transaction(
            lambda conn: [approval_from_row(r) for r in conn.execute(query).mappings()]
        )

    async def asked_of_others(self, owner: str, step: str, tool_call_id: str) -> bool:
        """Whether the tool call ``tool_call_id`` of one LangGraph step has an approval
        asked for an owner other than ``owner`` (a resume sent as another user)."""
        table = approvals_table
        query = (
            select(table.c.id)
            .where(
                table.c.step == step,
                table.c.tool_call_id == tool_call_id,
                table.c.owner != owner,
            )
            .limit(1)
        )
        return await self.transaction(lambda conn: conn.scalar(query) is not None)

    async def approved_approvals(
        self,
        owner: str,
        *,
        action: Literal["create", "update"],
        task_id: str | None,
        decided_since: datetime,
    ) -> list[Approval]:
        """The owner's approvals of ``action`` (on ``task_id``, when given) approved at
        or after ``decided_since`` and not carried out yet, newest first."""
        table = approvals_table
        query = select(table).where(
            table.c.owner == owner,
            table.c.status == "approved",
            table.c.action == action,
            table.c.decided_at >= decided_since,
        )
        if task_id is not None:
            query = query.where(table.c.task_id == task_id)
        query = query.order_by(table.c.decided_at.desc(), table.c.id)
        return await self.transaction(
            lambda conn: [approval_from_row(r) for r in conn.execute(query).mappings()]
        )

    async def decide_approval(
        self,
        approval_id: str,
        *,
        status: ApprovalStatus,
        reason: str | None,
        now: datetime,
        expected: ApprovalStatus = "pending",
    ) -> bool:
        """Move an approval from ``expected`` to ``status``; False when it was not in
        ``expected`` any more (the first answer wins)."""
        statement = (
            update(approvals_table)
            .where(approvals_table.c.id == approval_id, approvals_table.c.status == expected)
            .values(status=status, reason=reason, decided_at=now)
        )
        return await self.transaction(lambda conn: conn.execute(statement).rowcount == 1)

    async def purge_approvals(self, *, decided_before: datetime) -> int:
        """Delete approvals answered (or carried out) before the cutoff; those still
        waiting for an answer stay."""
        statement = delete(approvals_table).where(approvals_table.c.decided_at < decided_before)
        return await self.transaction(lambda conn: int(conn.execute(statement).rowcount or 0))

    def _approval_open(self, conn: Connection, approval_id: str) -> bool:
        """True when the approval is ``approved`` and not yet carried out (locked until
        the transaction ends, so two writers cannot both carry it out)."""
        query = self._lock_row(
            select(approvals_table.c.status).where(approvals_table.c.id == approval_id)
        )
        status: str | None = conn.scalar(query)
        return status == "approved"

    # -- tool call answers: written by the task service only ------------------------

    async def get_call_answer(self, call_id: str) -> CallAnswer | None:
        query = select(tool_calls_table).where(tool_calls_table.c.id == call_id)

        def work(conn: Connection) -> CallAnswer | None:
            row = conn.execute(query).mappings().first()
            return call_answer_from_row(row) if row else None

        return await self.transaction(work)

    async def add_call_answer(self, answer: CallAnswer) -> CallAnswer:
        """Keep ``answer`` unless its call has one; returns the one kept (the first)."""
        query = select(tool_calls_table).where(tool_calls_table.c.id == answer.id)

        def work(conn: Connection) -> CallAnswer:
            conn.execute(self._insert_ignore(tool_calls_table, "id").values(_answer_row(answer)))
            return call_answer_from_row(conn.execute(query).mappings().one())

        return await self.transaction(work)

    async def purge_call_answers(self, *, before: datetime) -> int:
        """Delete the answers of tool calls made before the cutoff."""
        statement = delete(tool_calls_table).where(tool_calls_table.c.created_at < before)
        return await self.transaction(lambda conn: int(conn.execute(statement).rowcount or 0))

    def _keep_answer(self, conn: Connection, answer: CallAnswer | None) -> None:
        """Keep ``answer`` in the transaction of the change it answers; if its call has an
        answer already, undo the transaction (on PostgreSQL a concurrent run of the call
        waits here for the other's commit)."""
        if answer is None:
            return
        statement = (
            self._insert_ignore(tool_calls_table, "id")
            .values(_answer_row(answer))
            .returning(tool_calls_table.c.id)
        )
        if conn.execute(statement).first() is None:
            raise CallAnswered(answer.id)

    # -- tasks: reads ---------------------------------------------------------------

    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task | None:
        query = select(tasks_table).where(tasks_table.c.id == task_id)
        if owner is not None:
            query = query.where(tasks_table.c.owner == owner)

        def work(conn: Connection) -> Task | None:
            row = conn.execute(query).mappings().first()
            return task_from_row(row) if row else None

        return await self.transaction(work)

    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        states: Sequence[str] | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskPage:
        """Tasks, oldest first; a row that cannot be read comes back with ``problem``."""
        query = select(tasks_table)
        if owner is not None:
            query = query.where(tasks_table.c.owner == owner)
        if thread_id is not None:
            query = query.where(tasks_table.c.thread_id == thread_id)
        if states:
            query = query.where(self._read_as(states))
        query = (
            query.order_by(tasks_table.c.created_at, tasks_table.c.id)
            .limit(limit + 1)
            .offset(offset)
        )

        def work(conn: Connection) -> TaskPage:
            rows = conn.execute(query).mappings().all()
            tasks = [task_from_row(r) for r in rows[:limit]]
            if states:
                tasks = [task for task in tasks if _reads_as_told(task, states)]
            return TaskPage(tasks, offset + limit if len(rows) > limit else None)

        return await self.transaction(work)

    async def count_tasks(
        self,
        *,
        owner: str | None = None,
        states: Sequence[str],
        outside_thread: str | None = None,
    ) -> int:
        """Tasks in ``states`` (of ``owner``, in any other conversation than
        ``outside_thread`` or isolated: each when given), counted in one read."""
        query = select(func.count()).select_from(tasks_table)
        if owner is not None:
            query = query.where(tasks_table.c.owner == owner)
        if outside_thread is not None:
            column = tasks_table.c.thread_id
            query = query.where(or_(column.is_(None), column != outside_thread))
        query = query.where(self._read_as(states))
        return await self.transaction(lambda conn: int(conn.scalar(query) or 0))

    def _read_as(self, states: Sequence[str]) -> ColumnElement[bool]:
        """The rows :func:`task_from_row` reads in one of ``states``, told by the database
        so that a filtered page or count is read as one: a row whose state or another
        column cannot be read (written by hand) reads as ``quarantined`` whatever state it
        holds, and not as the state it holds.

        Note:
            The state index serves the other states; no index tells which rows cannot be
            read, so asking for ``quarantined`` checks every task of the owner (or every
            task) in the database, as a listing of all states does.
        """
        t = tasks_table.c
        if set(states) >= _EVERY_STATE:  # every row reads as one of them
            return true()
        readable = func.coalesce(and_(t.state.in_(_READABLE_STATES), *self._readable()), false())
        kept = [state for state in states if state != "quarantined"]
        wanted = [and_(t.state.in_(kept), readable)] if kept else []
        if len(kept) < len(states):
            wanted.append(not_(readable))
        return or_(*wanted)

    def _readable(self) -> list[ColumnElement[bool]]:
        """Checks that a task row's values can be read as a task (its state aside), the
        twin of :func:`task_from_row` in SQL; a twin adds what its columns may hold
        beyond their type."""
        t = tasks_table.c
        checks = [
            t.thread_mode.in_(get_args(ThreadMode)),
            or_(t.last_outcome.is_(None), t.last_outcome.in_(get_args(RunOutcome))),
            or_(t.state != "active", t.next_run_at.is_not(None)),  # see NO_NEXT_RUN
        ]
        checks += [or_(t[name].is_(None), self._readable_time(t[name])) for name in _TIMES]
        return checks

    def _readable_time(self, held: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether a stored time (not NULL) reads as one, told by the database: any
        other reads as one of the bounds (see ``_BOUNDS``); a twin adds what its
        columns may hold beyond their type."""
        return and_(held > _EARLIEST, held < _LATEST)

    def _unreadable_time(self, held: ColumnElement[Any]) -> ColumnElement[bool]:
        """Whether a stored time (not NULL) does not read as one (see
        :meth:`_readable_time`): true, not NULL, for such a row."""
        return not_(func.coalesce(self._readable_time(held), false()))

    def _stale(self, now: datetime, holders: Sequence[str]) -> ColumnElement[bool]:
        """Running fires' claims that lapsed: no lease, a lease past ``now`` or one that
        cannot be read (written by hand: no runtime renews it as such, and it could
        never be told lapsed), or a holder among ``holders`` (known to be dead)."""
        lease = runs_table.c.lease_expires_at
        unreadable = self._unreadable_time(lease)
        stale = or_(lease.is_(None), lease < now, unreadable)
        if holders:
            stale = or_(stale, runs_table.c.holder.in_(list(holders)))
        return stale

    def _active_of(self, owner: str, *, excluding: str | None = None) -> Any:
        """The count of ``owner``'s tasks that read as active (but ``excluding``), for a
        quota checked in the statement that writes: counted as :meth:`count_tasks` and
        a listing count them, so a row that reads as quarantined takes no room."""
        query = (
            select(func.count())
            .select_from(tasks_table)
            .where(tasks_table.c.owner == owner, self._read_as(["active"]))
        )
        if excluding is not None:
            query = query.where(tasks_table.c.id != excluding)
        return query.scalar_subquery()

    async def due_times(self, *, until: datetime) -> list[datetime]:
        """The distinct instants before ``until`` at which a task or a retry falls due,
        earliest first (the window a runtime sets its timers for); read through the
        ``(state, next_run_at)`` and ``due_at`` indexes, never a scan of all tasks."""
        tasks = (
            select(tasks_table.c.next_run_at.label("at"))
            .where(tasks_table.c.state == "active", tasks_table.c.next_run_at < until)
            .distinct()
            .order_by(tasks_table.c.next_run_at)
            .limit(MAX_WINDOW_TIMES)
        )
        retries = (
            select(retries_table.c.due_at.label("at"))
            .where(retries_table.c.due_at < until)
            .distinct()
            .order_by(retries_table.c.due_at)
            .limit(MAX_WINDOW_TIMES)
        )

        def work(conn: Connection) -> list[datetime]:
            found = {row[0] for row in conn.execute(tasks)}
            found.update(row[0] for row in conn.execute(retries))
            return sorted(found)[:MAX_WINDOW_TIMES]

        return await self.transaction(work)

    async def changed_since(self, since: datetime) -> list[tuple[TaskChange, datetime]]:
        """Tasks changed through the task service at or after ``since``, with the time
        of their change (the polling change feed)."""
        query = select(
            tasks_table.c.id,
            tasks_table.c.state,
            tasks_table.c.next_run_at,
            tasks_table.c.updated_at,
        ).where(tasks_table.c.updated_at >= since)
        return await self.transaction(
            lambda conn: [(TaskChange(r[0], r[1], r[2]), r[3]) for r in conn.execute(query)]
        )

    # -- fires ----------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        as_of: datetime,
        limit: int,
        holder: str,
        lease_until: datetime,
        started_at: datetime,
    ) -> list[Claimed]:
        """Claim up to ``limit`` fires due at ``as_of`` as ``holder``: retries whose
        backoff ended, then tasks whose ``next_run_at`` has come (earliest first).

        For each due task the fire policy (:func:`~._fire.plan_fire`) decides, on the row
        as read, what runs and what is missed; the running record is inserted with a
        lease (until ``lease_until``), and the task moves to its next fire time with its
        version bumped, atomically. A task whose row cannot be read is quarantined with
        an ``error`` record. The claim is one transaction that reads the rows under lock;
        rows another claim holds are skipped, so replicas split a burst; a usual claim
        is written fire by fire instead, each write checking the task's version (see
        :meth:`_claim`).
        """
        asked = _DueClaim(as_of, limit, holder, lease_until, started_at)
        adopted = await self._adopt(asked) if self._unheard and limit > 0 else []
        if adopted:
            if len(adopted) >= limit:
                return adopted
            asked = replace(asked, limit=limit - len(adopted))
        claimed: list[Claimed] = []
        try:
            claimed = await self._claim(asked, functools.partial(self._claim_locked, asked))
        except Exception:
            if not adopted:
                raise
            # The adopted fires hold a new lease and nothing else would run them.
            logger.warning("claiming due fires failed; running the adopted ones", exc_info=True)
        finally:
            if asked.in_doubt:  # a locked claim's runs, or writes whose answer was lost
                answered = {c.run.run_id for c in claimed if c.run is not None}
                self._unheard += [r for r in asked.in_doubt if r.run_id not in answered]
        if self._unheard and len(claimed) < asked.limit:  # a claim sent again, say
            try:
                claimed += await self._adopt(replace(asked, limit=asked.limit - len(claimed)))
            except Exception as exc:  # what was claimed is returned all the same
                logger.warning("looking for fires claimed without an answer failed: %r", exc)
        return adopted + claimed

    async def _adopt(self, asked: _DueClaim) -> list[Claimed]:
        """Fires of this store's earlier claims that were sent but never answered (the
        connection lost after a statement went out, a commit whose answer was lost),
        at most ``asked.limit``: those written and still running under
        ``asked.holder``'s claim get a new lease and are returned, to be run now
        instead of waiting for their lease to run out; the others were never written
        and are forgotten."""
        doubt = self._unheard[: asked.limit]
        by_id = {record.run_id: record for record in doubt}
        runs = runs_table.c
        held = (
            update(runs_table)
            .where(
                runs.run_id.in_(sorted(by_id)),
                runs.holder == asked.holder,
                runs.outcome.is_(None),
            )
            .values(lease_expires_at=asked.lease_until)
            .returning(runs.run_id)
        )

        def work(conn: Connection) -> list[Claimed]:
            out: list[Claimed] = []
            for run_id in sorted(conn.execute(held).scalars()):
                record = by_id[run_id]
                row = _first(self._read(conn, self._fire.task_row, {"b_id": record.task_id}))
                if row is None:  # the task is gone: the lease sweep records the run
                    continue
                task = self._task_of(row)
                out.append(Claimed(task, record, next_run_at=task.next_run_at))
            return out

        adopted = await self.transaction(work)
        del self._unheard[: len(doubt)]
        if adopted:
            logger.warning(
                "%d claimed fire(s) whose claim was not answered were written: running them",
                len(adopted),
            )
        return adopted

    async def _claim(
        self, asked: _DueClaim, locked: Callable[[Connection], list[Claimed]]
    ) -> list[Claimed]:
        """When every due fire runs on time and no retry is due (the usual claim), the
        due tasks are read and each fire written by one statement, outside a
        transaction: the write happens only if the task still has the version it was
        read at (on PostgreSQL, and only if no other claim holds its row), so a task
        changed in between is left for the next claim. Otherwise ``locked``, one
        transaction that reads the due rows under lock.

        Where bursts take the locked claim (PostgreSQL), a claim that filled all its room
        that way is followed by another straight through it, without the usual claim's
        read, which would find the burst again (a round trip per fire of a burst); the
        first locked claim that finds less than its room ends the burst."""
        if not self._in_burst:
            usual = functools.partial(self._claim_usual, asked)
            claimed = await self._guarded(self._run_alone(usual))
            if claimed is not None:
                return claimed
        self._in_burst = False  # until this claim says otherwise (it may raise)
        claimed = await self.transaction(locked)
        self._in_burst = self._BURSTS_LOCKED and len(claimed) >= asked.limit > 0
        return claimed

    _BURSTS_LOCKED = False
    """Twin setting: a claim that finds more due tasks than it has room for (a burst)
    takes the locked path, whose row locks split a burst between replicas."""

    def _claim_usual(self, asked: _DueClaim, conn: Connection) -> list[Claimed] | None:
        """The usual claim (see :meth:`_claim`), or None when this one is not."""
        # Where a burst takes the locked claim, one more than there is room for: is
        # there a backlog?
        room = asked.limit + 1 if self._BURSTS_LOCKED else asked.limit
        when = {"b_as_of": asked.as_of, "b_room": room}
        due = self._read(conn, self._fire.due_seen, when)
        if not due or due[0][-1]:  # nothing due but perhaps a retry, or a retry due
            return None
        if self._BURSTS_LOCKED and len(due) > asked.limit:
            return None
        planned = []
        for row in due[: asked.limit]:  # the rest stay due for later
            task, decision = self._plan(row, asked)
            if decision is None:  # unreadable: quarantined by the locked claim
                return None
            if decision.run_for is None or decision.missed:
                return None
            planned.append((row, task, decision))
        out: list[Claimed] = []
        for row, task, decision in planned:
            sent = len(asked.in_doubt)
            try:
                claimed = self._claim_planned(conn, row, task, decision, asked)
                del asked.in_doubt[sent:]  # answered (each statement commits alone)
            except Exception:
                if not out:
                    raise
                # The fires claimed so far are committed: they are returned, so their
                # runtime runs them; the rest stay due for the next claim.
                logger.warning(
                    "claim stopped after %d fire(s); the others stay due", len(out), exc_info=True
                )
                break
            if claimed is not None:  # None: the task changed since it was read
                out.append(claimed)
        return out

    def _claim_locked(self, asked: _DueClaim, conn: Connection) -> list[Claimed]:
        """A claim of due fires in one transaction, its rows read under lock."""
        fire, as_of, limit = self._fire, asked.as_of, asked.limit
        out: list[Claimed] = []
        when = {"b_as_of": as_of, "b_room": limit}
        due = self._read(conn, fire.due_tasks, when)
        if not due or due[0][-1]:  # a retry is due (or no task row could say)
            for retry in conn.execute(fire.due_retries, when).mappings().all():
                claimed = self._claim_retry(conn, retry, asked)
                if claimed is not None:
                    out.append(claimed)
        for row in due[: max(limit - len(out), 0)]:  # the rest stay due for later
            out.append(self._claim_task(conn, row, asked))
        return out

    def _claim_retry(self, conn: Connection, row: Any, asked: _DueClaim) -> Claimed | None:
        fire, by_id = self._fire, {"b_id": row["task_id"]}
        # Skip a task another transaction holds (a finish, say) instead of waiting for
        # it while holding rows of our own: the retry stays due for the next claim.
        task_row = _first(self._read(conn, fire.task_or_skip, by_id))
        if task_row is None and conn.scalar(fire.task_exists, by_id) is not None:
            return None
        if row["scheduled_for"] in _BOUNDS:  # written by hand: no occurrence to run it for
            self._drop_unplaced_retry(conn, row)
            return None
        self._write(
            conn,
            fire.drop_retry,
            by_id | {"b_for": row["held_for"], "b_attempt": row["attempt"]},
        )
        if task_row is None:
            return None
        task = self._task_of(task_row)
        if task.state not in ("active", "completed"):
            return None
        record = _running_record(
            task,
            row["scheduled_for"],
            trigger="schedule",
            attempt=_retry_attempt(row),
            due_at=_retry_due(row, asked.as_of),
            now=asked.as_of,
        )
        if task.problem is not None:  # changed since the attempt it retries
            return self._quarantine(conn, task, asked.as_of, asked.holder, record)
        asked.in_doubt.append(record)
        if not self._insert_run(conn, record, asked.holder, asked.lease_until):
            return None
        return Claimed(task, record, next_run_at=task.next_run_at)

    def _drop_unplaced_retry(self, conn: Connection, row: Any) -> None:
        """Drop a due retry whose occurrence cannot be read (written by hand: it reads as
        the earliest or latest time, see ``_BOUNDS``), unrun, logged: as the sweep ends
        such a running fire, not retried, a retry would be a fire of no known occurrence.
        Matched by what it holds, not by the time it reads as: kept, it was claimed again
        by every claim (and run once, for year 1 or 9999)."""
        logger.warning(
            "retry of task %s (attempt %r): its stored scheduled_for cannot be read; dropped,"
            " not run",
            row["task_id"],
            row["attempt"],
        )
        held = retries_table.c.scheduled_for
        conn.execute(
            delete(retries_table).where(
                retries_table.c.task_id == row["task_id"],
                retries_table.c.attempt == row["attempt"],
                or_(held.in_(_BOUNDS), self._unreadable_time(held)),
            )
        )

    def _plan(self, row: Sequence[Any], asked: _DueClaim) -> tuple[Task, FireDecision | None]:
        """A due task's row read for a claim: its task (not kept yet: the claim keeps it
        as moved on) and its fire's plan (None: the row cannot be read)."""
        task = self._task_of(row, keep=False)
        if task.problem is not None:
            return task, None
        return task, plan_fire(task, as_of=asked.as_of, started_at=asked.started_at)

    def _claim_task(self, conn: Connection, row: Sequence[Any], asked: _DueClaim) -> Claimed:
        task, decision = self._plan(row, asked)
        if decision is None:
            return self._quarantine(conn, task, asked.as_of, asked.holder)
        claimed = self._claim_planned(conn, row, task, decision, asked)
        assert claimed is not None  # the row is locked: it cannot have changed
        return claimed

    def _claim_planned(
        self,
        conn: Connection,
        row: Sequence[Any],
        task: Task,
        decision: FireDecision,
        asked: _DueClaim,
    ) -> Claimed | None:
        """Write a due task's fire as ``decision`` planned it, from its ``row`` as read;
        None if the task changed since that read (nothing written: only possible for a
        row read outside a transaction, see :meth:`_claim`)."""
        as_of, holder, lease_until = asked.as_of, asked.holder, asked.lease_until
        run = None
        finished: list[TaskRunRecord] = []
        if decision.run_for is not None:
            run = _running_record(
                task,
                decision.run_for,
                trigger="schedule",
                attempt=1,
                due_at=decision.run_for,
                now=as_of,
            )
            asked.in_doubt.append(run)
        missed = _missed_record(task, decision, as_of)
        written: dict[str, Any] = {
            "next_run_at": decision.next_run_at,
            "state": "completed" if decision.completes else task.state,
        }
        move = _binds(written) | {"b_id": task.id, "b_version": task.version}
        if run is not None and missed is None:  # the usual case
            started = self._start_run(conn, run, holder, lease_until, move)
            if started is None:
                return None
            if not started:
                run = None  # already claimed: the task was still moved on
        else:
            if run is not None and not self._insert_run(conn, run, holder, lease_until):
                run = None  # already claimed: the move below still moves the task on
            if missed is not None and self._insert_run(conn, missed, holder, None):
                finished.append(missed)
            statement = self._fire.move_task
            if missed is not None and run is None:
                written |= {"last_outcome": "missed", "last_run_at": as_of}
                move |= _binds(written)
                statement = self._fire.move_missed
            self._write(conn, statement, move | {"b_ran": int(run is not None)})
        ran = 1 if run is not None else 0
        written |= {"run_count": task.run_count + ran, "version": task.version + 1}
        if decision.completes:  # fires no more: not worth a place among the kept tasks
            self._forget(task.id)
        else:
            self._remember(_task_raw(row), task, **written)
        event: TaskEventKind | None = "completed" if decision.completes else None
        reason = "the schedule has no further fire time" if event else ""
        return Claimed(task, run, tuple(finished), event, reason, decision.next_run_at)

    def _quarantine(
        self,
        conn: Connection,
        task: Task,
        as_of: datetime,
        holder: str,
        fire: TaskRunRecord | None = None,
    ) -> Claimed:
        """Record a due fire of a task whose row cannot be read ``error`` without running
        it, and quarantine the task, in the claim's transaction: exactly one outcome, and
        nothing left to retry. ``fire``: the fire's running record (default: the task's
        due occurrence)."""
        if fire is None:
            due = task.next_run_at or as_of  # its due time itself may be what cannot be read
            fire = _running_record(task, due, trigger="schedule", attempt=1, due_at=due, now=as_of)
        record = _unrunnable(fire, task, as_of)
        self._insert_run(conn, record, holder, None)
        self._quarantine_task(conn, task, as_of)
        quarantined = task.model_copy(update={"state": "quarantined", "next_run_at": None})
        return Claimed(quarantined, None, (record,), "quarantined", record.error or "", None)

    def _quarantine_task(self, conn: Connection, task: Task, as_of: datetime) -> None:
        """Quarantine a task whose row cannot be read, its fire at ``as_of`` recorded
        ``error``; its waiting retries are dropped."""
        # Claimed as due without a due time it could read: that time is its problem.
        statement = (
            self._fire.quarantine_as_due if task.next_run_at is None else self._fire.quarantine
        )
        conn.execute(statement, {"b_id": task.id, "b_last_run_at": as_of})
        conn.execute(self._fire.drop_retries, {"b_id": task.id})
        self._forget(task.id)

    async def claim_manual(
        self,
        task_id: str,
        *,
        owner: str | None = None,
        at: datetime,
        holder: str,
        lease_until: datetime,
        max_per_task: int | None = None,
        max_per_owner: int | None = None,
        since: datetime | None = None,
        answer: Callable[[TaskRunRecord], CallAnswer] | None = None,
    ) -> tuple[Task, TaskRunRecord] | Literal["task", "owner"] | None:
        """Claim a manual run, due ``at`` (outside its schedule), of the task ``task_id``
        (of ``owner``, when given): the task as read in the same transaction and the
        running record; None if there is no such task. For the engine: the task is the
        store's shared, validated form, not to be handed on.

        With limits, the manual runs started since ``since`` are counted in the same
        transaction (per task, and over the owner's tasks): at a limit nothing is claimed
        and the limit reached (``"task"`` or ``"owner"``) is returned instead.

        ``answer`` gives the tool call's answer for the running record, kept in the same
        transaction as the claim.

        A task whose payload cannot be read has no turn to run: its record comes back
        finished, ``error`` saying why, and the task (returned as read) is quarantined in
        the same transaction.

        Raises:
            CallAnswered: ``answer``'s call was answered already; nothing was claimed.
        """
        asked = _ManualClaim(task_id, owner, at, holder, lease_until, str(uuid.uuid4()))
        limited = self._manual_limits(max_per_task, max_per_owner, since)
        if limited is None and answer is None:
            return await self._claim_manual_alone(asked)

        def work(conn: Connection) -> tuple[Task, TaskRunRecord] | Literal["task", "owner"] | None:
            claimed = self._claim_manual(asked, limited, conn)
            if answer is not None and isinstance(claimed, tuple):
                self._keep_answer(conn, answer(claimed[1]))
            return claimed

        return await self.transaction(work)

    def _manual_limits(
        self, max_per_task: int | None, max_per_owner: int | None, since: datetime | None
    ) -> Callable[[Task, Connection], Literal["task", "owner"] | None] | None:
        """The check of the manual-run limits within a claim's transaction (None: none)."""
        if since is None or (max_per_task is None and max_per_owner is None):
            return None
        manual = and_(runs_table.c.trigger == "manual", runs_table.c.started_at >= since)

        def limited(task: Task, conn: Connection) -> Literal["task", "owner"] | None:
            self._serialize_owner(conn, task.owner)
            if max_per_task is not None:
                mine = select(func.count()).where(manual, runs_table.c.task_id == task.id)
                if int(conn.scalar(mine) or 0) >= max_per_task:
                    return "task"
            if max_per_owner is not None:
                owned = select(tasks_table.c.id).where(tasks_table.c.owner == task.owner)
                theirs = select(func.count()).where(manual, runs_table.c.task_id.in_(owned))
                if int(conn.scalar(theirs) or 0) >= max_per_owner:
                    return "owner"
            return None

        return limited

    async def _claim_manual_alone(
        self, asked: _ManualClaim
    ) -> tuple[Task, TaskRunRecord] | Literal["task", "owner"] | None:
        """A manual claim without limits (PostgreSQL: in one statement)."""
        return await self.transaction(functools.partial(self._claim_manual, asked, None))

    def _claim_manual(
        self,
        asked: _ManualClaim,
        limited: Callable[[Task, Connection], Literal["task", "owner"] | None] | None,
        conn: Connection,
    ) -> tuple[Task, TaskRunRecord] | Literal["task", "owner"] | None:
        fire = self._fire
        if asked.owner is None:
            row = _first(self._read(conn, fire.task_row, {"b_id": asked.task_id}))
        else:
            whose = {"b_id": asked.task_id, "b_owner": asked.owner}
            row = _first(self._read(conn, fire.owned_task_row, whose))
        if row is None:
            return None
        task = self._task_of(row)
        if limited is not None:
            # Sent again after a lost commit: the run is ours, and counted as one.
            ours = self._stored_run(conn, run_id=asked.run_id)
            if ours is not None:
                return task, ours
            reached = limited(task, conn)
            if reached is not None:
                return reached
        # No turn can be built from a payload that cannot be read (looked at only for a
        # row read with a problem): the run is recorded error at once and the task
        # quarantined, in this transaction.
        unrunnable = payload_unreadable(task)
        # Two manual runs of one task in the same microsecond would share the fire's
        # key: the later one is due a microsecond later instead of being lost.
        due = asked.at
        while True:
            record = asked.record(task, due)
            if unrunnable:
                record = _unrunnable(record, task, asked.at)
                if self._insert_run(conn, record, asked.holder, None):
                    self._quarantine_task(conn, task, asked.at)
                    return task, record
            elif self._insert_run(conn, record, asked.holder, asked.lease_until):
                return task, record
            ours = self._stored_run(conn, run_id=asked.run_id)
            if ours is not None:  # this claim's own run, inserted by a lost attempt
                return task, ours
            due += timedelta(microseconds=1)

    async def _unrun_manual(
        self, task: Task, record: TaskRunRecord, asked: _ManualClaim
    ) -> TaskRunRecord:
        """Record ``error`` the manual run ``record`` claimed by one statement (the claim
        alone) for a task whose payload cannot be read, and quarantine the task. Should
        the process die first, the run is recorded ``interrupted`` when its lease lapses
        (a manual run is never retried), and the task is quarantined at its next fire."""
        finished = _unrunnable(record, task, asked.at)
        params = _finish_params(finished, _finished_values(finished), asked.holder)

        def work(conn: Connection) -> TaskRunRecord:
            if self._write(conn, self._fire.finish_run, params)[0] == 1:
                self._quarantine_task(conn, task, asked.at)
                return finished
            return self._stored_run(conn, run_id=record.run_id) or finished

        return await self.transaction(work)

    @abstractmethod
    def _start_run(
        self,
        conn: Connection,
        run: TaskRunRecord,
        holder: str,
        lease_until: datetime,
        move: dict[str, Any],
    ) -> bool | None:
        """Insert a claimed fire's running record and move its task on (``move``: the
        parameters of ``move_task`` but the run count's, with the version the task was
        read at); False if the fire was already claimed (the task is moved all the
        same); None if the task's version is no longer the one read (nothing written).
        One statement on either twin."""

    def _insert_run(
        self, conn: Connection, record: TaskRunRecord, holder: str, lease_until: datetime | None
    ) -> bool:
        row = _run_row(record, holder, lease_until)
        return self._write(conn, self._fire.insert_run, row)[1] is not None

    async def finish_runs(
        self, finishes: Sequence[Finish], *, now: datetime, holder: str
    ) -> list[Finished | None]:
        """Record outcomes of running fires claimed by ``holder`` in one transaction, with
        what each does to its task (a retry row, the failure streak, an auto-pause). None
        for a fire that was already finished (by a lease sweep, say), whose claim another
        holder took over, or whose task is gone. A batch that meets a task's row
        another session holds gives up within a lock timeout (``StoreUnavailable``, which
        the engine retries with backoff) rather than wait for it on a pooled connection."""

        if len(finishes) == 1:
            lone = finishes[0]
            if settles_alone(lone.record.trigger, lone.outcome):  # the usual case
                return [await self._finish_alone(lone, now, holder)]

        def work(conn: Connection) -> list[Finished | None]:
            # Tasks are locked in one order, so concurrent batches cannot deadlock.
            order = sorted(range(len(finishes)), key=lambda i: finishes[i].record.task_id)
            out: list[Finished | None] = [None] * len(finishes)
            for i in order:
                out[i] = self._finish(conn, finishes[i], now, holder=holder)
            self._free_claimed_threads(conn, [f.record.run_id for f in finishes])
            return out

        return await self._guarded(self._run_bounded(work))

    async def _finish_alone(self, finish: Finish, now: datetime, holder: str) -> Finished | None:
        """Record one settled outcome (:func:`~._fire.settles_alone`) by itself, one
        statement sent alone (PostgreSQL: on the replica's own session)."""
        settle = functools.partial(self._finish, finish=finish, now=now, holder=holder)
        return await self._guarded(self._run_alone(settle))

    def _finish(
        self,
        conn: Connection,
        finish: Finish,
        now: datetime,
        *,
        holder: str | None,
        skip_busy: bool = False,
        unplaced: Sequence[str] = (),
    ) -> Finished | None:
        """Record one outcome of a fire claimed by ``holder`` (None: whoever holds it; a
        sweep passes the holder it read, None for a claim that names none). With
        ``skip_busy`` a task row another transaction holds is not waited for (None: the
        run stays as it is, for a later sweep), so a sweep that already holds run rows can
        never wait in a cycle with a finish. A sweep names the times of the fire's row
        that cannot be read (:func:`_unplaced`): such a fire ends as its last attempt,
        and a start that cannot be read is not made its task's last run."""
        fire = self._fire
        record = _finished_record(finish, now)
        finished = _finished_values(record)
        assert record.outcome is not None
        if not skip_busy and settles_alone(record.trigger, record.outcome):
            return self._finish_settled(conn, record, finished, holder)
        by_id = {"b_id": record.task_id}
        task_row = _first(
            self._read(conn, fire.task_or_skip if skip_busy else fire.task_locked, by_id)
        )
        if task_row is None and skip_busy and conn.scalar(fire.task_exists, by_id) is not None:
            return None  # held by a finish or a claim right now
        if self._write(conn, fire.finish_run, _finish_params(record, finished, holder))[0] != 1:
            return None
        if task_row is None:
            return Finished(record, RunConsequence(None, 0))
        task = self._task_of(task_row, keep=False)  # kept below, with the outcome
        attempt = record.attempt
        last_run_at: datetime | None = record.started_at
        if unplaced:  # a row written by hand (off the fire path: only a sweep names any)
            attempt = LAST_ATTEMPT
            if "started_at" in unplaced:
                last_run_at = task.last_run_at
        if task.problem is not None:
            consequence = RunConsequence(None, task.failure_streak)
        else:
            consequence = after_run(
                task,
                trigger=record.trigger,
                attempt=attempt,
                outcome=record.outcome,
                error=record.error,
                now=now,
                retry=finish.retry,
                counted=finish.counted,
            )
        written: dict[str, Any] = {
            "last_outcome": record.outcome,
            "last_run_at": last_run_at,
            "failure_streak": consequence.failure_streak,
        }
        if consequence.event == "auto_paused":
            conn.execute(fire.drop_retries, by_id)
            written["updated_at"] = now
            conn.execute(fire.task_paused, by_id | _binds(written))
            written |= {"state": "paused", "next_run_at": None, "version": task.version + 1}
            self._notify(conn, task.id)
        else:
            self._write(conn, fire.task_outcome, by_id | _binds(written))
        if task.problem is None:
            self._remember(_task_raw(task_row), task, **written)
        if consequence.retry_at is not None:
            self._write(
                conn,
                fire.insert_retry,
                {
                    "task_id": task.id,
                    "scheduled_for": record.scheduled_for,
                    "attempt": record.attempt + 1,
                    "due_at": consequence.retry_at,
                },
            )
        return Finished(record, consequence)

    def _finish_settled(
        self, conn: Connection, record: TaskRunRecord, finished: dict[str, Any], holder: str | None
    ) -> Finished | None:
        """Record a settled outcome (:func:`~._fire.settles_alone`) of a fire claimed by
        ``holder`` without reading its task first: the run, then the task's last outcome
        and streak (a scheduled success resets it), which the write returns."""
        fire = self._fire
        if self._write(conn, fire.finish_run, _finish_params(record, finished, holder))[0] != 1:
            return None
        written, params = _settling(record)
        _, returned = self._write(conn, fire.task_settled, params)
        return self._settled(record, written, None if returned is None else returned[0])

    def _settled(
        self, record: TaskRunRecord, written: dict[str, Any], streak: int | None
    ) -> Finished:
        """The outcome of a settled finish whose task now has failure ``streak`` (None:
        the task is gone); the kept form of the task is brought up to date."""
        if streak is None:
            return Finished(record, RunConsequence(None, 0))
        written = written | {"failure_streak": streak}
        known = self._tasks.get(record.task_id)
        if known is not None:
            self._remember(known[0], known[1], **written)
        return Finished(record, RunConsequence(None, streak))

    async def note_server_run(self, run_id: str, *, thread_id: str, server_run_id: str) -> None:
        """Name, on a running fire's record, the LangGraph server run its turn became, as
        soon as it exists: the record of a process that died still says which server
        run to follow or stop (see ``expired_server_runs``)."""
        statement = (
            update(runs_table)
            .where(runs_table.c.run_id == run_id, runs_table.c.outcome.is_(None))
            .values(server_thread_id=thread_id, server_run_id=server_run_id)
        )
        await self.transaction(lambda conn: conn.execute(statement))

    async def renew_leases(
        self, run_ids: Sequence[str], *, holder: str, until: datetime
    ) -> list[str]:
        """Extend the leases of ``holder``'s running fires ``run_ids`` (those being
        finished right now are skipped, not waited for); returns those of them it no
        longer holds: finished (a lease sweep's ``interrupted``, say), taken over by
        another holder (see :meth:`take_over_run`) or gone. Only its holder renews a
        claim: a runtime that stalled past its lease must not keep alive the claim of
        the one that took it over."""
        if not run_ids:
            return []
        asked = sorted(run_ids)
        held = and_(
            runs_table.c.run_id.in_(asked),
            runs_table.c.outcome.is_(None),
            runs_table.c.holder == holder,
        )
        mine = self._lock_due(select(runs_table.c.run_id).where(held))
        statement = (
            update(runs_table)
            .where(runs_table.c.run_id.in_(mine.scalar_subquery()))
            .values(lease_expires_at=until)
            .returning(runs_table.c.run_id)
        )

        def work(conn: Connection) -> list[str]:
            renewed = set(conn.execute(statement).scalars())
            if len(renewed) == len(asked):  # the usual case: one statement
                return []
            # Not renewed: lost, or still held but locked by a write of the moment.
            rest = [run_id for run_id in asked if run_id not in renewed]
            still = select(runs_table.c.run_id).where(held, runs_table.c.run_id.in_(rest))
            kept = set(conn.execute(still).scalars())
            return [run_id for run_id in rest if run_id not in kept]

        return await self.transaction(work)

    async def expired_server_runs(
        self, *, now: datetime, holders: Sequence[str] = ()
    ) -> list[TaskRunRecord]:
        """The running fires :meth:`interrupt_expired` would take that name a server
        run (whose turn may have ended on the server meanwhile, or still run there: see
        :meth:`take_over_run`). A row with a column that cannot be read is read as the
        sweep reads it (:func:`_running_run`): its run is followed as any other, and
        its fire ends as its last attempt if its attempt is what cannot be read. One
        whose occurrence or start cannot be read (:func:`_unplaced`) is left out: it is
        no fire a turn can be placed for (a followed run is timed from its start, and
        retried for its occurrence), so the sweep ends it ``interrupted``, and its
        server run is stopped."""
        query = select(runs_table).where(
            runs_table.c.outcome.is_(None),
            runs_table.c.server_run_id.is_not(None),
            self._stale(now, holders),
        )

        def read(conn: Connection) -> list[TaskRunRecord]:
            rows = conn.execute(query.limit(500)).mappings()
            return [
                record
                for record, _, unplaced in map(_running_run, rows)
                if record is not None and not unplaced
            ]

        return await self.transaction(read)

    async def take_over_run(
        self,
        run_id: str,
        *,
        now: datetime,
        holders: Sequence[str] = (),
        holder: str,
        lease_until: datetime,
    ) -> bool:
        """Make ``holder`` the holder of a running fire whose claim lapsed, by the same
        rule as :meth:`interrupt_expired` (see ``holders``), leased until
        ``lease_until``; whether it was taken over. One conditional write: of runtimes
        taking over (or sweeping) the same fire at once, exactly one gets it."""
        statement = (
            update(runs_table)
            .where(
                runs_table.c.run_id == run_id,
                runs_table.c.outcome.is_(None),
                self._stale(now, holders),
            )
            .values(holder=holder, lease_expires_at=lease_until)
        )
        return await self.transaction(lambda conn: conn.execute(statement).rowcount == 1)

    async def interrupt_expired(
        self,
        *,
        now: datetime,
        reason: str,
        holders: Sequence[str] = (),
        holder: str | None = None,
        alive: Sequence[str] = (),
    ) -> list[Finished]:
        """Record ``interrupted`` for running fires whose holder stopped renewing its lease
        (or is one of ``holders``, known to be dead); retries follow the task's policy.
        The fires ``alive`` that ``holder`` (the caller) still runs are left to it, lapsed
        or not: its turns go on, and its next renewal extends their leases. A runtime
        whose loop stalled past its leases must not take its own live turns for dead.

        A row with a column that cannot be read (written by hand) ends the same way, its
        record read as :func:`_running_run` says: an unreadable attempt is taken as the
        fire's last (:data:`LAST_ATTEMPT`), so it is not retried; the record's ``error``
        names the column. Its row keeps the value as written (listings leave it out).
        Nor is a fire whose occurrence or start cannot be read retried (:func:`_unplaced`;
        its record shows the time as read, the earliest or latest one): a retry would be
        a fire of no known occurrence. Its task keeps its last run time if its start is
        what cannot be read."""
        stale = self._stale(now, holders)
        if holder is not None and alive:
            mine = and_(runs_table.c.holder == holder, runs_table.c.run_id.in_(sorted(alive)))
            stale = and_(stale, not_(mine))
        query = self._lock_due(
            select(runs_table).where(runs_table.c.outcome.is_(None), stale).limit(500)
        )

        def work(conn: Connection) -> list[Finished]:
            finishes = []
            for row in conn.execute(query).mappings().all():
                record, notes, unplaced = _running_run(row)
                if record is None:  # ended all the same, or it would stay running forever
                    conn.execute(
                        update(runs_table)
                        .where(runs_table.c.run_id == row["run_id"], runs_table.c.outcome.is_(None))
                        .values(
                            outcome="interrupted",
                            error=f"{reason} (its stored record could not be read)",
                            finished_at=now,
                            lease_expires_at=None,
                        )
                    )
                    continue
                if row["lease_expires_at"] in _BOUNDS:  # lapsed as no lease (see _stale)
                    notes.insert(0, "its stored lease could not be read")
                why = f"{reason} ({'; '.join(notes)})" if notes else reason
                finishes.append((_interrupted(record, why), row["holder"], unplaced))
            finishes.sort(key=lambda f: f[0].record.task_id)
            done = [
                self._finish(conn, f, now, holder=holder, skip_busy=True, unplaced=unplaced)
                for f, holder, unplaced in finishes
            ]
            self._free_claimed_threads(conn, [d.record.run_id for d in done if d is not None])
            return [d for d in done if d is not None]

        return await self.transaction(work)

    async def running_holders(self) -> list[str]:
        """Holders (processes) that have runs in flight or hold threads."""
        runs = select(runs_table.c.holder).where(
            runs_table.c.outcome.is_(None), runs_table.c.holder.is_not(None)
        )
        query = union(runs, select(thread_locks_table.c.holder))
        return await self.transaction(lambda conn: [r[0] for r in conn.execute(query)])

    # -- history --------------------------------------------------------------------

    async def get_run(self, run_id: str, *, owner: str | None = None) -> TaskRunRecord | None:
        """The run ``run_id``; None if there is none, if ``owner`` is given and the run's
        task is not that owner's, or if its stored row cannot be read (written by hand;
        logged), as the listings leave such a row out."""
        found = await self.get_held_run(run_id, owner=owner)
        return None if found is None else found[0]

    async def get_held_run(
        self, run_id: str, *, owner: str | None = None
    ) -> tuple[TaskRunRecord, str | None] | None:
        """The run ``run_id`` (as :meth:`get_run`) and the holder of its claim: the
        runtime that claimed it, or the one that took its claim over."""
        query = select(runs_table).where(runs_table.c.run_id == run_id)
        if owner is not None:
            query = query.where(_of_owner(runs_table.c.task_id, owner))

        def read(conn: Connection) -> tuple[TaskRunRecord, str | None] | None:
            row = conn.execute(query).mappings().first()
            record = None if row is None else _readable_run(row)
            return None if row is None or record is None else (record, row["holder"])

        return await self.transaction(read)

    def _stored_run(self, conn: Connection, *, run_id: str) -> TaskRunRecord | None:
        """The run ``run_id`` as stored, if it is (a claim's own run: a row it cannot
        read raises, rather than pass for no run and be inserted again)."""
        row = conn.execute(select(runs_table).where(runs_table.c.run_id == run_id))
        found = row.mappings().first()
        return None if found is None else run_from_row(found)

    async def history(
        self,
        task_id: str,
        *,
        limit: int = 20,
        before: datetime | None = None,
        outcome: RunOutcome | None = None,
    ) -> list[TaskRunRecord]:
        """A task's runs, newest first; page with ``before=<started_at of the last one>``."""
        query = select(runs_table).where(runs_table.c.task_id == task_id)
        if before is not None:
            query = query.where(runs_table.c.started_at < before)
        if outcome is not None:
            query = query.where(runs_table.c.outcome == outcome)
        query = query.order_by(runs_table.c.started_at.desc(), runs_table.c.run_id.desc()).limit(
            limit
        )
        return await self._runs(query)

    async def recent_runs(
        self, *, limit: int = 20, thread_id: str | None = None
    ) -> list[TaskRunRecord]:
        """The latest runs of every task (or only those on ``thread_id``), newest first."""
        query = select(runs_table)
        if thread_id is not None:
            query = query.where(runs_table.c.thread_id == thread_id)
        return await self._runs(query.order_by(runs_table.c.started_at.desc()).limit(limit))

    async def pending_retries(self, task_id: str) -> list[tuple[datetime, int, datetime]]:
        """A task's retries waiting for their backoff: (scheduled_for, attempt, due_at)."""
        query = (
            select(retries_table.c.scheduled_for, retries_table.c.attempt, retries_table.c.due_at)
            .where(retries_table.c.task_id == task_id)
            .order_by(retries_table.c.due_at)
        )
        return await self.transaction(
            lambda conn: [(r[0], r[1], r[2]) for r in conn.execute(query)]
        )

    async def mend_retry_times(self, *, now: datetime) -> list[datetime]:
        """Mend the waiting retries whose stored due time the claims cannot compare
        (written by hand), found by what they hold (a scan, not the ``due_at`` index):
        one that reads as a time in another form than the store writes (SQLite: ``T``,
        an offset), which falls due at another moment than it says (up to a day late),
        is written as that time in the store's form; one that reads as no time (SQLite
        text that is none, February 30th; PostgreSQL ``infinity``, ``-infinity``),
        never due or due at a time nobody set, is made due ``now``, logged: its attempt
        is still owed, and late beats never. Off the fire path: the upkeep runs it now
        and then.

        Returns:
            The due times written, earliest first (for the runtime's timers)."""
        held = retries_table.c.due_at
        unreadable = self._unreadable_time(held)
        as_stored = self._as_held(held)  # the value as held, to match it by
        misfiled = select(held.label("moment"), as_stored.label("stored")).where(unreadable)
        lost = (
            update(retries_table)
            .where(unreadable)
            .values(due_at=now)
            .returning(retries_table.c.task_id, retries_table.c.attempt)
        )

        def mend(conn: Connection) -> list[datetime]:
            written: set[datetime] = set()
            for moment, stored in conn.execute(misfiled).all():
                if moment not in _BOUNDS:  # the time it says, in the store's form
                    rewrite = update(retries_table).where(as_stored == stored, unreadable)
                    if conn.execute(rewrite.values(due_at=moment)).rowcount:
                        written.add(moment)
            for task_id, attempt in conn.execute(lost).all():
                _said_due_now(task_id, attempt)
                written.add(now)
            return sorted(written)

        return await self.transaction(mend)

    async def _runs(self, query: Select[Any]) -> list[TaskRunRecord]:
        """The runs ``query`` reads; a row that cannot be read is left out (logged)."""

        def read(conn: Connection) -> list[TaskRunRecord]:
            rows = conn.execute(query).mappings()
            return [record for record in map(_readable_run, rows) if record is not None]

        return await self.transaction(read)

    async def purge_history(self, *, finished_before: datetime) -> int:
        """Delete finished run records older than the cutoff; runs in flight stay."""
        statement = delete(runs_table).where(
            runs_table.c.outcome.is_not(None), runs_table.c.finished_at < finished_before
        )
        return await self.transaction(lambda conn: int(conn.execute(statement).rowcount or 0))

    async def trim_history(self, task_ids: Iterable[str], *, keep: int) -> int:
        """Keep each task's ``keep`` newest finished records; never touch running ones.

        Returns how many records were deleted.
        """
        ids = sorted(set(task_ids))
        deleted = 0

        def trim(chunk: list[str]) -> Callable[[Connection], int]:
            # One statement finds the few tasks holding more than ``keep`` records (a
            # burst of one-off tasks holds one each); only those are trimmed.
            over = (
                select(runs_table.c.task_id)
                .where(runs_table.c.task_id.in_(chunk))
                .group_by(runs_table.c.task_id)
                .having(func.count() > keep)
            )
            return lambda conn: sum(
                _trim_task_history(conn, t, keep) for t in conn.scalars(over).all()
            )

        # A few tasks per transaction: in memory a transaction holds the event loop.
        for start in range(0, len(ids), 50):
            deleted += await self.transaction(trim(ids[start : start + 50]))
            await asyncio.sleep(0)
        return deleted

    # -- webhook deliveries -----------------------------------------------------------

    async def queue_deliveries(
        self,
        records: Sequence[TaskRunRecord],
        *,
        urls: Sequence[str],
        now: datetime,
        lease_until: datetime,
        limit: int,
    ) -> list[QueuedDelivery]:
        """Store a pending delivery of each finished record to each of ``urls`` and to its
        task's own ``webhook_url`` (one per run and URL, however often it is queued), then
        claim up to ``limit`` due deliveries (these, unless older ones wait), leased until
        ``lease_until``: all in one transaction."""

        def work(conn: Connection) -> list[QueuedDelivery]:
            tasks = _delivery_tasks(conn, [r.task_id for r in records])
            rows: list[dict[str, Any]] = []
            for record in records:
                task = tasks.get(record.task_id)
                for url in _delivery_urls(urls, task):
                    delivery_id = uuid.uuid4().hex
                    payload = WebhookPayload(
                        delivery_id=delivery_id,
                        task_name=task["name"] if task else None,
                        owner=task["owner"] if task else None,
                        run=record,
                    )
                    rows.append(
                        {
                            "delivery_id": delivery_id,
                            "run_id": record.run_id,
                            "task_id": record.task_id,
                            "url": url,
                            "body": payload.model_dump_json(),
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                            "next_attempt_at": now,
                        }
                    )
            if rows:
                conn.execute(self._insert_ignore(deliveries_table, "run_id", "url"), rows)
            return self._claim_deliveries(conn, now, lease_until, limit)

        return await self.transaction(work)

    async def claim_deliveries(
        self, *, now: datetime, lease_until: datetime, limit: int
    ) -> list[QueuedDelivery]:
        """Claim up to ``limit`` pending deliveries whose ``next_attempt_at`` has passed
        (left by a stopped runtime, or by a process that died), earliest first, leased
        until ``lease_until``; deliveries another claim holds are skipped, and those whose
        row cannot be read (written by hand) are recorded failed without taking a place."""
        return await self.transaction(
            lambda conn: self._claim_deliveries(conn, now, lease_until, limit)
        )

    def _claim_deliveries(
        self, conn: Connection, now: datetime, lease_until: datetime, limit: int
    ) -> list[QueuedDelivery]:
        """Claim up to ``limit`` due deliveries that can be sent. A row that cannot be read
        is failed on the way and takes no place: the claim reads on for as many more,
        so a claim with no such row is still one read."""
        table = deliveries_table
        due = (
            select(table.c.delivery_id, table.c.run_id, table.c.url, table.c.body, table.c.attempts)
            .where(table.c.status == "pending", table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at)
        )
        claimed: list[QueuedDelivery] = []
        while len(claimed) < limit:
            taken = [d.delivery_id for d in claimed]  # locked by this claim, not yet leased
            page = due.where(table.c.delivery_id.not_in(taken)) if taken else due
            asked = limit - len(claimed)
            rows = conn.execute(self._lock_due(page.limit(asked))).all()
            failed = 0
            for row in rows:
                unreadable = _unreadable_delivery(row)
                if unreadable:  # ended here, or it would fail (or be sent) at every claim
                    self._fail_delivery(conn, row.delivery_id, unreadable)
                    failed += 1
                else:
                    claimed.append(QueuedDelivery(*row))
            if not failed or len(rows) < asked:  # every place filled, or no more due
                break
        if claimed:
            conn.execute(
                update(table)
                .where(table.c.delivery_id.in_([d.delivery_id for d in claimed]))
                .values(next_attempt_at=lease_until)
            )
        return claimed

    def _fail_delivery(self, conn: Connection, delivery_id: Any, unreadable: list[str]) -> None:
        """Record a pending delivery whose row cannot be read (written by hand) ``failed``,
        unsent, saying which columns (logged once: it is never claimed again)."""
        said = " and ".join(unreadable)
        logger.warning(
            "webhook delivery %s: its stored %s cannot be read; recorded failed, not sent",
            delivery_id,
            said,
        )
        conn.execute(
            update(deliveries_table)
            .where(
                deliveries_table.c.delivery_id == delivery_id,
                deliveries_table.c.status == "pending",
            )
            .values(
                status="failed",
                next_attempt_at=None,
                last_error=f"its stored {said} could not be read (written by hand): not sent",
            )
        )

    async def record_delivery(
        self,
        delivery_id: str,
        *,
        status: DeliveryStatus,
        attempts: int,
        error: str | None,
        now: datetime,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Write how an attempt went: ``delivered`` (at ``now``), ``failed`` for good, or
        still ``pending`` until ``next_attempt_at``. Only a pending delivery is written;
        returns False when it was no longer pending (another process finished it)."""
        values: dict[str, Any] = {
            "status": status,
            "attempts": attempts,
            "next_attempt_at": next_attempt_at if status == "pending" else None,
        }
        if error is not None:
            values["last_error"] = error
        if status == "delivered":
            values["delivered_at"] = now
        statement = (
            update(deliveries_table)
            .where(
                deliveries_table.c.delivery_id == delivery_id,
                deliveries_table.c.status == "pending",
            )
            .values(values)
        )
        return await self.transaction(lambda conn: conn.execute(statement).rowcount == 1)

    async def release_deliveries(self, due: Mapping[str, datetime]) -> None:
        """Make pending deliveries due at the times given by id (their claimer stops), so
        the next runtime takes them up then (now, or when their receiver asked to be
        tried again) instead of after their lease."""
        by_time: dict[datetime, list[str]] = {}
        for delivery_id, when in due.items():
            by_time.setdefault(when, []).append(delivery_id)
        statements = [
            update(deliveries_table)
            .where(
                deliveries_table.c.delivery_id.in_(sorted(ids)),
                deliveries_table.c.status == "pending",
            )
            .values(next_attempt_at=when)
            for when, ids in sorted(by_time.items())
        ]
        if not statements:
            return

        def release(conn: Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        await self.transaction(release)

    async def deliveries(
        self,
        *,
        run_id: str | None = None,
        status: DeliveryStatus | None = None,
        owner: str | None = None,
        limit: int = 100,
    ) -> list[WebhookDelivery]:
        """Webhook deliveries, oldest first; filter by run, status and the owner of the
        run's task. A row that cannot be read (written by hand) is left out, logged."""
        query = select(deliveries_table)
        if run_id is not None:
            query = query.where(deliveries_table.c.run_id == run_id)
        if owner is not None:
            runs = select(runs_table.c.run_id).where(_of_owner(runs_table.c.task_id, owner))
            query = query.where(deliveries_table.c.run_id.in_(runs))
        if status is not None:
            query = query.where(deliveries_table.c.status == status)
        order = (deliveries_table.c.created_at, deliveries_table.c.delivery_id)
        query = query.order_by(*order).limit(limit)

        def read(conn: Connection) -> list[WebhookDelivery]:
            rows = conn.execute(query).mappings()
            return [found for found in map(_readable_delivery, rows) if found is not None]

        return await self.transaction(read)

    async def purge_deliveries(self) -> int:
        """Delete delivered and failed deliveries whose run record is gone (trimmed,
        purged, or deleted with its task); pending ones are still delivered. A pending
        one whose due time cannot be read (written by hand: no time, or none a claim
        ever finds due) is recorded failed first, logged: it would wait for ever.

        Never a delivery whose run is still stored: :meth:`runs_without_deliveries` would
        take that run for one never queued, and the webhook sweep would send it again."""
        gone = ~(
            select(runs_table.c.run_id)
            .where(runs_table.c.run_id == deliveries_table.c.run_id)
            .exists()
        )
        statement = delete(deliveries_table).where(deliveries_table.c.status != "pending", gone)
        due = deliveries_table.c.next_attempt_at
        stuck = (  # written by hand: never due, so never claimed, and never ended
            update(deliveries_table)
            .where(
                deliveries_table.c.status == "pending",
                or_(due.is_(None), self._unreadable_time(due)),
            )
            .values(status="failed", next_attempt_at=None, last_error=_STUCK_DELIVERY)
            .returning(deliveries_table.c.delivery_id)
        )

        def purge(conn: Connection) -> int:
            for delivery_id in conn.execute(stuck).scalars():
                logger.warning(
                    "webhook delivery %s: its stored next_attempt_at cannot be read; recorded"
                    " failed, not sent again",
                    delivery_id,
                )
            return int(conn.execute(statement).rowcount or 0)

        return await self.transaction(purge)

    async def runs_without_deliveries(
        self,
        *,
        since: datetime,
        until: datetime,
        after: tuple[datetime, str] | None = None,
        limit: int,
        urls: Sequence[str],
        now: datetime,
    ) -> tuple[list[TaskRunRecord], tuple[datetime, str] | None]:
        """Finished runs with ``since <= finished_at <= until`` and no delivery row, in
        order of (``finished_at``, ``run_id``), a page of ``limit`` after ``after``.

        Returns the page's records and where the next page starts (None after the last
        page). The webhook sweep reads them between the delivery floors; the range is
        read on the ``lgs_runs_finished`` index, each run's deliveries on their
        (run, URL) index.

        A run whose row cannot be read (written by hand: a column no record holds, or on
        SQLite a finish that is no time but sorts among times) has no record to send: in
        the same transaction it gets a delivery to each of ``urls`` and to its task's own
        URL (if its task can be told) recorded ``failed`` at ``now``, unsent, saying
        which column, logged, so that no sweep reads it again. A run whose finish is no
        time and sorts outside every span (on PostgreSQL ``infinity``, ``-infinity``, a
        year BC or past 9999) is never read here: nothing tells whether it finished while
        a runtime with a webhook held a floor."""
        runs = runs_table
        undelivered = ~(
            select(deliveries_table.c.run_id)
            .where(deliveries_table.c.run_id == runs.c.run_id)
            .exists()
        )
        query = select(runs).where(
            runs.c.finished_at >= since,
            runs.c.finished_at <= until,
            runs.c.outcome.is_not(None),
            undelivered,
        )
        if after is not None:
            query = query.where(
                or_(
                    runs.c.finished_at > after[0],
                    and_(runs.c.finished_at == after[0], runs.c.run_id > after[1]),
                )
            )
        query = query.order_by(runs.c.finished_at, runs.c.run_id).limit(limit)

        def read(conn: Connection) -> tuple[list[TaskRunRecord], tuple[datetime, str] | None]:
            rows = conn.execute(query).mappings().all()
            records, unreadable = [], []
            for row in rows:
                record, columns, reason = _record_to_deliver(row)
                if record is not None:
                    records.append(record)
                else:
                    unreadable.append((row, columns, reason))
            if unreadable:
                self._fail_unreadable_runs(conn, unreadable, urls, now)
            if len(rows) < limit:
                return records, None
            # The next page goes on after the last finish that reads as itself: one that
            # reads as no time would start it again from year 1 (or past them all).
            placed = [row for row in rows if row["finished_at"] not in _BOUNDS] or rows
            return records, (placed[-1]["finished_at"], placed[-1]["run_id"])

        return await self.transaction(read)

    def _fail_unreadable_runs(
        self,
        conn: Connection,
        runs: Sequence[tuple[Any, list[str], str]],
        urls: Sequence[str],
        now: datetime,
    ) -> None:
        """Store the deliveries of finished runs whose row cannot be read (each with the
        columns that cannot, and why) recorded ``failed``, unsent (see
        :meth:`runs_without_deliveries`)."""
        tasks = _delivery_tasks(conn, [row["task_id"] for row, _, _ in runs])
        rows: list[dict[str, Any]] = []
        for row, columns, reason in runs:
            task_id = row["task_id"]
            said = " and ".join(columns)
            targets = _delivery_urls(urls, tasks.get(task_id) if isinstance(task_id, str) else None)
            logger.warning(
                "run %s: its stored %s cannot be read (%s); %s",
                row["run_id"],
                said,
                reason,
                "its webhook deliveries are recorded failed, not sent"
                if targets
                else "no webhook URL it is owed can be told, nothing is sent",
            )
            rows += [
                {
                    "delivery_id": uuid.uuid4().hex,
                    "run_id": row["run_id"],  # as stored: the sweep never reads it again
                    "task_id": task_id if isinstance(task_id, str) else _UNREADABLE_ID,
                    "url": url,
                    "body": "",  # never sent
                    "status": "failed",
                    "attempts": 0,
                    "last_error": f"its run's stored {said} could not be read (written by "
                    "hand): not sent",
                    "created_at": now,
                    "next_attempt_at": None,
                }
                for url in targets
            ]
        if rows:
            conn.execute(self._insert_ignore(deliveries_table, "run_id", "url"), rows)

    async def hold_delivery_floor(
        self, holder: str, *, floor: datetime, now: datetime, expires_at: datetime
    ) -> None:
        """Write ``holder``'s delivery floor (see :class:`DeliveryFloor`); written by its
        holder only."""
        table = delivery_floors_table
        values = {"floor": floor, "seen_at": now, "expires_at": expires_at}
        updated = update(table).where(table.c.holder == holder).values(values)
        inserted = self._insert_ignore(table, "holder").values(holder=holder, **values)

        def write(conn: Connection) -> None:
            if conn.execute(updated).rowcount == 0:
                conn.execute(inserted)

        await self.transaction(write)

    async def delivery_floors(self) -> list[DeliveryFloor]:
        """Every runtime's delivery floor, lowest first."""
        table = delivery_floors_table
        query = select(table.c.holder, table.c.floor, table.c.seen_at, table.c.expires_at)
        query = query.order_by(table.c.floor, table.c.holder)
        return await self.transaction(
            lambda conn: [DeliveryFloor(*row) for row in conn.execute(query)]
        )

    async def drop_delivery_floor(self, holder: str, *, expires_at: datetime | None = None) -> bool:
        """Delete ``holder``'s delivery floor: its own when it stops with nothing held or,
        given the ``expires_at`` it was read with, the floor of a runtime gone (kept if it
        was written since). Returns whether a row was deleted."""
        table = delivery_floors_table
        statement = delete(table).where(table.c.holder == holder)
        if expires_at is not None:
            statement = statement.where(table.c.expires_at == expires_at)
        return await self.transaction(lambda conn: conn.execute(statement).rowcount == 1)


_URL_FORMS = "use sqlite:///path/to/file.db, sqlite:// (memory) or postgresql://user@host/dbname"
_POSTGRES_EXTRA = (
    'pip install "langgraph-scheduler[postgres]" (from a checkout: pip install ".[postgres]")'
)


def open_store(
    url: str,
    *,
    pool_size: int | None = None,
    lock_patience: float | None = None,
    read_only: bool = False,
) -> Store:
    """The store twin for a database URL.

    ``sqlite:///file.db``, ``sqlite://`` (memory) or ``postgresql://…`` (extra ``postgres``).
    ``lock_patience``: how long a PostgreSQL transaction waits for a lock another session
    holds (None: as long as it is held); a SQLite file's has its own busy timeout.
    ``read_only``: open a SQLite file for reading only, so a file this process may not
    write (a backup on a read-only mount, another user's file) can be read; call
    :meth:`Store.check_schema` instead of :meth:`Store.setup` on it. A PostgreSQL
    database opens as usual (its role's privileges decide what it may write).

    Raises:
        StoreError: the URL is malformed or names no supported database, a SQLite URL
            carries a query option the store does not honour (see
            :data:`SQLITE_QUERY_OPTIONS`), a SQLite file's folder does not exist, or the
            ``postgres`` extra is not installed; the message says what to do instead.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        from .store_sqlite import SqliteStore

        _check_sqlite_path(parsed.database)
        return SqliteStore(
            parsed.set(drivername="sqlite"), pool_size=pool_size or 3, read_only=read_only
        )
    _check_postgres_extra()
    parsed = parsed.set(drivername="postgresql+psycopg")
    from .store_postgres import PostgresStore

    return PostgresStore(parsed, pool_size=pool_size or 2, lock_patience=lock_patience)


def parse_database_url(url: str) -> URL:
    """The SQLAlchemy URL of a database URL, checked for the usual mistakes.

    Raises:
        StoreError: the URL is malformed or names no supported database (the message
            shows the accepted forms, or the URL meant).
    """
    if url in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return make_url("sqlite://")
    shown = _hide_password(url)
    if not url.strip():
        raise StoreError(f"no database URL given: {_URL_FORMS}")
    if not _utf8(url):
        # A file name in another encoding, read with lone surrogates: the database would
        # open, but the URL could be neither logged nor shown.
        escaped = shown.encode("utf-8", "backslashreplace").decode("utf-8")
        raise StoreError(
            f"database URL '{escaped}' is not UTF-8 (a file or folder name in another "
            "encoding?): rename it, or choose a path that is"
        )
    scheme, colon, rest = url.partition(":")
    if colon and scheme.lower().split("+")[0] == "sqlite" and not rest.startswith("///"):
        path = rest.lstrip("/")
        raise StoreError(
            f"malformed SQLite URL {shown!r}: a file is sqlite:///{path} (relative path) or "
            f"sqlite:////{path} (absolute path), with three or four slashes"
        )
    try:
        parsed = make_url(url)
    except Exception as exc:
        if "://" not in url:
            raise StoreError(
                f"database URL {shown!r} is not a URL: for a SQLite file write "
                f"sqlite:///{url}; or use sqlite:// (memory) or postgresql://user@host/dbname"
            ) from None
        reason = "the port must be a number" if isinstance(exc, ValueError) else str(exc)
        raise StoreError(f"malformed database URL {shown!r} ({reason}): {_URL_FORMS}") from None
    backend, _, driver = parsed.drivername.lower().partition("+")
    if backend == "sqlite":
        _check_sqlite_query(parsed, shown)
        return parsed.set(drivername="sqlite")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise StoreError(
                f"unsupported PostgreSQL driver {driver!r}: use postgresql://… (the driver "
                "is psycopg, from the postgres extra)"
            )
        return parsed.set(drivername="postgresql")
    raise StoreError(f"unsupported database URL {shown!r}: {_URL_FORMS}")


SQLITE_QUERY_OPTIONS = ("cached_statements",)
"""The query options a SQLite URL may carry: those the store passes on to every
connection it opens. SQLAlchemy's driver takes a few more (``timeout``,
``check_same_thread``, ``isolation_level``), which the store sets itself, and SQLite's
URI options (``mode=ro``, ``cache``) only with ``uri=true``, which the checkpointer's
connection would not follow (it opens the file by its path)."""


def _check_sqlite_query(url: URL, shown: str) -> None:
    """Refuse a query option the SQLite store would not honour: SQLAlchemy warns and
    ignores it, and a store opened ``?mode=ro`` would write all the same."""
    refused = sorted(name for name in url.query if name not in SQLITE_QUERY_OPTIONS)
    if not refused:
        return
    plain = url.difference_update_query(refused).set(drivername="sqlite")
    named = ", ".join(refused)
    raise StoreError(
        f"the SQLite URL {shown!r} has query options the SQLite store does not support "
        f"({named}): it accepts only {', '.join(SQLITE_QUERY_OPTIONS)} and opens the file "
        f"for reading and writing; write {plain.render_as_string()}"
    )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The ``sqlite:///`` URL of a file, which reads back as that path: a ``%`` or ``?`` in
    it is escaped (a URL reads them as an escape and as the start of its query)."""
    return "sqlite:///" + os.fspath(path).replace("%", "%25").replace("?", "%3F")


def is_in_memory(url: URL) -> bool:
    """Whether a database URL (as :func:`parse_database_url` returns it) names a SQLite
    database in this process's memory (``sqlite://``)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _check_sqlite_path(database: str | None) -> None:
    """A SQLite file needs an existing folder (SQLite creates the file, not the folder)."""
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return
    if database.startswith("~"):
        raise StoreError(
            f"the SQLite path {database} starts with ~, which a URL does not expand: write "
            f"the full path, e.g. sqlite:///{os.path.expanduser(database)}"
        )
    path = Path(database)
    if path.is_dir():
        raise StoreError(
            f"the SQLite database {database} is a folder: name a file in it, e.g. "
            f"sqlite:///{path / 'scheduler.db'}"
        )
    folder = path.parent
    if not folder.is_dir():
        raise StoreError(
            f"no folder {folder} for the SQLite database {database}: create it "
            f"(mkdir -p {folder}) or choose another path"
        )


def _check_postgres_extra() -> None:
    for module in ("psycopg", "psycopg_pool", "langgraph.checkpoint.postgres"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise StoreError(
                f"PostgreSQL needs the postgres extra ({module} is missing): {_POSTGRES_EXTRA}"
            ) from None


def _check_conninfo(url: URL) -> None:
    """libpq refuses unknown query parameters at connect time; say so now, in one line
    (``url`` without the store's own parameters)."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    plain = url.set(drivername="postgresql")
    try:
        conninfo_to_dict(plain.render_as_string(hide_password=False))
    except Error as exc:
        detail = " ".join(str(exc).split())
        raise StoreError(
            f"invalid PostgreSQL URL {plain.render_as_string(hide_password=True)!r} ({detail}): "
            "the query may carry only libpq connection parameters, e.g. ?sslmode=require "
            "(and the store's own prepared_statements=false)"
        ) from None


# -- in-process thread locks (both twins) ----------------------------------------------


class ThreadLocks:
    """A lock per thread id, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def busy(self, thread_id: str) -> bool:
        lock = self._locks.get(thread_id)
        return lock is not None and lock.locked()

    def hold(self, thread_id: str, *, timeout: float | None = None) -> _Holding:
        """Hold the thread's lock (``async with``); ``timeout=0`` fails at once if busy.

        Raises:
            ThreadBusy: if the lock was not acquired within ``timeout`` seconds.
        """
        return _Holding(self, thread_id, timeout)

    def _leave(self, thread_id: str) -> None:
        users = self._users[thread_id] - 1
        if users:
            self._users[thread_id] = users
        else:
            del self._users[thread_id]
            del self._locks[thread_id]


class _Holding:
    """One hold of a :class:`ThreadLocks` lock, as an async context manager: a plain
    object, not a generator and its wrapper, as it lasts as long as a turn (see
    ``benchmarks/analysis.md``, figure 4)."""

    __slots__ = ("_locks", "_thread_id", "_timeout")

    def __init__(self, locks: ThreadLocks, thread_id: str, timeout: float | None) -> None:
        self._locks = locks
        self._thread_id = thread_id
        self._timeout = timeout

    async def __aenter__(self) -> None:
        locks, thread_id = self._locks, self._thread_id
        lock = locks._locks.setdefault(thread_id, asyncio.Lock())
        users = locks._users[thread_id] = locks._users.get(thread_id, 0) + 1
        try:
            if users == 1:  # nobody else holds it or waits for it: taken at once
                await lock.acquire()
            else:
                await _acquire(lock, thread_id, self._timeout)
        except BaseException:
            locks._leave(thread_id)
            raise

    async def __aexit__(self, *exc: object) -> None:
        locks, thread_id = self._locks, self._thread_id
        locks._locks[thread_id].release()
        locks._leave(thread_id)


async def _acquire(lock: asyncio.Lock, thread_id: str, timeout: float | None) -> None:
    if timeout is None:
        await lock.acquire()
        return
    if timeout <= 0:
        if lock.locked():
            raise ThreadBusy(thread_id)
        await lock.acquire()
        return
    # Not wait_for: on some Pythons it can time out *after* acquiring, leaking the lock.
    waiter = asyncio.ensure_future(lock.acquire())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    except BaseException:
        _abandon(lock, waiter)
        raise
    if not done:
        _abandon(lock, waiter)
        raise ThreadBusy(thread_id)


def _abandon(lock: asyncio.Lock, waiter: asyncio.Future[Any]) -> None:
    if waiter.done() and not waiter.cancelled():
        lock.release()
    else:
        waiter.cancel()


async def _tell_changes(
    changes: list[tuple[TaskChange, datetime]],
    seen: dict[str, datetime],
    on_change: Callable[[TaskChange], Awaitable[None]],
) -> None:
    """Call ``on_change`` for each of ``changes`` not told yet (``seen``: the time of
    each task's change last told)."""
    for change, changed_at in changes:
        if seen.get(change.task_id) != changed_at:
            seen[change.task_id] = changed_at
            await on_change(change)


async def _nap(
    sleep: Callable[[float], Awaitable[None]], secs: float, woken: asyncio.Event
) -> None:
    """``sleep(secs)`` (the runtime's clock), cut short when ``woken`` is set; clears it."""
    naps = [asyncio.ensure_future(sleep(secs)), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(naps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for nap in naps:
            nap.cancel()
        await asyncio.gather(*naps, return_exceptions=True)
    woken.clear()


# -- rows ----------------------------------------------------------------------------


def isolated_thread_id(task_id: str, run_id: str) -> str:
    """The fresh thread an isolated task's run talks in (kept after the run)."""
    return f"task-{task_id}-{run_id}"


def _running_record(
    task: Task,
    scheduled_for: datetime,
    *,
    trigger: RunTrigger,
    attempt: int,
    due_at: datetime,
    now: datetime,
    run_id: str | None = None,
) -> TaskRunRecord:
    run_id = run_id or str(uuid.uuid4())
    # Built from values the store already holds as the right types: no validation, and
    # a copy of a blank record (a third of what ``model_construct`` costs on this path).
    return _BLANK_RUN.model_copy(
        update={
            "run_id": run_id,
            "task_id": task.id,
            "attempt": attempt,
            "trigger": trigger,
            "scheduled_for": scheduled_for,
            "started_at": now,
            "due_at": due_at,
            "thread_id": task.thread_id or isolated_thread_id(task.id, run_id),
        }
    )


_BLANK_RUN = TaskRunRecord.model_construct(
    run_id="",
    task_id="",
    attempt=1,
    trigger="schedule",
    scheduled_for=_EARLIEST,
    started_at=_EARLIEST,
)
"""What :func:`_running_record` fills in: every column a running record leaves empty."""


_STARTED_NAMES = tuple((name, f"r_{name}") for name in runs_table.c.keys())
"""Each ``lgs_runs`` column with its bind in :func:`_started_binds`."""


def _started_binds() -> dict[str, Any]:
    """The bind parameters of a claimed fire's running record in the twins' one-statement
    claims, one per ``lgs_runs`` column: ``r_<column>`` (see :func:`_started_params`)."""
    return {name: bindparam(bind, type_=runs_table.c[name].type) for name, bind in _STARTED_NAMES}


def _started_params(record: TaskRunRecord, holder: str, lease_until: datetime) -> dict[str, Any]:
    """The values of :func:`_started_binds` for ``record`` claimed by ``holder``."""
    row = _run_row(record, holder, lease_until)
    return {bind: row[name] for name, bind in _STARTED_NAMES}


def _run_row(record: TaskRunRecord, holder: str, lease_until: datetime | None) -> dict[str, Any]:
    """The ``lgs_runs`` row of a record claimed by ``holder`` (leased until ``lease_until``)."""
    # The model's own dict: its fields are the columns (``dict(record)`` iterates them).
    return {**record.__dict__, "holder": holder, "lease_expires_at": lease_until}


def _first(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    return rows[0] if rows else None


def _task_raw(row: Sequence[Any]) -> tuple[Any, ...]:
    """The task columns of a row read with ``select(tasks_table, …)``, as a tuple."""
    return tuple(row)[: len(_TASK_NAMES)]


def _settling(record: TaskRunRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a settled finish of ``record`` writes to its task, and the parameters of
    ``task_settled`` that write it (a scheduled success resets the streak)."""
    written = {"last_outcome": record.outcome, "last_run_at": record.started_at}
    params = _binds(written) | {"b_id": record.task_id, "b_reset": record.trigger == "schedule"}
    return written, params


def _finished_record(finish: Finish, now: datetime) -> TaskRunRecord:
    """The running record of ``finish`` with its outcome, as stored once finished."""
    return finish.record.model_copy(
        update={
            "outcome": finish.outcome,
            "summary": finish.summary,
            "error": finish.error,
            "checkpoint_id": finish.checkpoint_id,
            "server_thread_id": finish.server_thread_id,
            "server_run_id": finish.server_run_id,
            "started_at": finish.started_at or finish.record.started_at,
            "finished_at": now,
        }
    )


def _interrupted(record: TaskRunRecord, reason: str) -> Finish:
    """``interrupted`` for a running record whose holder is gone, keeping the server run
    its turn became, if it was named (see ``note_server_run``)."""
    return Finish(
        record,
        "interrupted",
        error=reason,
        server_thread_id=record.server_thread_id,
        server_run_id=record.server_run_id,
    )


def _finished_values(record: TaskRunRecord) -> dict[str, Any]:
    """The run columns a finish of ``record`` writes."""
    return {name: getattr(record, name) for name in _RUN_FINISH}


def _finish_params(
    record: TaskRunRecord, finished: dict[str, Any], holder: str | None
) -> dict[str, Any]:
    """The parameters of ``finish_run`` writing ``finished`` (the run's columns) to
    ``record``'s run while ``holder`` holds its claim."""
    return _binds(finished) | {"b_run": record.run_id, "b_holder": holder}


def _missed_record(task: Task, decision: FireDecision, now: datetime) -> TaskRunRecord | None:
    # One record per batch of occurrences missed together, with the count in its
    # summary: a week of downtime on a per-minute task is one line, not ten thousand.
    times = decision.missed
    if not times:
        return None
    first, last = times[0], times[-1]
    count = f"more than {len(times)}" if decision.missed_more else str(len(times))
    summary = (
        f"{count} occurrence(s) missed between {first.isoformat()} and {last.isoformat()} "
        f"(misfire policy {task.options.misfire!r})"
    )
    return TaskRunRecord(
        run_id=str(uuid.uuid4()),
        task_id=task.id,
        attempt=1,
        trigger="schedule",
        scheduled_for=first,
        started_at=now,
        due_at=first,
        finished_at=now,
        outcome="missed",
        summary=summary,
        thread_id=task.thread_id,
    )


def _task_exists(conn: Connection, task_id: str) -> bool:
    return conn.scalar(select(tasks_table.c.id).where(tasks_table.c.id == task_id)) is not None


def _close_approval(conn: Connection, approval_id: str, now: datetime) -> None:
    conn.execute(
        update(approvals_table)
        .where(approvals_table.c.id == approval_id)
        .values(status="applied", decided_at=now)
    )


def _approval_row(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "owner": approval.owner,
        "step": approval.step,
        "tool_call_id": approval.tool_call_id,
        "action": approval.action,
        "task_id": approval.task_id,
        "change": approval.change,
        "preview": approval.preview,
        "status": approval.status,
        "reason": approval.reason,
        "created_at": approval.created_at,
        "decided_at": approval.decided_at,
    }


def _answer_row(answer: CallAnswer) -> dict[str, Any]:
    return {
        "id": answer.id,
        "owner": answer.owner,
        "tool": answer.tool,
        "status": answer.status,
        "answer": answer.text,
        "created_at": answer.created_at,
    }


def call_answer_from_row(row: Any) -> CallAnswer:
    return CallAnswer(
        id=row["id"],
        owner=row["owner"],
        tool=row["tool"],
        status=row["status"],
        text=row["answer"],
        created_at=row["created_at"],
    )


def approval_from_row(row: Any) -> Approval:
    data = dict(row)
    return Approval(
        id=data["id"],
        owner=data["owner"],
        step=data["step"],
        tool_call_id=data["tool_call_id"],
        action=data["action"],
        task_id=data["task_id"],
        change=_json(data["change"]),
        preview=_json(data["preview"]),
        status=data["status"],
        reason=data["reason"],
        created_at=data["created_at"],
        decided_at=data["decided_at"],
    )


def _holds_tables(conn: Connection) -> bool:
    """Whether the database holds the scheduler's tables (set up by some version)."""
    return bool(conn.dialect.has_table(conn, tasks_table.name))


def _read_version(conn: Connection) -> int:
    found = conn.scalar(select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
    return int(found) if found is not None else 0


def _trim_task_history(conn: Connection, task_id: str, keep: int) -> int:
    newest = (
        select(runs_table.c.run_id)
        .where(runs_table.c.task_id == task_id)
        .order_by(runs_table.c.started_at.desc(), runs_table.c.run_id.desc())
        .limit(keep)
    )
    kept = {row[0] for row in conn.execute(newest)}
    if len(kept) < keep:
        return 0
    result = conn.execute(
        delete(runs_table).where(
            runs_table.c.task_id == task_id,
            runs_table.c.outcome.is_not(None),
            runs_table.c.run_id.not_in(kept),
        )
    )
    return int(result.rowcount or 0)


def _task_row(task: Task) -> dict[str, Any]:
    row = task.model_dump(exclude={"problem"})
    row["schedule"] = schedule_to_dict(task.schedule) if task.schedule is not None else None
    row["options"] = task.options.model_dump(mode="json")
    return row


_TIMES = ("next_run_at", "last_run_at", "created_at", "updated_at")

_UNREADABLE_AS: dict[str, Any] = {
    "name": "(unreadable)",
    "owner": "(unreadable)",
    "thread_id": None,
    "version": 0,
    "state": "quarantined",
    "thread_mode": "isolated",  # "continue" when the row names a thread (below)
    "next_run_at": None,
    "last_run_at": None,
    "last_outcome": None,
    "max_runs": None,
    "run_count": 0,
    "failure_streak": 0,
    "created_at": datetime(1970, 1, 1, tzinfo=timezone.utc),
    "updated_at": datetime(1970, 1, 1, tzinfo=timezone.utc),
}
"""What a task shows for a column that cannot be read (a row written by hand)."""

COUNTER_MOST = 2**31 - 1
"""The most a task's counters (``run_count``, ``failure_streak``, ``version``) count to:
what PostgreSQL's INTEGER columns hold. A row holding it (or more: SQLite's columns hold
64 bits; written by hand) could not be moved on by its next fire, change or failure, so
it is read with a ``problem`` and quarantined when due, on both twins alike."""

_COUNTERS = ("run_count", "failure_streak", "version")

LAST_ATTEMPT = MAX_RETRIES + 1
"""The attempt a running fire whose stored attempt cannot be read (written by hand) is
recorded as: one past the retries any task may have, so that none follows it."""


def _of_owner(task_id: Any, owner: str) -> Any:
    """Rows whose ``task_id`` names a task of ``owner`` (a deleted task's runs go with it,
    so every run's task is there to ask)."""
    return task_id.in_(select(tasks_table.c.id).where(tasks_table.c.owner == owner))


UNREADABLE_TIME = (
    "a time out of range, or not in the store's form (UTC, '2026-01-01 09:00:00.000000'),"
)
"""What a task's problem says of a stored time that cannot be read (written by hand):
past what a datetime holds, or, on SQLite, text in another form (``T``, an offset), which
would compare wrongly with the store's own times, as they compare as text."""


NO_NEXT_RUN = (
    "next_run_at: none, though the task is active, so it would never fire; resume it "
    "to give it the next time of its schedule"
)
"""The problem of an active task's row without a due time (written by hand)."""

_EVERY_STATE = frozenset(get_args(TaskState))
"""Every state a task can read as: a filter naming them all filters nothing."""

_READABLE_STATES = tuple(state for state in get_args(TaskState) if state != "quarantined")
"""The stored states a row reads as (any other reads as ``quarantined``)."""


def _reads_as_told(task: Task, states: Sequence[str]) -> bool:
    """Whether a task read from a row the database chose for ``states`` is in one; a
    value only Python tells unreadable (or readable) leaves it out, logged."""
    if task.state in states:
        return True
    logger.warning(
        "task %s: its row reads as %s, not as the %s it was listed for (%s)",
        task.id,
        task.state,
        " or ".join(states),
        task.problem or "a value the database tells unreadable",
    )
    return False


def task_from_row(row: Any) -> Task:
    """A task from its stored row; schedule, options or payload that cannot be read leave
    the task readable, with ``problem`` saying why (it is quarantined when it falls due,
    or when it is run by hand if its payload is what cannot be read).
    So do its state and times, and an active row without a due time (see
    :data:`NO_NEXT_RUN`): it is shown ``quarantined`` (it cannot fire as stored) and can
    be deleted, or resumed."""
    data = dict(row)
    problems: list[str] = []
    parts: set[ProblemPart] = set()
    data["problem_in"] = parts  # what Task.problem_advice goes by
    try:
        data["schedule"] = schedule_from_dict(_json(data["schedule"]))
    except Exception as exc:
        data["schedule"] = None
        problems.append(f"schedule: {_reason(exc)}")
        parts.add("schedule")
    try:
        data["options"] = TaskOptions.model_validate(_json(data["options"]), context=AS_STORED)
    except Exception as exc:
        data["options"] = TaskOptions()
        problems.append(f"options: {_reason(exc)}")
        parts.add("options")
    try:
        data["payload"] = _json(data.get("payload"))
    except Exception as exc:
        data["payload"] = {"unreadable": str(data.get("payload"))[:200], "error": _reason(exc)}
        problems.append(f"payload: task payload is not valid JSON ({_reason(exc)})")
        parts.add("payload")
    else:
        # Parsed here only when a row is read anew: the fire path reuses a row's task
        # while the row reads the same (see Store._task_of).
        trouble = payload_problem(data["payload"])
        if trouble is not None:
            problems.append(f"payload: {trouble}")
            parts.add("payload")
    for name in _COUNTERS:
        held = data[name]
        # Written by hand; kept as stored, as writes are conditional on the version. A
        # value that is no int (SQLite: a real) is left to the validation below.
        if isinstance(held, int) and held >= COUNTER_MOST:
            problems.append(
                f"{name}: {held} is at or past {COUNTER_MOST}, the most it counts to, so "
                "it cannot be counted on"
            )
            parts.add("columns")
    if data["state"] == "active" and data["next_run_at"] is None:
        # Written by hand: no claim ever finds it due. Not given a time here: whoever
        # cleared it may have meant to stop it; resuming it is its owner's call.
        problems.append(NO_NEXT_RUN)
        parts.add("due_time")
        data["state"] = "quarantined"
    if problems:
        data["problem"] = "; ".join(problems)
    # A time the database holds but Python cannot (read as one of the two bounds).
    unreadable = [name for name in _TIMES if data[name] in _BOUNDS]
    if not unreadable:
        try:
            return Task.model_validate(data)
        except ValidationError as exc:
            unreadable = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
            if not unreadable or not set(unreadable) <= _UNREADABLE_AS.keys():
                raise
    for name in unreadable:
        held = data[name]
        what = UNREADABLE_TIME if held in _BOUNDS else repr(str(held)[:60])
        problems.append(f"{name}: {what} cannot be read")
        parts.add("columns")
        data[name] = _UNREADABLE_AS[name]
    if "thread_mode" in unreadable and isinstance(data.get("thread_id"), str):
        data["thread_mode"] = "continue"
    if "thread_id" in unreadable:
        data["thread_mode"] = "isolated"
    data["state"] = "quarantined"
    data["problem"] = "; ".join(problems)
    return Task.model_validate(data)


def _json(value: Any) -> Any:
    # A row written by hand may hold JSON text where a document is expected.
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(e["msg"] for e in exc.errors()[:3])
    return f"{type(exc).__name__}: {exc}"[:300]


def payload_unreadable(task: Task) -> bool:
    """Whether the task's stored payload is no trigger: no turn can be built for it. Only
    a row read with a ``problem`` is looked at (nothing parsed on the fire path)."""
    return task.problem is not None and payload_problem(task.payload) is not None


def _unrunnable(fire: TaskRunRecord, task: Task, at: datetime) -> TaskRunRecord:
    """The running record ``fire`` of a task whose row cannot be read, as finished at
    ``at`` without a turn: ``error``, saying why."""
    reason = f"the stored task cannot be read: {task.problem}"
    return fire.model_copy(update={"outcome": "error", "error": reason, "finished_at": at})


def _readable_run(row: Any) -> TaskRunRecord | None:
    """The run of a stored row, or None (logged) for a row that cannot be read (written
    by hand): one such row must not stop start-up or the lease sweep."""
    try:
        return run_from_row(row)
    except ValidationError as exc:
        logger.warning("run %s: its stored row cannot be read (%s)", row["run_id"], _reason(exc))
        return None


def _running_run(row: Any) -> tuple[TaskRunRecord | None, list[str], list[str]]:
    """The record of a running fire's stored row, what of it could not be read (said on
    its record when it is ended), and which of its times that place it (:func:`_unplaced`)
    those are: the sweeps act on these, read once with the notes that say them. A column
    that cannot be read (written by hand) is read as :data:`_UNREADABLE_RUN_AS` says, so
    that the fire still ends as any fire does, once, with its listeners told; (None, [],
    []) (logged) if the row still cannot be read."""
    data, unreadable, problems = dict(row), list[str](), list[str]()
    while True:
        try:
            record = run_from_row(data)
            break
        except ValidationError as exc:  # an attempt below 1 only once the rest reads
            names = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            problems.append(_reason(exc))
            if not names or not names <= _UNREADABLE_RUN_AS.keys() - set(unreadable):
                said = "; ".join(problems)
                logger.warning("run %s: its stored row cannot be read (%s)", row["run_id"], said)
                return None, [], []
            unreadable += sorted(names)
            data |= {name: _UNREADABLE_RUN_AS[name] for name in names}
    if unreadable:
        logger.warning(
            "run %s: its stored %s cannot be read (%s); read as %s",
            row["run_id"],
            " and ".join(unreadable),
            "; ".join(problems),
            ", ".join(f"{name}={_UNREADABLE_RUN_AS[name]!r}" for name in unreadable),
        )
    unplaced = _unplaced(record)
    if unplaced:
        logger.warning(
            "run %s: its stored %s cannot be read (no time Python can hold); not retried",
            row["run_id"],
            " and ".join(unplaced),
        )
    notes = [
        _UNREADABLE_RUN_SAID.get(name, f"its stored {name} could not be read")
        for name in [*unreadable, *unplaced]
    ]
    return record, notes, unplaced


def _unplaced(record: TaskRunRecord) -> list[str]:
    """The times of a running fire's record read from a stored time that is none (see
    :data:`_BOUNDS`; written by hand): its occurrence (``scheduled_for``), its start.
    Such a fire is ended as its last attempt: a retry would be for no known occurrence
    (one of year 1 or 9999), and no such start becomes its task's last run."""
    return [name for name in _RUN_TIMES if getattr(record, name) in _BOUNDS]


_RUN_TIMES = ("scheduled_for", "started_at")
"""The times of a running fire's record that place it (see :func:`_unplaced`)."""


def run_from_row(row: Any) -> TaskRunRecord:
    """The run of a stored row; a ``ValidationError`` for a row that cannot be read
    (written by hand), an attempt below 1 included: attempts count from 1, on both
    backends (PostgreSQL's integer column holds 0 and -1 as well as any other)."""
    data = {k: v for k, v in dict(row).items() if k not in ("holder", "lease_expires_at")}
    record = TaskRunRecord.model_validate(data)
    if record.attempt < 1:
        raise ValidationError.from_exception_data(
            TaskRunRecord.__name__,
            [
                {
                    "type": "greater_than_equal",
                    "loc": ("attempt",),
                    "input": record.attempt,
                    "ctx": {"ge": 1},
                }
            ],
        )
    return record


def _retry_attempt(row: Any) -> int:
    """The attempt of a due retry's stored row; :data:`LAST_ATTEMPT` (logged) for one that
    cannot be read (written by hand: text or a real on SQLite, below 1 on either backend),
    as a running row's is read (:data:`_UNREADABLE_RUN_AS`): the retry runs once, and
    none follows it. A value handed on as read failed its finish, or was retried from."""
    attempt = row["attempt"]
    if is_whole(attempt) and attempt >= 1:
        return attempt
    logger.warning(
        "retry of task %s for %s: its stored attempt cannot be read (%r); run as its last"
        " attempt (%d), not retried",
        row["task_id"],
        row["scheduled_for"],
        attempt,
        LAST_ATTEMPT,
    )
    return LAST_ATTEMPT


def _retry_due(row: Any, as_of: datetime) -> datetime:
    """The due time of a due retry's stored row; the claim's ``as_of`` (logged) for one
    that cannot be read (written by hand: PostgreSQL ``-infinity``, a number or a past
    February 30th on SQLite), which sorts as due at once: due now, as
    :meth:`Store.mend_retry_times` would have made it, where its record said year 1."""
    due: datetime = row["due_at"]
    if due not in _BOUNDS:
        return due
    _said_due_now(row["task_id"], row["attempt"])
    return as_of


def _said_due_now(task_id: str, attempt: Any) -> None:
    """Log a waiting retry made due now, its stored due time no time (written by hand)."""
    logger.warning(
        "retry of task %s (attempt %r): its stored due_at cannot be read; due now",
        task_id,
        attempt,
    )


_UNREADABLE_RUN_AS: dict[str, Any] = {
    "attempt": LAST_ATTEMPT,
    "trigger": "manual",
    "due_at": None,
    "finished_at": None,
    "summary": None,
    "error": None,
    "thread_id": None,
    "checkpoint_id": None,
    "server_thread_id": None,
    "server_run_id": None,
}
"""What a running fire's record shows for a column of its row that cannot be read
(written by hand). Its attempt is taken as its last: the attempts before it are unknown,
and a retry numbered from a guess could run the fire more often than its task allows.
Its trigger is taken as a manual run's, which is never retried and counts in no failure
streak: either way, the fire ends without a retry."""

_UNREADABLE_RUN_SAID = {
    "attempt": "its stored attempt could not be read: taken as its last, not retried",
    "trigger": "its stored trigger could not be read: taken as a manual run's, not retried",
    "scheduled_for": "its stored scheduled_for could not be read: not retried",
    "started_at": "its stored started_at could not be read: not retried",
}
"""What the record of a fire ended with such a column says of it."""


def delivery_from_row(row: Any) -> WebhookDelivery:
    return WebhookDelivery.model_validate({k: v for k, v in dict(row).items() if k != "body"})


_STUCK_DELIVERY = "its stored next_attempt_at could not be read (written by hand): not sent again"
"""What a pending delivery that no claim could find due says once recorded failed."""


def _readable_delivery(row: Any) -> WebhookDelivery | None:
    """The delivery of a stored row; None (logged) for one that cannot be read (written by
    hand), which a listing leaves out as it leaves out such a run."""
    try:
        return delivery_from_row(row)
    except ValidationError as exc:
        logger.warning(
            "webhook delivery %s: its stored row cannot be read (%s)",
            row["delivery_id"],
            _reason(exc),
        )
        return None


def _unreadable_delivery(row: Any) -> list[str]:
    """The columns of a claimed delivery's row (see :class:`QueuedDelivery`) that cannot
    be read (written by hand): a URL or body that is no text (a blob on SQLite), attempts
    that are no whole number from 0 to :data:`~.models.MAX_DELIVERY_ATTEMPTS` (text or a
    real on SQLite, a negative count or one whose next its column cannot hold)."""
    unreadable = [name for name in ("url", "body") if not isinstance(getattr(row, name), str)]
    attempts = row.attempts
    if not is_whole(attempts) or not 0 <= attempts <= MAX_DELIVERY_ATTEMPTS:
        unreadable.append("attempts")
    return unreadable


def _delivery_tasks(conn: Connection, task_ids: Iterable[Any]) -> dict[str, Any]:
    """The rows of the tasks whose runs are delivered, by id: their name and owner (for
    the payload) and options (their own URL)."""
    named = sorted({task_id for task_id in task_ids if isinstance(task_id, str)})
    if not named:
        return {}
    query = select(
        tasks_table.c.id, tasks_table.c.name, tasks_table.c.owner, tasks_table.c.options
    ).where(tasks_table.c.id.in_(named))
    return {row["id"]: row for row in conn.execute(query).mappings()}


def _delivery_urls(urls: Sequence[str], task: Any) -> list[str]:
    """Where a run of ``task`` (its row, or None) is delivered: each of the runtime's
    ``urls``, and its task's own URL; each once."""
    return list(dict.fromkeys([*urls, *_task_webhook(task)]))


def _record_to_deliver(row: Any) -> tuple[TaskRunRecord | None, list[str], str]:
    """The record of a finished run's row the webhook sweep read, or None with the
    columns that cannot be read (written by hand) and why. A finish that reads as no
    time (see :data:`_BOUNDS`) cannot be read either: the sweep found it only because
    SQLite compares its text with the span's times, and its record would say it finished
    in year 1."""
    try:
        record = run_from_row(row)
    except ValidationError as exc:
        columns = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}) or ["row"]
        return None, columns, _reason(exc)
    if record.finished_at in _BOUNDS:
        return None, ["finished_at"], "no time Python can hold"
    return record, [], ""


_UNREADABLE_ID = "(unreadable)"
"""The task id of a delivery of a run whose task id cannot be read (a blob on SQLite)."""


def _task_webhook(task: Any) -> list[str]:
    """The task's own webhook URL, if its stored options name a valid one."""
    if task is None:
        return []
    try:
        url = _json(task["options"]).get("webhook_url")
        return [check_webhook_url(url)] if isinstance(url, str) else []
    except Exception as exc:
        logger.warning("task %s: its webhook URL cannot be used (%s)", task["id"], _reason(exc))
        return []


# -- errors --------------------------------------------------------------------------


def _is_transient(orig: BaseException | None) -> bool:
    name = type(orig).__name__ if orig is not None else ""
    if name in ("OperationalError", "InterfaceError"):
        message = str(orig).lower()
        # SQLite: a locked database or a missing directory is operational too, but only
        # the first is worth waiting for.
        return "unable to open" not in message and "no such table" not in message
    return name in (
        "DeadlockDetected",
        "SerializationFailure",
        # A lock or statement timeout (``lock_timeout``, ``statement_timeout``) or a
        # cancelled statement: the same statement may pass once the lock is free.
        "LockNotAvailable",
        "QueryCanceled",
        # A database left read-only (a failover onto a standby, or set so by hand): the
        # write may pass once it is writable again.
        "ReadOnlySqlTransaction",
        "AdminShutdown",
        "CannotConnectNow",
        "ConnectionException",
        "TooManyConnections",
    )


def _lock_timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is a statement's wait for a lock that ran out (PostgreSQL's
    ``lock_timeout``): nothing was written, and the same write may pass later."""
    return _kind(exc) == "lock timeout"


def _kind(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    if name == "DeadlockDetected":
        return "deadlock"
    if name == "SerializationFailure":
        return "serialization failure"
    if name == "LockNotAvailable":
        return "lock timeout"
    if name == "QueryCanceled":
        return "statement cancelled"
    if name == "ReadOnlySqlTransaction":
        return "read-only database"
    if "locked" in str(orig or exc).lower():
        return "database locked"
    return "connection"


# -- migrations ----------------------------------------------------------------------


def _migrate_to_2(conn: Connection) -> None:
    """Schema 2: task versions, the (state, next_run_at) index, due times and server
    runs on runs, and retries as rows."""
    datetime_type = _UTCDateTime().impl.compile(dialect=conn.dialect)
    conn.execute(text("ALTER TABLE lgs_tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text(f"ALTER TABLE lgs_runs ADD COLUMN due_at {datetime_type}"))
    for column in ("server_thread_id", "server_run_id"):
        conn.execute(text(f"ALTER TABLE lgs_runs ADD COLUMN {column} VARCHAR(64)"))
    conn.execute(text("DROP INDEX IF EXISTS lgs_tasks_state"))
    # The retries table is created by create_all after the migrations, and the
    # (state, next_run_at) index with the other LATE_INDEXES.


def _migrate_to_3(conn: Connection) -> None:
    """Schema 3: thread locks as leased rows (``lgs_thread_locks``) and the answers of
    tool calls that changed tasks (``lgs_tool_calls``)."""
    thread_locks_table.create(conn, checkfirst=True)
    tool_calls_table.create(conn, checkfirst=True)


def _lock_runs(conn: Connection) -> None:
    """``lgs_thread_locks.run_id`` and its index on a table an earlier build of schema 3
    made without them (schema 3 is not released yet: no version of its own)."""
    columns = {c["name"] for c in inspect(conn).get_columns(thread_locks_table.name)}
    if "run_id" not in columns:
        conn.execute(text("ALTER TABLE lgs_thread_locks ADD COLUMN run_id VARCHAR(64)"))
    for index in thread_locks_table.indexes:
        index.create(conn, checkfirst=True)


_MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _migrate_to_2, 3: _migrate_to_3}
"""Migration to each schema version from the one before."""
