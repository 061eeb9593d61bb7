"""PostgreSQL as it is run in production: behind PgBouncer, under a role that may not
create tables, and under a DBA's ``idle_session_timeout``."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from sqlalchemy.engine import make_url

from langgraph_scheduler import (
    Interval,
    Once,
    SchedulerRuntime,
    StoreError,
    StoreUnavailable,
    TaskBusy,
)
from langgraph_scheduler._upkeep import Upkeep
from langgraph_scheduler.scripted import ScriptedChatModel
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import TaskChange, open_store
from langgraph_scheduler.store_postgres import TASK_CHANGES_CHANNEL
from langgraph_scheduler.testing import Clock, FakeClock, SystemClock

from .helpers import (
    LoopClock,
    RunWaiter,
    build_graph,
    count_lock_waiters,
    respelled_url,
    until,
    until_lock_waiters,
    until_start_warns,
    warnings_said,
)

pytestmark = pytest.mark.slow  # a pooler process, turns on the real clock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pgbouncer(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """Start PgBouncer in front of the test database's server: the URL of that database
    through it, in the given pool mode (skips where PgBouncer is not installed)."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if binary is None:
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")
    server = make_url(postgres_url)
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(mode: str) -> str:
        folder = tempfile.mkdtemp(prefix="lgs-pgbouncer-")
        os.chmod(folder, 0o755)  # PgBouncer drops root for the postgres user, who reads it
        port = _free_port()
        user = server.username or "postgres"
        config = Path(folder, "pgbouncer.ini")
        config.write_text(
            "[databases]\n"
            f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {folder}/users.txt\n"
            f"pool_mode = {mode}\ndefault_pool_size = 10\nmax_client_conn = 200\n"
        )
        Path(folder, "users.txt").write_text(f'"{user}" ""\n')
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses root
        process = subprocess.Popen(
            [binary, *as_user, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started.append((process, folder))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    error = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"PgBouncer did not start: {error}")
                assert time.monotonic() < deadline, "PgBouncer did not listen within 30 s"
                time.sleep(0.05)
        return server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)

    yield start
    for process, folder in started:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _one_thread_graph(spans: list[tuple[float, float]]) -> StateGraph[Any, Any, Any, Any]:
    """A graph whose turns on thread "shared" note when they ran."""

    async def slow(state: Any, config: RunnableConfig) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(0.05)
        if config["configurable"]["thread_id"] == "shared":
            spans.append((began, loop.time()))
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("slow", slow)
    builder.add_edge(START, "slow")
    return builder


@pytest.mark.parametrize("mode", ["session", "transaction"])
async def test_two_replicas_behind_pgbouncer_run_every_fire_one_turn_per_thread(
    pgbouncer: Callable[[str], str], mode: str
) -> None:
    # Transaction pooling hands each transaction (each statement, in autocommit) to any
    # server connection: a statement prepared on one is missing on the next, and a lock
    # of the session is taken on one and released (or not) on another. Both replicas
    # start at once (the start-up lock), then send each of their statements many times
    # (psycopg prepares a statement at its sixth use). Transaction pooling needs the
    # URL's prepared_statements=false.
    url = pgbouncer(mode)
    if mode == "transaction":
        url += "?prepared_statements=false"
    spans: list[tuple[float, float]] = []
    graph = _one_thread_graph(spans)
    one = SchedulerRuntime(graph, database=url)
    two = SchedulerRuntime(graph, database=url)
    await asyncio.gather(one.start(), two.start())
    try:
        tasks = [
            await rt.create_task(
                name=f"t{i}", schedule=Interval(hours=1), trigger=f"p{i}", thread_id="shared"
            )
            for i, rt in enumerate([one, two] * 2)
        ]
        records = []
        for _ in range(4):
            records += await asyncio.gather(
                *(rt.run_now(task.id) for rt in (one, two) for task in tasks)
            )
    finally:
        await asyncio.gather(one.stop(), two.stop())
    assert [r.outcome for r in records] == ["success"] * 32, {r.error for r in records}
    ordered = sorted(spans)
    assert len(ordered) == 32
    assert all(b[0] >= a[1] for a, b in pairwise(ordered)), "turns on one thread overlapped"


async def test_prepared_statements_are_turned_off_by_the_url_alone(postgres_url: str) -> None:
    # On by default (a statement planned once); off for a pooler in transaction mode,
    # everywhere the store connects; the parameter is the store's, not libpq's.
    from langgraph_scheduler.errors import StoreError as Refused
    from langgraph_scheduler.store import open_store
    from langgraph_scheduler.store_postgres import PostgresStore

    default = open_store(postgres_url)
    off = open_store(postgres_url + "?prepared_statements=false")
    try:
        assert isinstance(default, PostgresStore) and isinstance(off, PostgresStore)
        assert default.prepares and not off.prepares
        assert "prepared_statements" not in off.conninfo
        await off.setup()
        async with off.async_engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            assert driver.prepare_threshold is None
        async with default.async_engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver.prepare_threshold == 5
    finally:
        await default.close()
        await off.close()
    with pytest.raises(Refused, match="prepared_statements='maybe'"):
        open_store(postgres_url + "?prepared_statements=maybe")


async def test_the_start_up_lock_holds_behind_transaction_pooling(
    pgbouncer: Callable[[str], str],
) -> None:
    # A lock of the session would be taken on whichever server connection the pooler
    # lent for that statement, and the next replica's try (the next statement, likely
    # on the same connection) would be granted it too.
    from langgraph_scheduler.store import open_store

    url = pgbouncer("transaction")
    first, second = open_store(url), open_store(url)
    entered = asyncio.Event()

    async def start_second() -> None:
        async with second.setup_lock():
            entered.set()

    try:
        async with first.setup_lock():
            waiting = asyncio.ensure_future(start_second())
            await asyncio.sleep(1.0)
            assert not entered.is_set(), "two replicas held the start-up lock at once"
        await asyncio.wait_for(waiting, 10)
        assert entered.is_set()
    finally:
        await first.close()
        await second.close()


