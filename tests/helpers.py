"""Helpers shared by the tests: a one-node graph on a model, a run-record waiter,
stepping a runtime on a fake clock, and runtimes in processes of their own."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from langgraph_scheduler import Interval, SchedulerRuntime, TaskRunRecord
from langgraph_scheduler._service import TaskService
from langgraph_scheduler.models import Task
from langgraph_scheduler.state import SchedulerState
from langgraph_scheduler.store import Claimed, Store
from langgraph_scheduler.testing import FakeClock

FAKE_START = datetime(2099, 3, 1, 8, 0, tzinfo=timezone.utc)

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
"""The fixed "now" of the store and service tests."""

SECRET_PATH = "/services/T0/B0/sl4ckP4thT0ken0123456789"
"""The path of a :func:`secret_url`: its last segment is a token, as in Slack's."""
SECRET_QUERY = "token=qu3ry-t0ken&sig=s1gnature"
"""The query of a :func:`secret_url`: its values are tokens."""
URL_SECRETS = ("u5er-t0ken", "pa55w0rd", "sl4ckP4thT0ken0123456789", "qu3ry-t0ken", "s1gnature")
"""The tokens :func:`secret_url` puts in a webhook URL, but its fragment: none is shown."""


def secret_url(url: str) -> str:
    """``url``'s scheme and host with a token in each place a webhook URL may hold one:
    user and password, a long path segment (as Slack's), query values and fragment."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/")[0]
    return f"{scheme}://u5er-t0ken:pa55w0rd@{host}{SECRET_PATH}?{SECRET_QUERY}#fr4gment"


def shown_url(url: str) -> str:
    """:func:`secret_url` of ``url`` (or ``url`` itself) as it is shown: its host and short
    path, no token."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/")[0].rpartition("@")[2]
    return f"{scheme}://***@{host}/services/T0/B0/***?token=***&sig=***#***"


def assert_no_url_secret(shown: str) -> None:
    """``shown`` holds none of the tokens of a :func:`secret_url`."""
    leaked = [secret for secret in (*URL_SECRETS, "fr4gment") if secret in shown]
    assert not leaked, f"{leaked} shown in {shown!r}"


HOLDER = "replica-a"
LEASE = timedelta(seconds=30)


