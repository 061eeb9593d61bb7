"""Shared fixtures: databases (SQLite file, PostgreSQL), graphs on a scripted model."""

from __future__ import annotations

import os
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


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"lgs_test_{uuid.uuid4().hex[:12]}"
    admin = _plain(postgres_admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