@pytest.fixture
def app_role(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """A login role of its own, with no privilege on the test database's schema: the URL
    of a database as that role."""
    import psycopg

    role = f"lgs_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")

    def as_role(url: str) -> str:
        return make_url(url).set(username=role).render_as_string(hide_password=False)

    yield as_role
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


async def test_a_role_without_create_runs_on_tables_its_owner_made(
    postgres_url: str, app_role: Callable[[str], str]
) -> None:
    # A deploy that migrates as the owner and runs as a role with data privileges only:
    # the first start fails and says what the role needs; once the owner has made the
    # tables (and granted their use), the role starts, and its fires run.
    import psycopg

    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    with pytest.raises(StoreError, match=r"needs SELECT, INSERT, UPDATE and DELETE .* CREATE"):
        await SchedulerRuntime(graph, database=app_role(postgres_url)).start()
    async with SchedulerRuntime(graph, database=postgres_url):
        pass
    role = make_url(app_role(postgres_url)).username
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
    async with SchedulerRuntime(graph, database=app_role(postgres_url)) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="go")
        assert (await rt.run_now(task.id)).outcome == "success"


async def test_a_role_of_its_own_names_its_database_however_the_url_spells_it(
    postgres_url: str, app_role: Callable[[str], str]
) -> None:
    # The scope a thread is held in is read from the server by setup(): a role with no
    # privilege beyond its tables' names the database as the owner does, by either
    # spelling of its URL; where the server's system identifier is refused it (revoked
    # from PUBLIC, as some managed services do), its two spellings still name one scope.
    import psycopg

    async def scopes(url: str) -> list[Hashable]:
        stores = [open_store(url), open_store(respelled_url(url))]
        try:
            for store in stores:
                await store.setup()
            return [store.lock_scope for store in stores]
        finally:
            for store in stores:
                await store.close()

    (owner, _) = await scopes(postgres_url)
    role = make_url(app_role(postgres_url)).username
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
        )
    assert await scopes(app_role(postgres_url)) == [owner, owner]
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # this database's only
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    refused, respelled = await scopes(app_role(postgres_url))
    assert refused == respelled


@pytest.mark.parametrize("mode", ["session", "transaction"])
async def test_a_store_behind_pgbouncer_names_the_database_behind_it(
    postgres_url: str, pgbouncer: Callable[[str], str], mode: str
) -> None:
    # Through a pooler the URL names the pooler's port: the scope, read from the server,
    # is still the database's, so a node waiting for its own thread through a runtime
    # behind PgBouncer is refused as through one connected directly.
    pooled_url = pgbouncer(mode)
    assert make_url(pooled_url).port != make_url(postgres_url).port
    stores = [open_store(postgres_url), open_store(pooled_url)]
    try:
        for store in stores:
            await store.setup()
        direct, pooled = (store.lock_scope for store in stores)
    finally:
        for store in stores:
            await store.close()
    assert direct == pooled


_FOREVER = 3600.0
"""A poll interval no test outlives: what a runtime learns meanwhile, it learns from
the change feed's notifications."""


def _listeners(postgres_url: str, role: str | None = None) -> set[int]:
    """The sessions on the test database listening for task changes (of ``role``)."""
    import psycopg

    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query = %s AND usename = coalesce(%s, usename)"
    )
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(query, (f"LISTEN {TASK_CHANGES_CHANNEL}", role)).fetchall()
    return {int(row[0]) for row in rows}