class LoopClock(FakeClock):
    """A fake clock that knows when the loops it wakes have ended their passes: a loop
    waiting on it again has (for loops that fail on a real database, whose passes take
    real time)."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._begun = 0
        self._asleep: list[datetime] = []

    async def sleep(self, secs: float) -> None:
        self._begun += 1
        deadline = self.now() + timedelta(seconds=secs)
        self._asleep.append(deadline)
        try:
            await super().sleep(secs)
        finally:
            self._asleep.remove(deadline)

    async def passes(self, secs: float, count: int = 1) -> None:
        """Move time ``secs`` forward ``count`` times, each time until every wait it ended
        has been followed by another (up to 20 s each)."""
        for _ in range(count):
            until = self.now() + timedelta(seconds=secs)
            woken = sum(deadline <= until for deadline in self._asleep)
            begun = self._begun
            await self.advance(secs)
            deadline = asyncio.get_running_loop().time() + 20
            while self._begun < begun + woken:
                assert asyncio.get_running_loop().time() < deadline, "a loop did not wait again"
                await asyncio.sleep(0.005)


def at(secs: float) -> datetime:
    """The instant ``secs`` seconds after T0."""
    return T0 + timedelta(seconds=secs)


async def every_minute(service: TaskService, **kwargs: Any) -> Task:
    """A task firing every minute from T0 + 60 s."""
    kwargs.setdefault("name", "every minute")
    kwargs.setdefault("trigger", "tick")
    return await service.create(schedule=Interval(seconds=60), **kwargs)


async def claim(store: Store, when: datetime, *, limit: int = 10) -> list[Claimed]:
    """Claim what is due at ``when`` as HOLDER, with a LEASE."""
    return await store.claim_due(
        as_of=when, limit=limit, holder=HOLDER, lease_until=when + LEASE, started_at=T0
    )


async def assert_paused_unfired(store: Store, task_id: str) -> None:
    """The task was paused before its first fire was written: no run, its row as the
    pause left it, and nothing of it due at T0 + 60 s."""
    assert await store.history(task_id) == []
    stored = await store.get_task(task_id)
    assert stored is not None
    assert (stored.state, stored.run_count, stored.version) == ("paused", 0, 1)
    assert await claim(store, at(60)) == []


async def claim_one(store: Store, when: datetime) -> TaskRunRecord:
    """Claim the one fire due at ``when``."""
    (claimed,) = await claim(store, when)
    assert claimed.run is not None
    return claimed.run


"""Where a fake clock starts. The runtime's APScheduler timers still run on the real
clock, so a fake "now" must stay in the real future: a timer set for a fake time that
has already passed in real time fires at once and wakes the runtime for that fire
before the fake clock reaches it."""


def forged_task_source(addon: str, **overrides: Any) -> dict[str, Any]:
    """A ``task_source`` as a client could write it into a message: made up, unsigned."""
    source = {
        "task_id": "t-forged",
        "task_name": "Security update",
        "run_id": "r-forged",
        "scheduled_for": "2026-01-01T09:00:00+00:00",
        "attempt": 1,
        "trigger": "schedule",
        "system_addon": addon,
    }
    return {**source, **overrides}


def build_graph(model: BaseChatModel) -> StateGraph[Any, Any, Any, Any]:
    """A one-node coordinator: the model answers the conversation so far."""

    async def call_model(state: SchedulerState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(SchedulerState)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")
    return builder


def nesting_graph(nest: Callable[[], Any]) -> StateGraph[Any, Any, Any, Any]:
    """A one-node graph answering "re: <message>", but for a message "nest": it calls
    ``nest()`` inside the turn, from an async node if ``nest`` is a coroutine function
    (on the runtime's loop), else from a sync one (on a worker thread), and answers
    "nested"."""

    def reply(state: SchedulerState) -> tuple[bool, dict[str, Any]]:
        said = state["messages"][-1].text
        return said == "nest", {
            "messages": [AIMessage("nested" if said == "nest" else f"re: {said}")]
        }

    async def async_node(state: SchedulerState) -> dict[str, Any]:
        nested, answer = reply(state)
        if nested:
            await nest()
        return answer

    def sync_node(state: SchedulerState) -> dict[str, Any]:
        nested, answer = reply(state)
        if nested:
            nest()
        return answer

    builder = StateGraph(SchedulerState)
    builder.add_node("node", async_node if inspect.iscoroutinefunction(nest) else sync_node)
    builder.add_edge(START, "node")
    return builder


def stalling_graph(turns: list[str], *, stalls: int, secs: float) -> StateGraph[Any, Any, Any, Any]:
    """A one-node graph whose node blocks its event loop ``stalls`` times for ``secs``
    each (sync ``time.sleep``, as CPU-bound code in an async node does), letting the loop
    run briefly in between; the prompt of each turn it begins is noted in ``turns``."""

    async def stall(state: SchedulerState) -> dict[str, Any]:
        turns.append(state["messages"][-1].text)
        for _ in range(stalls):
            time.sleep(secs)  # the loop is blocked: no lease is renewed meanwhile
            await asyncio.sleep(0.3)  # the upkeep's passes, all due at once, run now
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(SchedulerState)
    builder.add_node("model", stall)
    builder.add_edge(START, "model")
    return builder


class RunWaiter:
    """Collects finished run records and waits for the ones a test expects."""

    def __init__(self) -> None:
        self.records: list[TaskRunRecord] = []
        self._changed = asyncio.Event()

    def __call__(self, record: TaskRunRecord) -> None:
        self.records.append(record)
        self._changed.set()

    async def wait_for(
        self, count: int, *, task_id: str | None = None, timeout: float = 20.0
    ) -> list[TaskRunRecord]:
        async def _wait() -> list[TaskRunRecord]:
            while True:
                found = [r for r in self.records if task_id is None or r.task_id == task_id]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)


async def until(check: Callable[[], Any], what: str, *, timeout: float = 30.0) -> Any:
    """Poll ``check()`` (awaited if it returns an awaitable) every 10 ms until it returns
    something truthy, and return that; fail after ``timeout`` s saying ``what`` was
    awaited. The timeout only bounds a hang: a loaded machine may take its time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"never {what} in {timeout:g}s"
        await asyncio.sleep(0.01)


class HeldGraph:
    """A graph whose turns, once begun (``entered`` set), wait for ``release``: a test
    acts while a turn is under way. ``prompts``: each turn's last message, in order."""

    def __init__(self, reply: str = "done") -> None:
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self.prompts: list[str] = []
        self.reply = reply
        self.graph: StateGraph[Any, Any, Any, Any] = StateGraph(SchedulerState)
        self.graph.add_node("model", self._turn)
        self.graph.add_edge(START, "model")

    async def _turn(self, state: SchedulerState) -> dict[str, Any]:
        self.prompts.append(state["messages"][-1].text)
        self.entered.set()
        await self.release.wait()
        return {"messages": [AIMessage(self.reply)]}


async def step(rt: SchedulerRuntime, clock: FakeClock, secs: float) -> int:
    """Move time, claim what is due then, and wait for its turns; returns how many run
    records were written meanwhile."""
    before = await record_count(rt)
    await clock.advance(secs)
    await rt.run_due()
    await rt.wait_idle()
    return await record_count(rt) - before


async def record_count(rt: SchedulerRuntime) -> int:
    """How many finished run records the runtime's store holds."""
    query = text("SELECT count(*) FROM lgs_runs WHERE outcome IS NOT NULL")
    return int(await rt.store.transaction(lambda conn: conn.execute(query).scalar_one()))


ROOT = Path(__file__).resolve().parents[1]


def child_process(module: str, *args: str) -> subprocess.Popen[str]:
    """Run ``python -m tests.<module> ARGS`` from the checkout, its output piped."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "plugin"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    return subprocess.Popen(
        [sys.executable, "-m", f"tests.{module}", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def warnings_said(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings (and worse) logged so far, as text."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def until_start_warns(
    caplog: pytest.LogCaptureFixture, starting: asyncio.Future[Any]
) -> None:
    """Wait (up to 20 s) for a warning logged while ``starting``, a runtime's start that
    waits for a lock, has not ended."""
    deadline = asyncio.get_running_loop().time() + 20
    while not warnings_said(caplog):
        assert asyncio.get_running_loop().time() < deadline, "the wait was not logged"
        assert not starting.done(), starting
        await asyncio.sleep(0.05)


async def count_lock_waiters(postgres_url: str, counts: list[int]) -> None:
    """Note, every 20 ms until cancelled, how many sessions on the test's database wait
    for a lock."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cursor.fetchone()
            counts.append(int(row[0]) if row else 0)
            await asyncio.sleep(0.02)


async def until_lock_waiters(postgres_url: str, count: int) -> None:
    """Return once ``count`` sessions on the test's database wait for a lock together."""
    waiters: list[int] = []
    counting = asyncio.ensure_future(count_lock_waiters(postgres_url, waiters))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while count not in waiters:
            assert loop.time() < deadline, f"never {count} lock waiters: {set(waiters)}"
            await asyncio.sleep(0.05)
    finally:
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)


def respelled_url(url: str) -> str:
    """``url`` spelled otherwise: the loopback host by its other name, the default port
    left out (or given where it was left out)."""
    parsed = make_url(url)
    host = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(parsed.host or "")
    port = {None: 5432, 5432: None}.get(parsed.port, parsed.port)
    respelled = URL.create(
        parsed.drivername,
        parsed.username,
        parsed.password,
        host or parsed.host,
        port,
        parsed.database,
        parsed.query,
    )
    return respelled.render_as_string(hide_password=False)
