"""The PostgreSQL twin of the store: several replicas on one database.

Claims lock the rows they take with ``FOR UPDATE SKIP LOCKED``, so replicas split a burst
instead of racing it; a settled finish, and a manual claim without limits, are single
statements sent on the replica's own session without a transaction around them (one
round trip each); every task change is announced with ``NOTIFY`` and followed with
``LISTEN`` (with polling as the safety net); one turn per conversation thread across
replicas through leased rows (``lgs_thread_locks``), renewed by the upkeep, so a lost
session frees no thread: a fire's claim takes its thread's row when the thread is free,
and its finish frees it, in their own statements; any other hold takes and frees the row
on that session; checkpoints in ``AsyncPostgresSaver``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Index,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    event,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection as PooledConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import Select
from sqlalchemy.util import asbool

from ._clock import Clock
from ._logs import Repeats
from .errors import NotRunning, StoreError, StoreUnavailable, ThreadBusy
from .models import Task, TaskRunRecord
from .store import (
    _EARLIEST,
    _LATEST,
    LATE_INDEXES,
    LOCK_LOG_SECS,
    QUIET_LOCK_SECS,
    Finish,
    Finished,
    Store,
    TaskChange,
    ThreadLocks,
    _check_conninfo,
    _finish_params,
    _finished_record,
    _finished_values,
    _lock_timed_out,
    _ManualClaim,
    _settling,
    _started_binds,
    _started_params,
    _UTCDateTime,
    isolated_thread_id,
    payload_unreadable,
    runs_table,
    tasks_table,
    thread_locks_table,
)

__all__ = ["PostgresStore"]

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger("langgraph_scheduler")

_T = TypeVar("_T")

_MAX_SENDS_KEPT = 10_000
"""Threads whose last take or free is remembered before the old ones are forgotten."""

TASK_CHANGES_CHANNEL = "lgs_task_changes"
"""NOTIFY channel carrying the id of every created, changed or deleted task."""

PREPARED_STATEMENTS_PARAM = "prepared_statements"
"""The URL's query parameter that turns server-side prepared statements off
(``?prepared_statements=false``), for a pooler in transaction mode (PgBouncer before
1.21, or without ``max_prepared_statements``): it runs a session's next statement on
another server connection, where a statement of that name is missing or is another one.
On by default: a statement prepared once is planned once."""

_STORE_THRESHOLD = 5
"""psycopg's ``prepare_threshold`` for the store's connections (psycopg's default)."""
_SAVER_THRESHOLD = 0
"""The checkpointer's (LangGraph's own choice: every statement prepared at once)."""

TCP_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
"""libpq's TCP keepalive parameters on every connection the store opens, each unless the
URL sets it: a session the network dropped without a word (a NAT or firewall that
forgot it; no RST) is found dead within about a minute (30 s idle, then 3 probes 10 s
apart), not after the system's two hours. Above all the listening session, idle by
nature, which otherwise stays deaf to task changes (polls only) until then; an idle
pooled connection fails at once on its next use instead of hanging. Unix-domain
sockets ignore them."""

LOCK_TIMEOUT = "1s"
"""The ``lock_timeout`` of the pooled transactions that may meet a row another session
holds locked (:meth:`PostgresStore._run_bounded`): far above a write's own wait for a row
a claim or a finish holds (milliseconds), and short enough that the store's pooled
connections come free for its lease renewals well within a lease."""

_IDLE_SESSION_TIMEOUT = "57P05"
"""SQLSTATE of a session ended by ``idle_session_timeout``."""

# Advisory lock keys: our schema, a replica's whole start-up, the late indexes' builds,
# quota checks.
_SCHEMA_LOCK = 0x4C47_5343_4845_4455  # "LGSCHEDU"
_SETUP_LOCK = _SCHEMA_LOCK + 1
_INDEX_LOCK = _SCHEMA_LOCK + 2
_QUOTA_LOCK_CLASS = 0x4C51  # "LQ"


@dataclass(frozen=True)
class _ThreadLease:
    """Who holds a store's thread locks, by which clock, for how long unrenewed."""

    holder: str
    clock: Clock
    length: timedelta


@dataclass(frozen=True)
class _ClaimedThread:
    """A thread whose row a fire's claim took (``l_key``): its turn holds it with no
    statement of its own if nothing of this process took or freed the thread since the
    claim was sent (``sent``, the count then) nor was doing so then (``busy``, the
    threads whose take or free was on its way): such a statement may have landed after
    the claim's, taking the row over or deleting it."""

    key: str
    sent: int
    busy: frozenset[str]


class PostgresStore(Store):
    """Tasks and runs in PostgreSQL (``postgresql://…``, extra ``postgres``).

    Args:
        url: a ``postgresql+psycopg`` URL.
        pool_size: connections for the store's transactions (a claim, a finish and the
            upkeep each hold one for milliseconds; more work waits for a free one).
        lock_patience: how long a transaction waits for a lock another session holds
            before it gives up with ``StoreUnavailable`` (None: as long as it is held);
            the wait is logged after 2 s either way, naming that session.

    Note:
        A replica's connections are bounded whatever its ``max_concurrency``: the
        store's pool (2), the checkpointer's pool (2, opened on demand, idle ones closed
        after a minute), one session of its own (threads taken and freed, and the fire
        path's statements sent alone) and one listening for task changes: 6 in all, so 10
        replicas fit in PostgreSQL's default ``max_connections`` (100) with room to
        spare (2 more while :meth:`build_indexes` builds an index, once after an
        upgrade; one more while a transaction has run over 2 s, to see whether it waits
        for another session's lock: see :class:`_LockWatch`). When the server refuses
        connections, work waits and is retried; it is never dropped. A replica allowed
        fewer (a role's ``CONNECTION LIMIT`` of 3) still runs, slower: the statements of
        its own session, refused, go through the store's pool. A task's row
        another session holds locked (a DBA's open transaction) keeps none of the pool's
        two connections for longer than the :data:`LOCK_TIMEOUT` at a time, so the
        upkeep's lease renewals always get one: a write of that task tries again for
        :data:`~.store.TASK_LOCK_PATIENCE` seconds, then raises ``TaskBusy``; a batch of
        finishes is retried by the engine.
    """

    dialect = "postgresql"

    def __init__(self, url: URL, *, pool_size: int = 2, lock_patience: float | None = None) -> None:
        self.lock_patience = lock_patience
        """How long a transaction waits for a lock another session holds (None: as long
        as it is held); see :class:`_LockWatch`."""
        self.prepares, url = _prepared_statements(url)
        """Whether statements are prepared on the server (see
        :data:`PREPARED_STATEMENTS_PARAM`)."""
        _check_conninfo(url)
        super().__init__(url)
        self._keepalives = {k: v for k, v in TCP_KEEPALIVES.items() if k not in url.query}
        """:data:`TCP_KEEPALIVES` the URL does not set (its own values win)."""
        # No pre-ping (a round trip per transaction): a pooled connection the server
        # dropped fails its first statement instead, and _run runs the work again.
        self.async_engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=60,
            connect_args={
                "prepare_threshold": self._threshold(_STORE_THRESHOLD),
                **self._keepalives,
            },
            hide_parameters=True,  # see Store._map_error
        )
        self.sync_engine = self.async_engine.sync_engine
        self._driver_errors = (self.sync_engine.dialect.loaded_dbapi.Error,)
        event.listen(
            self.sync_engine,
            "connect",
            lambda dbapi, _: _lenient_times(dbapi.driver_connection.adapters),
        )
        self._locks = ThreadLocks()
        self._lease: _ThreadLease | None = None
        self._held: set[str] = set()
        """The threads held through this store (their leases are renewed)."""
        self._lost: set[str] = set()
        """Held threads found taken by another holder (logged once)."""
        self._freeing: dict[str, asyncio.Task[None]] = {}
        """Frees still on their way, by thread: a take of the thread waits for its own."""
        self._claimed: dict[str, _ClaimedThread] = {}
        """Threads taken by the claims of fires whose turn has not begun, by run id."""
        self._claimed_runs: set[str] = set()
        """The fires whose claims took their thread, until their finish frees it."""
        self._sends = 0
        """Counts the take and free statements sent here, and the claims (see
        :class:`_ClaimedThread`)."""
        self._last_send: dict[str, int] = {}
        """The count at the last take or free of each thread sent here."""
        self._sending: collections.Counter[str] = collections.Counter()
        """Takes and frees on their way, by thread."""
        self._closed = False
        self._scope: Hashable | None = None
        """The database's identity, read by :meth:`setup` (see :attr:`lock_scope`)."""
        self._setting_up = False
        """Whether this store holds the replicas' start-up lock (see :meth:`_setup_lock`)."""
        self._session = _Session(
            self.conninfo,
            prepare_threshold=self._threshold(_STORE_THRESHOLD),
            pooled=self._run_bounded,
        )

    @property
    def conninfo(self) -> str:
        """The libpq connection string (for psycopg connections of our own), with the
        :data:`TCP_KEEPALIVES` the URL does not set."""
        url = self.url.set(drivername="postgresql").update_query_dict(self._keepalives)
        return url.render_as_string(hide_password=False)

    async def _run(self, work: Callable[[Connection], _T]) -> _T:
        return await _twice_if_gone(self._run_once, work)

    async def _run_once(self, work: Callable[[Connection], _T]) -> _T:
        async with self.async_engine.begin() as conn, _LockWatch(self, conn):
            return await conn.run_sync(work)

    async def _run_bounded(self, work: Callable[[Connection], _T]) -> _T:
        return await self._run(functools.partial(_under_lock_timeout, work=work))

    async def _single(
        self, statement: Select[Any], params: dict[str, Any]
    ) -> tuple[Any, ...] | None:
        """Send one of the fire path's statements that need no transaction around them
        on the replica's own session: its first row (None: none), processed as
        SQLAlchemy would."""
        dbapi = self.sync_engine.dialect.loaded_dbapi
        prepared = self._prepared(statement, self.sync_engine.dialect)
        args = prepared.args(params)
        try:
            row = await self._session.fetch_one(prepared.sql, args)
        except dbapi.Error as exc:  # mapped as _Prepared maps a pooled connection's
            lost = isinstance(exc, dbapi.OperationalError)
            raise DBAPIError.instance(
                prepared.sql,
                args,
                exc,
                dbapi.Error,
                hide_parameters=True,  # as the engine does (see Store._map_error)
                connection_invalidated=lost,
            ) from exc
        return None if row is None else prepared.rows([row])[0]

    _BURSTS_LOCKED = True

    @functools.cached_property
    def _start(self) -> Select[Any]:
        """A claimed fire as one statement: its task's row locked if it still has the
        version read and no other claim holds it, then the running record inserted and
        the task moved on (counting the run only if it was inserted); returns the
        inserted run's id (NULL: the fire was already claimed, or not written) and
        whether the task was moved (not: nothing was written)."""
        fire = self._fire
        locked = (
            select(tasks_table.c.id)
            .where(
                tasks_table.c.id == bindparam("b_id"),
                tasks_table.c.version == bindparam("b_version", type_=Integer()),
            )
            .with_for_update(skip_locked=True)
            .cte("locked_task")
        )
        values = list(_started_binds().values())
        run = (
            self._insert_ignore(runs_table, "task_id", "scheduled_for", "attempt")
            .from_select(list(runs_table.c.keys()), select(*values).where(exists(locked)))
            .returning(runs_table.c.run_id)
            .cte("claimed_run")
        )
        ran = select(func.count()).select_from(run).scalar_subquery()
        moved = (
            fire.move_task.where(tasks_table.c.id.in_(select(locked.c.id)))
            .values(run_count=tasks_table.c.run_count + ran)
            .returning(tasks_table.c.id)
            .cte("moved_task")
        )
        # The fire's thread taken with it when it is free (NULL key: a fresh thread), so
        # that its turn need not take it: a row anyone holds, this replica included, is
        # left alone (the turn takes the thread then, as any hold does).
        key = bindparam("l_key", type_=String())
        binds = _started_binds()
        taken = (
            postgresql.insert(thread_locks_table)
            .from_select(
                ["thread_id", "holder", "lease_expires_at", "run_id"],
                select(key, binds["holder"], binds["lease_expires_at"], run.c.run_id).where(
                    key.is_not(None)
                ),
            )
            .on_conflict_do_nothing(index_elements=["thread_id"])
            .returning(thread_locks_table.c.run_id)
            .cte("taken_thread")
        )
        return select(
            select(run.c.run_id).scalar_subquery(),
            select(func.count()).select_from(moved).scalar_subquery(),
            select(func.count()).select_from(taken).scalar_subquery(),
        )

    def _start_run(
        self,
        conn: Connection,
        run: TaskRunRecord,
        holder: str,
        lease_until: datetime,
        move: dict[str, Any],
    ) -> bool | None:
        thread = run.thread_id
        claimed: _ClaimedThread | None = None
        if (
            thread is not None
            and thread != isolated_thread_id(run.task_id, run.run_id)  # a fresh thread
            and self._lease is not None
        ):
            self._sends += 1
            claimed = _ClaimedThread(_lock_key(thread), self._sends, frozenset(+self._sending))
            self._claimed[run.run_id] = claimed  # on its way: the sends it is judged by are kept
        key = None if claimed is None else claimed.key
        params = _started_params(run, holder, lease_until) | move | {"l_key": key}
        _, returned = self._write(conn, self._start, params)
        assert returned is not None  # one row, always
        run_id, moved, taken = returned
        if claimed is not None:
            if taken:  # its transaction may yet fail: then its turn never comes
                self._claimed[run.run_id] = claimed
                self._claimed_runs.add(run.run_id)
            else:
                self._claimed.pop(run.run_id, None)
        return None if not moved else run_id is not None

    async def _run_alone(self, work: Callable[[Connection], _T]) -> _T:
        return await _twice_if_gone(self._alone_once, work)

    async def _alone_once(self, work: Callable[[Connection], _T]) -> _T:
        async with self.async_engine.connect() as conn:
            alone = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await alone.run_sync(work)

    async def _claim_manual_alone(self, asked: _ManualClaim) -> tuple[Task, TaskRunRecord] | None:
        # One statement, sent alone: the task read and the run inserted together.
        statement = self._manual[asked.owner is not None]
        due = asked.at
        while True:
            params = {
                "b_id": asked.task_id,
                "b_owner": asked.owner,
                "b_at": due,
                "b_holder": asked.holder,
                "b_lease": asked.lease_until,
                "r_run_id": asked.run_id,
                "r_isolated": isolated_thread_id(asked.task_id, asked.run_id),
            }
            row = await self._guarded(self._single(statement, params))
            if row is None:  # no such task (of that owner)
                return None
            task = self._task_of(row)
            inserted, ours = row[-2:]
            if inserted is not None or ours:  # ours: sent again after a lost answer
                record = asked.record(task, due)
                if payload_unreadable(task):  # no turn to run: quarantined instead
                    return task, await self._unrun_manual(task, record, asked)
                return task, record
            # Another manual run of the task took this microsecond: the next one.
            due += timedelta(microseconds=1)

    @functools.cached_property
    def _manual(self) -> tuple[Select[Any], Select[Any]]:
        """A manual claim as one statement (any owner, then the given owner's): the task's
        row read and a running record inserted from it, the same one
        :meth:`~.store._ManualClaim.record` builds; returns the task's columns and the
        inserted run's id (NULL: a run of that task is already due that instant) and
        whether that run id was stored before the statement (it was sent again after its
        answer was lost: the run is this claim's own)."""
        due = bindparam("b_at", type_=_UTCDateTime())
        run_id = bindparam("r_run_id", type_=String())
        ours = exists().where(runs_table.c.run_id == run_id)
        out = []
        for owned in (False, True):
            query = select(tasks_table).where(tasks_table.c.id == bindparam("b_id"))
            if owned:
                query = query.where(tasks_table.c.owner == bindparam("b_owner"))
            task = query.cte("manual_task")
            values = select(
                run_id,
                task.c.id,
                literal(1),
                literal("manual"),
                due,
                due,
                due,
                func.coalesce(task.c.thread_id, bindparam("r_isolated", type_=String())),
                bindparam("b_holder", type_=String()),
                bindparam("b_lease", type_=_UTCDateTime()),
            )
            columns = ["run_id", "task_id", "attempt", "trigger", "scheduled_for"]
            columns += ["started_at", "due_at", "thread_id", "holder", "lease_expires_at"]
            run = (
                self._insert_ignore(runs_table, "task_id", "scheduled_for", "attempt")
                .from_select(columns, values)
                .returning(runs_table.c.run_id)
                .cte("manual_run")
            )
            out.append(select(task, select(run.c.run_id).scalar_subquery(), ours))
        return out[0], out[1]

    @functools.cached_property
    def _settle(self) -> Select[Any]:
        """A settled finish as one statement: the run's outcome, then (if that run was
        still running) its task's last outcome and streak; returns whether the run was
        written and the task's streak (NULL: the task is gone)."""
        return self._settling(free=False)

    @functools.cached_property
    def _settle_alone(self) -> Select[Any]:
        """:attr:`_settle`, also freeing the thread the fire's claim took (if a hold has
        not taken it over), after the task's row: sent alone, nothing else it locks."""
        return self._settling(free=True)

    def _settling(self, *, free: bool) -> Select[Any]:
        fire = self._fire
        run = fire.finish_run.returning(runs_table.c.task_id).cte("finished_run")
        task = fire.task_settled.where(tasks_table.c.id == run.c.task_id).cte("settled_task")
        columns = [
            select(func.count()).select_from(run).scalar_subquery(),
            select(task.c.failure_streak).scalar_subquery(),
        ]
        if free:
            # After the task's row (the condition reads the task's CTE, which runs
            # first): a claim holds its task's row while it takes its thread.
            locks = thread_locks_table
            settled = select(func.count()).select_from(task).scalar_subquery()
            freed = (
                delete(locks)
                .where(locks.c.run_id == bindparam("b_run", type_=String()), settled >= 0)
                .returning(locks.c.run_id)
                .cte("freed_thread")
            )
            columns.append(select(func.count()).select_from(freed).scalar_subquery())
        return select(*columns)

    def _free_claimed_threads(self, conn: Connection, run_ids: Sequence[str]) -> None:
        mine = [r for r in run_ids if r in self._claimed_runs]
        if not mine:
            return
        locks = thread_locks_table
        conn.execute(delete(locks).where(locks.c.run_id.in_(mine)))
        self._claimed_runs.difference_update(mine)

    def _finish_settled(
        self, conn: Connection, record: TaskRunRecord, finished: dict[str, Any], holder: str | None
    ) -> Finished | None:
        written, params = _settle_params(record, finished, holder)
        return self._settle_result(record, written, self._write(conn, self._settle, params)[1])

    async def _finish_alone(self, finish: Finish, now: datetime, holder: str) -> Finished | None:
        record = _finished_record(finish, now)
        written, params = _settle_params(record, _finished_values(record), holder)
        returned = await self._guarded(self._single(self._settle_alone, params))
        self._claimed_runs.discard(record.run_id)
        return self._settle_result(record, written, returned)

    def _settle_result(
        self, record: TaskRunRecord, written: dict[str, Any], returned: tuple[Any, ...] | None
    ) -> Finished | None:
        """What ``_settle`` returned for ``record``: None if the run was finished already."""
        assert returned is not None  # one row, always
        ran, streak = returned[:2]
        return self._settled(record, written, streak) if ran else None

    def _insert_ignore(self, table: Table, *conflict: str) -> Any:
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=list(conflict) or None
        )

    def _lock_due(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update(skip_locked=True)

    def _lock_row(self, query: Select[Any]) -> Select[Any]:
        return query.with_for_update()

    def _serialize_owner(self, conn: Connection, owner: str) -> None:
        # READ COMMITTED would let two concurrent writes both see room for one.
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:c, hashtext(:o))"),
            {"c": _QUOTA_LOCK_CLASS, "o": owner},
        )

    def _notify(self, conn: Connection, task_id: str) -> None:
        conn.execute(
            text("SELECT pg_notify(:channel, :task_id)"),
            {"channel": TASK_CHANGES_CHANNEL, "task_id": task_id},
        )

    def _before_setup(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        self._scope = _database_identity(conn)

    def _create_late_indexes(self, conn: Connection) -> None:
        return None  # built concurrently by build_indexes, once the setup committed

    async def build_indexes(self) -> None:
        """Build the late indexes missing or left invalid, one at a time, each with
        ``CREATE INDEX CONCURRENTLY`` on a session of its own in autocommit: writes to
        the table go on meanwhile (a plain ``CREATE INDEX`` blocks them all for the whole
        build, minutes on millions of runs). One replica builds at a time: under an
        advisory lock of a transaction kept open on another session (so that it holds
        behind a pooler in transaction mode; that transaction holds no snapshot, which
        the build would wait for), taken if free: a replica that finds it taken leaves
        the build to its holder. An index found invalid with the lock free was left by
        a build cut short (its session lost, its runtime stopped): it is dropped and
        built again. Two more connections while a build runs, none when nothing is to
        be built (the check goes through the pool)."""
        if not await self.transaction(_late_indexes_to_build):
            return
        import psycopg

        try:
            async with (
                await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as lock,
                await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn,
            ):
                async with lock.transaction():
                    # The lock is held by the transaction, which idles until the builds
                    # end: that timeout would end it, and free the lock, meanwhile.
                    await lock.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                    taken = await _fetch_one(
                        lock, f"SELECT pg_try_advisory_xact_lock({_INDEX_LOCK})", None
                    )
                    if not (taken and taken[0]):
                        logger.info("another replica builds the scheduler's indexes")
                        return
                    # A build waits for older transactions and takes minutes on millions
                    # of runs: a role's statement_timeout or lock_timeout would cancel
                    # it each time, leaving an invalid index to build again. Reset
                    # after, for a pooler that lends this server connection on.
                    await conn.execute("SET statement_timeout = 0; SET lock_timeout = 0")
                    try:
                        for name, valid in (await self.transaction(_late_indexes_to_build)).items():
                            await self._build_concurrently(conn, _LATE_BY_NAME[name], valid)
                    finally:
                        with contextlib.suppress(psycopg.Error, OSError):
                            await conn.execute("RESET statement_timeout; RESET lock_timeout")
        except (psycopg.Error, OSError) as exc:
            raise self._map_error(exc) from exc

    async def _build_concurrently(self, conn: Any, index: Index, valid: bool | None) -> None:
        """Build ``index`` on ``conn`` (autocommit), dropping first what an interrupted
        build left of it (``valid`` False; None: missing)."""
        from psycopg import sql

        name = sql.Identifier(str(index.name))
        if valid is False:
            logger.warning(
                "index %s was left invalid by an interrupted build; building it again", index.name
            )
            await conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
        logger.info(
            "building index %s on %s concurrently (writes go on meanwhile)",
            index.name,
            self.safe_url,
        )
        ddl = str(CreateIndex(index, if_not_exists=True).compile(dialect=self.sync_engine.dialect))
        assert ddl.startswith("CREATE INDEX IF NOT EXISTS "), ddl
        await conn.execute(ddl.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1))
        logger.info("built index %s on %s", index.name, self.safe_url)

    async def server_now(self) -> datetime | None:
        return await self.transaction(_clock_timestamp)

    async def close(self) -> None:
        """Close the session and the pool. A thread still held through this store (a
        hold that outlived its runtime's stop: its block may still run) keeps its row
        until the lease runs out, so no other replica starts a turn beside it; its
        hold's end frees nothing then (the store is closed)."""
        self._closed = True
        self._held.clear()
        await self._session.close()
        await self.async_engine.dispose()

    @contextlib.asynccontextmanager
    async def _setup_lock(self, patience: float | None) -> AsyncIterator[None]:
        """The replicas' start-up, one at a time: an advisory lock of a transaction kept
        open until the start-up is done, not of the session, so that it holds behind a
        pooler that hands a session's statements to any of its server connections
        (PgBouncer's transaction pooling), and exempt from
        ``idle_in_transaction_session_timeout``. While another replica's start-up holds
        it, a line names the session holding it (INFO at once, as replicas started
        together wait so; a warning every :data:`~.store.LOCK_LOG_SECS` after that);
        after ``patience`` seconds (None: no limit) the start gives up with one
        ``StoreUnavailable`` (a start-up stuck mid-way, its process stopped but its
        session not ended, would hold every later start forever, in silence). A
        database that cannot be reached raises ``StoreUnavailable`` (with the URL's
        password hidden), as every other store call does."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(self.async_engine.connect())
                # Try-lock polling, each try its own transaction: a waiter must hold no
                # snapshot, or the holder's CREATE INDEX CONCURRENTLY (checkpointer
                # setup) would wait for it. Nor may the holder's transaction, idle in
                # READ COMMITTED: the key is written in the statement, since a statement
                # with parameters leaves its portal, and its snapshot, open until the
                # next statement.
                lock = text(f"SELECT pg_try_advisory_xact_lock({_SETUP_LOCK})")
                loop = asyncio.get_running_loop()
                began = loop.time()
                said: float | None = None
                """When the wait was last logged (None: not yet)."""
                while True:
                    held = await conn.begin()
                    if await conn.scalar(lock):
                        break
                    waited = loop.time() - began
                    over = patience is not None and waited >= patience
                    due = said is None or waited - said >= LOCK_LOG_SECS
                    if over or due:
                        holder = (await conn.execute(_SETUP_HOLDER)).first()
                    await held.rollback()
                    if over:
                        raise StoreUnavailable(
                            f"database {self.safe_url}: another replica's start-up "
                            f"({_session_of(holder)}) still holds the scheduler's start-up "
                            f"lock: this start gave up after store_retry_secs={patience:g} "
                            "(a start-up stuck mid-way: `SELECT pg_terminate_backend(pid)` "
                            "ends it)"
                        )
                    if due:
                        # At once only INFO: replicas started together wait so.
                        level = logging.INFO if said is None else logging.WARNING
                        said = waited
                        logger.log(
                            level,
                            "database %s: another replica's start-up (%s) holds the "
                            "scheduler's start-up lock: this start waits for it (%.0fs so "
                            "far, up to %s)",
                            self.safe_url,
                            _session_of(holder),
                            waited,
                            "no limit" if patience is None else f"{patience:g}s (store_retry_secs)",
                        )
                    await asyncio.sleep(0.1)
                # The transaction idles while the start-up works on other sessions: a
                # DBA's idle_in_transaction_session_timeout would end it, and free the
                # lock for another replica's start-up, mid-start.
                await conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            except (DBAPIError, OSError) as exc:
                raise self._map_error(exc) from exc
            self._setting_up = True
            try:
                yield
            finally:
                self._setting_up = False
                with contextlib.suppress(DBAPIError, OSError):  # it ends with its session
                    await held.rollback()

    def setup_lock(
        self, *, patience: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._setup_lock(patience)

    _CHANGE_POLL_MIN_SECS = 5.0  # pushed: polls are only the safety net

    @contextlib.asynccontextmanager
    async def _pushed_changes(
        self, on_change: Callable[[TaskChange], Awaitable[None]], poll_now: asyncio.Event
    ) -> AsyncIterator[None]:
        """LISTEN for changes (within a moment); ``poll_now`` is set each time the LISTEN
        is in place, for the changes notified while it was not (the listening session
        was lost, or not yet open)."""
        listener = asyncio.ensure_future(self._listen(on_change, poll_now))
        try:
            yield
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)

    async def _listen(
        self, on_change: Callable[[TaskChange], Awaitable[None]], listening: asyncio.Event
    ) -> None:
        """Follow the channel on a session of its own, opened again a second after it is
        lost; ``listening`` is set each time its LISTEN is in place.

        While it cannot be opened again (a database refusing logins, a server down), the
        pause between attempts doubles up to :data:`_LISTEN_RETRY_MAX_SECS` (the change
        feed's poll hears changes meanwhile), the same failure is logged once a minute
        (not at every attempt), and the session back is logged once."""
        import psycopg

        loop = asyncio.get_running_loop()
        pause = 1.0
        failures = Repeats()
        """Failures lately logged."""
        while True:
            began = loop.time()
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as conn:
                    if failures.forget():
                        logger.info("task change listener connected again")
                    await self._follow(conn, on_change, listening)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - began >= _LISTEN_RETRY_MAX_SECS:  # up a while: lost anew
                    pause = 1.0
                said = " ".join(str(exc).split())
                if failures.new(said):
                    logger.warning(
                        "task change listener lost its connection (%s); reconnecting", said
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LISTEN_RETRY_MAX_SECS)

    async def _follow(
        self,
        conn: Any,
        on_change: Callable[[TaskChange], Awaitable[None]],
        listening: asyncio.Event,
    ) -> None:
        """LISTEN on ``conn`` and apply each notification, until the session is lost.

        The session is idle between notifications, and ``idle_session_timeout`` (set
        for the role or the database) would end it each time it runs out (a warning, a
        second deaf, a poll): the LISTEN is sent again at half that timeout (a no-op for
        a session listening already, and what ``pg_stat_activity`` keeps showing), a
        statement no fire waits for. Without the timeout, the session sends nothing of
        its own.
        """
        listen = f"LISTEN {TASK_CHANGES_CHANNEL}"
        every = await _keepalive_secs(conn)
        await conn.execute(listen)
        listening.set()
        loop = asyncio.get_running_loop()
        while True:
            until = None if every is None else loop.time() + every
            # Closed at once when left: it holds the connection's lock until then.
            async with contextlib.aclosing(conn.notifies(timeout=every)) as notes:
                async for note in notes:
                    try:
                        await on_change(await self._change_of(note.payload))
                    except Exception:
                        logger.exception("applying change of task %s failed", note.payload)
                    if until is not None and loop.time() >= until:
                        break
            # Notifications that come meanwhile wait for the next notifies() (psycopg
            # 3.2.4 and later keep them).
            await conn.execute(listen)

    async def _change_of(self, task_id: str) -> TaskChange:
        from sqlalchemy import select

        query = select(tasks_table.c.state, tasks_table.c.next_run_at).where(
            tasks_table.c.id == task_id
        )
        row = await self.transaction(lambda conn: conn.execute(query).first())
        if row is None:
            return TaskChange(task_id, None, None)
        return TaskChange(task_id, row[0], row[1])

    @property
    def lock_scope(self) -> Hashable:
        """The database: a thread held by a runtime on it is held against every other
        runtime on it (its row is leased). Named as the server knows it, read by
        :meth:`setup` (see :func:`_database_identity`): every URL that reaches it
        (``localhost`` or ``127.0.0.1``, a Unix socket, the default port given or left
        out, a pooler in front) names one scope. Before :meth:`setup`, named by the
        URL's host, port and database (no runtime uses a store before)."""
        if self._scope is not None:
            return self._scope
        url = self.url
        return ("postgresql", url.host, url.port, url.database)

    def hold_threads_as(self, holder: str, *, clock: Clock, lease_secs: float) -> None:
        self._lease = _ThreadLease(holder, clock, timedelta(seconds=lease_secs))

    def thread_lock(
        self, thread_id: str, *, timeout: float | None = None, run_id: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return self._hold(thread_id, timeout, run_id)

    @contextlib.asynccontextmanager
    async def _hold(
        self, thread_id: str, timeout: float | None, run_id: str | None
    ) -> AsyncIterator[None]:
        """In this process first, then the thread's row, leased to our holder: a row and
        not a lock of our session, so that losing the session (a failover, an idle kill)
        frees nothing; the upkeep renews the lease while the thread is held. A fire's
        turn uses the row its claim took, when it can (:class:`_ClaimedThread`), and
        leaves it to the fire's finish to free."""
        lease = self._lease
        if lease is None:
            raise NotRunning(
                "thread locks on PostgreSQL are leased rows: call "
                "store.hold_threads_as(holder, clock=..., lease_secs=...) first "
                "(SchedulerRuntime does as it starts)"
            )
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        key = _lock_key(thread_id)
        async with self._locks.hold(thread_id, timeout=timeout):
            claimed = self._claimed.pop(run_id, None) if run_id is not None else None
            if claimed is not None and self._still_claimed(claimed, key):
                self._held.add(key)
                try:
                    yield
                finally:  # the fire's finish frees it
                    self._lost.discard(key)
                    self._held.discard(key)
                return
            freeing = self._freeing.get(key)
            if freeing is not None:  # sent before ours: it must not land after our take
                await asyncio.shield(freeing)
            await self._take_or_give_up(thread_id, key, lease, deadline)
            self._held.add(key)
            try:
                yield
            finally:
                self._lost.discard(key)
                if key in self._held:  # else the store closed first: the lease frees it
                    self._held.discard(key)
                    # Not cut short by a cancellation: the free goes on, and a take of
                    # the thread here waits for it.
                    await asyncio.shield(self._free_soon(key, lease.holder))

    def _still_claimed(self, claimed: _ClaimedThread, key: str) -> bool:
        """Whether the row a claim took for the thread ``key`` is still the claim's."""
        return (
            claimed.key == key
            and key not in claimed.busy
            and self._last_send.get(key, 0) < claimed.sent
            and key not in self._lost
            and not self._closed
        )

    @contextlib.contextmanager
    def _sending_for(self, key: str) -> Iterator[None]:
        """Count a take or free of ``key`` sent here, while it is on its way."""
        self._sends += 1
        self._last_send[key] = self._sends
        self._sending[key] += 1
        try:
            yield
        finally:
            self._sending[key] -= 1
            if not self._sending[key]:
                del self._sending[key]
            if len(self._last_send) > _MAX_SENDS_KEPT:
                self._forget_old_sends()

    def _forget_old_sends(self) -> None:
        """Keep only the sends a claim still waiting for its turn may be judged by."""
        oldest = min((c.sent for c in self._claimed.values()), default=self._sends)
        self._last_send = {k: n for k, n in self._last_send.items() if n >= oldest}

    async def _take_or_give_up(
        self, thread_id: str, key: str, lease: _ThreadLease, deadline: float | None
    ) -> None:
        """Take the thread's row, trying again until ``deadline``; a take that gives up
        (busy, cancelled, the store closed) after one whose answer was lost frees the row
        it may have taken.

        Raises:
            ThreadBusy: another holder's lease still runs at the deadline.
            NotRunning: the store closed meanwhile (its runtime stopped).
        """
        loop = asyncio.get_running_loop()
        delay = 0.05
        unsure = False
        """A take was sent whose outcome is unknown (cut short, or its answer lost)."""
        try:
            while True:
                if self._closed:
                    raise NotRunning("the store is closed (its runtime stopped)")
                unsure = True
                taken = await self._take(key, lease)
                unsure = taken is None
                if taken:
                    if self._closed:  # nobody renews it now: left to its lease
                        raise NotRunning("the store is closed (its runtime stopped)")
                    return
                if deadline is not None and loop.time() >= deadline:
                    raise ThreadBusy(thread_id)
                pause = delay if deadline is None else min(delay, max(deadline - loop.time(), 0))
                await asyncio.sleep(pause)
                delay = min(delay * 2, 1.0)
        except BaseException:
            if unsure and not self._closed:
                self._free_soon(key, lease.holder)
            raise

    async def _take(self, thread_id: str, lease: _ThreadLease) -> bool | None:
        """Take the thread's row if it is free, its lease ran out, or it is ours already;
        False when another holder's lease runs, None when the database cannot be reached
        right now (the caller waits and tries again)."""
        now = lease.clock.now()
        params = {
            "l_thread": thread_id,
            "l_holder": lease.holder,
            "l_now": now,
            "l_until": now + lease.length,
        }
        try:
            with self._sending_for(thread_id):
                row = await self._guarded(self._single(self._take_thread, params))
        except StoreUnavailable as exc:
            logger.warning("thread %r could not be taken (%s); trying again", thread_id, exc)
            return None
        return row is not None and bool(row[0])

    def _free_soon(self, thread_id: str, holder: str) -> asyncio.Task[None]:
        """Free the thread's row in a task of its own (which a cancellation of its caller
        does not cut short), kept until it is done for the next take here to wait on."""
        freeing = asyncio.ensure_future(self._free(thread_id, holder))
        self._freeing[thread_id] = freeing

        def done(_: asyncio.Task[None]) -> None:
            if self._freeing.get(thread_id) is freeing:
                del self._freeing[thread_id]

        freeing.add_done_callback(done)
        return freeing

    async def _free(self, thread_id: str, holder: str) -> None:
        try:
            params = {"l_thread": thread_id, "l_holder": holder}
            with self._sending_for(thread_id):
                await self._guarded(self._single(self._free_thread, params))
        except (StoreError, NotRunning) as exc:
            logger.warning(
                "thread %r could not be freed (%s); it is free once its lease runs out",
                thread_id,
                exc,
            )

    @functools.cached_property
    def _take_thread(self) -> Select[Any]:
        """A thread taken as one statement: its row inserted for our holder, or taken
        over if its lease ran out (or cannot be read) or it is ours already (so the
        statement is safe to send again after its answer was lost); returns how many
        rows were taken (0: the lease of another holder still runs)."""
        locks = thread_locks_table
        row = postgresql.insert(locks).values(
            thread_id=bindparam("l_thread", type_=String()),
            holder=bindparam("l_holder", type_=String()),
            lease_expires_at=bindparam("l_until", type_=_UTCDateTime()),
        )
        taken = (
            row.on_conflict_do_update(
                index_elements=[locks.c.thread_id],
                set_={
                    "holder": row.excluded.holder,
                    "lease_expires_at": row.excluded.lease_expires_at,
                    "run_id": None,  # a hold's now: the claim's fire no longer frees it
                },
                where=or_(
                    locks.c.holder == row.excluded.holder,
                    locks.c.lease_expires_at <= bindparam("l_now", type_=_UTCDateTime()),
                    # Written by hand (``infinity``, past 9999): no runtime renews such
                    # a lease, and it would never be told run out.
                    self._unreadable_time(locks.c.lease_expires_at),
                ),
            )
            .returning(locks.c.thread_id)
            .cte("taken_thread")
        )
        return select(select(func.count()).select_from(taken).scalar_subquery())

    @functools.cached_property
    def _free_thread(self) -> Select[Any]:
        """A thread freed as one statement: its row deleted if our holder still has it."""
        locks = thread_locks_table
        freed = (
            delete(locks)
            .where(
                locks.c.thread_id == bindparam("l_thread", type_=String()),
                locks.c.holder == bindparam("l_holder", type_=String()),
            )
            .returning(locks.c.thread_id)
            .cte("freed_thread")
        )
        return select(select(func.count()).select_from(freed).scalar_subquery())

    async def renew_thread_locks(self, *, until: datetime) -> None:
        if self._lease is None or not (self._held or self._claimed):
            return
        held = sorted(self._held)
        waiting = sorted(self._claimed)
        locks = thread_locks_table
        statement = (
            update(locks)
            .where(
                locks.c.holder == self._lease.holder,
                or_(locks.c.thread_id.in_(held), locks.c.run_id.in_(waiting)),
            )
            .values(lease_expires_at=until)
            .returning(locks.c.thread_id, locks.c.run_id)
        )
        rows = await self.transaction(lambda conn: list(conn.execute(statement)))
        renewed = {thread_id for thread_id, _ in rows}
        # A claim's row gone (its transaction failed, its fire finished, a hold took it
        # over and freed it): its turn, if it comes, takes the thread as any hold does.
        still = {run_id for _, run_id in rows}
        for run_id in waiting:
            if run_id not in still:  # (its finish frees what its claim may yet commit)
                self._claimed.pop(run_id, None)
        for thread_id in held:
            if thread_id in renewed or thread_id not in self._held or thread_id in self._lost:
                continue  # renewed, freed meanwhile, or told already
            self._lost.add(thread_id)
            logger.warning(
                "thread %r was taken by another replica while this one could not renew "
                "its lease (for longer than lease_secs); its running turn goes on",
                thread_id,
            )

    async def open_checkpointer(
        self, stack: contextlib.AsyncExitStack, *, max_connections: int
    ) -> Any:
        """``AsyncPostgresSaver`` on the same database, over a small pool."""
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        # A pool, not one connection: a dropped connection is replaced instead of failing
        # every later turn. Each connection lent is checked first; a failed check sweeps
        # the idle ones (see _SweepingCheck).
        check = _SweepingCheck()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.conninfo,
            min_size=0,
            max_size=max_connections,
            max_idle=60,
            kwargs={
                "autocommit": True,
                "prepare_threshold": self._threshold(_SAVER_THRESHOLD),
                "row_factory": dict_row,
            },
            check=check,
            open=False,
        )
        check.pool = pool
        await pool.open()
        stack.push_async_callback(pool.close)
        stack.push_async_callback(check.aclose)  # before the pool's close
        saver = AsyncPostgresSaver(pool)
        try:
            # Its setup sends CREATE TABLE IF NOT EXISTS even when nothing is missing,
            # which a role without CREATE on the schema may not: skipped when current.
            if not await _checkpoints_current(pool, len(saver.MIGRATIONS) - 1):
                if self._setting_up:  # no other start-up builds one meanwhile
                    await _drop_left_invalid(pool, saver.MIGRATIONS)
                await saver.setup()
        except PoolTimeout as exc:
            raise await self._starved(exc) from exc
        except (psycopg.Error, OSError) as exc:
            raise self._map_error(exc) from exc
        return saver

    async def _starved(self, exc: BaseException) -> StoreError:
        """Why the checkpointer's pool lent no connection in time (``exc``, which says
        only how long it waited): a connection opened now fails with the server's reason
        (out of connection slots, the server down), mapped as any other; one opened fine
        is closed, and the wait said."""
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, connect_timeout=10)
        except (psycopg.Error, OSError) as refused:
            return self._map_error(refused)
        await conn.close()
        return StoreUnavailable(
            f"database {self.safe_url} is unavailable (the checkpointer's pool: {exc}); "
            "the operation can be retried once it lends a connection"
        )

    def _threshold(self, prepared: int) -> int | None:
        """psycopg's ``prepare_threshold``: ``prepared``, or None (never) when statements
        are not to be prepared on the server."""
        return prepared if self.prepares else None

    def _map_error(self, exc: BaseException) -> StoreError:
        orig = getattr(exc, "orig", None) or exc
        refused = self._refused_login(orig) or self._refused_option(orig)
        if refused is not None:
            return StoreError(refused)
        mapped = super()._map_error(exc)
        if type(getattr(exc, "orig", None) or exc).__name__ != "InsufficientPrivilege":
            return mapped
        return StoreError(
            f"{mapped}: the role {self.url.username or '(default)'} needs SELECT, INSERT, "
            "UPDATE and DELETE on the scheduler's and the checkpointer's tables, and "
            "CREATE on the schema when a start creates or migrates them (the first "
            "start, a start after an upgrade); or make those starts as the tables' owner"
        )

    def _refused_login(self, exc: BaseException) -> str | None:
        """What to fix when the server refused the login for good (a database or role
        that does not exist, an authentication that failed, SQLSTATE 3D000, 28000 and
        28P01): no retry would pass, unlike a server starting up or out of connection
        slots. None for any other error. A refusal at connect time carries no SQLSTATE
        (libpq gives only its text, in the server's ``lc_messages``): an English one is
        read from its words, any other stays a ``StoreUnavailable``."""
        said = " ".join(str(exc).split())
        code = getattr(exc, "sqlstate", None)
        url = self.url
        where = self._server_named(said)
        user = _quoted_after(said, "role", "user") or url.username or "(default)"
        shown = f"(URL {self.safe_url})"
        if code == "3D000" or re.search(r'database "[^"]*" does not exist', said):
            name = _quoted_after(said, "database") or url.database or "(default)"
            host, _, port = where.rpartition(":")
            return (
                f"database {name!r} does not exist on {where}: create it (createdb -h "
                f"{host} -p {port} -U {user} {name}) or fix the URL's database name {shown}"
            )
        if re.search(r'role "[^"]*" does not exist', said):
            return (
                f"role {user!r} does not exist on {where}: create it (CREATE ROLE {user} "
                f"LOGIN PASSWORD '…') or fix the URL's user and password {shown}"
            )
        if re.search(r'role "[^"]*" is not permitted to log in', said):
            return (
                f"role {user!r} may not log in on {where}: allow it (ALTER ROLE {user} "
                f"LOGIN) or fix the URL's user {shown}"
            )
        if "password authentication failed" in said or code == "28P01":
            return (
                f"role {user!r} was refused by {where}: password authentication failed; fix "
                f"the URL's user and password (or the role's: ALTER ROLE {user} PASSWORD "
                f"'…') {shown}"
            )
        if "no pg_hba.conf entry" in said:
            return (
                f"{where} refused role {user!r}: no pg_hba.conf entry allows this host, "
                "role and database; add one (and reload the server), or fix the URL's user, "
                f"database or sslmode {shown}"
            )
        if "no password supplied" in said:
            return (
                f"{where} asks role {user!r} for a password and none was given: put it in "
                f"the URL (postgresql://{user}:PASSWORD@…), PGPASSWORD or ~/.pgpass {shown}"
            )
        if "authentication failed" in said or code == "28000":
            detail = said.rpartition("FATAL:")[2].strip() or said
            return (
                f"role {user!r} was refused by {where} ({detail}): fix the URL's user and "
                f"password, or the server's pg_hba.conf {shown}"
            )
        return None

    def _server_named(self, said: str) -> str:
        """The server a connect-time error ``said`` names (``host:port`` or a socket),
        else the URL's."""
        url = self.url
        return _server_of(said) or f"{url.host or 'localhost'}:{url.port or 5432}"

    def _refused_option(self, exc: BaseException) -> str | None:
        """What to fix when an option of the URL's query has a value no retry makes
        valid: refused before connecting by libpq or psycopg (an ``sslmode`` it does not
        know, a number that is none), or at login by the server (a setting sent through
        ``options`` or ``client_encoding``). None for any other error. Read from the
        words of an error raised at connect time (it carries no SQLSTATE), in English as
        :meth:`_refused_login` reads them."""
        if getattr(exc, "sqlstate", None) is not None:
            return None
        said = " ".join(str(exc).split())
        shown = f"(URL {self.safe_url})"
        for pattern in _CLIENT_REFUSALS:
            found = re.search(pattern, said)
            if found:
                return (
                    f"invalid PostgreSQL connection option {found['option']}="
                    f"{found['value']!r} in the URL ({found[0]}): fix or remove it; "
                    f"the values each option takes are listed at {_LIBPQ_OPTIONS} {shown}"
                )
        for pattern in _SERVER_REFUSALS:
            found = re.search(pattern, said)
            if found:
                return (
                    f"{self._server_named(said)} refused the setting {found['option']!r} the "
                    f"URL asks for ({found[0]}): fix or remove it in the URL's query (its "
                    f"options=-c… or the parameter of that name) {shown}"
                )
        return None