def _keep_out(postgres_url: str, role: str | None) -> None:
    """Refuse ``role``'s logins and end its sessions (its listener's among them)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} NOLOGIN")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND usename = %s",
            (role,),
        )


async def _listening(postgres_url: str, role: str | None = None) -> set[int]:
    """The listening sessions, once there is one."""
    deadline = asyncio.get_running_loop().time() + 20
    while not (found := _listeners(postgres_url, role)):
        assert asyncio.get_running_loop().time() < deadline, "no session listens"
        await asyncio.sleep(0.05)
    return found


async def _outlive_idle_session_timeout(postgres_url: str) -> None:
    """Wait until the server has ended a session of ours left idle, twice in a row:
    every session idle for as long (or longer) has been ended by then."""
    import psycopg

    for _ in range(2):
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as idle:
            with pytest.raises(psycopg.OperationalError):  # "server closed the connection"
                async for _ in idle.notifies(timeout=30):
                    pass  # nothing is sent on its channel-less session
                pytest.fail("the server did not end an idle session")


async def test_idle_session_timeout_ends_no_session_a_runtime_needs(
    postgres_url: str, runs: RunWaiter, caplog: pytest.LogCaptureFixture
) -> None:
    # A DBA's idle_session_timeout (PostgreSQL 14 and later) ends every session idle for
    # that long. The listening session, idle by nature, stays: tasks another process
    # creates reach the runtime through their notifications (polls never come here).
    # The pooled connections and the replica's own session, idle since the first fire,
    # are ended, and replaced on their next use (the second fire) without failing it
    # or warning.
    import psycopg

    name = make_url(postgres_url).database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET idle_session_timeout = '2s'")
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    async with (
        SchedulerRuntime(
            graph,
            database=postgres_url,
            on_run=runs,
            sync_interval_secs=_FOREVER,
            window_secs=_FOREVER,
        ),
        SchedulerRuntime(None, database=postgres_url) as admin,
    ):
        listening = await _listening(postgres_url)
        records = []
        for label in ("first", "after the timeout"):
            task = await admin.create_task(
                name=label,
                schedule=Once(at=datetime.now(timezone.utc) + timedelta(seconds=1)),
                trigger="go",
            )
            records += await runs.wait_for(1, task_id=task.id, timeout=30)
            if label == "first":
                await _outlive_idle_session_timeout(postgres_url)
        assert _listeners(postgres_url) == listening, "the listening session was ended"
    assert [r.outcome for r in records] == ["success"] * 2, [r.error for r in records]
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == []


async def test_a_change_made_while_the_listener_was_away_is_read_once_it_listens_again(
    postgres_url: str, app_role: Callable[[str], str]
) -> None:
    # Notifications sent while no session listens are lost for good: once listening
    # again, the feed reads what changed meanwhile instead of leaving it to the next
    # poll (here, never). The role's logins are refused while the change is made, so it
    # falls in that gap whatever the timing.
    import psycopg

    url = app_role(postgres_url)
    role = make_url(url).username
    async with SchedulerRuntime(None, database=postgres_url) as admin:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        store = open_store(url)
        heard: asyncio.Queue[str] = asyncio.Queue()

        async def on_change(change: TaskChange) -> None:
            await heard.put(change.task_id)

        async def heard_of(task_id: str) -> None:
            while await heard.get() != task_id:
                pass

        def now() -> datetime:
            return datetime.now(timezone.utc)

        feed = asyncio.ensure_future(
            store.follow_changes(
                on_change, since=now(), poll_secs=_FOREVER, sleep=asyncio.sleep, now=now
            )
        )
        try:
            await _listening(postgres_url, role)
            once = Once(at=now() + timedelta(hours=1))
            before = await admin.create_task(name="before", schedule=once, trigger="x")
            await asyncio.wait_for(heard_of(before.id), 20)  # notified
            _keep_out(postgres_url, role)
            while _listeners(postgres_url, role):
                await asyncio.sleep(0.05)
            away = await admin.create_task(name="away", schedule=once, trigger="x")
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f"ALTER ROLE {role} LOGIN")
            await asyncio.wait_for(heard_of(away.id), 30)
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
            await store.close()


async def test_a_listener_kept_out_backs_off_and_says_so_once_until_it_is_back(
    postgres_url: str, app_role: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    # While its role may not log in, the listening session cannot be opened again: it
    # used to try (and warn) every second for as long as that lasted. Now the same
    # failure is said once, the attempts thin out, and the session back is said once.
    import psycopg

    url = app_role(postgres_url)
    role = make_url(url).username
    async with SchedulerRuntime(None, database=postgres_url):  # the tables made
        pass
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    store = open_store(url)

    def now() -> datetime:
        return datetime.now(timezone.utc)

    async def ignore(change: TaskChange) -> None:
        pass

    feed = asyncio.ensure_future(
        store.follow_changes(ignore, since=now(), poll_secs=_FOREVER, sleep=asyncio.sleep, now=now)
    )

    def said(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    try:
        await _listening(postgres_url, role)
        _keep_out(postgres_url, role)
        refused = f'role "{role}" is not permitted to log in'
        while not said(refused):
            await asyncio.sleep(0.05)
        await asyncio.sleep(8)  # four attempts a second apart, as it was, would warn four times
        assert len(said("task change listener lost its connection")) <= 2, caplog.text
        assert len(said(refused)) == 1, caplog.text
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} LOGIN")
        deadline = asyncio.get_running_loop().time() + 60  # the pause has grown meanwhile
        while not _listeners(postgres_url, role):
            assert asyncio.get_running_loop().time() < deadline, "the listener is not back"
            await asyncio.sleep(0.1)
        while not said("task change listener connected again"):
            assert asyncio.get_running_loop().time() < deadline, caplog.text
            await asyncio.sleep(0.05)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await store.close()


@pytest.fixture
def kept_out_role(postgres_url: str) -> Iterator[str]:
    """A superuser role of its own, which a test may keep out (:func:`_keep_out`): the
    URL of the test database as that role. Its sessions are ended afterwards."""
    import psycopg

    role = f"lgs_ops_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
    yield make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    _keep_out(postgres_url, role)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


async def test_the_change_poll_and_the_upkeep_say_a_failure_once_and_when_it_is_over(
    postgres_url: str, kept_out_role: str, caplog: pytest.LogCaptureFixture
) -> None:
    # While the database refused the runtime's logins, the change poll and the lease
    # upkeep warned at every pass (each second for the upkeep). Now each failure is
    # said once (the same again a minute later), and the first pass back once.
    import psycopg

    role = make_url(kept_out_role).username
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=postgres_url):  # tables made, indexes built
        pass
    clock = LoopClock(datetime.now(timezone.utc))
    rt = SchedulerRuntime(
        graph,
        database=kept_out_role,
        clock=clock,
        sync_interval_secs=1,
        lease_secs=3,
        store_retry_secs=0.5,
    )
    await rt.start()
    loops = ("polling task changes", "lease upkeep")

    def said(start: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]

    try:
        caplog.set_level(logging.INFO, logger="langgraph_scheduler")
        _keep_out(postgres_url, role)
        await clock.passes(1, 20)  # four polls (every 5 s on PostgreSQL), 20 upkeep rounds
        refused = f"role '{role}' may not log in"
        for loop in loops:
            failed = said(f"{loop} failed")
            assert any(refused in line for line in failed), caplog.text
            assert len(failed) == len(set(failed)) <= 2, failed  # a lost session, refused
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} LOGIN")
        await clock.passes(1, 10)
        for loop in loops:
            assert said(f"{loop} works again") == [f"{loop} works again"], caplog.text
            assert len(said(f"{loop} failed")) <= 2, caplog.text
        assert rt.running
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} LOGIN")
        await rt.stop()


async def test_a_transaction_waiting_for_a_lock_held_elsewhere_says_so_then_gives_up(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transaction waited, in silence, as long as another session held a lock it
    # needed: a tool call, a loop or a `tasks` command stuck for good behind a
    # transaction a DBA left open. Now the wait is said, naming that session, and given
    # up after store_retry_secs, nothing written; the holder is left alone.
    import psycopg

    from langgraph_scheduler import store_postgres

    monkeypatch.setattr(store_postgres, "QUIET_LOCK_SECS", 0.1)
    monkeypatch.setattr(store_postgres, "LOCK_LOG_SECS", 0.2)
    caplog.set_level(logging.WARNING, logger="langgraph_scheduler")
    async with SchedulerRuntime(None, database=postgres_url, store_retry_secs=1) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="go")
        with psycopg.connect(postgres_url) as holder:
            holder.execute("LOCK TABLE lgs_tasks IN ACCESS EXCLUSIVE MODE")
            pid = holder.info.backend_pid
            with pytest.raises(StoreUnavailable) as raised:
                await asyncio.wait_for(rt.pause_task(task.id), 30)
            assert holder.execute("SELECT count(*) FROM lgs_tasks").fetchone() == (1,)
        session = f"PostgreSQL session pid {pid} from 127.0.0.1, in its transaction for "
        assert str(raised.value).startswith(f"database {rt.store.safe_url}: {session}")
        gave_up = "held a lock this transaction needs: it gave up after 1s (store_retry_secs=1)"
        assert gave_up in str(raised.value)
        assert str(raised.value).endswith(
            f"nothing written: `SELECT pg_terminate_backend({pid})` ends that session"
        )
        warned = warnings_said(caplog)
        assert warned and all(session in line for line in warned), warned
        assert warned[0].endswith(
            f"up to 1s (store_retry_secs)): `SELECT pg_terminate_backend({pid})` ends that session"
        )
        assert (await rt.get_task(task.id)).state == "active"  # nothing written, and on it goes


def _outlive_idle_in_transaction_timeout(postgres_url: str) -> None:
    """Wait until the server has ended a transaction of ours left idle (blocking: called
    from a graph factory, inside a start): every transaction idle since before it has
    been ended too by then, unless it turned the timeout off."""
    import psycopg

    idle = psycopg.connect(postgres_url)
    try:
        idle.execute("SELECT 1")  # a transaction begun, then left idle
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s"
        deadline = time.monotonic() + 30
        with psycopg.connect(postgres_url, autocommit=True) as watch:
            while not watch.execute(gone, (idle.info.backend_pid,)).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the server did not end an idle transaction"
                time.sleep(0.05)
    finally:
        idle.close()  # closed, not committed: the server ended it


async def test_the_start_up_lock_outlives_idle_in_transaction_session_timeout(
    postgres_url: str,
) -> None:
    # The start-up lock is held by a transaction left idle while the start-up works on
    # other sessions. A DBA's idle_in_transaction_session_timeout ended that session
    # mid-start: the lock was free, and another replica could set up beside this one.
    import psycopg

    from langgraph_scheduler.store_postgres import _SETUP_LOCK

    name = make_url(postgres_url).database
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET idle_in_transaction_session_timeout = '1s'")
    free_mid_start: list[bool] = []

    def slow_graph(rt: SchedulerRuntime) -> Any:
        # A graph built within the start-up lock (tools loaded, a model warmed up) that
        # takes longer than the timeout.
        _outlive_idle_in_transaction_timeout(postgres_url)
        with psycopg.connect(postgres_url) as other:  # another replica's try
            taken = other.execute(f"SELECT pg_try_advisory_xact_lock({_SETUP_LOCK})")
            free_mid_start.append(bool(taken.fetchone()[0]))  # type: ignore[index]
        return build_graph(ScriptedChatModel(steps=["ran"], cycle=True))

    async with SchedulerRuntime(slow_graph, database=postgres_url) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="go")
        assert (await rt.run_now(task.id)).outcome == "success"
    assert free_mid_start == [False], "the start-up lock was freed mid-start"


def _keepalive_of(client_port: int) -> tuple[int, int, int, int] | None:
    """The TCP keepalive options (on, idle, interval, count) of this process's socket
    whose local port is ``client_port``, as the kernel holds them; None when this process
    has no such socket."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue  # gone meanwhile
        with sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != client_port:
                continue
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            )
    return None


