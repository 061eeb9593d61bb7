"""Task store and run store on SQLAlchemy 2: SQLite by default, PostgreSQL for scale.

One schema serves both dialects. A fire is claimed by inserting its run row; the unique
key ``(task_id, scheduled_for, attempt)`` makes a second claim of the same fire a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.sql import Executable, Select
from sqlalchemy.types import TypeDecorator

from .errors import SchedulerError, StoreError
from .models import RunOutcome, Task, TaskOptions, TaskResult, TaskRunRecord
from .schedules import schedule_from_dict, schedule_to_dict
from .trigger import ConversationTrigger

__all__ = [
    "SCHEMA_VERSION",
    "Claim",
    "FireClaim",
    "FirePlan",
    "FireRequest",
    "Store",
    "TaskMove",
    "normalize_database_url",
]

_T = TypeVar("_T")

SCHEMA_VERSION = 1
"""Version of the tables below; bumped with every change to them."""

TASK_CHANGES_CHANNEL = "lgs_task_changes"
"""PostgreSQL NOTIFY channel carrying the id of every created, changed or deleted task."""

# Advisory lock keys: one for our schema, one held around a replica's whole start-up.
_SCHEMA_LOCK = 0x4C47_5343_4845_4455  # "LGSCHEDU"
_SETUP_LOCK = _SCHEMA_LOCK + 1


class _UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; pass an aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


_JSON = JSON().with_variant(postgresql.JSONB(), "postgresql")

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
    Column("next_run_at", _UTCDateTime()),
    Column("last_run_at", _UTCDateTime()),
    Column("last_outcome", String(16)),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("updated_at", _UTCDateTime(), nullable=False),
    Index("lgs_tasks_owner_created", "owner", "created_at", "id"),
    Index("lgs_tasks_state", "state"),
    Index("lgs_tasks_updated", "updated_at"),
)

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
    Column("lease_expires_at", _UTCDateTime()),
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


def normalize_database_url(url: str) -> str:
    """Map a plain URL to the driver the store uses.

    ``sqlite:///file.db`` and ``sqlite://`` (``:memory:``) stay on the standard library's
    ``sqlite3``; ``postgresql://…`` → ``postgresql+psycopg://…`` (async).
    """
    if url in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return "sqlite://"
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise SchedulerError(
                f"unsupported PostgreSQL driver {driver!r}; use postgresql+psycopg://… "
                '(pip install "langgraph-scheduler[postgres]")'
            )
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise SchedulerError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db or "
        "postgresql://user@host/dbname"
    )


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks and the offset of the next page (None at the end)."""

    tasks: list[Task]
    next_offset: int | None