_LIBPQ_OPTIONS = "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS"

_CLIENT_REFUSALS = (
    r'invalid (?P<option>\w+) value: "(?P<value>[^"]*)"',
    r'invalid integer value "(?P<value>[^"]*)" for connection option "(?P<option>\w+)"',
    r"bad value for (?P<option>\w+): '(?P<value>[^']*)'",  # psycopg's own check
)
"""How libpq (or psycopg) words a connection option's value it refuses to connect with."""

_SERVER_REFUSALS = (
    r'unrecognized configuration parameter "(?P<option>[^"]*)"',
    r'invalid value for parameter "(?P<option>[^"]*)": "[^"]*"',
)
"""How the server words a setting the connection asked for that it refuses at login."""


_LISTEN_RETRY_MAX_SECS = 30.0
"""Longest pause between attempts to open the listening session again."""

_LATE_BY_NAME = {str(index.name): index for index in LATE_INDEXES}


_IDENTITY = text(
    "SELECT oid, pg_postmaster_start_time(), "
    "has_function_privilege('pg_control_system()', 'EXECUTE') "
    "FROM pg_database WHERE datname = current_database()"
)
_SYSTEM_IDENTIFIER = text("SELECT system_identifier FROM pg_control_system()")


def _database_identity(conn: Connection) -> Hashable:
    """The database connected to, as its server knows it: the server's system
    identifier (chosen at random by ``initdb``, kept across restarts and by its physical
    standbys) and the database's OID (unique on the server; not its name, which a
    rename changes). Both are read from the server, whatever the URL spells: a pooler
    in front answers with the server's. A role that may not call ``pg_control_system()``
    (a managed service may revoke it from PUBLIC) names the server by its start time
    instead: unique to it, but changed by a restart."""
    oid, started, may_read = conn.execute(_IDENTITY).one()
    server = conn.execute(_SYSTEM_IDENTIFIER).scalar_one() if may_read else started
    return ("postgresql", server, oid)


