"""Task store and run store on SQLAlchemy 2 (async): SQLite by default, PostgreSQL for scale.

One schema serves both dialects. A fire is claimed by inserting its run row; the unique
key ``(task_id, scheduled_for, attempt)`` makes a second claim of the same fire a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
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
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.types import TypeDecorator

from .errors import SchedulerError, StoreError
from .models import RunOutcome, Task, TaskOptions, TaskResult, TaskRunRecord
from .schedules import schedule_from_dict, schedule_to_dict
from .trigger import ConversationTrigger

__all__ = ["SCHEMA_VERSION", "Store", "normalize_database_url"]

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
    """Map a plain URL to the async driver SQLAlchemy needs.

    ``sqlite:///file.db`` → ``sqlite+aiosqlite:///file.db``; ``sqlite://`` or ``:memory:`` is
    an in-memory database; ``postgresql://…`` → ``postgresql+psycopg://…``.
    """
    if url in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return "sqlite+aiosqlite://"
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
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

    Args:
        url: a database URL (see :func:`normalize_database_url`).
        engine: an existing ``AsyncEngine`` to use instead (not disposed by :meth:`close`).
        pool_size: connections kept open (PostgreSQL); half as many again may overflow.
    """

    def __init__(
        self, url: str = "sqlite://", *, engine: AsyncEngine | None = None, pool_size: int = 10
    ) -> None:
        if engine is None:
            engine = _create_engine(normalize_database_url(url), pool_size=pool_size)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- lifecycle -------------------------------------------------------------------

    async def setup(self) -> None:
        """Create the tables if needed and check the schema version.

        On PostgreSQL the work runs under an advisory lock, so replicas starting at once
        neither race each other into errors nor half-create the schema.
        """
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            await conn.run_sync(metadata.create_all, checkfirst=True)
            found = await conn.scalar(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            )
            if found is None:
                await conn.execute(
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
        if self.dialect != "postgresql":
            yield
            return
        async with self.engine.connect() as conn:
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
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            )
        return int(found) if found is not None else 0

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()

    # -- tasks -----------------------------------------------------------------------

    async def insert_task(self, task: Task) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(tasks_table).values(**_task_row(task)))
            await self._notify_change(conn, task.id)

    async def get_task(self, task_id: str, *, owner: str | None = None) -> Task | None:
        query = select(tasks_table).where(tasks_table.c.id == task_id)
        if owner is not None:
            query = query.where(tasks_table.c.owner == owner)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _task_from_row(row) if row else None

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
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        tasks = [_task_from_row(r) for r in rows[:limit]]
        return TaskPage(tasks, offset + limit if len(rows) > limit else None)

    async def count_tasks(self, *, owner: str, states: Sequence[str]) -> int:
        query = (
            select(func.count())
            .select_from(tasks_table)
            .where(tasks_table.c.owner == owner, tasks_table.c.state.in_(list(states)))
        )
        async with self.engine.connect() as conn:
            return int(await conn.scalar(query) or 0)

    async def update_task(self, task_id: str, **values: Any) -> Task | None:
        """Update columns of a task; returns the new task, or None if it is gone."""
        row_values = _task_values(values)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(tasks_table).where(tasks_table.c.id == task_id).values(**row_values)
            )
            if result.rowcount == 0:
                return None
            await self._notify_change(conn, task_id)
            row = (
                (await conn.execute(select(tasks_table).where(tasks_table.c.id == task_id)))
                .mappings()
                .one()
            )
        return _task_from_row(row)

    async def delete_task(self, task_id: str) -> bool:
        """Delete a task and its finished history; runs in flight finish unrecorded."""
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(tasks_table).where(tasks_table.c.id == task_id))
            await conn.execute(delete(runs_table).where(runs_table.c.task_id == task_id))
            await self._notify_change(conn, task_id)
        return result.rowcount > 0

    async def iter_tasks(self, *, states: Sequence[str], batch: int = 1000) -> AsyncIterator[Task]:
        """Stream the tasks in the given states (used to rebuild scheduler jobs at start)."""
        query = (
            select(tasks_table)
            .where(tasks_table.c.state.in_(list(states)))
            .order_by(tasks_table.c.created_at, tasks_table.c.id)
        )
        async with self.engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=batch))
            async for row in result.mappings():
                yield _task_from_row(row)

    # -- runs ------------------------------------------------------------------------

    async def claim_run(
        self,
        record: TaskRunRecord,
        *,
        holder: str,
        lease_until: datetime,
        task_updates: dict[str, Any] | None = None,
    ) -> bool:
        """Claim a fire by inserting its running record; False if already claimed.

        ``task_updates`` (next run time, run count) are applied in the same transaction,
        so a fire is never claimed without its task moving on, nor the reverse.
        """
        row = _run_row(record) | {"holder": holder, "lease_expires_at": lease_until}
        async with self.engine.begin() as conn:
            if not await self._insert_run(conn, row):
                return False
            if task_updates:
                await conn.execute(
                    update(tasks_table)
                    .where(tasks_table.c.id == record.task_id)
                    .values(**_task_values(task_updates))
                )
        return True

    async def record_run(
        self,
        record: TaskRunRecord,
        *,
        holder: str | None = None,
        task_updates: dict[str, Any] | None = None,
    ) -> bool:
        """Insert an already-finished record (missed, skipped); False if that fire exists."""
        async with self.engine.begin() as conn:
            if not await self._insert_run(conn, _run_row(record) | {"holder": holder}):
                return False
            await self._touch_task_outcome(conn, record)
            if task_updates:
                await conn.execute(
                    update(tasks_table)
                    .where(tasks_table.c.id == record.task_id)
                    .values(**_task_values(task_updates))
                )
        return True

    async def finish_run(
        self,
        run_id: str,
        result: TaskResult,
        *,
        finished_at: datetime,
        keep: int | None = None,
    ) -> TaskRunRecord | None:
        """Record the outcome of a running fire; None if it was already finished.

        Args:
            keep: trim the task's finished history to this many newest records.
        """
        async with self.engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        update(runs_table)
                        .where(runs_table.c.run_id == run_id, runs_table.c.outcome.is_(None))
                        .values(
                            outcome=result.outcome,
                            summary=result.summary,
                            error=result.error,
                            checkpoint_id=result.checkpoint_id,
                            finished_at=finished_at,
                            lease_expires_at=None,
                        )
                        .returning(*runs_table.c)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            record = _run_from_row(row)
            # A scheduled success ends the failure streak here, in the same transaction,
            # so the bridge needs no separate round trip for it.
            reset = record.outcome == "success" and record.trigger == "schedule"
            await self._touch_task_outcome(conn, record, reset_streak=reset)
            if keep is not None:
                await self._trim_history(conn, record.task_id, keep)
        return record

    async def count_failed_fire(self, task_id: str) -> int | None:
        """Add a failed fire to the task's failure streak; returns the new streak.

        (A success resets the streak in :meth:`finish_run`.)
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                update(tasks_table)
                .where(tasks_table.c.id == task_id)
                .values(failure_streak=tasks_table.c.failure_streak + 1)
            )
            streak = await conn.scalar(
                select(tasks_table.c.failure_streak).where(tasks_table.c.id == task_id)
            )
        return None if streak is None else int(streak)

    async def purge_history(self, *, finished_before: datetime) -> int:
        """Delete finished run records older than the cutoff; runs in flight stay."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(runs_table).where(
                    runs_table.c.outcome.is_not(None), runs_table.c.finished_at < finished_before
                )
            )
        return int(result.rowcount or 0)

    @staticmethod
    async def _trim_history(conn: AsyncConnection, task_id: str, keep: int) -> None:
        """Keep the ``keep`` newest finished records of a task; never touch running ones."""
        cutoff = await conn.scalar(
            select(runs_table.c.started_at)
            .where(runs_table.c.task_id == task_id)
            .order_by(runs_table.c.started_at.desc())
            .offset(keep)
            .limit(1)
        )
        if cutoff is None:
            return
        await conn.execute(
            delete(runs_table).where(
                runs_table.c.task_id == task_id,
                runs_table.c.started_at <= cutoff,
                runs_table.c.outcome.is_not(None),
            )
        )

    async def running_holders(self) -> list[str]:
        """Holders (processes) that have runs in flight."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(runs_table.c.holder)
                .where(runs_table.c.outcome.is_(None), runs_table.c.holder.is_not(None))
                .distinct()
            )
            return [r[0] for r in rows]

    async def renew_leases(self, run_ids: Sequence[str], *, until: datetime) -> None:
        if not run_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(runs_table)
                .where(runs_table.c.run_id.in_(list(run_ids)), runs_table.c.outcome.is_(None))
                .values(lease_expires_at=until)
            )

    async def interrupt_expired(
        self, *, now: datetime, reason: str, holders: Sequence[str] = ()
    ) -> list[TaskRunRecord]:
        """Record ``interrupted`` for running fires whose holder stopped renewing its lease
        (or is one of ``holders``, known to be dead)."""
        stale = or_(runs_table.c.lease_expires_at.is_(None), runs_table.c.lease_expires_at < now)
        if holders:
            stale = or_(stale, runs_table.c.holder.in_(list(holders)))
        expired = and_(runs_table.c.outcome.is_(None), stale)
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(runs_table).where(expired))).mappings().all()
            done: list[TaskRunRecord] = []
            for row in rows:
                result = await conn.execute(
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
                    await self._touch_task_outcome(conn, record)
                    done.append(record)
        return done

    async def get_run(self, run_id: str) -> TaskRunRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(runs_table).where(runs_table.c.run_id == run_id)))
                .mappings()
                .first()
            )
        return _run_from_row(row) if row else None

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
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_run_from_row(r) for r in rows]

    async def recent_runs(self, *, limit: int = 20) -> list[TaskRunRecord]:
        query = select(runs_table).order_by(runs_table.c.started_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_run_from_row(r) for r in rows]

    async def changed_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """Ids and change times of tasks changed (created, updated) at or after ``since``."""
        query = select(tasks_table.c.id, tasks_table.c.updated_at).where(
            tasks_table.c.updated_at >= since
        )
        async with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in await conn.execute(query)]

    # -- helpers ---------------------------------------------------------------------

    async def _notify_change(self, conn: AsyncConnection, task_id: str) -> None:
        """Tell other replicas (LISTEN ``lgs_task_changes``) that a task changed."""
        if self.dialect == "postgresql":
            await conn.execute(
                text("SELECT pg_notify(:channel, :task_id)"),
                {"channel": TASK_CHANGES_CHANNEL, "task_id": task_id},
            )

    async def _insert_run(self, conn: AsyncConnection, row: dict[str, Any]) -> bool:
        """Insert a run row unless its fire exists; True if this call inserted it."""
        statement = (
            self._insert_ignore(runs_table, "task_id", "scheduled_for", "attempt")
            .values(**row)
            .returning(runs_table.c.run_id)
        )
        return (await conn.execute(statement)).first() is not None

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        """INSERT … ON CONFLICT DO NOTHING in the store's dialect."""
        if self.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(
                index_elements=list(conflict) or None
            )
        if self.dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise StoreError(f"unsupported database dialect {self.dialect!r}")

    @staticmethod
    async def _touch_task_outcome(
        conn: AsyncConnection, record: TaskRunRecord, *, reset_streak: bool = False
    ) -> None:
        values: dict[str, Any] = {"last_outcome": record.outcome, "last_run_at": record.started_at}
        if reset_streak:
            values["failure_streak"] = 0
        await conn.execute(
            update(tasks_table).where(tasks_table.c.id == record.task_id).values(**values)
        )


def _create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    if url.startswith("sqlite"):
        in_memory = make_url(url).database in (None, "", ":memory:")
        # In memory every connection is its own empty database, so the pool holds exactly
        # one; it is checked out by one coroutine at a time (a StaticPool would share it
        # between concurrent transactions, and one's rollback would undo another's writes).
        memory_pool: dict[str, Any] = {
            "poolclass": AsyncAdaptedQueuePool,
            "pool_size": 1,
            "max_overflow": 0,
            "pool_recycle": -1,
            "pool_timeout": 300,
        }
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            **(memory_pool if in_memory else {}),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


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
