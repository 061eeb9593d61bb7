"""Shared fixtures: databases (SQLite file, PostgreSQL), graphs on a scripted model."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langgraph.graph import StateGraph

from langgraph_scheduler import SchedulerRuntime
from langgraph_scheduler.scripted import ScriptedChatModel

from .helpers import RunWaiter, build_graph

POSTGRES_ENV = "LANGGRAPH_SCHEDULER_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {POSTGRES_ENV} is not set: PostgreSQL tests must run in CI")
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of a PostgreSQL server we may create databases on (skips outside CI)."""
    url = _postgres_admin_url()
    if url is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user@host:port/db")
    try:
        import psycopg

        with psycopg.connect(_plain(url), autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # pragma: no cover - depends on the machine
        message = f"PostgreSQL at {url} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests marked ``slow`` (seconds on the real clock: several processes, a real
    server) first, so parallel workers (``-n``) share them out instead of one worker
    finishing them alone after the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class _FreshDatabases:
    """Fresh, empty PostgreSQL databases made ahead of need by a background thread.

    ``CREATE DATABASE`` takes about half a second (a checkpoint); made while other tests
    run, it costs a test nothing. Every test still gets a database nobody used before,
    and used ones are dropped in the background too.
    """

    def __init__(self, admin_url: str, *, ahead: int = 2) -> None:
        self.admin = _plain(admin_url)
        self.base = self.admin.rpartition("/")[0]
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._maker = threading.Thread(target=self._make, daemon=True)
        self._dropper = threading.Thread(target=self._drop, daemon=True)
        self._maker.start()
        self._dropper.start()

    def take(self) -> str:
        found = self._ready.get(timeout=120)
        if isinstance(found, BaseException):
            raise found
        return found

    def give_back(self, name: str) -> None:
        self._used.put(name)

    @contextlib.contextmanager
    def lent(self) -> Iterator[str]:
        """The URL of a fresh database, given back (to be dropped) after the block."""
        name = self.take()
        try:
            yield f"{self.base}/{name}"
        finally:
            self.give_back(name)

    def close(self) -> None:
        self._stop.set()
        while True:  # let the maker see the stop, then drop what it made
            try:
                found = self._ready.get(timeout=0.05)
            except queue.Empty:
                if not self._maker.is_alive():
                    break
                continue
            if isinstance(found, str):
                self._used.put(found)
        self._used.put(None)
        self._dropper.join(timeout=60)

    def _make(self) -> None:
        import psycopg

        while not self._stop.is_set():
            name = f"lgs_test_{uuid.uuid4().hex[:12]}"
            try:
                with psycopg.connect(self.admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except BaseException as exc:
                self._ready.put(exc)
                return
            while not self._stop.is_set():
                try:
                    self._ready.put(name, timeout=0.1)
                    break
                except queue.Full:
                    continue
            else:
                self._used.put(name)

    def _drop(self) -> None:
        import psycopg

        while (name := self._used.get()) is not None:
            try:
                with psycopg.connect(self.admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # pragma: no cover - left for the server's owner
                pass


@pytest.fixture(scope="session")
def _fresh_databases(postgres_admin_url: str) -> Iterator[_FreshDatabases]:
    pool = _FreshDatabases(postgres_admin_url)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(_fresh_databases: _FreshDatabases) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _fresh_databases.lent() as url:
        yield url


@pytest.fixture
def other_postgres_url(_fresh_databases: _FreshDatabases) -> Iterator[str]:
    """Another fresh PostgreSQL database on the server of ``postgres_url``."""
    with _fresh_databases.lent() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A database URL per backend: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scheduler.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'scheduler.db'}"


@pytest.fixture
def make_graph() -> Callable[..., StateGraph[Any, Any, Any, Any]]:
    def make(*steps: Any, **kwargs: Any) -> StateGraph[Any, Any, Any, Any]:
        return build_graph(ScriptedChatModel(steps=list(steps) or ["done"], **kwargs))

    return make


@pytest.fixture
def runs() -> RunWaiter:
    return RunWaiter()


@pytest.fixture
async def runtime_factory(
    runs: RunWaiter,
) -> AsyncIterator[Callable[..., SchedulerRuntime]]:
    """Make runtimes that report to ``runs`` and are stopped after the test."""
    made: list[SchedulerRuntime] = []

    def make(graph: Any, **kwargs: Any) -> SchedulerRuntime:
        kwargs.setdefault("drain_timeout_secs", 5)
        rt = SchedulerRuntime(graph, on_run=runs, **kwargs)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        await rt.stop(drain_timeout_secs=0)