def _late_indexes_to_build(conn: Connection) -> dict[str, bool | None]:
    """The late indexes to build, by name: None, missing; False, invalid
    (``pg_index.indisvalid``: a concurrent build cut short leaves it so, unused by reads
    and still kept up by writes)."""
    rows = conn.execute(
        text(
            "SELECT n.name, i.indisvalid FROM unnest(CAST(:names AS text[])) AS n(name) "
            "JOIN pg_index i ON i.indexrelid = to_regclass(n.name)"
        ),
        {"names": list(_LATE_BY_NAME)},
    )
    found: dict[str, bool] = {name: valid for name, valid in rows}
    return {name: found.get(name) for name in _LATE_BY_NAME if not found.get(name)}


_SETUP_HOLDER = text(
    "SELECT a.pid, host(a.client_addr), "
    "CAST(extract(epoch FROM clock_timestamp() - a.xact_start) AS integer) "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    f"AND l.classid = {_SETUP_LOCK >> 32} AND l.objid = {_SETUP_LOCK & 0xFFFFFFFF} "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
"""The session holding the start-up lock (a bigint advisory key is its two halves in
``pg_locks``): its pid, client address and seconds in its transaction."""


class _LockWatch:
    """While a pooled transaction runs: once it has run for :data:`~.store.QUIET_LOCK_SECS`,
    ask (on a session of its own, every :data:`~.store.LOCK_LOG_SECS`) whether it waits
    for a lock another session holds (a table locked by hand, a transaction left open);
    if so, a warning names that session, and once the store's ``lock_patience`` has run
    out the transaction's statement is cancelled and it raises ``StoreUnavailable``
    naming the session. A transaction that runs long but waits for no lock is left
    alone. Behind a pooler in transaction mode the session is not known and nothing is
    said. Costs a timer per transaction; a connection only while one runs long."""

    def __init__(self, store: PostgresStore, conn: PooledConnection) -> None:
        self.store = store
        self.conn = conn
        self.began = asyncio.get_running_loop().time()
        self.holders: list[Any] | None = None
        """The sessions holding the lock when the wait was given up (None: it was not),
        as :data:`_LOCK_HOLDERS` rows."""
        self._watch: asyncio.Future[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(QUIET_LOCK_SECS, self._start)

    def _start(self) -> None:
        self._watch = asyncio.ensure_future(self._watching())

    async def __aenter__(self) -> _LockWatch:
        return self

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self._timer.cancel()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.holders is not None and isinstance(exc, DBAPIError):
            waited = asyncio.get_running_loop().time() - self.began
            raise StoreUnavailable(
                f"database {self.store.safe_url}: {_sessions(self.holders)} held a lock "
                f"this transaction needs: it gave up after {waited:.0f}s (store_retry_secs="
                f"{self.store.lock_patience:g}), nothing written: "
                f"{_terminate(self.holders)}"
            ) from exc

    async def _watching(self) -> None:
        import psycopg

        loop = asyncio.get_running_loop()
        patience = self.store.lock_patience
        try:
            begun = self.conn.sync_connection
            session = None if begun is None else begun.connection.driver_connection
            assert session is not None  # begun: its connection is open
            pid = session.info.backend_pid
            async with await psycopg.AsyncConnection.connect(
                self.store.conninfo, autocommit=True
            ) as side:
                while True:
                    cursor = await side.execute(_LOCK_HOLDERS, {"pid": pid})
                    rows = await cursor.fetchall()
                    waited = loop.time() - self.began
                    if rows and patience is not None and waited >= patience:
                        self.holders = rows
                        await session.cancel_safe()
                        return
                    if rows:
                        logger.warning(
                            "database %s: %s holds a lock this process needs: it waits for "
                            "it (%.0fs so far, up to %s): %s",
                            self.store.safe_url,
                            _sessions(rows),
                            waited,
                            "no limit" if patience is None else f"{patience:g}s (store_retry_secs)",
                            _terminate(rows),
                        )
                    pause = LOCK_LOG_SECS
                    if patience is not None and waited < patience:
                        pause = min(pause, patience - waited)
                    await asyncio.sleep(pause)
        except (psycopg.Error, OSError) as exc:  # only a word lost: the work goes on
            logger.debug("watching a transaction's lock wait failed: %s", exc)


_LOCK_HOLDERS = (
    "SELECT h.pid, host(h.client_addr), "
    "CAST(extract(epoch FROM clock_timestamp() - h.xact_start) AS integer) "
    "FROM pg_stat_activity h WHERE h.pid = ANY(pg_blocking_pids(%(pid)s)) "
    "AND EXISTS (SELECT 1 FROM pg_stat_activity w WHERE w.pid = %(pid)s "
    "AND w.wait_event_type = 'Lock' AND w.usename = current_user "
    "AND w.datname = current_database()) ORDER BY h.pid"
)
"""The sessions holding the lock the session ``pid`` waits for (none when it waits for
none, or is not a session of this role on this database: behind a pooler, the pid the
client knows is the pooler's)."""


def _sessions(holders: list[Any]) -> str:
    """Name the sessions :data:`_LOCK_HOLDERS` rows describe, for a log line."""
    return " and ".join(_session_of(holder) for holder in holders)


def _terminate(holders: list[Any]) -> str:
    """What ends the sessions :data:`_LOCK_HOLDERS` rows describe, as a phrase."""
    pids = ", ".join(str(holder[0]) for holder in holders)
    if len(holders) == 1:
        return f"`SELECT pg_terminate_backend({pids})` ends that session"
    return f"`SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[{pids}]) pid` ends those sessions"


def _session_of(holder: Any) -> str:
    """Name the session a :data:`_SETUP_HOLDER` row describes, for a log line."""
    if holder is None:
        return "its session just ended"
    pid, address, secs = holder
    where = f" from {address}" if address else ""
    since = f", in its transaction for {secs}s" if secs is not None else ""
    return f"PostgreSQL session pid {pid}{where}{since}"


def _prepared_statements(url: URL) -> tuple[bool, URL]:
    """Whether ``url`` lets statements be prepared on the server (its
    :data:`PREPARED_STATEMENTS_PARAM`), and the URL without that parameter, which
    libpq does not know.

    Raises:
        StoreError: the parameter is neither true nor false.
    """
    value = url.query.get(PREPARED_STATEMENTS_PARAM)
    if value is None:
        return True, url
    word = value if isinstance(value, str) else ",".join(value)
    try:
        prepares = asbool(word)
    except ValueError:
        raise StoreError(
            f"{PREPARED_STATEMENTS_PARAM}={word!r} in the database URL: say true (the "
            "default) or false (behind a pooler in transaction mode)"
        ) from None
    return prepares, url.difference_update_query([PREPARED_STATEMENTS_PARAM])


async def _keepalive_secs(conn: Any) -> float | None:
    """How often a session must send a statement for ``idle_session_timeout``
    (PostgreSQL 14 and later) not to end it: half the session's timeout (the role's or
    the database's setting), None when it has none."""
    cursor = await conn.execute(
        "SELECT setting FROM pg_settings WHERE name = 'idle_session_timeout'"
    )
    row = await cursor.fetchone()
    millis = int(row[0]) if row is not None else 0  # in ms; no row before PostgreSQL 14
    return millis / 2000 if millis > 0 else None


class _SweepingCheck:
    """The checkpointer pool's ``check``: psycopg_pool's own check of a connection about
    to be lent (an empty statement) and, when it fails, a sweep of the pool's idle
    connections before the failure is raised (``pool.check()``: the broken ones are
    dropped and replaced, the live ones put back; ``drain()`` would replace those too). A
    check that fails while a sweep is under way waits for it instead of starting another.

    Why: the pool puts a connection that failed its check back (a broken one is replaced)
    and takes the next idle one, after a pause that doubles each time (none, then about
    1 s, 2 s, 4 s…). Once the server has ended every session (a failover, a DBA), one
    request would walk the dead connections one by one, pausing longer each time, while
    ``AsyncPostgresSaver``'s lock holds back every other turn's checkpoint. After the
    sweep, the first retry (made at once) finds a live connection or waits for a new one:
    one failed check per wave of ended sessions, not one backoff per dead connection.
    """

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[Any] | None = None
        """The pool checked, set once it is made."""
        self._sweep: asyncio.Future[None] | None = None

    async def __call__(self, conn: AsyncConnection[Any]) -> None:
        assert self.pool is not None
        try:
            await self.pool.check_connection(conn)
        except Exception:
            await self._swept()
            raise

    async def _swept(self) -> None:
        """Sweep the idle connections, or wait for the sweep under way. Shielded: a
        caller cancelled (a turn's timeout) must not cut it short, since the pool's
        ``check()`` holds the connections it took until it has checked each one."""
        assert self.pool is not None
        if self.pool.closed:
            return
        if self._sweep is None:
            self._sweep = asyncio.ensure_future(self.pool.check())
            self._sweep.add_done_callback(self._swept_once)
        with contextlib.suppress(Exception):  # logged once; the check's failure is raised
            await asyncio.shield(self._sweep)

    def _swept_once(self, sweep: asyncio.Future[None]) -> None:
        self._sweep = None
        if not sweep.cancelled() and (exc := sweep.exception()) is not None:
            logger.warning("the checkpointer's pool could not sweep its connections: %r", exc)

    async def aclose(self) -> None:
        """Let a sweep under way end before the pool closes."""
        if self._sweep is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sweep)


async def _checkpoints_current(pool: Any, latest: int) -> bool:
    """Whether ``AsyncPostgresSaver``'s tables exist at migration ``latest``."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT to_regclass('checkpoint_migrations') AS t")
        found = await cursor.fetchone()
        if found is None or found["t"] is None:
            return False
        cursor = await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
        row = await cursor.fetchone()
    return row is not None and row["v"] == latest


_SAVER_INDEX = re.compile(r"CREATE INDEX CONCURRENTLY IF NOT EXISTS (\w+)")
"""An index ``AsyncPostgresSaver``'s migrations build, and its name."""


async def _drop_left_invalid(pool: AsyncConnectionPool[Any], migrations: Sequence[str]) -> None:
    """Drop the checkpointer's indexes that a start-up cut short mid-build left invalid
    (its session lost while its migration ran ``CREATE INDEX CONCURRENTLY``): run again,
    the migration creates them ``IF NOT EXISTS`` and so kept such an index for good,
    unused by reads and still kept up by every write. Only while holding the start-up
    lock: no other replica's build is then under way."""
    from psycopg import sql

    names = [found[1] for found in map(_SAVER_INDEX.search, migrations) if found]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
            (names,),
        )
        for row in await cursor.fetchall():
            logger.warning(
                "checkpointer index %s was left invalid by an interrupted start; building it again",
                row["name"],
            )
            drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}")
            await conn.execute(drop.format(sql.Identifier(row["name"])))