def _our_sessions(postgres_url: str) -> dict[str, list[int]]:
    """The client ports of this process's sessions on the test database, by query."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query, client_port FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND client_port IS NOT NULL"
        ).fetchall()
    found: dict[str, list[int]] = {}
    for query, port in rows:
        found.setdefault(query, []).append(int(port))
    return found


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="Linux socket options")
@pytest.mark.parametrize("query", ["", "?keepalives_idle=7&keepalives_count=5"])
async def test_every_session_of_a_replica_has_tcp_keepalives_the_url_may_change(
    postgres_url: str, query: str
) -> None:
    # A session the network drops without a word (a NAT or firewall forgets it, no RST)
    # was found dead only after the system's keepalive timings (libpq turns keepalives
    # on, 2 hours idle before the first probe): until then the listening session heard
    # nothing. Every session probes after 30 s now; what the URL says wins.
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    want = (1, 7, 10, 5) if query else (1, 30, 10, 3)
    async with SchedulerRuntime(graph, database=postgres_url + query) as rt:
        task = await rt.create_task(name="t", schedule=Interval(hours=1), trigger="go")
        assert (await rt.run_now(task.id)).outcome == "success"  # every kind opened
        await _listening(postgres_url)
        sessions = _our_sessions(postgres_url)
        assert f"LISTEN {TASK_CHANGES_CHANNEL}" in sessions
        assert any("checkpoint" in q for q in sessions), sessions  # the checkpointer's
        ports = [port for found in sessions.values() for port in found]
        options = {port: _keepalive_of(port) for port in ports}
        gone = {port for port, option in options.items() if option is None}
        if gone:  # closed meanwhile (a pool's overflow connection, on its return), its
            # backend still listed for a moment: it must leave, or it is no session of ours

            def left() -> bool:
                listed = {port for found in _our_sessions(postgres_url).values() for port in found}
                return not gone & listed

            await until(left, f"the sessions on ports {gone} gone (else not this process's)")
        kept = {port: option for port, option in options.items() if option is not None}
        assert len(kept) >= 4, sessions  # the pool, the session, the checkpointer, LISTEN
        assert kept == dict.fromkeys(kept, want)


async def test_a_start_waits_for_another_start_up_saying_so_then_gives_up_in_one_line(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A start-up stuck mid-way (its process stopped, its session not ended) held every
    # later start forever, in silence. A start now says what it waits for (at INFO at
    # once: replicas started together wait so; a warning every 5 s, here a moment,
    # after that), and gives up after store_retry_secs.
    import psycopg

    from langgraph_scheduler import store_postgres
    from langgraph_scheduler.errors import StoreUnavailable
    from langgraph_scheduler.store_postgres import _SETUP_LOCK

    async with SchedulerRuntime(None, database=postgres_url):
        pass  # the tables made
    monkeypatch.setattr(store_postgres, "LOCK_LOG_SECS", 0.2)
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    caplog.clear()
    with psycopg.connect(postgres_url) as stuck:  # another replica's start-up
        stuck.execute(f"SELECT pg_advisory_xact_lock({_SETUP_LOCK})")
        pid = stuck.info.backend_pid
        waiting = SchedulerRuntime(None, database=postgres_url, store_retry_secs=60)
        starting = asyncio.ensure_future(waiting.start())
        await until_start_warns(caplog, starting)
        lines = [r for r in caplog.records if "start-up lock" in r.getMessage()]
        assert lines[0].levelno == logging.INFO and "(0s so far, " in lines[0].getMessage()
        said = warnings_said(caplog)[0]
        assert f"another replica's start-up (PostgreSQL session pid {pid} from 127.0.0.1" in said
        assert "this start waits for it" in said and "up to 60s (store_retry_secs))" in said
        stuck.rollback()  # its start-up ends: the waiting one goes on
        await asyncio.wait_for(starting, 30)
        assert waiting.running
        await waiting.stop()

        stuck.execute(f"SELECT pg_advisory_xact_lock({_SETUP_LOCK})")
        with pytest.raises(StoreUnavailable) as raised:
            await SchedulerRuntime(None, database=postgres_url, store_retry_secs=0.3).start()
    message = str(raised.value)
    assert message.startswith("database postgresql+psycopg://postgres@127.0.0.1")
    assert f"another replica's start-up (PostgreSQL session pid {pid} from 127.0.0.1" in message
    assert "this start gave up after store_retry_secs=0.3 (a start-up stuck mid-way" in message
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    async with SchedulerRuntime(None, database=postgres_url) as rt:  # once it is released
        assert rt.running


async def test_a_task_row_another_session_holds_stalls_only_that_tasks_fires(
    postgres_url: str,
) -> None:
    # A DBA's open transaction (a migration, a stuck client) holds task A's row. A's
    # finishes wait for it: they held up every statement sent on the replica's own
    # session, and every outcome queued behind them, so task B's manual run never came
    # back. B's run now completes while A's row is held, and a task is still created:
    # A's first finish waits on the session, the others try the pool, give up there
    # within a lock timeout (not keeping the pool's two connections) and queue for the
    # session. Released, A's runs each end in one outcome; no run is left running.
    import psycopg

    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=postgres_url) as rt:
        a = await rt.create_task(name="a", schedule=Interval(hours=1), trigger="go")
        b = await rt.create_task(name="b", schedule=Interval(hours=1), trigger="go")
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (a.id,))
            waiters: list[int] = []
            counting = asyncio.ensure_future(count_lock_waiters(postgres_url, waiters))
            try:
                runs_of_a = [asyncio.ensure_future(rt.run_now(a.id)) for _ in range(3)]
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while not any(waiters):
                    assert loop.time() < deadline, "no finish of A came to wait for its row"
                    await asyncio.sleep(0.05)
                ran_b = await asyncio.wait_for(rt.run_now(b.id), 60)
                created = await asyncio.wait_for(
                    rt.create_task(name="c", schedule=Interval(hours=1), trigger="go"), 60
                )
                # Each finish of A waited for its row (one on the session, two on the pool),
                # then only the session's does: the pool's connections are not kept.
                while 3 not in waiters or waiters[-1] != 1:
                    assert loop.time() < deadline, f"A's finishes never waited so: {set(waiters)}"
                    await asyncio.sleep(0.05)
            finally:
                counting.cancel()
                await asyncio.gather(counting, return_exceptions=True)
            assert not any(run.done() for run in runs_of_a), "A's row was not held"
            holder.rollback()
        records_of_a = await asyncio.wait_for(asyncio.gather(*runs_of_a), 60)
        history = await rt.history(a.id)
    assert ran_b.outcome == "success", ran_b.error
    assert created.name == "c"
    assert [r.outcome for r in records_of_a] == ["success"] * 3
    assert sorted(r.run_id for r in history) == sorted(r.run_id for r in records_of_a)
    with psycopg.connect(postgres_url) as conn:
        running = conn.execute("SELECT count(*) FROM lgs_runs WHERE outcome IS NULL").fetchone()
    assert running == (0,)


async def test_service_writes_of_a_task_row_another_session_holds_leave_renewals_room(
    postgres_url: str,
) -> None:
    # A DBA's open transaction holds task A's row. Two service writes of A waited for
    # it without a lock timeout, each keeping one of the store's two pooled
    # connections: the upkeep's renewals (a running fire of B, a held thread) then
    # waited for a connection up to a minute, past the lease, and another replica
    # could take B's fire over and run its thread again. Each write now waits under a
    # lock timeout, giving its connection back between tries: both renewals complete
    # while A's row is held, and each write ends with TaskBusy naming A, A unchanged.
    import psycopg
    from sqlalchemy import select

    from langgraph_scheduler._service import TaskService
    from langgraph_scheduler.store import runs_table, thread_locks_table
    from langgraph_scheduler.testing import FakeClock

    from .helpers import HOLDER, T0, at, claim, every_minute

    clock = FakeClock(T0)
    store = open_store(postgres_url)
    await store.setup()
    store.hold_threads_as(HOLDER, clock=clock, lease_secs=30)
    service = TaskService(store, clock=clock)
    try:
        a = await every_minute(service, name="a")
        b = await every_minute(service, name="b")
        (run_b,) = [c.run for c in await claim(store, at(60)) if c.task.id == b.id]
        assert run_b is not None
        async with (
            store.thread_lock("conversation"),
            await psycopg.AsyncConnection.connect(postgres_url) as holder,
        ):
            await holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (a.id,))
            writes = [
                asyncio.ensure_future(service.pause(a.id)),
                asyncio.ensure_future(service.update(a.id, name="renamed")),
            ]
            await until_lock_waiters(postgres_url, 2)
            await store.renew_thread_locks(until=at(600))
            lost = await store.renew_leases([run_b.run_id], holder=HOLDER, until=at(600))
            leases = await store.transaction(
                lambda conn: (
                    conn.scalar(select(thread_locks_table.c.lease_expires_at)),
                    conn.scalar(
                        select(runs_table.c.lease_expires_at).where(
                            runs_table.c.run_id == run_b.run_id
                        )
                    ),
                )
            )
            ended = await asyncio.gather(*writes, return_exceptions=True)
            await holder.rollback()
        paused = await service.pause(a.id)  # once it is released
    finally:
        await store.close()

    assert lost == []
    assert leases == (at(600), at(600))
    assert [type(e) for e in ended] == [TaskBusy, TaskBusy]
    assert all(e.task_id == a.id for e in ended if isinstance(e, TaskBusy))
    assert f"task {a.id!r} is being changed elsewhere" in str(ended[0])
    assert (paused.state, paused.name) == ("paused", "a")  # neither write changed it


async def test_a_task_write_meeting_a_row_held_for_a_moment_waits_and_goes_through(
    postgres_url: str,
) -> None:
    # A task write tries once without a retry's machinery; a row another session holds
    # for a moment (past the write's first lock timeout, within its patience) makes it
    # wait and try again, and it goes through once the row is released.
    import psycopg

    from langgraph_scheduler._service import TaskService
    from langgraph_scheduler.testing import FakeClock

    from .helpers import T0, every_minute

    store = open_store(postgres_url)
    await store.setup()
    service = TaskService(store, clock=FakeClock(T0))
    try:
        a = await every_minute(service, name="a")
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            await holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (a.id,))
            pause = asyncio.ensure_future(service.pause(a.id))
            await until_lock_waiters(postgres_url, 1)
            await asyncio.sleep(1.5)  # past the first try's lock timeout (1 s)
            assert not pause.done()  # still trying, within its patience
            await holder.rollback()
            paused = await pause
        stored = await store.get_task(a.id)
    finally:
        await store.close()
    assert paused.state == "paused" and stored is not None and stored.state == "paused"


async def test_a_tool_call_meeting_a_task_row_another_session_holds_says_to_try_again(
    postgres_url: str,
) -> None:
    # A pause of a task whose row a DBA's open transaction holds waited for it as long as
    # that transaction lasted, the model's turn with it. The tool now answers within
    # seconds with a message the model can act on, and the task is left as it was; once
    # the row is released the same call pauses it.
    import psycopg
    from langchain_core.messages import ToolMessage

    from langgraph_scheduler.tools import scheduler_tools

    alice: RunnableConfig = {"configurable": {"thread_id": "alice-chat", "user_id": "alice"}}
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=postgres_url) as rt:
        pause = next(t for t in scheduler_tools(rt) if t.name == "pause_task")
        task = await rt.create_task(
            name="a", schedule=Interval(hours=1), trigger="go", owner="alice"
        )
        call = {"name": "pause_task", "args": {"task_id": task.id}, "id": "c1", "type": "tool_call"}
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (task.id,))
            refused = await asyncio.wait_for(pause.ainvoke(call, config=alice), 60)
            holder.rollback()
        paused = await pause.ainvoke(call | {"id": "c2"}, config=alice)
        stored = await rt.get_task(task.id)
    assert isinstance(refused, ToolMessage) and isinstance(paused, ToolMessage)
    assert refused.status == "error"
    assert refused.text == (
        f"Error: task {task.id!r} is being changed elsewhere (another database session "
        "holds it); nothing was changed: try again shortly"
    )
    assert paused.status == "success" and stored is not None and stored.state == "paused"


async def test_a_batch_of_finishes_meeting_a_task_row_another_session_holds_lets_go(
    postgres_url: str,
) -> None:
    # A batch of finishes of task A whose row a DBA's open transaction holds waited for
    # it on a pooled connection for as long as that transaction lasted (two such
    # batches left the upkeep no connection to renew leases with; a stop waited for
    # them). It now gives up within a lock timeout, writing nothing (the engine retries
    # it with backoff, the connection free meanwhile); once released it records both.
    import psycopg

    from langgraph_scheduler import StoreUnavailable
    from langgraph_scheduler._service import TaskService
    from langgraph_scheduler.store import Finish
    from langgraph_scheduler.testing import FakeClock

    from .helpers import HOLDER, LEASE, T0, at, every_minute

    store = open_store(postgres_url)
    await store.setup()
    try:
        a = await every_minute(TaskService(store, clock=FakeClock(T0)), name="a")
        claims = [
            await store.claim_manual(a.id, at=at(i), holder=HOLDER, lease_until=at(i) + LEASE)
            for i in (1, 2)
        ]
        finishes = [Finish(c[1], "success") for c in claims if isinstance(c, tuple)]
        with psycopg.connect(postgres_url) as holder:
            holder.execute("SELECT id FROM lgs_tasks WHERE id = %s FOR UPDATE", (a.id,))
            with pytest.raises(StoreUnavailable, match="lock timeout") as refused:
                await asyncio.wait_for(store.finish_runs(finishes, now=at(3), holder=HOLDER), 60)
            running = [(await store.get_run(f.record.run_id)) for f in finishes]
            holder.rollback()
        finished = await store.finish_runs(finishes, now=at(3), holder=HOLDER)
    finally:
        await store.close()

    assert not isinstance(refused.value, TaskBusy)  # a finish names no one task
    assert [r.outcome if r else "gone" for r in running] == [None, None]
    assert [f.record.outcome if f else None for f in finished] == ["success", "success"]


# -- a login the server refuses for good ----------------------------------------------


async def _refused_start(url: str) -> str:
    """The message of the StoreError (not StoreUnavailable: no retry would pass) that a
    start on ``url`` fails with, at once though store_retry_secs is an hour."""
    from langgraph_scheduler import StoreUnavailable

    runtime = SchedulerRuntime(None, database=url, store_retry_secs=3600)
    with pytest.raises(StoreError) as raised:
        await runtime.start()
    assert not isinstance(raised.value, StoreUnavailable)
    assert not runtime.running
    return str(raised.value)


@pytest.mark.parametrize(
    ("part", "fix"),
    [
        (
            "database",
            ": create it (createdb -h {host} -p {port} -U {user} {name}) "
            "or fix the URL's database name",
        ),
        (
            "username",
            ": create it (CREATE ROLE {name} LOGIN PASSWORD '…') "
            "or fix the URL's user and password",
        ),
    ],
    ids=["database", "role"],
)
async def test_a_start_on_a_database_or_role_that_does_not_exist_fails_at_once_saying_so(
    postgres_admin_url: str, part: str, fix: str
) -> None:
    # It was a StoreUnavailable ("can be retried once it is reachable"), which the
    # engine retries for store_retry_secs at each step, as if the server were down.
    name = f"lgs_missing_{uuid.uuid4().hex[:8]}"
    server = make_url(postgres_admin_url)
    url = server.set(password="s3cret-pw")
    url = url.set(database=name) if part == "database" else url.set(username=name)
    message = await _refused_start(url.render_as_string(hide_password=False))
    host, port = server.host, server.port or 5432
    what = "database" if part == "database" else "role"
    said = f"{what} {name!r} does not exist on {host}:{port}" + fix.format(
        host=host, port=port, name=name, user=server.username
    )
    assert message.startswith(said)
    assert "s3cret-pw" not in message and ":***@" in message


async def test_a_start_as_a_role_that_may_not_log_in_fails_at_once_saying_so(
    postgres_url: str, app_role: Callable[[str], str]
) -> None:
    import psycopg

    url = app_role(postgres_url)
    role = make_url(url).username
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {role} NOLOGIN")
    message = await _refused_start(url)
    assert message.startswith(f"role {role!r} may not log in on ")
    assert f"allow it (ALTER ROLE {role} LOGIN) or fix the URL's user" in message


@pytest.mark.parametrize(
    ("query", "said"),
    [
        (
            "sslmode=bogus",
            "invalid PostgreSQL connection option sslmode='bogus' in the URL "
            '(invalid sslmode value: "bogus"): fix or remove it',
        ),
        (
            "keepalives=often",
            "invalid PostgreSQL connection option keepalives='often' in the URL "
            '(invalid integer value "often" for connection option "keepalives"): fix or remove it',
        ),
        (
            "options=-clgs_no_such_setting%3D1",
            "{server} refused the setting 'lgs_no_such_setting' the URL asks for",
        ),
        (
            "client_encoding=bogus",
            "{server} refused the setting 'client_encoding' the URL asks for "
            '(invalid value for parameter "client_encoding": "bogus"): fix or remove it',
        ),
    ],
    ids=["libpq-value", "libpq-integer", "server-setting", "server-value"],
)
async def test_a_start_with_a_connection_option_no_wait_mends_fails_at_once_naming_it(
    postgres_url: str, query: str, said: str
) -> None:
    # It was a StoreUnavailable ("can be retried once it is reachable"), retried for
    # store_retry_secs as if the server were down.
    server = make_url(postgres_url)
    message = await _refused_start(f"{postgres_url}?{query}")
    assert message.startswith(said.format(server=f"{server.host}:{server.port or 5432}"))
    assert message.endswith(f"?{query})")


class _ShiftedClock(SystemClock):
    """The system clock, off by ``shift`` (a replica whose wall clock is wrong)."""

    def __init__(self, shift: timedelta) -> None:
        self.shift = shift

    def now(self) -> datetime:
        return super().now() + self.shift


def _skew_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [w for w in warnings_said(caplog) if "database server's reads" in w]


@pytest.mark.parametrize("shift_mins", [5, -5])
@pytest.mark.parametrize("runs_turns", [True, False], ids=["engine", "no-graph"])
async def test_a_runtime_whose_clock_is_off_the_database_s_warns_once_at_start_with_the_numbers(
    postgres_url: str, caplog: pytest.LogCaptureFixture, shift_mins: int, runs_turns: bool
) -> None:
    # Leases and due times follow each replica's own clock: one minutes ahead records
    # the others' live turns interrupted and fires early; one behind fires late.
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True)) if runs_turns else None
    async with SchedulerRuntime(
        graph, database=postgres_url, clock=_ShiftedClock(timedelta(minutes=shift_mins))
    ):
        [warned] = _skew_warnings(caplog)
    assert _skew_warnings(caplog) == [warned]  # nor at the stop
    found = re.fullmatch(
        r"this runtime's clock reads (\S+) but the database server's reads (\S+): "
        r"([\d.]+) s (ahead|behind) of it \(round trip [\d.]+ s\), more than the 7.5 s "
        r"allowed \(lease_secs=30 × 0.25, at least 1 s\)\. Leases and due times follow "
        r"each replica's own clock, so (.+)\. Sync this machine's clock and the database "
        r"server's \(NTP\)\.",
        warned,
    )
    assert found, warned
    here, server = datetime.fromisoformat(found[1]), datetime.fromisoformat(found[2])
    assert abs((here - server).total_seconds() - shift_mins * 60) < 5, warned
    assert abs(float(found[3]) - abs(shift_mins) * 60) < 5, warned
    if shift_mins > 0:
        assert found[4] == "ahead"
        assert found[5] == (
            "it takes other replicas' live turns for dead (records them interrupted) "
            "and fires tasks early"
        )
    else:
        assert found[4] == "behind"
        assert found[5] == (
            "other replicas take its live turns for dead (record them interrupted) "
            "and it fires tasks late"
        )


@pytest.mark.parametrize(
    "clock",
    [SystemClock(), FakeClock(datetime(2001, 1, 1, tzinfo=timezone.utc))],
    ids=["system", "fake"],
)
async def test_a_runtime_on_the_system_clock_or_a_fake_one_does_not_warn_of_skew(
    postgres_url: str, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    # A fake clock is far from the server's on purpose: it is never compared.
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=postgres_url, clock=clock) as rt:
        assert rt.clock is clock
    assert warnings_said(caplog) == []


async def test_the_upkeep_s_clock_check_warns_again_only_after_the_clocks_agreed_again(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Checked again once a minute while running: a skew that lasts is said once, not at
    # every check; one that comes back after the clocks agreed is said again.
    caplog.set_level(logging.INFO, logger="langgraph_scheduler")
    clock = _ShiftedClock(timedelta(minutes=5))
    store = open_store(postgres_url)
    try:
        upkeep = Upkeep(
            store,
            None,
            clock=clock,
            lease_secs=30.0,
            history_limit=None,
            history_max_age_days=None,
        )
        said = []
        for shift in (5, 5, 0, 0, -5, -5):
            clock.shift = timedelta(minutes=shift)
            await upkeep.check_clock()
            said.append([r.levelname for r in caplog.records if "clock" in r.getMessage()])
            caplog.clear()
    finally:
        await store.close()
    assert said == [["WARNING"], [], ["INFO"], [], ["WARNING"], []]


# -- a connection budget smaller than a replica's ---------------------------------------


@pytest.fixture
def capped_role(postgres_url: str) -> Iterator[Callable[[int], str]]:
    """A login role owning the test database, whose CONNECTION LIMIT a test sets: the URL
    of the database as that role."""
    import psycopg

    role = f"lgs_capped_{uuid.uuid4().hex[:8]}"
    base, _, name = postgres_url.rpartition("/")
    admin = f"{base}/postgres"

    def capped(limit: int) -> str:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {limit}')
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
        return make_url(postgres_url).set(username=role).render_as_string(hide_password=False)

    yield capped
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # the tables it made
        conn.execute(f'REASSIGN OWNED BY "{role}" TO postgres')
        conn.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO postgres')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize("limit", [3, 4])
async def test_a_replica_allowed_fewer_connections_than_it_opens_still_records_every_fire(
    capped_role: Callable[[int], str], runs: RunWaiter, limit: int
) -> None:
    # A role allowed fewer connections than a replica may open (6): the store's pool and
    # the checkpointer's take them all, and the replica's own session, which records
    # finishes, could never connect: every fire stayed running, its finish retried
    # forever. Its statements go through the pool meanwhile.
    url = capped_role(limit)
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    async with SchedulerRuntime(graph, database=url, on_run=runs, drain_timeout_secs=5) as rt:
        task = await rt.create_task(
            name="capped",
            schedule=Interval(seconds=1, start=datetime.now(timezone.utc)),
            trigger="tick",
            thread_id="capped",
            max_runs=3,
        )
        found = await runs.wait_for(3, task_id=task.id, timeout=60)
        assert [r.outcome for r in found] == ["success"] * 3
        assert (await rt.get_task(task.id)).state == "completed"
        other = await rt.create_task(name="by hand", schedule=Interval(hours=1), trigger="go")
        assert (await rt.run_now(other.id)).outcome == "success"
        assert [r.outcome for r in await rt.history(task.id)] == ["success"] * 3


async def test_a_start_whose_checkpointer_gets_no_connection_says_why(
    capped_role: Callable[[int], str],
) -> None:
    # Two connections, both the start-up's own (its lock, its set-up): the checkpointer's
    # pool could open none, and the start failed with a StoreError that said only
    # "couldn't get a connection after 30.00 sec" (not retryable, no reason). It is the
    # server's refusal now, a StoreUnavailable like every other.
    graph = build_graph(ScriptedChatModel(steps=["ran"], cycle=True))
    runtime = SchedulerRuntime(graph, database=capped_role(2))
    with pytest.raises(StoreUnavailable, match="too many connections for role") as raised:
        await runtime.start()
    assert "connection failed" in str(raised.value)
    assert not runtime.running