class Store:
    """Tasks and run history in one database.

    Every operation is one transaction written as a plain function of a SQLAlchemy
    ``Connection`` and run by :meth:`transaction`: on PostgreSQL through the async engine
    (``run_sync``), on a SQLite file in a small thread pool (one hop per transaction, not
    per statement), and in memory inline on the event loop (a statement takes
    microseconds there, and a transaction that never awaits cannot interleave with another).

    Args:
        url: a database URL (see :func:`normalize_database_url`).
        pool_size: connections kept open (PostgreSQL: half as many again may overflow;
            SQLite file: the threads running transactions).
    """

    def __init__(self, url: str = "sqlite://", *, pool_size: int = 10) -> None:
        self.url = make_url(normalize_database_url(url))
        self.dialect = self.url.get_backend_name()
        self.in_memory = self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")
        self.async_engine: AsyncEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            threads = max(1, min(pool_size, 4))
            self.sync_engine = _sqlite_engine(self.url, in_memory=self.in_memory, pool=threads)
            if not self.in_memory:
                self._executor = ThreadPoolExecutor(threads, thread_name_prefix="lgs-sqlite")
        else:
            self.async_engine = create_async_engine(
                self.url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size // 2
            )
            self.sync_engine = self.async_engine.sync_engine
        self._insert_run_stmt = self._insert_ignore(
            runs_table, "task_id", "scheduled_for", "attempt"
        ).returning(runs_table.c.run_id)

    async def transaction(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work(conn)`` in one transaction (committed if it returns, else rolled back).

        ``work`` must not block on anything but the database; it is the extension point
        for queries the store has no method for.
        """
        if self.async_engine is not None:
            async with self.async_engine.begin() as conn:
                return await conn.run_sync(work)
        if self._executor is None:
            return self._run_sqlite(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_sqlite, work)

    def _run_sqlite(self, work: Callable[[Connection], _T]) -> _T:
        with self.sync_engine.begin() as conn:
            return work(conn)

    # -- lifecycle -------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables if needed and check the schema version.

        On PostgreSQL the work runs under an advisory lock, so replicas starting at once
        neither race each other into errors nor half-create the schema.
        """
        await self.transaction(self._setup)

    def _setup(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        metadata.create_all(conn, checkfirst=True)
        found = conn.scalar(select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
        if found is None:
            conn.execute(
                self._insert_ignore(meta_table).values(
                    key="schema_version", value=str(SCHEMA_VERSION)
                )
            )
        elif int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {found} is newer than this library's "
                f"({SCHEMA_VERSION}); upgrade langgraph-scheduler"
            )

    @contextlib.asynccontextmanager
    async def setup_lock(self) -> AsyncIterator[None]:
        """Serialise start-up work (e.g. the checkpointer's migrations) across replicas."""
        if self.async_engine is None or self.dialect != "postgresql":
            yield
            return
        async with self.async_engine.connect() as conn:
            # Autocommit and try-lock polling: a waiter must hold no snapshot, or the
            # holder's CREATE INDEX CONCURRENTLY (checkpointer setup) would wait for it.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock = text("SELECT pg_try_advisory_lock(:k)")
            while not await conn.scalar(lock, {"k": _SETUP_LOCK}):
                await asyncio.sleep(0.1)
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SETUP_LOCK})

    async def schema_version(self) -> int:
        def read(conn: Connection) -> int:
            found = conn.scalar(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            )
            return int(found) if found is not None else 0

        return await self.transaction(read)

    async def close(self) -> None:
        if self.async_engine is not None:
            await self.async_engine.dispose()
            return
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.sync_engine.dispose()

    # -- tasks -----------------------------------------------------------------------

    async def insert_task(self, task: Task, *, max_active: int | None = None) -> bool:
        """Insert a task; with ``max_active``, only if its owner has fewer active tasks than
        that (checked in the same statement, so concurrent creations cannot overshoot the
        quota). Returns False when the quota refused it."""
        row = _task_row(task)

        def work(conn: Connection) -> bool:
            if max_active is None:
                conn.execute(insert(tasks_table), row)
            else:
                mine = (
                    select(func.count())
                    .select_from(tasks_table)
                    .where(
                        tasks_table.c.owner == task.owner,
                        tasks_table.c.state == "active",
                    )
                    .scalar_subquery()
                )
                values = select(*[literal(v, tasks_table.c[k].type) for k, v in row.items()])
                statement = (
                    insert(tasks_table)
                    .from_select(list(row), values.where(mine < max_active))
                    .returning(tasks_table.c.id)
                )
                if self.dialect == "postgresql":
                    # Serialise quota checks of one owner (READ COMMITTED would let two
                    # concurrent inserts both see room for one).
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:c, hashtext(:o))"),
                        {"c": _QUOTA_LOCK_CLASS, "o": task.owner},
                    )
                if conn.execute(statement).first() is None:
                    return False
            self._notify_change(conn, task.id)
            return True

        return await self.transaction(work)

    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task | None:
        query, params = _GET_TASK, {"b_id": task_id}
        if owner is not None:
            query, params = _GET_OWNED_TASK, params | {"b_owner": owner}

        def work(conn: Connection) -> Task | None:
            row = conn.execute(query, params).mappings().first()
            return _task_from_row(row) if row else None

        return await self.transaction(work)

    async def list_tasks(
        self,
        *,
        owner: str | None = None,
        states: Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskPage:
        query = select(tasks_table)
        if owner is not None:
            query = query.where(tasks_table.c.owner == owner)
        if states:
            query = query.where(tasks_table.c.state.in_(list(states)))
        query = (
            query.order_by(tasks_table.c.created_at, tasks_table.c.id)
            .limit(limit + 1)
            .offset(offset)
        )

        def work(conn: Connection) -> TaskPage:
            rows = conn.execute(query).mappings().all()
            tasks = [_task_from_row(r) for r in rows[:limit]]
            return TaskPage(tasks, offset + limit if len(rows) > limit else None)

        return await self.transaction(work)

    async def count_tasks(self, *, owner: str, states: Sequence[str]) -> int:
        query = (
            select(func.count())
            .select_from(tasks_table)
            .where(tasks_table.c.owner == owner, tasks_table.c.state.in_(list(states)))
        )
        return await self.transaction(lambda conn: int(conn.scalar(query) or 0))

    async def update_task(self, task_id: str, **values: Any) -> Task | None:
        """Update columns of a task; returns the new task, or None if it is gone."""
        row_values = _task_values(values)

        def work(conn: Connection) -> Task | None:
            result = conn.execute(
                update(tasks_table).where(tasks_table.c.id == task_id).values(**row_values)
            )
            if result.rowcount == 0:
                return None
            self._notify_change(conn, task_id)
            row = conn.execute(select(tasks_table).where(tasks_table.c.id == task_id)).mappings()
            return _task_from_row(row.one())

        return await self.transaction(work)

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task and its finished history; runs in flight finish unrecorded."""

        def work(conn: Connection) -> bool:
            result = conn.execute(delete(tasks_table).where(tasks_table.c.id == task_id))
            conn.execute(delete(runs_table).where(runs_table.c.task_id == task_id))
            self._notify_change(conn, task_id)
            return bool(result.rowcount)

        return await self.transaction(work)

    async def iter_tasks(self, *, states: Sequence[str], batch: int = 1000) -> AsyncIterator[Task]:
        """Stream the tasks in the given states, in id order, one page per transaction
        (used to rebuild scheduler jobs at start).

        Pages follow the primary key, so each one is an index range, not a sort of all
        the tasks left.
        """
        base = select(tasks_table).where(tasks_table.c.state.in_(list(states)))
        after: str | None = None

        def read(query: Select[Any]) -> Callable[[Connection], list[Task]]:
            return lambda conn: [_task_from_row(r) for r in conn.execute(query).mappings()]

        while True:
            query = base if after is None else base.where(tasks_table.c.id > after)
            page = await self.transaction(read(query.order_by(tasks_table.c.id).limit(batch)))
            for task in page:
                yield task
            if len(page) < batch:
                return
            after = page[-1].id

    # -- runs ------------------------------------------------------------------------

    async def claim_runs(self, claims: Sequence[Claim]) -> list[bool]:
        """Claim fire attempts (manual runs, retries) by inserting their running records,
        in one transaction; one flag each, False where that attempt was already claimed."""
        rows = [
            _run_row(c.record) | {"holder": c.holder, "lease_expires_at": c.lease_until}
            for c in claims
        ]

        def work(conn: Connection) -> list[bool]:
            won = {row["run_id"] for row in _execute(conn, self._insert_run_stmt, rows)}
            return [c.record.run_id in won for c in claims]

        return await self.transaction(work)

    async def claim_fires(self, requests: Sequence[FireRequest]) -> list[FireClaim]:
        """Load the tasks of scheduled fires and claim what their plans say, in one
        transaction: the running record, a record of occurrences missed, and the task's
        move to its next fire time (applied only with what was inserted, so a fire is
        never claimed without its task moving on, nor the reverse)."""
        ids = sorted({r.task_id for r in requests})

        def work(conn: Connection) -> list[FireClaim]:
            rows = _execute(conn, _GET_TASK, [{"b_id": task_id} for task_id in ids], _GET_TASKS)
            tasks = {row["id"]: _task_from_row(row) for row in rows}
            plans: list[tuple[Task | None, FirePlan | None]] = []
            inserts: list[dict[str, Any]] = []
            for request in requests:
                task = tasks.get(request.task_id)
                plan = request.plan(task) if task is not None else None
                plans.append((task, plan))
                if plan is None:
                    continue
                if plan.run is not None:
                    lease = {"holder": request.holder, "lease_expires_at": request.lease_until}
                    inserts.append(_run_row(plan.run) | lease)
                if plan.missed is not None:
                    finished = {"holder": request.holder, "lease_expires_at": None}
                    inserts.append(_run_row(plan.missed) | finished)
            won = {row["run_id"] for row in _execute(conn, self._insert_run_stmt, inserts)}
            claims: list[FireClaim] = []
            moves: list[dict[str, Any]] = []
            touches: list[dict[str, Any]] = []
            for task, plan in plans:
                if plan is None:
                    claims.append(FireClaim(task, None))
                    continue
                claimed = plan.run is not None and plan.run.run_id in won
                missed = plan.missed is not None and plan.missed.run_id in won
                if claimed or (plan.run is None and missed):
                    moves.append(plan.move.params(plan.task_id))
                if missed:
                    assert plan.missed is not None
                    touches.append(_touch_params(plan.missed, finished=False))
                claims.append(FireClaim(task, plan, run_claimed=claimed, missed_recorded=missed))
            _execute(conn, _MOVE_TASK, moves)
            _execute(conn, _TOUCH_TASK, touches)
            return claims

        return await self.transaction(work)

    async def finish_runs(
        self, finishes: Sequence[tuple[TaskRunRecord, TaskResult, datetime]]
    ) -> list[TaskRunRecord | None]:
        """Record the outcomes of running fires (each ``record`` as claimed) in one
        transaction; for each the finished record, or None if it was already finished (by
        a lease sweep, say)."""
        done = [
            record.model_copy(update=result.model_dump() | {"finished_at": at})
            for record, result, at in finishes
        ]

        def work(conn: Connection) -> list[TaskRunRecord | None]:
            out: list[TaskRunRecord | None] = []
            for finished in done:
                values = {
                    "b_run_id": finished.run_id,
                    "outcome": finished.outcome,
                    "summary": finished.summary,
                    "error": finished.error,
                    "checkpoint_id": finished.checkpoint_id,
                    "finished_at": finished.finished_at,
                    "lease_expires_at": None,
                }
                ours = conn.execute(_FINISH_RUN, values).first() is not None
                out.append(finished if ours else None)
            _execute(conn, _TOUCH_TASK, [_touch_params(r) for r in out if r is not None])
            return out

        return await self.transaction(work)

    async def count_failed_fire(self, task_id: str) -> int | None:
        """Add a failed fire to the task's failure streak; returns the new streak.

        (A success resets the streak in :meth:`finish_runs`.)
        """

        def work(conn: Connection) -> int | None:
            conn.execute(
                update(tasks_table)
                .where(tasks_table.c.id == task_id)
                .values(failure_streak=tasks_table.c.failure_streak + 1)
            )
            streak = conn.scalar(
                select(tasks_table.c.failure_streak).where(tasks_table.c.id == task_id)
            )
            return None if streak is None else int(streak)

        return await self.transaction(work)

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
        # A few tasks per transaction: in memory a transaction holds the event loop.

        def trim(chunk: list[str]) -> Callable[[Connection], int]:
            return lambda conn: sum(_trim_task_history(conn, t, keep) for t in chunk)

        for start in range(0, len(ids), 50):
            deleted += await self.transaction(trim(ids[start : start + 50]))
            await asyncio.sleep(0)
        return deleted

    async def running_holders(self) -> list[str]:
        """Holders (processes) that have runs in flight."""
        query = (
            select(runs_table.c.holder)
            .where(runs_table.c.outcome.is_(None), runs_table.c.holder.is_not(None))
            .distinct()
        )
        return await self.transaction(lambda conn: [r[0] for r in conn.execute(query)])

    async def renew_leases(self, run_ids: Sequence[str], *, until: datetime) -> None:
        if not run_ids:
            return
        statement = (
            update(runs_table)
            .where(runs_table.c.run_id.in_(list(run_ids)), runs_table.c.outcome.is_(None))
            .values(lease_expires_at=until)
        )
        await self.transaction(lambda conn: conn.execute(statement))

    async def interrupt_expired(
        self, *, now: datetime, reason: str, holders: Sequence[str] = ()
    ) -> list[TaskRunRecord]:
        """Record ``interrupted`` for running fires whose holder stopped renewing its lease
        (or is one of ``holders``, known to be dead)."""
        stale = or_(runs_table.c.lease_expires_at.is_(None), runs_table.c.lease_expires_at < now)
        if holders:
            stale = or_(stale, runs_table.c.holder.in_(list(holders)))
        expired = and_(runs_table.c.outcome.is_(None), stale)

        def work(conn: Connection) -> list[TaskRunRecord]:
            done: list[TaskRunRecord] = []
            for row in conn.execute(select(runs_table).where(expired)).mappings().all():
                result = conn.execute(
                    update(runs_table)
                    .where(runs_table.c.run_id == row["run_id"], expired)
                    .values(
                        outcome="interrupted",
                        error=reason,
                        finished_at=now,
                        lease_expires_at=None,
                    )
                )
                if result.rowcount == 1:
                    record = _run_from_row(
                        dict(row) | {"outcome": "interrupted", "error": reason, "finished_at": now}
                    )
                    _touch_task_outcome(conn, record)
                    done.append(record)
            return done

        return await self.transaction(work)

    async def get_run(self, run_id: str) -> TaskRunRecord | None:
        query = select(runs_table).where(runs_table.c.run_id == run_id)

        def work(conn: Connection) -> TaskRunRecord | None:
            row = conn.execute(query).mappings().first()
            return _run_from_row(row) if row else None

        return await self.transaction(work)

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

    async def recent_runs(self, *, limit: int = 20) -> list[TaskRunRecord]:
        return await self._runs(
            select(runs_table).order_by(runs_table.c.started_at.desc()).limit(limit)
        )

    async def _runs(self, query: Select[Any]) -> list[TaskRunRecord]:
        return await self.transaction(
            lambda conn: [_run_from_row(r) for r in conn.execute(query).mappings()]
        )

    async def changed_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """Ids and change times of tasks changed (created, updated) at or after ``since``."""
        query = select(tasks_table.c.id, tasks_table.c.updated_at).where(
            tasks_table.c.updated_at >= since
        )
        return await self.transaction(lambda conn: [(r[0], r[1]) for r in conn.execute(query)])

    # -- helpers ---------------------------------------------------------------------

    def _notify_change(self, conn: Connection, task_id: str) -> None:
        """Tell other replicas (LISTEN ``lgs_task_changes``) that a task changed."""
        if self.dialect == "postgresql":
            conn.execute(
                text("SELECT pg_notify(:channel, :task_id)"),
                {"channel": TASK_CHANGES_CHANNEL, "task_id": task_id},
            )

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in the store's dialect."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(
                index_elements=list(conflict) or None
            )
        if self.dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise StoreError(f"unsupported database dialect {self.dialect!r}")


_QUOTA_LOCK_CLASS = 0x4C51  # "LQ": advisory lock class serialising one owner's quota checks


@dataclass(frozen=True)
class Claim:
    """One fire attempt to claim: its running record, who holds it, until when."""

    record: TaskRunRecord
    holder: str
    lease_until: datetime


@dataclass(frozen=True)
class TaskMove:
    """How a fire moves its task on, written with the fire's claim."""

    next_run_at: datetime | None
    counts: bool = True
    """The fire runs (not only recorded missed): it adds to the task's run count."""
    completes: bool = False
    """No fire time is left: the task becomes ``completed``."""

    def params(self, task_id: str) -> dict[str, Any]:
        return {
            "b_id": task_id,
            "b_next": self.next_run_at,
            "b_runs": 1 if self.counts else 0,
            "b_state": "completed" if self.completes else None,
        }


@dataclass(frozen=True)
class FirePlan:
    """What a scheduled fire writes: the run to claim (None when every due occurrence
    is recorded missed), one record of the occurrences missed, and the task's move."""

    run: TaskRunRecord | None
    missed: TaskRunRecord | None
    move: TaskMove

    @property
    def task_id(self) -> str:
        record = self.run or self.missed
        assert record is not None, "a fire plan writes a run or a missed record"
        return record.task_id


@dataclass(frozen=True)
class FireRequest:
    """A scheduled fire to claim: ``plan`` decides, from the task as stored, what to
    write (None: nothing, the task is not in a state to fire). It runs inside the
    store's transaction, so it must be quick and touch nothing but its arguments."""

    task_id: str
    plan: Callable[[Task], FirePlan | None]
    holder: str
    lease_until: datetime


@dataclass(frozen=True)
class FireClaim:
    """The outcome of a :class:`FireRequest`: the task as stored (None if gone), the
    plan, and which of its records were inserted (not already there)."""

    task: Task | None
    plan: FirePlan | None
    run_claimed: bool = False
    missed_recorded: bool = False


# Statements of the per-fire path, built once: SQLAlchemy then skips building and
# cache-keying them on every call (about half the cost of a small statement).
_GET_TASK = select(tasks_table).where(tasks_table.c.id == bindparam("b_id"))
_GET_OWNED_TASK = _GET_TASK.where(tasks_table.c.owner == bindparam("b_owner"))
_MOVE_TASK = (
    update(tasks_table)
    .where(tasks_table.c.id == bindparam("b_id"))
    .values(
        next_run_at=bindparam("b_next", type_=tasks_table.c.next_run_at.type),
        run_count=tasks_table.c.run_count + bindparam("b_runs", type_=Integer()),
        state=func.coalesce(bindparam("b_state", type_=String()), tasks_table.c.state),
    )
)
_FINISH_RUN = (
    update(runs_table)
    .where(runs_table.c.run_id == bindparam("b_run_id"), runs_table.c.outcome.is_(None))
    .returning(runs_table.c.run_id)
)
"""Finish a running fire (SET columns come from the parameters)."""
_TOUCH_TASK = (
    update(tasks_table)
    .where(tasks_table.c.id == bindparam("b_id"))
    .values(
        last_outcome=bindparam("b_outcome", type_=String()),
        last_run_at=bindparam("b_at", type_=tasks_table.c.last_run_at.type),
        failure_streak=case(
            (bindparam("b_reset", type_=Boolean()), 0), else_=tasks_table.c.failure_streak
        ),
    )
)
_GET_TASKS = select(tasks_table).where(tasks_table.c.id.in_(bindparam("b_ids", expanding=True)))


def _execute(
    conn: Connection,
    statement: Executable,
    params: list[dict[str, Any]],
    batched: Executable | None = None,
) -> Sequence[Any]:
    """Run ``statement`` for each parameter set and return the rows it gives.

    One set runs as a plain execution; several run as one ``executemany`` (or as
    ``batched``, one statement taking them all as ``b_ids``) — a burst's cost, but
    slower than a plain execution for a lone fire.
    """
    if not params:
        return []
    if len(params) == 1:
        result = conn.execute(statement, params[0])
    elif batched is not None:
        result = conn.execute(batched, {"b_ids": [p["b_id"] for p in params]})
    else:
        result = conn.execute(statement, params)
    return result.mappings().all() if result.returns_rows else []


def _touch_params(record: TaskRunRecord, *, finished: bool = True) -> dict[str, Any]:
    # A scheduled success ends the failure streak here, in the outcome's own
    # transaction, so the bridge needs no separate round trip for it.
    reset = finished and record.outcome == "success" and record.trigger == "schedule"
    return {
        "b_id": record.task_id,
        "b_outcome": record.outcome,
        "b_at": record.started_at,
        "b_reset": reset,
    }


def _touch_task_outcome(conn: Connection, record: TaskRunRecord) -> None:
    conn.execute(_TOUCH_TASK, _touch_params(record, finished=False))


def _trim_task_history(conn: Connection, task_id: str, keep: int) -> int:
    cutoff = conn.scalar(
        select(runs_table.c.started_at)
        .where(runs_table.c.task_id == task_id)
        .order_by(runs_table.c.started_at.desc())
        .offset(keep)
        .limit(1)
    )
    if cutoff is None:
        return 0
    result = conn.execute(
        delete(runs_table).where(
            runs_table.c.task_id == task_id,
            runs_table.c.started_at <= cutoff,
            runs_table.c.outcome.is_not(None),
        )
    )
    return int(result.rowcount or 0)


def _sqlite_engine(url: URL, *, in_memory: bool, pool: int) -> Engine:
    if in_memory:
        # One connection, used by one transaction at a time: transactions run inline on
        # the event loop and never await, so they cannot interleave.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool,
            max_overflow=0,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _task_values(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "schedule" in out and not isinstance(out["schedule"], dict):
        out["schedule"] = schedule_to_dict(out["schedule"])
    if "payload" in out and isinstance(out["payload"], ConversationTrigger):
        out["payload"] = out["payload"].to_payload()
    if "options" in out and isinstance(out["options"], TaskOptions):
        out["options"] = out["options"].model_dump(mode="json")
    return out


def _task_row(task: Task) -> dict[str, Any]:
    row = task.model_dump()
    row["schedule"] = schedule_to_dict(task.schedule)
    row["options"] = task.options.model_dump(mode="json")
    return row


def _task_from_row(row: Any) -> Task:
    data = dict(row)
    data["schedule"] = schedule_from_dict(data["schedule"])
    data["options"] = TaskOptions.model_validate(data["options"])
    return Task.model_validate(data)


def _run_row(record: TaskRunRecord) -> dict[str, Any]:
    return record.model_dump()


def _run_from_row(row: Any) -> TaskRunRecord:
    data = {k: v for k, v in dict(row).items() if k not in ("holder", "lease_expires_at")}
    return TaskRunRecord.model_validate(data)