def _settle_params(
    record: TaskRunRecord, finished: dict[str, Any], holder: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a settled finish of ``record`` (claimed by ``holder``) writes to its task,
    and the parameters of ``_settle`` (``finished``: the run's columns it writes)."""
    written, settling = _settling(record)
    return written, _finish_params(record, finished, holder) | settling


def _lenient_times(adapters: Any) -> None:
    """Make a psycopg connection read timestamps Python cannot hold (``infinity``,
    ``-infinity``, years before 1 or after 9999: written by hand) as the earliest or
    latest instant, instead of failing every read that meets such a row (start-up, the
    claim of every due fire); a task holding one is read with a ``problem`` (see
    :func:`~.store.task_from_row`) and quarantined."""
    from psycopg import DataError, postgres
    from psycopg.abc import AdaptContext
    from psycopg.adapt import Loader
    from psycopg.pq import Format
    from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

    # Each wraps the loader this psycopg would use (psycopg_binary's, in C): what this
    # adds to every timestamp read is one Python call.
    oid = postgres.types["timestamptz"].oid

    def lenient(
        fmt: Format, fallback: type[Loader], bound: Callable[[bytes], datetime]
    ) -> type[Loader]:
        base = adapters.get_loader(oid, fmt) or fallback

        class Lenient(Loader):
            format = fmt

            def __init__(self, oid: int, context: AdaptContext | None = None):
                super().__init__(oid, context)
                self._load: Callable[[Any], datetime] = base(oid, context).load

            def load(self, data: Any) -> datetime:
                try:
                    return self._load(data)
                except DataError:
                    return bound(bytes(data))

        return Lenient

    def text_bound(text: bytes) -> datetime:
        return _EARLIEST if text.startswith(b"-") or text.endswith(b"BC") else _LATEST

    def binary_bound(data: bytes) -> datetime:  # microseconds since 2000
        return _EARLIEST if int.from_bytes(data, "big", signed=True) < 0 else _LATEST

    adapters.register_loader("timestamptz", lenient(Format.TEXT, TimestamptzLoader, text_bound))
    adapters.register_loader(
        "timestamptz", lenient(Format.BINARY, TimestamptzBinaryLoader, binary_bound)
    )


async def _twice_if_gone(
    run: Callable[[Callable[[Connection], _T]], Awaitable[_T]], work: Callable[[Connection], _T]
) -> _T:
    """``run(work)``, once more if its pooled connection turned out to be gone (a
    failover, an idle kill, ``pg_terminate_backend``): the work died with it, and the
    pool now replaces every connection as old."""
    try:
        return await run(work)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await run(work)


def _lock_key(thread_id: str) -> str:
    """The ``lgs_thread_locks`` key of a thread: its id, or a digest of an id the key
    column cannot hold (LangGraph takes any string: over 128 characters, or a NUL), and
    of an id spelt like a digest (so no id's key is another's digest)."""
    if len(thread_id) <= 128 and "\x00" not in thread_id and not thread_id.startswith("sha256:"):
        return thread_id
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


_Row = tuple[Any, ...] | None
"""A statement's first row (None: none)."""


class _Session:
    """A replica's own PostgreSQL session, in autocommit: the statements that are sent
    alone (a thread taken or freed, a settled finish, a manual claim).

    One connection, whatever the number of turns, used one call at a time, each
    statement sent as it is, without SQLAlchemy's asyncio engine around it (a greenlet
    per transaction, autocommit switched on and back on a pooled connection). If the
    session is lost (a failover, an idle kill), the next call opens another and sends
    its statement again: every statement sent here is safe to send twice. The session
    holds nothing of its own: a held thread is a leased row, kept through the loss. A
    session that cannot connect sends the call on a pooled connection instead.

    A statement that waits for a row lock (a task's row held by a DBA's open
    transaction, a migration, a stuck client) would hold up every other, and so every
    fire of the replica. The session alone knows how long its statement has run, so it
    decides: a call that finds it busy with one statement for longer than
    :attr:`PATIENCE` sends its own on a pooled connection (``pooled``, the store's
    transactions, under the :data:`LOCK_TIMEOUT`) instead of queueing. There it cannot
    keep one of the pool's few connections either; one that waits for a lock there too
    queues for the session after all. Only a stuck session costs these round trips.
    """

    PATIENCE = 0.5
    """Seconds a statement may run on the session before calls stop queueing behind it:
    far above a fire's statement (a few milliseconds), a reconnect aside."""

    def __init__(
        self,
        conninfo: str,
        *,
        prepare_threshold: int | None,
        pooled: Callable[[Callable[[Connection], _Row]], Awaitable[_Row]],
    ) -> None:
        self._conninfo = conninfo
        self._prepare_threshold = prepare_threshold
        self._pooled = pooled
        self._conn: Any = None
        self._mutex = asyncio.Lock()
        self._since: float | None = None
        """When the call holding the session took it (None: nobody holds it)."""
        self._told: float | None = None
        """The ``_since`` of the last call logged as stuck (logged once)."""
        self._closed = False
        self._told_refused = False
        """Whether the session's refused connection was logged (once until it connects)."""

    @functools.cached_property
    def _refusals(self) -> tuple[type[BaseException], ...]:
        """The errors of a connection refused or not made (psycopg's, the network's)."""
        import psycopg

        return (psycopg.OperationalError, OSError)

    async def fetch_one(self, sql: str, args: Any) -> _Row:
        """Run one statement; its first row. A session found lost is opened again and the
        statement sent once more (it died with the session). Raises psycopg's errors, or
        SQLAlchemy's for a statement sent on the pool."""
        if not await self._take_within_patience():
            try:
                return await self._pooled(functools.partial(_fetch_pooled, sql=sql, args=args))
            except DBAPIError as exc:
                if not _lock_timed_out(exc):
                    raise
            await self._mutex.acquire()  # a lock it waits for wherever it is sent
        self._since = asyncio.get_running_loop().time()
        try:
            try:
                conn = await self._connection()
            except self._refusals as exc:
                refused: BaseException = exc
            else:
                try:
                    return await _fetch_one(conn, sql, args)
                except Exception as exc:
                    if not conn.broken:
                        raise
                    await self._drop(exc)
                return await _fetch_one(await self._connection(), sql, args)
        finally:
            self._since = None
            self._mutex.release()
        return await self._on_pool(sql, args, refused)

    async def _on_pool(self, sql: str, args: Any, refused: BaseException) -> _Row:
        """Send a statement on a pooled connection, the session being refused
        (``refused``): the role's or the server's connection slots are all taken (by the
        store's and the checkpointer's pools themselves, where the role may open fewer
        connections than a replica does), or the server is down. Queued for the session,
        every fire would wait for a slot the pools never give back; the pool's own
        failure, if it fails too, is raised."""
        if not self._told_refused:
            self._told_refused = True
            logger.warning(
                "the replica's session could not connect (%s); its statements go through "
                "its pool meanwhile",
                " ".join(str(refused).split()),
            )
        row = await self._pooled(functools.partial(_fetch_pooled, sql=sql, args=args))
        return row

    async def _take_within_patience(self) -> bool:
        """Take the session (True), or give up (False) once the call holding it has held
        it for longer than :attr:`PATIENCE`."""
        if not self._mutex.locked():
            await self._mutex.acquire()  # at once: nothing to wait for
            return True
        loop = asyncio.get_running_loop()
        # One wait for the mutex, kept across timeouts and cancelled only when given up:
        # a wait_for per try could take the mutex as it timed out and lose it (3.10).
        taking = asyncio.ensure_future(self._mutex.acquire())
        try:
            while True:
                since = self._since
                left = self.PATIENCE if since is None else since + self.PATIENCE - loop.time()
                if left <= 0:
                    break
                await asyncio.wait([taking], timeout=left)
                if taking.done():
                    return True
        except BaseException:  # the caller cancelled: whatever was taken is given back
            if taking.done() and not taking.cancelled() and taking.exception() is None:
                self._mutex.release()
            taking.cancel()
            raise
        taking.cancel()  # not done (looked at after each wait): it can take nothing now
        if self._told != since:
            self._told = since
            logger.warning(
                "a statement has waited for over %.1f s on the replica's session "
                "(a row another session holds locked?); the replica's other "
                "statements go through its pool meanwhile",
                self.PATIENCE,
            )
        return False

    async def close(self) -> None:
        """Close the session for good: a call after it raises ``NotRunning`` (it used to
        open another connection, which nobody closed)."""
        async with self._mutex:
            self._closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None

    async def _connection(self) -> Any:
        if self._closed:
            raise NotRunning("the store is closed (its runtime stopped)")
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg

        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=10,
            prepare_threshold=self._prepare_threshold,
        )
        _lenient_times(conn.adapters)
        self._conn = conn
        self._told_refused = False
        return conn

    async def _drop(self, exc: BaseException) -> None:
        # One ended by idle_session_timeout was idle, as this session is between fires:
        # expected where a DBA sets it, so no warning each time.
        idle = getattr(exc, "sqlstate", None) == _IDLE_SESSION_TIMEOUT
        logger.log(
            logging.INFO if idle else logging.WARNING,
            "the replica's session was lost (%s); reconnecting on next use",
            exc,
        )
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None


async def _fetch_one(conn: Any, sql: str, args: Any) -> tuple[Any, ...] | None:
    cursor = await conn.execute(sql, args)
    row: tuple[Any, ...] | None = await cursor.fetchone()
    return row


def _fetch_pooled(conn: Connection, *, sql: str, args: Any) -> _Row:
    """A session's statement sent in a pooled transaction instead."""
    row = conn.exec_driver_sql(sql, args if isinstance(args, dict) else tuple(args)).first()
    return None if row is None else tuple(row)


def _clock_timestamp(conn: Connection) -> datetime:
    """The server's clock as the statement runs (``now()`` would be the transaction's
    start)."""
    now: datetime = conn.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
    return now


def _under_lock_timeout(conn: Connection, *, work: Callable[[Connection], _T]) -> _T:
    """``work`` in its transaction under the :data:`LOCK_TIMEOUT`, set with ``SET LOCAL``:
    it ends with the transaction, so nothing leaks through a pooler in transaction mode
    to the next client of the server connection."""
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    return work(conn)


def _server_of(said: str) -> str | None:
    """``host:port`` (or the socket) as libpq names the server it failed to log in to."""
    found = re.search(r'connection to server at "([^"]+)"(?: \([^)]*\))?, port (\d+)', said)
    if found:
        return f"{found[1]}:{found[2]}"
    found = re.search(r'connection to server on socket "([^"]+)"', said)
    return found[1] if found else None


def _quoted_after(said: str, *words: str) -> str | None:
    """The name the server quoted after the first of ``words`` found (``role "x"``)."""
    for word in words:
        found = re.search(rf'\b{word} "([^"]*)"', said)
        if found:
            return found[1]
    return None
